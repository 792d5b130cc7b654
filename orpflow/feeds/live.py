"""Live Binance market data into the engine's market ring (the feed thread).

One combined websocket stream (picows: Cython, zero-copy frames) carries every instrument's
depth diffs, trades and best bid/ask. Each text frame is stamped when it reaches orpflow
(monotonic clock, for the wire-to-order histogram; wall clock, strictly increasing, as the
records' ts_local), written to the recording if one is kept, converted by the same converter
a replay uses, and pushed into the market ring as one unit; a full ring makes this thread wait
(counted), so the socket backs up instead of anything being dropped.

Sync is the book's: the strategy thread's book decides gaps by the venue's sequence rules and
publishes its state; this thread polls that state and, when the book is out of sync, fetches a
REST depth snapshot itself (and on every (re)connect), pushing it through the ring like any
message: the book buffers diffs meanwhile and replays them on it. REST requests spend the
venue's per-minute request weight through a local budget that also follows the venue's
X-MBX-USED-WEIGHT-1M header and backs off on 418/429.

The feed runs its own event loop in its own thread (uvloop where installed), never the user's.
Reconnects back off exponentially with full jitter; a socket silent for silence_s seconds is
dropped and reconnected; ping/pong is answered by picows; a close frame (the venue's 24 h
disconnect among others) is answered and the socket reconnected.
"""
from __future__ import annotations

import asyncio
import collections
import logging
import random
import threading
import time
import urllib.error
import urllib.request
from typing import Any, Deque, Dict, List, Optional, Sequence, Tuple

from picows import WSListener, WSMsgType, ws_connect

from orpflow._core.binance_json import FastBinanceConverter
from orpflow._core.types import REASONS
from orpflow.instrument import Instrument
from orpflow.venues import VENUES, Venue

__all__ = ["LiveFeed", "RestWeights", "stream_names"]

_CODE_NAMES = {code: name for name, code in REASONS.items()}
STABLE_S = 30.0          # a connection that lived this long resets the reconnect backoff
POLL_S = 0.05            # book sync and silence checks
log = logging.getLogger("orpflow.live")    # connections and REST snapshots (picows logs to orpflow.feed)


def stream_names(venue: Venue, symbols: Sequence[str], depth_ms: int, trades: str) -> List[str]:
    out = []
    for sym in symbols:
        s = sym.lower()
        out += [venue.depth_stream(sym, depth_ms), f"{s}@{trades}", f"{s}@bookTicker"]
    return out


class RestWeights:
    """The venue's REQUEST_WEIGHT budget per minute, spent locally and corrected by what the
    venue reports (other programs on the same IP spend it too)."""

    def __init__(self, per_minute: int) -> None:
        self.limit = per_minute
        self.spent: Deque[Tuple[float, int]] = collections.deque()
        self.venue_used = 0
        self.venue_minute = -1
        self.blocked_until = 0.0          # wall time: after a 418/429

    def wait_s(self, weight: int, now: Optional[float] = None) -> float:
        """Seconds to wait before a request of `weight` fits the budget (0: send now)."""
        now = time.time() if now is None else now
        if now < self.blocked_until:
            return self.blocked_until - now
        while self.spent and self.spent[0][0] <= now - 60.0:
            self.spent.popleft()
        mine = sum(w for _, w in self.spent)
        used = max(mine, self.venue_used if int(now // 60) == self.venue_minute else 0)
        if used + weight <= self.limit:
            return 0.0
        if mine + weight > self.limit and self.spent:      # our own requests: until the oldest expires
            return max(self.spent[0][0] + 60.0 - now, 0.001)
        return 60.0 - now % 60.0 + 0.001                   # the venue's count: the next minute

    def spend(self, weight: int, now: Optional[float] = None) -> None:
        self.spent.append((time.time() if now is None else now, weight))

    def observe(self, headers: Dict[str, str], status: int, now: Optional[float] = None) -> None:
        now = time.time() if now is None else now
        used = headers.get("x-mbx-used-weight-1m")
        if used is not None and used.strip().isdigit():
            self.venue_used = int(used)
            self.venue_minute = int(now // 60)
        if status in (418, 429):
            retry = headers.get("retry-after", "")
            wait = float(retry) if retry.strip().isdigit() else 60.0
            self.blocked_until = max(self.blocked_until, now + wait)


def _http_get(url: str, timeout: float) -> Tuple[int, Dict[str, str], bytes]:
    """(status, headers lower-cased, body) of one GET; network errors raise OSError."""
    req = urllib.request.Request(url, headers={"User-Agent": "orpflow", "Accept": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()
    except urllib.error.HTTPError as exc:
        body = exc.read() if exc.fp is not None else b""
        return exc.code, {k.lower(): v for k, v in (exc.headers or {}).items()}, body


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
        return uvloop.new_event_loop()
    except ImportError:                       # pragma: no cover - uvloop is in the live extra
        return asyncio.new_event_loop()


class _Listener(WSListener):                  # type: ignore[misc]
    """picows calls on_ws_frame for every frame, in the feed thread's event loop."""

    def __init__(self, feed: "LiveFeed") -> None:
        super().__init__()
        self.feed = feed
        self.parts: List[bytes] = []          # a fragmented text message being assembled

    def on_ws_frame(self, transport: Any, frame: Any) -> None:
        t = time.monotonic_ns()               # the receive stamp: same clock as the engine's
        mt = frame.msg_type
        feed = self.feed
        feed.last_frame_s = t * 1e-9
        if not feed.first_frame_s:
            feed.first_frame_s = feed.last_frame_s
        if mt == WSMsgType.TEXT:
            c = feed.counts
            c["frames"] += 1
            c["bytes"] += frame.payload_size
            if frame.fin:
                feed.deliver(frame.get_payload_as_bytes(), t)
            else:
                self.parts = [frame.get_payload_as_bytes()]
        elif mt == WSMsgType.CONTINUATION:
            if not self.parts:                # a continuation of nothing (or of a binary frame)
                feed.counts["bad_frames"] += 1
                return
            self.parts.append(frame.get_payload_as_bytes())
            feed.counts["bytes"] += frame.payload_size
            if frame.fin:
                feed.counts["fragmented"] += 1
                payload, self.parts = b"".join(self.parts), []
                feed.deliver(payload, t)
        elif mt == WSMsgType.BINARY:
            feed.counts["binary_frames"] += 1     # Binance's market streams are text JSON
        elif mt == WSMsgType.CLOSE:
            feed.counts["closes_received"] += 1
            feed.last_close = (frame.get_close_code(), frame.get_close_message())
            transport.send_close(frame.get_close_code())
            transport.disconnect()
        # PING is answered by picows (enable_auto_pong); PONG needs nothing


class LiveFeed:
    """The live Binance feed of one Engine (its feed thread calls run(); stop() from any thread).

    Parameters
    ----------
    feed_cfg : FeedConfig (source = "binance")
    instruments : the engine's instruments, all on one Binance venue
    core : EngineCore (push_received)
    market : the market EventRing
    snapshots : each instrument's MarketSnapshot (the book's published sync state)
    """

    def __init__(self, feed_cfg: Any, instruments: Sequence[Instrument], core: Any, market: Any,
                 snapshots: Sequence[Any]) -> None:
        self.cfg = feed_cfg
        self.instruments = list(instruments)
        self.venue = VENUES[self.instruments[0].venue]
        self.symbols = [i.symbol.upper() for i in self.instruments]
        depth_ms = feed_cfg.depth_ms if feed_cfg.depth_ms is not None else 100
        trades = feed_cfg.trades or self.venue.default_trades
        self.streams = stream_names(self.venue, self.symbols, depth_ms, trades)
        base = (feed_cfg.ws_url or self.venue.ws_url).rstrip("/")
        self.ws_url = base + "/stream?streams=" + "/".join(self.streams)
        self.rest_url = (feed_cfg.rest_url or self.venue.rest_url).rstrip("/")
        self.weight = self.venue.depth_weight(feed_cfg.depth_limit)
        self.weights = RestWeights(feed_cfg.rest_weight_per_minute or self.venue.weight_per_minute)
        self.core = core
        self.market = market
        self.snapshots = list(snapshots)
        # the nogil fast path for the venue's canonical messages, the orjson path for the rest
        self.conv = FastBinanceConverter(self.instruments)
        self._out = self.conv.out
        self.recorder: Any = None
        if feed_cfg.record is not None:
            from orpflow.feeds.recorder import Recorder
            self.recorder = Recorder(feed_cfg.record, max_bytes=int(feed_cfg.record_max_mb * 2 ** 20))
        self.counts: Dict[str, int] = dict.fromkeys((
            "frames", "bytes", "messages", "rejected", "binary_frames", "bad_frames", "fragmented",
            "closes_received", "connects", "reconnects", "connect_errors", "silent_reconnects",
            "snapshot_requests", "snapshots", "snapshot_errors", "resyncs", "rest_waits"), 0)
        self.last_error: Optional[str] = None
        self.failure: Optional[BaseException] = None     # what ended the feed, if not stop()
        self.last_close: Optional[Tuple[int, str]] = None
        self.last_frame_s = 0.0               # monotonic s of the latest / first frame
        self.first_frame_s = 0.0
        self.connected = False
        self._last_ts = 0
        self._stopping = False
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._stop_evt: Optional[asyncio.Event] = None
        self._transport: Any = None
        self._inflight: set = set()
        self._pushed_at: Dict[str, float] = {}

    # ---------------------------------------------------------------- per frame (hot)
    def deliver(self, payload: bytes, stamp: int) -> None:
        """One received message (websocket text or REST snapshot): record it, convert it, push
        its records (feed thread)."""
        if b"\n" in payload or b"\r" in payload:        # JSON whitespace: one line per message
            payload = payload.replace(b"\n", b" ").replace(b"\r", b" ")
        ts = time.time_ns()
        if ts <= self._last_ts:                          # event time never goes backwards
            ts = self._last_ts + 1
        self._last_ts = ts
        c = self.counts
        if self.recorder is not None:
            self.recorder.write(ts, payload)
        if self.conv.feed_json(payload, ts):
            c["rejected"] += 1
        else:
            c["messages"] += 1
        self.core.push_received(self.market, self._out, stamp)

    # ---------------------------------------------------------------- thread entry
    def run(self) -> None:
        """The feed thread: connect, stream, resync, reconnect until stop()."""
        loop = _new_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._main())
        finally:
            try:
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                loop.close()
                self._loop = None
                if self.recorder is not None:
                    self.recorder.close()
        if self.failure is not None:
            raise self.failure

    def stop(self) -> None:
        """Any thread: close the socket and end run() (within one poll, < 0.1 s)."""
        self._stopping = True
        loop = self._loop
        if loop is not None:
            try:
                loop.call_soon_threadsafe(self._wake)
            except RuntimeError:              # the loop has just closed
                pass

    def _wake(self) -> None:
        if self._stop_evt is not None:
            self._stop_evt.set()
        t = self._transport
        if t is not None:
            t.send_close(1000)
            t.disconnect()

    async def _main(self) -> None:
        self._stop_evt = asyncio.Event()
        if self._stopping:
            return
        watch = asyncio.ensure_future(self._watch())
        attempt = 0
        try:
            while not self._stopping:
                try:
                    transport, _ = await ws_connect(
                        lambda: _Listener(self), self.ws_url,
                        websocket_handshake_timeout=self.cfg.snapshot_timeout_s,
                        enable_auto_pong=True, max_frame_size=1 << 24,
                        logger_name="orpflow.feed")
                except Exception as exc:            # refused, reset, TLS, handshake, timeout
                    self.counts["connect_errors"] += 1
                    self.last_error = f"connect {self.ws_url}: {type(exc).__name__}: {exc}"
                    log.warning("%s", self.last_error, extra={"url": self.ws_url, "attempt": attempt,
                                                               "error": f"{type(exc).__name__}: {exc}"})
                    await self._pause(attempt)
                    attempt += 1
                    continue
                if self._stopping:
                    transport.disconnect()
                    break
                self._transport = transport
                self.connected = True
                self.counts["connects"] += 1
                if self.counts["connects"] > 1:
                    self.counts["reconnects"] += 1
                log.info("%s %s", "reconnected to" if self.counts["connects"] > 1 else "connected to",
                         self.ws_url, extra={"url": self.ws_url, "symbols": self.symbols,
                                             "connects": self.counts["connects"],
                                             "reconnects": self.counts["reconnects"]})
                born = time.monotonic()
                self.last_frame_s = born
                for sym in self.symbols:           # whatever was missed: a fresh book
                    self._want_snapshot(sym)
                await transport.wait_disconnected()
                self.connected = False
                self._transport = None
                if self._stopping:
                    break
                log.warning("disconnected from %s after %.1f s; reconnecting", self.ws_url,
                            time.monotonic() - born, extra={"url": self.ws_url,
                                                            "lived_s": round(time.monotonic() - born, 3)})
                attempt = 0 if time.monotonic() - born > STABLE_S else attempt + 1
                await self._pause(attempt)
        finally:
            watch.cancel()

    async def _pause(self, attempt: int) -> None:
        """Backoff before reconnect `attempt` (0, 1, ...): full jitter up to min * 2^attempt,
        capped; returns early on stop()."""
        lo, hi = self.cfg.reconnect_min_s, self.cfg.reconnect_max_s
        delay = random.uniform(lo, min(hi, lo * 2.0 ** min(attempt, 30)))
        assert self._stop_evt is not None
        try:
            await asyncio.wait_for(self._stop_evt.wait(), delay)
        except asyncio.TimeoutError:
            pass

    async def _watch(self) -> None:
        """Every POLL_S: a silent socket is dropped; a book out of sync gets a snapshot."""
        silence = self.cfg.silence_s
        while not self._stopping:
            await asyncio.sleep(POLL_S)
            rec = self.recorder
            if rec is not None and rec.error is not None:       # a full disk: stop, say why
                self.failure = OSError(f"recording to {self.cfg.record} failed: {rec.error}")
                log.error("%s", self.failure, extra={"recording": self.cfg.record})
                self._stopping = True
                self._wake()
                return
            t = self._transport
            if t is None:
                continue
            now = time.monotonic()
            if now - self.last_frame_s > silence:
                self.counts["silent_reconnects"] += 1
                self.last_error = f"no data for {silence:g} s: reconnecting"
                log.warning("%s", self.last_error, extra={"url": self.ws_url, "silence_s": silence})
                self.last_frame_s = now
                t.disconnect()
                continue
            for sym, snap in zip(self.symbols, self.snapshots):
                if sym in self._inflight or now - self._pushed_at.get(sym, -1e18) < self.cfg.resync_min_s:
                    continue
                if not snap.read()["in_sync"]:
                    self.counts["resyncs"] += 1
                    log.info("book of %s out of sync: requesting a snapshot", sym,
                             extra={"symbol": sym, "resyncs": self.counts["resyncs"]})
                    self._want_snapshot(sym)

    # ---------------------------------------------------------------- REST snapshots
    def _want_snapshot(self, sym: str) -> None:
        if sym in self._inflight or self._stopping:
            return
        self._inflight.add(sym)
        asyncio.ensure_future(self._snapshot(sym))

    async def _snapshot(self, sym: str) -> None:
        url = f"{self.rest_url}{self.venue.depth_path}?symbol={sym}&limit={self.cfg.depth_limit}"
        attempt = 0
        try:
            while not self._stopping:
                wait = self.weights.wait_s(self.weight)
                if wait > 0:
                    self.counts["rest_waits"] += 1
                    await self._sleep(wait)
                    continue
                self.weights.spend(self.weight)
                self.counts["snapshot_requests"] += 1
                try:
                    status, headers, body = await self._get(url)
                except Exception as exc:           # refused, reset, timeout, a broken response
                    status, headers, body = 0, {}, f"{type(exc).__name__}: {exc}".encode()
                if self._stopping:
                    return
                self.weights.observe(headers, status)
                if status == 200:
                    self._on_snapshot(sym, body)
                    return
                self.counts["snapshot_errors"] += 1
                self.last_error = (f"GET {url}: HTTP {status} {body[:200].decode('utf-8', 'replace')}"
                                   if status else f"GET {url}: {body.decode('utf-8', 'replace')}")
                log.warning("snapshot of %s failed: %s", sym, self.last_error,
                            extra={"symbol": sym, "status": status, "attempt": attempt})
                if status not in (418, 429):
                    await self._pause(attempt)
                    attempt += 1
        finally:
            self._inflight.discard(sym)

    def _get(self, url: str) -> "asyncio.Future[Tuple[int, Dict[str, str], bytes]]":
        """The GET in a daemon thread (a blocking request may outlive stop(); it must never
        hold up the interpreter's exit), its result back in this loop."""
        loop = asyncio.get_running_loop()
        fut: "asyncio.Future[Any]" = loop.create_future()
        timeout = self.cfg.snapshot_timeout_s

        def settle(res: Any) -> None:
            if not fut.done():
                if isinstance(res, BaseException):
                    fut.set_exception(res)
                else:
                    fut.set_result(res)

        def work() -> None:
            try:
                res: Any = _http_get(url, timeout)
            except BaseException as exc:          # given to the loop, raised there
                res = exc
            try:
                loop.call_soon_threadsafe(settle, res)
            except RuntimeError:                   # the loop has closed: nobody waits
                pass

        threading.Thread(target=work, name="orpflow-rest", daemon=True).start()
        return fut

    async def _sleep(self, seconds: float) -> None:
        assert self._stop_evt is not None
        try:
            await asyncio.wait_for(self._stop_evt.wait(), seconds)
        except asyncio.TimeoutError:
            pass

    def _on_snapshot(self, sym: str, body: bytes) -> None:
        """A REST snapshot goes through the ring like any message, enveloped so that a
        recording of several symbols says whose it is."""
        self.counts["snapshots"] += 1
        self._pushed_at[sym] = time.monotonic()
        log.info("snapshot of %s received (%d bytes)", sym, len(body),
                 extra={"symbol": sym, "bytes": len(body), "snapshots": self.counts["snapshots"]})
        payload = b'{"stream":"%s@depthSnapshot","data":%s}' % (sym.lower().encode(), body.strip())
        self.deliver(payload, time.monotonic_ns())

    # ---------------------------------------------------------------- reading (any thread)
    def stats(self) -> Dict[str, Any]:
        out: Dict[str, Any] = dict(self.counts)
        out["connected"] = self.connected
        out["fast_path"] = self.conv.fast
        out["slow_path"] = self.conv.fallback
        out["rejected_by_reason"] = {_CODE_NAMES.get(k, str(k)): v for k, v in self.conv.rejected().items()}
        out["last_error"] = self.last_error
        out["url"] = self.ws_url
        out["first_frame_s"] = self.first_frame_s
        out["last_frame_s"] = self.last_frame_s
        if self.recorder is not None:
            out["recorded_lines"] = self.recorder.lines
            out["recording"] = [str(p) for p in self.recorder.files]
        return out

