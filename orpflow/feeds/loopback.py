"""A loopback Binance exchange: recorded files played over a websocket, with the REST snapshot.

For tests and demos (``orpflow serve-replay``): the live feed connects to it exactly as it
connects to Binance (combined stream ``/stream?streams=...`` and ``GET /api/v3/depth``), on
127.0.0.1 only. The websocket side is picows; the REST side a small HTTP/1.1 server
(asyncio.start_server) on its own port, on the same event loop (uvloop where installed).

The stream lines are sent byte for byte as recorded. The REST snapshot is the server's book at
the current replay position: the recording's first snapshot for that symbol advanced by every
depth diff the replay has passed since (sent, dropped by a fault, or skipped while no client
was connected: a real venue's book does not wait either), with the recording's own decimal
strings. The book is brought up to date only when a snapshot is asked for, so the send loop
does no book work.
"""
from __future__ import annotations

import asyncio
import dataclasses
import math
import re
import threading
import time
from collections import deque
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Callable, Deque, Dict, List, Optional, Sequence, Set, Tuple, Union
from urllib.parse import parse_qs, urlsplit

import orjson

from orpflow.feeds._io import read_lines

PathLike = Union[str, Path]

LOOPBACK_HOSTS = {"127.0.0.1": "127.0.0.1", "localhost": "127.0.0.1", "::1": "::1"}
DEPTH_PATHS = {"/api/v3/depth": "spot", "/fapi/v1/depth": "futures", "/dapi/v1/depth": "futures"}
MALFORMED_FRAME = b'{"stream":"'            # a frame cut short: invalid JSON, as a broken proxy sends
BINARY_FRAME = b"\x00\x01orpflow-binary\xff"
SLOW_CLIENT_BYTES = 64 << 20                # paced mode: a client this far behind is disconnected
PRECISE_SLEEP_S = 0.002                     # paced mode: the last stretch to a due time, slept precisely
_SNAP, _DIFF = 0, 1


@dataclasses.dataclass(frozen=True)
class Faults:
    """Faults the loopback exchange injects; all off by default.

    drop_diffs: 0-based indices among the depth diffs sent (all symbols): not sent, counted.
    close_after: after this many messages sent in total, close every client (code 1001).
    snapshot_delay_s: REST snapshots are answered this much later (the book as of the request).
    malformed_every / binary_every: every Nth message sent is preceded by a malformed text
    frame / a binary frame (0: off).
    stall_after / stall_s: once this many messages are sent, send nothing for stall_s seconds,
    keeping the socket open (once; the replay then resumes where it stopped).
    """
    drop_diffs: Tuple[int, ...] = ()
    close_after: Tuple[int, ...] = ()
    snapshot_delay_s: float = 0.0
    malformed_every: int = 0
    binary_every: int = 0
    stall_after: Optional[int] = None
    stall_s: float = 0.0

    def __post_init__(self) -> None:
        def ints(name: str, lo: int) -> None:
            try:
                vals = tuple(int(v) for v in getattr(self, name))
            except (TypeError, ValueError):
                raise ValueError(f"faults {name}: expected whole numbers, got {getattr(self, name)!r}") from None
            if any(v < lo for v in vals):
                raise ValueError(f"faults {name}: every value must be >= {lo}, got {vals}")
            object.__setattr__(self, name, vals)
        ints("drop_diffs", 0)
        ints("close_after", 1)
        for name in ("snapshot_delay_s", "stall_s"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not (0 <= v < math.inf):
                raise ValueError(f"faults {name}: expected seconds >= 0, got {v!r}")
        for name in ("malformed_every", "binary_every"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ValueError(f"faults {name}: expected a whole number >= 0 (0: off), got {v!r}")
        if self.stall_after is not None and (isinstance(self.stall_after, bool)
                                             or not isinstance(self.stall_after, int) or self.stall_after < 1):
            raise ValueError(f"faults stall_after: expected a message count >= 1, got {self.stall_after!r}")
        if self.stall_s and self.stall_after is None:
            raise ValueError("faults stall_s needs stall_after (when to stall)")


class _Book:
    """One symbol's book as the venue would serve it: {Decimal price: (price str, qty str)}."""
    __slots__ = ("bids", "asks", "lid", "synced", "fresh", "pending", "gaps", "cursor")

    def __init__(self) -> None:
        self.bids: Dict[Decimal, Tuple[str, str]] = {}
        self.asks: Dict[Decimal, Tuple[str, str]] = {}
        self.lid = 0
        self.synced = False
        self.fresh = False                   # no diff applied since the snapshot yet
        self.pending: Deque[dict] = deque(maxlen=100_000)   # diffs passed before a snapshot
        self.gaps = 0
        self.cursor = 0                      # next entry of the symbol's event list

    def snapshot(self, body: dict) -> None:
        self.bids, self.asks = {}, {}
        for side, book in (("bids", self.bids), ("asks", self.asks)):
            for px, qty in body.get(side) or ():
                if not _is_zero(qty):
                    book[Decimal(px)] = (px, qty)
        self.lid, self.synced, self.fresh = int(body["lastUpdateId"]), True, True
        pending, self.pending = list(self.pending), deque(maxlen=100_000)
        for d in pending:                    # diffs recorded while the snapshot was in flight
            self.diff(d)

    def diff(self, d: dict) -> None:
        if not self.synced:
            self.pending.append(d)
            return
        first, last = int(d["U"]), int(d["u"])
        if last <= self.lid:
            return                           # already in the snapshot
        if self.fresh:
            ok = first <= self.lid + 1
        elif "pu" in d:
            ok = int(d["pu"]) == self.lid    # futures: the previous diff's u
        else:
            ok = first == self.lid + 1       # spot: gapless ids
        if not ok:                           # the recording itself has a gap: wait for its next snapshot
            self.gaps += 1
            self.synced = False
            self.bids, self.asks = {}, {}
            self.pending.append(d)
            return
        for side, book in (("b", self.bids), ("a", self.asks)):
            for px, qty in d.get(side) or ():
                key = Decimal(px)
                if _is_zero(qty):
                    book.pop(key, None)
                else:
                    book[key] = (px, qty)
        self.lid, self.fresh = last, False

    def body(self, limit: int) -> bytes:
        bids = [list(self.bids[k]) for k in sorted(self.bids, reverse=True)[:limit]]
        asks = [list(self.asks[k]) for k in sorted(self.asks)[:limit]]
        return orjson.dumps({"lastUpdateId": self.lid, "bids": bids, "asks": asks})


def _is_zero(qty: str) -> bool:
    return not qty.strip("0.")


class _Client:
    __slots__ = ("transport", "mask", "paused")

    def __init__(self, transport: Any, mask: bytearray) -> None:
        self.transport, self.mask, self.paused = transport, mask, False


_EXCHANGE_TIME = re.compile(rb'"([ET])":(\d{1,18})\b')


def restamp(payload: bytes, shift_ms: int) -> bytes:
    """The message with its exchange times ("E", "T": epoch ms) moved by shift_ms."""
    return _EXCHANGE_TIME.sub(lambda m: b'"%s":%d' % (m.group(1), int(m.group(2)) + shift_ms), payload)


def _stream_symbols(streams: Sequence[str]) -> Set[str]:
    return {s.split("@", 1)[0].lower() for s in streams if s}


class LoopbackExchange:
    """Play recorded Binance files as a Binance websocket + REST endpoint on the loopback.

    Parameters
    ----------
    files : path or sequence of paths
        Recordings (``<recv_ns> <json>`` lines, plain or gzip), played in the order given.
    speed : float
        1.0 recorded pace (the recv_ns gaps), N for N times faster, 0 flat out (as fast as the
        client reads: the socket's flow control holds the server, nothing is buffered without
        bound). Paced, the clock starts when the first client subscribes and runs on while no
        client is connected (those messages are skipped, counted); flat out, the replay waits.
    host : str
        127.0.0.1, localhost or ::1 (anything else: ValueError).
    ws_port, rest_port : int
        0 (default): an ephemeral port.
    faults : Faults
        Faults to inject.
    restamp : bool
        True (default): the exchange times in each message ("E", "T", epoch ms) are moved to
        the time it is sent, keeping the recording's own offset between exchange and receive
        time, as a venue streaming now would stamp them (a paper broker, which runs on exchange
        time, then sees orders arrive and fill). False: every byte as recorded.

    loop : bool
        At the end, play the files again from the start (for long sessions): the update ids
        go back, so the client sees a gap and resyncs from the REST snapshot, as after a venue
        reset.

    Raises
    ------
    FileNotFoundError
        A recording does not exist.
    ValueError
        A host other than the loopback, a negative speed, a port out of range, a file named .gz
        that is not gzip.
    ImportError
        picows is not installed (``pip install "orpflow[live]"``).
    OSError
        From ``start()``/``serve_forever()``: a port already in use.
    """

    def __init__(self, files: Union[PathLike, Sequence[PathLike]], *, speed: float = 1.0,
                 host: str = "127.0.0.1", ws_port: int = 0, rest_port: int = 0,
                 faults: Faults = Faults(), restamp: bool = True, loop: bool = False) -> None:
        if host not in LOOPBACK_HOSTS:
            raise ValueError(f"host {host!r}: the loopback exchange binds the loopback only "
                             f"(127.0.0.1, localhost or ::1)")
        if isinstance(speed, bool) or not isinstance(speed, (int, float)) or not 0 <= speed < math.inf:
            raise ValueError(f"speed must be >= 0 (0: flat out), got {speed!r}")
        for name, port in (("ws_port", ws_port), ("rest_port", rest_port)):
            if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
                raise ValueError(f"{name} must be in [0, 65535], got {port!r}")
        if not isinstance(faults, Faults):
            raise TypeError("faults must be a Faults")
        try:
            import picows  # noqa: F401
        except ImportError:
            raise ImportError('the loopback exchange needs picows: pip install "orpflow[live]"') from None
        self.files = [Path(files)] if isinstance(files, (str, Path)) else [Path(f) for f in files]
        if not self.files:
            raise ValueError("no recording to play")
        self.speed = float(speed)
        self.host = LOOPBACK_HOSTS[host]
        self.ws_port, self.rest_port = ws_port, rest_port
        self.faults = faults
        self.restamp = bool(restamp)
        self.loop = bool(loop)
        self._load()
        self._clients: List[_Client] = []
        self._pos = 0
        self._counts = dict(sent=0, skipped=0, dropped=0, malformed=0, binary=0, closes=0, stalls=0,
                            connections=0, pauses=0, slow_disconnects=0, snapshots=0, rest_errors=0,
                            loops=0)
        self._depth_sent = 0
        self._done = False
        self._started = False
        self._weights: Deque[Tuple[float, int]] = deque()
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._thread: Optional[threading.Thread] = None
        self._stop: Optional[asyncio.Event] = None

    # ------------------------------------------------------------------ loading
    def _load(self) -> None:
        """Stream messages (sent as recorded) and, per symbol, its snapshots and diffs by position."""
        self._ts: List[float] = []               # seconds since the first message, never decreasing
        self._recv_ms: List[int] = []            # recorded receive time (epoch ms)
        self._payload: List[bytes] = []
        self._sym: List[int] = []
        self._is_depth = bytearray()
        self._symbols: List[str] = []
        self._sym_index: Dict[str, int] = {}
        self._events: List[List[Tuple[int, int, bytes]]] = []    # per symbol: (position, kind, payload)
        self.unreadable = 0                      # lines that are not `<recv_ns> <json>`
        self.unplayable = 0                      # JSON that is neither a stream message nor a snapshot
        first_ns: Optional[int] = None
        last = 0.0
        for path in self.files:
            if not path.is_file():
                raise FileNotFoundError(f"{path}: recording not found") if not path.exists() else \
                    IsADirectoryError(f"{path}: not a file")
            raw_snaps: List[Tuple[int, bytes]] = []
            file_syms: Set[int] = set()
            for line in read_lines(path):
                ns_b, _, payload = line.partition(b" ")
                try:
                    ns = int(ns_b)
                except ValueError:
                    self.unreadable += 1
                    continue
                payload = payload.strip(b" ")
                stream = self._stream_of(payload)
                if stream is None:
                    if b'"lastUpdateId"' in payload:
                        raw_snaps.append((len(self._payload), payload))
                    else:
                        self.unplayable += 1
                    continue
                name, _, kind = stream.partition("@")
                sym = self._symbol(name.lower())
                if kind == "depthSnapshot":
                    self._events[sym].append((len(self._payload), _SNAP, payload))
                    continue
                if first_ns is None:
                    first_ns = ns
                last = max(last, (ns - first_ns) / 1e9)
                depth = kind == "depth" or kind.startswith("depth@")
                if depth:
                    self._events[sym].append((len(self._payload), _DIFF, payload))
                    file_syms.add(sym)
                self._ts.append(last)
                self._recv_ms.append(ns // 1_000_000)
                self._payload.append(payload)
                self._sym.append(sym)
                self._is_depth.append(depth)
            # a raw snapshot (no "stream") names no symbol: it is the file's, if the file has one
            if raw_snaps:
                if len(file_syms) == 1:
                    sym = file_syms.pop()
                    self._events[sym].extend((pos, _SNAP, p) for pos, p in raw_snaps)
                    self._events[sym].sort(key=lambda e: (e[0], e[1]))   # stable: file order kept
                else:
                    self.unplayable += len(raw_snaps)
        self._books = [_Book() for _ in self._symbols]

    def _symbol(self, name: str) -> int:
        i = self._sym_index.get(name)
        if i is None:
            i = self._sym_index[name] = len(self._symbols)
            self._symbols.append(name)
            self._events.append([])
        return i

    @staticmethod
    def _stream_of(payload: bytes) -> Optional[str]:
        if payload.startswith(b'{"stream":"'):                # the recorder's shape: no JSON parse
            end = payload.find(b'"', 11)
            if end > 11:
                return payload[11:end].decode("ascii", "replace")
        try:
            obj = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return None
        s = obj.get("stream") if isinstance(obj, dict) else None
        return s if isinstance(s, str) and s else None

    # ------------------------------------------------------------------ public
    @property
    def symbols(self) -> List[str]:
        return [s.upper() for s in self._symbols]

    @property
    def ws_url(self) -> str:
        return f"ws://{self._hostport(self.ws_port)}"

    @property
    def rest_url(self) -> str:
        return f"http://{self._hostport(self.rest_port)}"

    def _hostport(self, port: int) -> str:
        return f"[{self.host}]:{port}" if ":" in self.host else f"{self.host}:{port}"

    def stats(self) -> Dict[str, Any]:
        s: Dict[str, Any] = dict(self._counts)
        s.update(messages=len(self._payload), position=self._pos, clients=len(self._clients),
                 done=self._done, started=self._started, speed=self.speed, unreadable=self.unreadable,
                 unplayable=self.unplayable, symbols=self.symbols,
                 book_gaps=sum(b.gaps for b in self._books))
        return s

    def start(self) -> "LoopbackExchange":
        """Serve in a background thread with its own event loop; returns once listening."""
        if self._thread is not None:
            raise RuntimeError("already started")
        ready = threading.Event()
        failure: List[BaseException] = []

        def run() -> None:
            try:
                self._run_loop(ready.set, signals=False)
            except BaseException as exc:     # a bind error: start() raises it
                failure.append(exc)
                ready.set()

        self._thread = threading.Thread(target=run, name="orpflow-loopback", daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            self._thread.join()
            raise failure[0]
        return self

    def serve_forever(self, ready: Optional[Callable[["LoopbackExchange"], None]] = None) -> None:
        """Serve in this thread until SIGINT/SIGTERM (main thread) or close()."""
        self._run_loop(lambda: ready(self) if ready else None,
                       signals=threading.current_thread() is threading.main_thread())

    def close(self) -> None:
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(stop.set)
            except RuntimeError:             # the loop closed meanwhile
                pass
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(5.0)

    def __enter__(self) -> "LoopbackExchange":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ------------------------------------------------------------------ event loop
    def _run_loop(self, ready: Callable[[], None], signals: bool) -> None:
        loop: asyncio.AbstractEventLoop
        try:
            import uvloop
            loop = uvloop.new_event_loop()
        except ImportError:                  # pragma: no cover - uvloop is optional
            loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(self._main(ready, signals))
        finally:
            loop.close()

    async def _main(self, ready: Callable[[], None], signals: bool) -> None:
        from picows import ws_create_server
        self._loop = loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self._have_client = asyncio.Event()
        self._resumed = asyncio.Event()
        self._resumed.set()
        self._paused = 0
        self._rest_writers: Set[asyncio.StreamWriter] = set()
        ws = await ws_create_server(self._listener_for, self.host, self.ws_port,
                                    websocket_handshake_timeout=5)
        try:
            rest = await asyncio.start_server(self._rest_connection, self.host, self.rest_port)
        except BaseException:
            ws.close()
            raise
        self.ws_port = ws.sockets[0].getsockname()[1]
        self.rest_port = rest.sockets[0].getsockname()[1]
        if signals:
            import signal
            for s in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(s, self._stop.set)
        replay = asyncio.ensure_future(self._replay())
        ready()
        try:
            await self._stop.wait()
        finally:
            replay.cancel()
            ws.close()
            rest.close()
            for c in list(self._clients):
                c.transport.disconnect(graceful=False)
            for w in list(self._rest_writers):
                w.close()
            await asyncio.sleep(0)

    # ------------------------------------------------------------------ websocket
    def _listener_for(self, request: Any) -> Any:
        from picows import WSListener
        url = urlsplit(request.path.decode("latin-1"))
        if url.path.rstrip("/") != "/stream":
            return None                      # picows answers 404
        streams = [s for v in parse_qs(url.query).get("streams", []) for s in v.split("/")]
        ex = self

        class Listener(WSListener):          # type: ignore[misc]
            client: Optional[_Client] = None

            def on_ws_connected(self, transport: Any) -> None:
                self.client = ex._connect(transport, _stream_symbols(streams))

            def on_ws_frame(self, transport: Any, frame: Any) -> None:
                ex._on_frame(self.client, transport, frame)

            def on_ws_disconnected(self, transport: Any) -> None:
                ex._disconnect(self.client)

            def pause_writing(self) -> None:
                ex._pause(self.client, True)

            def resume_writing(self) -> None:
                ex._pause(self.client, False)

        return Listener()

    def _mask(self, syms: Set[str]) -> bytearray:
        return bytearray(s in syms for s in self._symbols)

    def _connect(self, transport: Any, syms: Set[str]) -> _Client:
        c = _Client(transport, self._mask(syms))
        self._clients.append(c)
        self._counts["connections"] += 1
        self._subscribed()
        return c

    def _subscribed(self) -> None:
        if any(any(c.mask) for c in self._clients):
            self._have_client.set()

    def _disconnect(self, c: Optional[_Client]) -> None:
        if c is not None and c in self._clients:
            self._clients.remove(c)
            self._pause(c, False)
            if not self._clients:
                self._have_client.clear()

    def _pause(self, c: Optional[_Client], paused: bool) -> None:
        if c is None or c.paused == paused:
            return
        c.paused = paused
        self._paused += 1 if paused else -1
        if paused:
            self._counts["pauses"] += 1
            self._resumed.clear()
        elif self._paused == 0:
            self._resumed.set()

    def _on_frame(self, c: Optional[_Client], transport: Any, frame: Any) -> None:
        from picows import WSCloseCode, WSMsgType
        t = frame.msg_type
        if t == WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code() or WSCloseCode.OK)
            transport.disconnect()
        elif t == WSMsgType.TEXT and c is not None:
            # Binance's live (un)subscription: {"method": "SUBSCRIBE", "params": [...], "id": N}
            try:
                req = orjson.loads(frame.get_payload_as_bytes())
                method, params = req["method"], req.get("params") or []
                syms = _stream_symbols([str(p) for p in params])
            except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
                return
            if method in ("SUBSCRIBE", "UNSUBSCRIBE"):
                on = method == "SUBSCRIBE"
                for name in syms:
                    if name in self._sym_index:
                        c.mask[self._sym_index[name]] = on
                transport.send(WSMsgType.TEXT, orjson.dumps({"result": None, "id": req.get("id")}))
                self._subscribed()

    def _close_clients(self) -> None:
        from picows import WSCloseCode
        for c in list(self._clients):
            c.transport.send_close(WSCloseCode.GOING_AWAY, b"orpflow loopback: close_after fault")
            c.transport.disconnect()
            self._disconnect(c)
        self._counts["closes"] += 1

    # ------------------------------------------------------------------ replay
    async def _replay(self) -> None:
        from picows import WSMsgType
        TEXT, BINARY = WSMsgType.TEXT, WSMsgType.BINARY
        f = self.faults
        drops = set(f.drop_diffs)
        closes = sorted(set(f.close_after))
        stall_at = f.stall_after
        counts = self._counts
        ts, payloads, syms, is_depth = self._ts, self._payload, self._sym, self._is_depth
        n = len(payloads)
        speed = self.speed
        inv = 1.0 / speed if speed else 0.0
        await self._have_client.wait()
        self._started = True
        # perf_counter, not loop.time(): uvloop's clock and timers have 1 ms resolution. The
        # loop's timer gets within ~2 ms, then a short time.sleep (no spinning) to the due time.
        clock = time.perf_counter
        base = clock()
        now = yielded = base
        i = 0
        while i < n:
            if speed:
                due = base + ts[i] * inv
                if due > now:                # everything due by `now` goes out together
                    now = clock()
                    if due - now > PRECISE_SLEEP_S:
                        await asyncio.sleep(due - now - PRECISE_SLEEP_S)
                        now = yielded = clock()
                    if due > now:
                        time.sleep(due - now)
                        now = clock()
                if now - yielded > PRECISE_SLEEP_S:
                    await asyncio.sleep(0)   # a dense burst still lets REST and connections in
                    yielded = now
            else:
                if not self._clients:
                    await self._have_client.wait()
                if self._paused:             # the client's back-pressure holds the replay
                    await self._resumed.wait()
                elif not i & 63:
                    await asyncio.sleep(0)   # let REST requests and new connections in
            # ---- one message
            sym = syms[i]
            targets = [c for c in self._clients if c.mask[sym]]
            if not targets:
                counts["skipped"] += 1
            elif is_depth[i] and self._depth_sent in drops:
                self._depth_sent += 1
                counts["dropped"] += 1
            else:
                if is_depth[i]:
                    self._depth_sent += 1
                k = counts["sent"] + 1
                payload = payloads[i]
                if self.restamp:
                    payload = restamp(payload, int(time.time() * 1000) - self._recv_ms[i])
                for c in targets:
                    tr = c.transport
                    if f.malformed_every and k % f.malformed_every == 0:
                        tr.send(TEXT, MALFORMED_FRAME)
                    if f.binary_every and k % f.binary_every == 0:
                        tr.send(BINARY, BINARY_FRAME)
                    tr.send(TEXT, payload)
                    if c.paused and speed and \
                            tr.underlying_transport.get_write_buffer_size() > SLOW_CLIENT_BYTES:
                        tr.disconnect(graceful=False)    # a real venue drops a client this slow
                        counts["slow_disconnects"] += 1
                if f.malformed_every and k % f.malformed_every == 0:
                    counts["malformed"] += 1
                if f.binary_every and k % f.binary_every == 0:
                    counts["binary"] += 1
                counts["sent"] = k
                while closes and closes[0] <= k:
                    closes.pop(0)
                    self._close_clients()
                if k == stall_at:
                    counts["stalls"] += 1
                    i += 1
                    self._pos = i
                    await asyncio.sleep(f.stall_s)
                    base += f.stall_s        # paced: the stream resumes where it stopped
                    now = yielded = clock()
                    continue
            i += 1
            self._pos = i
            if i == n and self.loop:         # again from the start: a venue reset to the client
                i = 0
                self._pos = 0
                self._books = [_Book() for _ in self._symbols]
                self._counts["loops"] += 1
                base = now = yielded = clock()
        self._done = True

    # ------------------------------------------------------------------ REST
    def _book_now(self, sym: int) -> _Book:
        """The symbol's book brought up to the replay position."""
        book, events, pos = self._books[sym], self._events[sym], self._pos
        while book.cursor < len(events):
            at, kind, payload = events[book.cursor]
            if at > pos or (kind == _DIFF and at == pos):
                break                        # a diff at `pos` has not been passed yet
            obj = orjson.loads(payload)
            data = obj["data"] if "stream" in obj else obj
            if kind == _SNAP:
                if not book.synced:
                    book.snapshot(data)
            else:
                book.diff(data)
            book.cursor += 1
        return book

    async def _rest_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._rest_writers.add(writer)
        try:
            while True:
                line = await reader.readline()
                if not line.strip():
                    break
                headers: Dict[str, str] = {}
                while True:
                    h = await reader.readline()
                    if not h.strip():
                        break
                    k, _, v = h.decode("latin-1").partition(":")
                    headers[k.strip().lower()] = v.strip()
                    if len(headers) > 100:
                        raise ValueError("too many headers")
                parts = line.decode("latin-1").split()
                if len(parts) != 3:
                    break
                method, target, version = parts
                if int(headers.get("content-length", "0") or 0):
                    await reader.readexactly(int(headers["content-length"]))
                status, body, extra = await self._rest(method, target)
                keep = version == "HTTP/1.1" and headers.get("connection", "").lower() != "close"
                head = [f"HTTP/1.1 {status}", "Content-Type: application/json;charset=UTF-8",
                        f"Content-Length: {len(body)}", f"Connection: {'keep-alive' if keep else 'close'}"]
                head += [f"{k}: {v}" for k, v in extra.items()]
                writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)
                await writer.drain()
                if not keep:
                    break
        except (ConnectionError, ValueError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            self._rest_writers.discard(writer)
            writer.close()

    def _weight(self, w: int) -> int:
        """Request weight used in the last minute (Binance's X-MBX-USED-WEIGHT-1M)."""
        now = time.monotonic()
        self._weights.append((now, w))
        while self._weights[0][0] < now - 60:
            self._weights.popleft()
        return sum(x for _, x in self._weights)

    async def _rest(self, method: str, target: str) -> Tuple[str, bytes, Dict[str, str]]:
        url = urlsplit(target)
        if method != "GET":
            return self._error("405 Method Not Allowed", -1000, "only GET")
        if url.path == "/orpflow/status":
            return "200 OK", orjson.dumps(self.stats()), {}
        market = DEPTH_PATHS.get(url.path)
        if market is None:
            return self._error("404 Not Found", -1000, f"no such endpoint {url.path}")
        q = {k: v[-1] for k, v in parse_qs(url.query).items()}
        if "symbol" not in q:
            return self._error("400 Bad Request", -1102, "Mandatory parameter 'symbol' was not sent")
        try:
            limit = int(q.get("limit", "100"))
        except ValueError:
            limit = -1
        if not 1 <= limit <= 5000:
            return self._error("400 Bad Request", -1100, "Illegal characters found in parameter 'limit'")
        weight = self._weight(_depth_weight(limit, market))
        extra = {"X-MBX-USED-WEIGHT-1M": str(weight)}
        sym = self._sym_index.get(q["symbol"].lower())
        if sym is None:
            return self._error("400 Bad Request", -1121, "Invalid symbol.", extra)
        book = self._book_now(sym)
        if not book.synced:
            return self._error("503 Service Unavailable", -1008,
                               "no snapshot yet at this point of the recording; retry", extra)
        body = book.body(limit)              # the book as of the request ...
        if self.faults.snapshot_delay_s:
            await asyncio.sleep(self.faults.snapshot_delay_s)   # ... answered late
        self._counts["snapshots"] += 1
        return "200 OK", body, extra

    def _error(self, status: str, code: int, msg: str,
               extra: Optional[Dict[str, str]] = None) -> Tuple[str, bytes, Dict[str, str]]:
        self._counts["rest_errors"] += 1
        return status, orjson.dumps({"code": code, "msg": msg}), extra or {}


def _depth_weight(limit: int, market: str) -> int:
    """Binance's request weight of a depth snapshot by limit."""
    if market == "spot":
        return 5 if limit <= 100 else 25 if limit <= 500 else 50 if limit <= 1000 else 250
    return 2 if limit <= 50 else 5 if limit <= 100 else 10 if limit <= 500 else 20
