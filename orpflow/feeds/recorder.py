"""Recording what a live session trades on: every received message, in the replayable format.

Each line is ``<recv_ns> <json>`` (the format ``read_binance`` reads), gzip, rotated:
``record = "dir/live.gz"`` writes ``dir/live-YYYYMMDD-NNNN.gz`` (UTC day of the file's first
line; NNNN counts from 0001 and never overwrites: a restarted session takes the next number).
A new file starts past ``max_bytes`` (compressed) or at a new UTC day.

The feed thread only appends to a queue (``write``: no I/O, no compression on the hot path).
A background thread compresses and writes, and at least every ``flush_s`` seconds makes what
it has written readable (a zlib sync flush, then the OS's file buffers): a crash (even kill
-9) loses at most the last ``flush_s`` of messages, and the file's complete lines read back
(``read_lines`` keeps everything before a damaged or missing gzip end). ``close()`` writes
everything left, ends the gzip stream and fsyncs.
"""
from __future__ import annotations

import collections
import os
import re
import threading
import time
import zlib
from pathlib import Path
from typing import Deque, List, Optional, Tuple, Union

__all__ = ["Recorder", "recording_files", "record_line"]

_DAY_NS = 86_400 * 10 ** 9


def record_line(recv_ns: int, payload: bytes) -> bytes:
    """One recording line. Newlines inside the message become spaces (JSON whitespace: a
    valid message stays valid and equal, an invalid one stays invalid), one line each."""
    if b"\n" in payload or b"\r" in payload:
        payload = payload.replace(b"\n", b" ").replace(b"\r", b" ")
    return b"%d %s\n" % (recv_ns, payload)


def _pattern(base: Path) -> "re.Pattern[str]":
    stem = base.name[:-3] if base.name.endswith(".gz") else base.name
    return re.compile(re.escape(stem) + r"-(\d{8})-(\d{4,})\.gz\Z")


def recording_files(path: Union[str, Path]) -> List[Path]:
    """The rotated files of recording `path` ("dir/live.gz" -> dir/live-YYYYMMDD-NNNN.gz), in
    the order they were written."""
    base = Path(path)
    pat = _pattern(base)
    found = []
    folder = base.parent if str(base.parent) else Path(".")
    if folder.is_dir():
        for p in folder.iterdir():
            m = pat.match(p.name)
            if m:
                found.append((int(m.group(2)), m.group(1), p))
    return [p for _, _, p in sorted(found)]


class Recorder:
    """Writes a live session's messages (see the module docstring)."""

    def __init__(self, path: Union[str, Path], *, max_bytes: int = 256 << 20, flush_s: float = 1.0) -> None:
        self.base = Path(path)
        if not self.base.name.endswith(".gz"):
            raise ValueError(f"record must name a .gz file, got {path}")
        folder = self.base.parent if str(self.base.parent) else Path(".")
        if not folder.is_dir():
            raise FileNotFoundError(f"record: folder {folder} does not exist")
        self.max_bytes = max_bytes
        self.flush_s = flush_s
        self.files: List[Path] = []
        self.lines = 0                       # lines written to files (the writer thread)
        self.queued = 0                      # lines handed over by write()
        self.bytes_written = 0
        self.error: Optional[BaseException] = None
        self._q: Deque[Tuple[int, bytes]] = collections.deque()
        existing = recording_files(self.base)
        self._next = max((int(_pattern(self.base).match(p.name).group(2))       # type: ignore[union-attr]
                          for p in existing), default=0) + 1
        self._fh = None
        self._z = None
        self._day = -1
        self._size = 0
        self._closed = False
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name="orpflow-recorder", daemon=True)
        self._thread.start()

    # ---- feed thread
    def write(self, recv_ns: int, payload: bytes) -> None:
        """Queue one message (cheap: a deque append)."""
        self._q.append((recv_ns, payload))
        self.queued += 1

    # ---- writer thread
    def _open(self, day: int) -> None:
        self._end_file()
        stamp = time.strftime("%Y%m%d", time.gmtime(day * 86_400))
        stem = self.base.name[:-3]
        while True:
            p = self.base.with_name(f"{stem}-{stamp}-{self._next:04d}.gz")
            self._next += 1
            try:
                fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:              # never overwrite
                continue
            break
        self._fh = os.fdopen(fd, "wb")
        self._z = zlib.compressobj(6, zlib.DEFLATED, 31)
        self._day = day
        self._size = 0
        self.files.append(p)

    def _end_file(self) -> None:
        if self._fh is not None:
            self._put(self._z.flush(zlib.Z_FINISH))             # type: ignore[union-attr]
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._fh.close()
            self._fh = None

    def _put(self, data: bytes) -> None:
        if data:
            self._fh.write(data)                                 # type: ignore[union-attr]
            self._size += len(data)
            self.bytes_written += len(data)

    def _drain(self) -> None:
        q = self._q
        while q:
            ts, payload = q.popleft()
            day = ts // _DAY_NS
            if self._fh is None or day != self._day or self._size >= self.max_bytes:
                self._open(day)
            self._put(self._z.compress(record_line(ts, payload)))    # type: ignore[union-attr]
            self.lines += 1
        if self._fh is not None:
            self._put(self._z.flush(zlib.Z_SYNC_FLUSH))          # type: ignore[union-attr]
            self._fh.flush()

    def _run(self) -> None:
        try:
            while not self._closed:
                self._wake.wait(min(self.flush_s, 0.25))
                self._drain()
            self._drain()
            self._end_file()
        except BaseException as exc:              # a full disk: said by close() and stats
            self.error = exc

    def close(self) -> None:
        """Write everything queued, end the gzip stream, fsync. Raises what the writer hit."""
        if not self._closed:
            self._closed = True
            self._wake.set()
            self._thread.join()
        if self.error is not None:
            raise OSError(f"recording {self.base}: {self.error}") from self.error
