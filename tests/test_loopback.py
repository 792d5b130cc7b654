"""The loopback exchange (`orpflow serve-replay`): the stream byte for byte, the REST snapshot at
the current replay position, every fault, pacing and back-pressure, and the CLI's errors.

The server runs as a subprocess (tests/helpers.py loopback); the client here is a plain picows
client (or a raw socket where the test needs to stop reading)."""
from __future__ import annotations

import asyncio
import base64
import gzip
import json
import os
import signal
import socket
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import List, Optional, Tuple

import numpy as np
import orjson
import pytest

picows = pytest.importorskip("picows")
from picows import WSCloseCode, WSListener, WSMsgType, ws_connect  # noqa: E402

import orpflow as of  # noqa: E402
from orpflow.feeds.replay import replay_book  # noqa: E402
import helpers  # noqa: E402
from helpers import SAMPLE, SPOT, USDM, shared_file  # noqa: E402


def loopback(files, **kw):
    """These tests check the server's bytes: exchange times as recorded (--keep-times); the
    default restamping has its own test below."""
    return helpers.loopback(files, keep_times=True, **kw)

SPOT_STREAMS = "btcusdt@depth@100ms/btcusdt@trade/btcusdt@bookTicker"


def _lines(*files: Path) -> List[bytes]:
    return [l for f in files for l in gzip.decompress(f.read_bytes()).splitlines()]


def _is_stream(payload: bytes) -> bool:
    return payload.startswith(b'{"stream"') and b"@depthSnapshot" not in payload[:60]


def _stream_payloads(lines: List[bytes]) -> List[bytes]:
    """What the server must send: every stream line's JSON, as recorded (snapshots are REST)."""
    return [p for p in (l.split(b" ", 1)[1] for l in lines) if _is_stream(p)]


def _depth_ids(payloads: List[bytes]) -> List[Tuple[int, int]]:
    out = []
    for p in payloads:
        if b"@depth" in p[:40]:
            d = orjson.loads(p)["data"]
            out.append((d["U"], d["u"]))
    return out


class Collected:
    def __init__(self) -> None:
        self.text: List[bytes] = []
        self.other: List[Tuple[WSMsgType, bytes]] = []   # binary frames, non-JSON text frames
        self.close_code: Optional[WSCloseCode] = None
        self.arrivals: List[float] = []


async def _receive(url: str, want: int, *, timeout: float = 60.0, strict_json: bool = False,
                   until_closed: bool = False) -> Collected:
    """Frames until `want` valid stream text frames arrived (or the server closed the socket)."""
    got = Collected()
    loop = asyncio.get_running_loop()
    done = loop.create_future()

    class Client(WSListener):
        def on_ws_frame(self, transport, frame):
            t = frame.msg_type
            if t == WSMsgType.CLOSE:
                got.close_code = frame.get_close_code()
                return
            payload = frame.get_payload_as_bytes()
            if t == WSMsgType.TEXT and (not strict_json or _is_json(payload)):
                got.text.append(payload)
                got.arrivals.append(time.monotonic())
                if len(got.text) >= want and not until_closed and not done.done():
                    done.set_result(None)
            else:
                got.other.append((t, payload))

        def on_ws_disconnected(self, transport):
            if not done.done():
                done.set_result(None)

    transport, _ = await ws_connect(Client, f"{url}/stream?streams={SPOT_STREAMS}")
    try:
        await asyncio.wait_for(done, timeout)
    finally:
        transport.disconnect()
    return got


def _is_json(payload: bytes) -> bool:
    try:
        orjson.loads(payload)
        return True
    except orjson.JSONDecodeError:
        return False


def receive(url: str, want: int, **kw) -> Collected:
    return asyncio.run(_receive(url, want, **kw))


def _ref_book(lines: List[bytes], inst) -> "of.OrderBook":
    """The compiled book fed by read_binance of exactly these recorded lines."""
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "part.gz"
        path.write_bytes(gzip.compress(b"\n".join(lines) + b"\n"))
        events = of.read_binance([path], inst)
    book = of.OrderBook(inst)
    book.apply(events)
    return book


def _raw_levels(body: dict, side: str, inst) -> np.ndarray:
    tick, unit = Decimal(inst.tick_size), Decimal(str(inst.size_increment or "0.00000001"))
    rows = [(int(Decimal(p) / tick), int(Decimal(q) / unit)) for p, q in body[side]]
    return np.array(rows, dtype=np.int64).reshape(-1, 2)


def _check_snapshot_mid_stream(files: List[Path], inst, path: str, at: int) -> None:
    """Stall the stream after `at` messages, take the REST snapshot during the stall, and check
    it (1) equals the book read_binance + OrderBook build from the same recorded lines, and
    (2) with the diffs received after it, reproduces every venue bookTicker."""
    lines = _lines(*files)
    payloads = _stream_payloads(lines)
    assert at < len(payloads)
    with loopback(files, speed=0, stall_after=at, stall_s=3) as srv:
        async def run():
            first = asyncio.ensure_future(_receive(srv.ws_url, len(payloads), timeout=120))
            while (await asyncio.to_thread(srv.status))["position"] < at:
                await asyncio.sleep(0.02)
            code, headers, body = await asyncio.to_thread(
                srv.get, f"{path}?symbol={inst.symbol}&limit=5000")
            return await first, code, headers, body

        got, code, headers, body = asyncio.run(run())
        st = srv.status()
    assert code == 200, body
    assert int(headers["X-MBX-USED-WEIGHT-1M"]) > 0
    assert got.text == payloads                      # the stall lost nothing
    assert st["stalls"] == 1 and st["sent"] == len(payloads) and st["done"]
    snap = orjson.loads(body)

    # (1) the book of every recorded line up to the stall point, built independently
    seen, upto = 0, len(lines)
    for i, l in enumerate(lines):
        if _is_stream(l.split(b" ", 1)[1]):
            if seen == at:
                upto = i
                break
            seen += 1
    ref = _ref_book(lines[:upto], inst)
    assert ref.in_sync and ref.last_update_id == snap["lastUpdateId"]
    for side, key in (("bid", "bids"), ("ask", "asks")):
        assert np.array_equal(ref.levels_raw(side), _raw_levels(snap, key, inst))
    # the snapshot strings are the recording's own (8 decimals for spot)
    assert all(p.count(".") == 1 for p, _ in snap["bids"][:5])

    # (2) snapshot + the stream received after it: every bookTicker paired with a diff matches.
    # A client buffers diffs before it asks, so it holds the diff whose u is the snapshot's id
    # (futures need it: their first diff must straddle the id, U <= lastUpdateId <= u).
    last = max(i for i in range(at) if b"@depth" in got.text[i][:40])
    assert orjson.loads(got.text[last])["data"]["u"] == snap["lastUpdateId"]
    tail = [b"1 " + body] + [b"%d %s" % (i + 2, p) for i, p in enumerate([got.text[last]] + got.text[at:])]
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        part = Path(d) / "tail.gz"
        part.write_bytes(gzip.compress(b"\n".join(tail) + b"\n"))
        events = of.read_binance([part], inst)
    result = replay_book(events, of.OrderBook(inst))
    assert result.bbo_pairs > 100 and result.bbo_mismatched == 0, result.mismatches[:3]
    assert result.bbo_matched >= result.bbo_pairs - 1   # a bookTicker of that first diff: not yet in sync
    assert result.book.stats()["gaps"] == 0


# ------------------------------------------------------------------ the stream, byte for byte

def test_every_stream_line_byte_for_byte_sample():
    payloads = _stream_payloads(_lines(SAMPLE))
    with loopback([SAMPLE], speed=0) as srv:
        got = receive(srv.ws_url, len(payloads))
        st = srv.status()
    assert got.text == payloads and not got.other
    assert st["sent"] == len(payloads) == st["messages"] and st["done"] and st["dropped"] == 0
    assert st["symbols"] == ["BTCUSDT"]


def test_two_files_byte_for_byte_and_snapshot_in_the_second():
    """0809 continues 0808 without a snapshot of its own: the server's book runs on through it."""
    files = [shared_file("binance", "spot_btcusdt_20240808.gz"), shared_file("binance", "spot_btcusdt_20240809.gz")]
    first = len(_stream_payloads(_lines(files[0])))
    _check_snapshot_mid_stream(files, SPOT, "/api/v3/depth", first + 20_000)


def test_snapshot_mid_stream_reproduces_the_venue_bbo_sample():
    _check_snapshot_mid_stream([SAMPLE], SPOT, "/api/v3/depth", 15_000)


def test_snapshot_mid_stream_usdm():
    """Futures diffs chain by pu (the previous diff's u), served on /fapi/v1/depth."""
    _check_snapshot_mid_stream([shared_file("binance", "usdm_btcusdt_20240808.gz")], USDM, "/fapi/v1/depth", 40_000)


# ------------------------------------------------------------------ REST before/after, errors

def test_rest_errors_and_no_snapshot_before_its_line():
    with loopback([SAMPLE], speed=0, stall_after=3, stall_s=30) as srv:
        # nothing played yet: the sample's snapshot comes after its first diffs
        code, headers, body = srv.get("/api/v3/depth?symbol=BTCUSDT&limit=10")
        assert code == 503 and "code" in json.loads(body) and "X-MBX-USED-WEIGHT-1M" in headers
        assert srv.get("/api/v3/depth?symbol=ETHUSDT")[0] == 400
        assert srv.get("/api/v3/depth?limit=5")[0] == 400
        assert srv.get("/api/v3/depth?symbol=BTCUSDT&limit=abc")[0] == 400
        assert srv.get("/nope")[0] == 404
        got = receive(srv.ws_url, 3)                 # 3 diffs, then the stall
        assert srv.status()["position"] == 3
        code, _, body = srv.get("/api/v3/depth?symbol=BTCUSDT&limit=10")
        assert code == 503                           # still before the snapshot line
        assert len(got.text) == 3


def test_snapshot_delay():
    """The snapshot is the book as of the request, answered late (loose bound only)."""
    with loopback([SAMPLE], speed=0, snapshot_delay_s=1.0, stall_after=100, stall_s=30) as srv:
        receive(srv.ws_url, 100)
        t0 = time.monotonic()
        code, _, body = srv.get("/api/v3/depth?symbol=BTCUSDT&limit=5")
        assert code == 200 and time.monotonic() - t0 >= 0.9
        snap = json.loads(body)
        assert len(snap["bids"]) == len(snap["asks"]) == 5


# ------------------------------------------------------------------ faults

def test_drop_diffs_leaves_visible_gaps():
    payloads = _stream_payloads(_lines(SAMPLE))
    with loopback([SAMPLE], speed=0, drop_diffs=(10, 11, 500)) as srv:
        got = receive(srv.ws_url, len(payloads) - 3)
        st = srv.status()
    assert st["dropped"] == 3
    depth = [p for p in payloads if b"@depth" in p[:40]]
    dropped = {depth[10], depth[11], depth[500]}
    assert got.text == [p for p in payloads if p not in dropped]
    ids = _depth_ids(got.text)
    gaps = [i for i in range(1, len(ids)) if ids[i][0] != ids[i - 1][1] + 1]
    assert gaps == [10, 498]                         # where the missing ids are


def test_close_after_then_reconnect_continues():
    payloads = _stream_payloads(_lines(SAMPLE))
    with loopback([SAMPLE], speed=0, close_after=(1000,)) as srv:
        first = receive(srv.ws_url, len(payloads), until_closed=True)
        assert first.close_code == WSCloseCode.GOING_AWAY
        assert first.text == payloads[:1000]
        second = receive(srv.ws_url, len(payloads) - 1000)
        st = srv.status()
    assert second.text == payloads[1000:]            # flat out waits for the client: nothing lost
    assert st["closes"] == 1 and st["connections"] == 2


def test_malformed_and_binary_frames():
    payloads = _stream_payloads(_lines(SAMPLE))
    with loopback([SAMPLE], speed=0, malformed_every=100, binary_every=250) as srv:
        got = receive(srv.ws_url, len(payloads), strict_json=True)
        st = srv.status()
    assert got.text == payloads
    bad_text = [p for t, p in got.other if t == WSMsgType.TEXT]
    binary = [p for t, p in got.other if t == WSMsgType.BINARY]
    assert len(bad_text) == len(payloads) // 100 == st["malformed"]
    assert len(binary) == len(payloads) // 250 == st["binary"]
    assert all(not _is_json(p) for p in bad_text)


def test_stall_keeps_the_socket_open():
    payloads = _stream_payloads(_lines(SAMPLE))
    with loopback([SAMPLE], speed=0, stall_after=2000, stall_s=1.5) as srv:
        got = receive(srv.ws_url, len(payloads))
        st = srv.status()
    assert got.text == payloads and got.close_code is None and st["stalls"] == 1
    gap = max(b - a for a, b in zip(got.arrivals, got.arrivals[1:]))
    i = int(np.argmax(np.diff(got.arrivals)))
    assert i == 1999 and gap >= 1.4                  # the silence is where it was asked for


# ------------------------------------------------------------------ pace and back-pressure

def test_paced_keeps_recorded_order_and_gaps(tmp_path):
    lines = _lines(SAMPLE)[:1500]
    path = tmp_path / "head.gz"
    path.write_bytes(gzip.compress(b"\n".join(lines) + b"\n"))
    payloads = _stream_payloads(lines)
    ns = np.array([int(l.split(b" ", 1)[0]) for l in lines if _is_stream(l.split(b" ", 1)[1])])
    speed = 10.0
    with loopback([path], speed=speed) as srv:
        got = receive(srv.ws_url, len(payloads), timeout=60)
        st = srv.status()
    assert got.text == payloads and st["skipped"] == 0
    due = (ns - ns[0]) / 1e9 / speed
    arrived = np.array(got.arrivals) - got.arrivals[0]
    # no message before its (scaled) recorded time: lateness only, which no bound is put on
    # (50 ms of slack: the first message's own delivery time shifts the whole timeline)
    assert (arrived >= due - 0.05).all()
    assert arrived[-1] >= 0.5 * due[-1]


def _raw_ws(port: int, path: str, rcvbuf: int) -> socket.socket:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall((f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(1)
    assert b" 101 " in head.split(b"\r\n")[0]
    return s


def test_flat_out_is_held_by_a_slow_client():
    """A client that stops reading holds the server (flow control), which then resumes: nothing
    is lost and nothing piles up in the server."""
    payloads = _stream_payloads(_lines(SAMPLE))
    total = sum(len(p) for p in payloads)
    with loopback([SAMPLE], speed=0) as srv:
        port = int(srv.ws_url.rsplit(":", 1)[1])
        s = _raw_ws(port, f"/stream?streams={SPOT_STREAMS}", 4096)
        for _ in range(400):                           # not reading: the server must pause
            held = srv.status()
            if held["pauses"]:
                break
            time.sleep(0.05)
        assert held["pauses"] >= 1 and held["position"] < len(payloads)
        time.sleep(0.5)
        assert srv.status()["position"] == held["position"]     # held, not buffering on
        data = bytearray()
        s.settimeout(2.0)                             # the end: the server then sends nothing
        while True:
            try:
                chunk = s.recv(1 << 16)
            except socket.timeout:
                break
            if not chunk:
                break
            data += chunk
        s.close()
        st = srv.status()
    assert st["sent"] == len(payloads) and st["done"]
    assert bytes(data).count(b'{"stream":"btcusdt@') == len(payloads)


# ------------------------------------------------------------------ the CLI

def _cli(*argv, tmp_path):
    return subprocess.run([sys.executable, "-m", "orpflow", "serve-replay", *argv],
                          capture_output=True, text=True, cwd=tmp_path, timeout=60)


@pytest.mark.parametrize("argv, says", [
    (["{tmp}/nope.gz"], "not found"),
    (["{sample}", "--speed", "fast"], "--speed"),
    (["{sample}", "--speed", "-1"], "--speed"),
    (["{sample}", "--host", "0.0.0.0"], "loopback"),
    (["{sample}", "--drop-diff", "x"], "--drop-diff"),
    (["{sample}", "--close-after", "0"], "--close-after"),
    (["{sample}", "--stall-s", "2"], "stall"),
    (["{sample}", "--port", "70000"], "ws_port"),
])
def test_cli_user_errors_one_line(tmp_path, argv, says):
    argv = [a.format(tmp=tmp_path, sample=SAMPLE) for a in argv]
    proc = _cli(*argv, tmp_path=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and says in proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_cli_stops_on_signal_with_exit_0(sig):
    with loopback([SAMPLE], speed=1) as srv:
        receive(srv.ws_url, 5)
        srv.proc.send_signal(sig)
        assert srv.proc.wait(5) == 0
        assert srv.proc.stderr.read() == ""


# ------------------------------------------------------------------ several symbols, in-process API

def _two_symbols(tmp_path: Path, n: int = 3000) -> Path:
    """The sample's first lines for BTCUSDT and a renamed copy as ETHUSDT, interleaved, both
    snapshots enveloped (the recorder's multi-symbol form)."""
    out = []
    for l in _lines(SAMPLE)[:n]:
        ns, payload = l.split(b" ", 1)
        for k, (lo, up) in enumerate(((b"btcusdt", b"BTCUSDT"), (b"ethusdt", b"ETHUSDT"))):
            p = payload.replace(b"btcusdt", lo).replace(b"BTCUSDT", up)
            if not p.startswith(b'{"stream"'):
                p = b'{"stream":"%s@depthSnapshot","data":%s}' % (lo, p)
            out.append(b"%d %s" % (int(ns) * 2 + k, p))
    path = tmp_path / "two.gz"
    path.write_bytes(gzip.compress(b"\n".join(out) + b"\n"))
    return path


def test_several_symbols_route_by_subscription_and_books_run_on(tmp_path):
    path = _two_symbols(tmp_path)
    eth = [p for p in _stream_payloads(_lines(path)) if p.startswith(b'{"stream":"ethusdt@')]
    with loopback([path], speed=0) as srv:
        got = Collected()

        async def eth_only():
            loop = asyncio.get_running_loop()
            done = loop.create_future()

            class C(WSListener):
                def on_ws_frame(self, tr, frame):
                    got.text.append(frame.get_payload_as_bytes())
                    if len(got.text) == len(eth):
                        done.set_result(None)
            tr, _ = await ws_connect(C, f"{srv.ws_url}/stream?streams=ethusdt@depth@100ms/ethusdt@trade")
            await asyncio.wait_for(done, 60)
            tr.disconnect()
        asyncio.run(eth_only())
        for _ in range(100):
            if srv.status()["done"]:
                break
            time.sleep(0.05)
        st = srv.status()
        books = {sym: orjson.loads(srv.get(f"/api/v3/depth?symbol={sym}&limit=5000")[2])
                 for sym in ("BTCUSDT", "ETHUSDT")}
    assert got.text == eth
    assert st["done"] and st["sent"] == len(eth) and st["skipped"] == len(eth)   # the BTCUSDT half
    assert st["symbols"] == ["BTCUSDT", "ETHUSDT"] and st["unplayable"] == 0
    # no client took BTCUSDT, yet its book ran on with the replay, as a venue's does
    assert books["BTCUSDT"] == books["ETHUSDT"]
    ref = _ref_book(_lines(SAMPLE)[:3000], SPOT)
    assert ref.last_update_id == books["BTCUSDT"]["lastUpdateId"]
    assert np.array_equal(ref.levels_raw("bid"), _raw_levels(books["BTCUSDT"], "bids", SPOT))
    assert np.array_equal(ref.levels_raw("ask"), _raw_levels(books["BTCUSDT"], "asks", SPOT))


def test_in_process_start_subscribe_message_and_close():
    """start() in a background thread; a client subscribing by Binance's SUBSCRIBE message."""
    from orpflow.feeds.loopback import LoopbackExchange
    payloads = _stream_payloads(_lines(SAMPLE))
    ex = LoopbackExchange(SAMPLE, speed=0, restamp=False).start()
    try:
        async def run():
            loop = asyncio.get_running_loop()
            frames, done = [], loop.create_future()

            class C(WSListener):
                def on_ws_frame(self, tr, frame):
                    frames.append(frame.get_payload_as_bytes())
                    if len(frames) == len(payloads) + 1:
                        done.set_result(None)
            tr, _ = await ws_connect(C, f"{ex.ws_url}/stream")
            await asyncio.sleep(0.3)
            assert frames == [] and not ex.stats()["started"]    # nothing subscribed yet
            tr.send(WSMsgType.TEXT, b'{"method":"SUBSCRIBE","params":["btcusdt@trade"],"id":7}')
            await asyncio.wait_for(done, 60)
            tr.disconnect()
            with pytest.raises(picows.WSError):
                await ws_connect(WSListener, f"{ex.ws_url}/ws/btcusdt@trade")   # not served: 404
            return frames
        frames = asyncio.run(run())
        assert orjson.loads(frames[0]) == {"result": None, "id": 7}
        assert frames[1:] == payloads
        assert ex.stats()["done"]
    finally:
        ex.close()
    assert not ex._thread.is_alive()


def test_exchange_times_restamped_to_the_send_time():
    """By default a venue streaming now: E and T move to the send time (keeping the recording's
    exchange-receive offset, ~+1.27 s here); every other byte is as recorded."""
    import re
    times = re.compile(rb'"([ET])":(\d+)')
    lines = [ln.split(b" ", 1) for ln in _lines(SAMPLE)]
    recorded = [(int(ns), p) for ns, p in lines if _is_stream(p)][:3000]
    with helpers.loopback([SAMPLE], speed=0) as srv:
        t0 = time.time()
        got = receive(srv.ws_url, len(recorded)).text[:len(recorded)]
        t1 = time.time()
    assert [times.sub(rb'"\1":0', p) for p in got] == [times.sub(rb'"\1":0', p) for _, p in recorded]
    for (ns, rec), sent in zip(recorded, got):
        for (k1, v1), (k2, v2) in zip(times.findall(rec), times.findall(sent)):
            skew = int(v1) - ns // 1_000_000             # the recording's exchange - receive
            assert k1 == k2 and t0 * 1000 - 2 <= int(v2) - skew <= t1 * 1000 + 2
