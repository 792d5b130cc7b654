"""Opening recorded files: plain or gzip, read whole (recordings are converted once).

A damaged .gz (cut short by a crash or a full disk, or with corrupt bytes) keeps every
complete line decompressed before the damage; the damage is noted in the FeedReport and the
reading goes on, so nothing already readable is lost.
"""
from __future__ import annotations

import zlib
from pathlib import Path
from typing import Iterable, List, Optional, Sequence, Tuple, Union

PathLike = Union[str, Path]

GZIP_MAGIC = b"\x1f\x8b"
_CHUNK = 1 << 16


def _gunzip(path: Path) -> Tuple[bytes, Optional[str]]:
    """(decompressed bytes, None) or, for a damaged file, (every byte decompressed before the
    damage, what went wrong). Several gzip members are read one after the other."""
    out: List[bytes] = []
    d = zlib.decompressobj(wbits=31)
    with open(path, "rb") as fh:
        while True:
            chunk = fh.read(_CHUNK)
            if not chunk:
                break
            saved = d.copy()
            try:
                out.append(d.decompress(chunk))
                while d.eof and d.unused_data.strip(b"\x00"):      # next member
                    rest = d.unused_data
                    d = zlib.decompressobj(wbits=31)
                    out.append(d.decompress(rest))
            except zlib.error as exc:
                # redo this chunk a byte at a time from the saved state: keep all the output
                # that came before the bad byte (the failed call returned none of it)
                out.extend(_until_error(saved, chunk))
                return b"".join(out), f"corrupt data ({exc})"
    if not d.eof:
        return b"".join(out), "the compressed stream ends early"
    return b"".join(out), None


def _until_error(d: "zlib._Decompress", data: bytes) -> List[bytes]:
    out = []
    for i in range(len(data)):
        if d.eof:                                   # a member ended: the next one starts
            if not data[i:].strip(b"\x00"):
                break
            d = zlib.decompressobj(wbits=31)
        try:
            out.append(d.decompress(data[i:i + 1]))
        except zlib.error:
            break
    return out


def read_lines(path: PathLike, report: Optional[object] = None) -> List[bytes]:
    """All lines of a plain or .gz file, without line terminators.

    A damaged .gz yields its complete lines before the damage, and ``report.truncated``
    (a FeedReport) gets (file, first line not read, why). A file named .gz that is not
    gzip raises ValueError.
    """
    path = Path(path)
    with open(path, "rb") as fh:
        magic = fh.read(2)
    if magic != GZIP_MAGIC:
        if path.suffix == ".gz":
            raise ValueError(f"{path}: not a gzip file (its name ends in .gz)")
        with open(path, "rb") as fh:
            return fh.read().splitlines()
    data, damage = _gunzip(path)
    if damage is None:
        return data.splitlines()
    lines = data[:data.rfind(b"\n") + 1].splitlines()       # the partial last line is dropped
    if report is not None:
        report.note_truncated(str(path), len(lines) + 1, damage)   # type: ignore[attr-defined]
    return lines


def as_paths(paths: Union[PathLike, Sequence[PathLike]]) -> List[Path]:
    if isinstance(paths, (str, Path)):
        return [Path(paths)]
    out = [Path(p) for p in paths]
    if not out:
        raise ValueError("no input files given")
    return out


def check_exists(paths: Iterable[Path]) -> None:
    for p in paths:
        if p.is_dir():
            raise FileNotFoundError(f"market data file {p} is a directory")
        if not p.is_file():
            raise FileNotFoundError(f"market data file not found: {p}")
