"""The live Binance feed against a loopback exchange (a real websocket + REST server the test
starts on 127.0.0.1, in its own process): the book matches every bookTicker it received, a
fault makes the book resync with no order while out of sync, nothing received is lost or
duplicated in the recording, and the recording backtested gives the session's orders and
fills exactly. Never the internet."""
from __future__ import annotations

import dataclasses
import gzip
import warnings
import re
import time
import urllib.request
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import pytest

pytest.importorskip("picows")

import orpflow as of
from orpflow import records as R
from orpflow.backtest import backtest
from orpflow.bench import BENCH_RULES
from orpflow.config import config_from_dict
from orpflow.engine import Engine
from orpflow.feeds import recording_files
from orpflow.feeds.replay import replay_book
from helpers import SAMPLE, SPOT, USDM, loopback, shared_file

REJECTED = R.ORDER_STATUS.index("Rejected")
NOT_SYNCED = int(of.Reason.RISK_BOOK_NOT_SYNCED)


def stream_lines(files: Sequence[Path]) -> List[bytes]:
    """The JSON of every websocket line of the recordings (what the server sends)."""
    out = []
    for f in files:
        for line in gzip.open(f, "rb").read().splitlines():
            payload = line.split(b" ", 1)[1]
            if payload.startswith(b'{"stream"') and b"@depthSnapshot" not in payload[:60]:
                out.append(payload)
    return out


_TIMES = re.compile(rb'"([ET])":\d+')


def untimed(payload: bytes) -> bytes:
    """The message without its exchange times (the loopback exchange stamps them at send time)."""
    return _TIMES.sub(rb'"\1":0', payload)


def recorded(path: Path) -> List[bytes]:
    lines = []
    for f in recording_files(path):
        lines += gzip.open(f, "rb").read().splitlines()
    return lines


def live_config(srv: Any, tmp_path: Path, inst: of.Instrument = SPOT, record: bool = True,
                **feed: Any) -> Any:
    data: Dict[str, Any] = {
        "strategy": {"id": "live-test", "spin_us": 200},
        "instruments": [{"symbol": inst.symbol, "venue": inst.venue,
                         "tick_size": str(inst.tick_size), "lot_size": str(inst.lot_size)}],
        "feed": {"source": "binance", "ws_url": srv.ws_url, "rest_url": srv.rest_url,
                 "silence_s": 5.0, "reconnect_min_s": 0.05, "reconnect_max_s": 0.5, "resync_min_s": 0.2,
                 **({"record": str(tmp_path / "rec.gz")} if record else {}), **feed},
        "persistence": {"path": None},
    }
    for k, v in BENCH_RULES.items():
        data.setdefault(k, {}).update(v)
    return config_from_dict(data)


def run_until_sent(engine: Engine, srv: Any, timeout: float = 120.0) -> None:
    """Until the server has sent everything and the engine has received and processed it."""
    t_end = time.monotonic() + timeout
    last, still = -1, 0
    while time.monotonic() < t_end:
        time.sleep(0.05)
        st = srv.status()
        frames = engine.stats()["feed"]["frames"]
        if st.get("done") and frames == last and len(engine.market) == 0:
            still += 1
            if still >= 6:
                return
        else:
            still = 0
        last = frames
    raise AssertionError(f"the live session did not finish: server {srv.status()}, feed {engine.stats()['feed']}")


def replay_of_recording(cfg: Any, rec: Path, inst: of.Instrument) -> Any:
    with warnings.catch_warnings():          # a fault session records the malformed frames it got
        warnings.simplefilter("ignore")
        events = of.read_binance(recording_files(rec), inst)
    cfg_bt = dataclasses.replace(cfg, feed=dataclasses.replace(cfg.feed, source="replay", record=None))
    return events, backtest(events, cfg_bt, measure=False)


def sync_intervals_ok(recs: np.ndarray, orders: np.ndarray) -> None:
    """Between a SYNC record saying out of sync and the next saying in sync, every order the
    strategy tried was refused for the book (RISK_BOOK_NOT_SYNCED); a fill there is one of an
    order sent before (in flight to the simulated venue when the book lost sync)."""
    sync = recs[recs["kind"] == R.OUT_SYNC]
    fills = recs[recs["kind"] == R.OUT_FILL]
    lo: Optional[int] = None
    spans = []
    for r in sync:
        if not r["v"][4] and lo is None:
            lo = int(r["event_no"])
        elif r["v"][4] and lo is not None:
            spans.append((lo, int(r["event_no"])))
            lo = None
    if lo is not None:
        spans.append((lo, 1 << 62))
    for a, b in spans:
        tried = orders[(orders["client_id"] >= a) & (orders["client_id"] < b)]
        assert (tried["status"] == REJECTED).all() and (tried["reason"] == NOT_SYNCED).all(), tried
        inside = fills[(fills["event_no"] >= a) & (fills["event_no"] < b)]
        assert (inside["v"][:, 1] < a).all(), inside["v"][:, 1]      # client_id = event sent at
    return None


def check_session(engine: Engine, cfg: Any, rec: Path, inst: of.Instrument) -> Dict[str, Any]:
    """What every live session must show: the recording is what the engine saw; backtested it
    gives the same orders and fills; the book matched the venue's BBO; no order out of sync."""
    st = engine.stats()
    feed = st["feed"]
    book = engine.core.slot_stats(0)["book"]
    assert feed["connects"] >= 1 and st["feed_lost"] == 0
    # the engine's own book checked the venue's bookTicker in-stream, never disagreed
    assert book["bbo_checked"] > 0 and book["bbo_mismatched"] == 0, book
    events, bt = replay_of_recording(cfg, rec, inst)
    assert st["events"] == len(events), "the engine processed exactly the recording's records"
    live_orders, live_fills = engine.orders(), engine.fills()
    assert len(live_orders) > 0 and len(live_fills) > 0, "the session must trade for the comparison to mean anything"
    assert np.array_equal(live_orders, bt.orders[inst.symbol])
    assert np.array_equal(live_fills, bt.fills[inst.symbol])
    res = replay_book(events, of.OrderBook(inst))
    assert res.bbo_mismatched == 0 and res.bbo_matched > 0, res.mismatches[:3]
    sync_intervals_ok(engine.records(), live_orders)
    return {"feed": feed, "book": book, "events": events, "backtest": bt}


# ------------------------------------------------------------------ clean sessions


def _clean(files: Sequence[Path], inst: of.Instrument, tmp_path: Path) -> None:
    with loopback(files, speed=0) as srv:
        cfg = live_config(srv, tmp_path, inst)
        with Engine(cfg, keep_records=True) as e:
            run_until_sent(e, srv)
            e.stop()
        sent = srv.status()
    out = check_session(e, cfg, tmp_path / "rec.gz", inst)
    lines = stream_lines(files)
    rec = recorded(tmp_path / "rec.gz")
    got = [untimed(ln.split(b" ", 1)[1]) for ln in rec if b"@depthSnapshot" not in ln[:80]]
    assert got == [untimed(ln) for ln in lines], "every message sent, once, in order, byte for byte"
    ts = [int(ln.split(b" ", 1)[0]) for ln in rec]
    assert all(b > a for a, b in zip(ts, ts[1:])), "receive stamps strictly increase"
    assert out["feed"]["frames"] == len(lines) == sent["sent"]
    assert out["feed"]["rejected"] == 0 and out["feed"]["snapshots"] >= 1


def test_live_sample_session_equals_its_recording_backtested(tmp_path):
    _clean([SAMPLE], SPOT, tmp_path)


def test_live_usdm_session(tmp_path):
    _clean([shared_file("binance", "usdm_btcusdt_20240808.gz")], USDM, tmp_path)


def test_live_spot_two_files_session(tmp_path):
    _clean([shared_file("binance", "spot_btcusdt_20240808.gz"),
            shared_file("binance", "spot_btcusdt_20240809.gz")], SPOT, tmp_path)


# ------------------------------------------------------------------ faults


def _fault_session(tmp_path: Path, faults: Dict[str, Any], speed: float = 0.0, **feed: Any) -> Dict[str, Any]:
    with loopback([SAMPLE], speed=speed, **faults) as srv:
        cfg = live_config(srv, tmp_path, **feed)
        with Engine(cfg, keep_records=True) as e:
            run_until_sent(e, srv)
            e.stop()
        sent = srv.status()
    out = check_session(e, cfg, tmp_path / "rec.gz", SPOT)
    out["sent"] = sent
    out["stats"] = e.stats()
    # every text frame the server sent (messages and injected malformed ones) was received
    # once and recorded once; binary frames are counted, not recorded
    rec = [ln for ln in recorded(tmp_path / "rec.gz") if b"@depthSnapshot" not in ln[:80]]
    assert len(rec) == out["feed"]["frames"] == sent["sent"] + sent["malformed"]
    assert out["feed"]["binary_frames"] == sent["binary"]
    return out


def test_dropped_diff_resyncs_with_no_order_out_of_sync(tmp_path):
    # paced (x20: the drops are ~4 s apart), so each gap is resynced before the next
    out = _fault_session(tmp_path, {"drop_diffs": (400, 1200)}, speed=20.0)
    b, f = out["book"], out["feed"]
    assert b["gaps"] >= 2 and b["resyncs"] >= 2, b
    assert f["resyncs"] >= 2 and f["snapshots"] >= 3, f


def test_closed_socket_reconnects_and_resyncs(tmp_path):
    out = _fault_session(tmp_path, {"close_after": (5000, 15000)}, speed=20.0)
    f = out["feed"]
    assert f["reconnects"] == 2 and f["snapshots"] >= 3, f
    assert f["closes_received"] == 2          # the venue's close frame (1001), answered
    # messages the server sent while nobody was connected never reached the engine: the book
    # had a gap and resynced (or it stayed continuous and the reconnect snapshot was newer)
    assert out["book"]["snapshots"] >= 2


def test_malformed_and_binary_frames_counted_and_skipped(tmp_path):
    out = _fault_session(tmp_path, {"malformed_every": 997, "binary_every": 1499})
    f = out["feed"]
    assert f["binary_frames"] > 0 and f["rejected"] > 0
    assert set(f["rejected_by_reason"]) <= {"MALFORMED"}, f["rejected_by_reason"]


def test_stalled_stream_reconnects_on_silence(tmp_path):
    out = _fault_session(tmp_path, {"stall_after": 3000, "stall_s": 2.0}, silence_s=0.5)
    f = out["feed"]
    assert f["silent_reconnects"] >= 1 and f["reconnects"] >= 1, f


def test_delayed_snapshot_buffers_diffs_then_syncs(tmp_path):
    out = _fault_session(tmp_path, {"snapshot_delay_s": 1.5}, speed=20.0)
    b = out["book"]
    assert b["buffered"] > 0 and b["snapshots"] >= 1 and b["gaps"] == 0, b


def test_back_pressure_counted_nothing_lost(tmp_path):
    """Flat out into a small market ring with a slow (sleeping) strategy thread: the feed waits,
    the socket backs up, and every message still arrives once."""
    out = _fault_session(tmp_path, {}, market_ring=1024)
    assert out["stats"]["market_waits"] > 0
    lines = stream_lines([SAMPLE])
    assert out["feed"]["frames"] == len(lines)


# ------------------------------------------------------------------ metrics, CLI


def test_feed_counters_in_metrics(tmp_path):
    pytest.importorskip("prometheus_client")
    with loopback([SAMPLE], speed=0, close_after=(3000,)) as srv:
        cfg = live_config(srv, tmp_path, record=False)
        cfg = dataclasses.replace(cfg, metrics=dataclasses.replace(cfg.metrics, enabled=True, port=0))
        with Engine(cfg) as e:
            run_until_sent(e, srv)
            text = urllib.request.urlopen(e.metrics.url + "/metrics", timeout=5).read().decode()
            st = e.stats()["feed"]
            e.stop()
    for name in ("feed_reconnects_total", "feed_snapshots_total", "feed_resyncs_total", "feed_frames_total",
                 "strategy_wire_to_trade_duration_seconds_bucket", 'event="bbo_checked"'):
        assert name in text, name
    line = [ln for ln in text.splitlines() if ln.startswith("feed_reconnects_total")][0]
    assert float(line.split()[-1]) == st["reconnects"] >= 1


def _live_toml(tmp_path: Path, srv: Any, db: Path, extra: str = "") -> Path:
    rules = "\n".join(f"[{sec}]\n" + "\n".join(f"{k} = {v!r}".replace("None", '"none"') for k, v in keys.items()
                                                  if v is not None)
                      for sec, keys in BENCH_RULES.items() if sec != "risk")
    rules += "\n[risk]\nrate_per_second = 0\nrate_per_minute = 0\nrate_per_hour = 0\nreject_storm = 100000\n"
    text = f"""
[strategy]
id = "live-cli"
[[instruments]]
symbol = "BTCUSDT"
venue = "binance-spot"
tick_size = "0.01"
lot_size = "0.00001"
[feed]
source = "binance"
ws_url = "{srv.ws_url}"
rest_url = "{srv.rest_url}"
record = "{tmp_path / 'cli.gz'}"
{extra}
[persistence]
path = "{db}"
{rules}
"""
    p = tmp_path / "live.toml"
    p.write_text(text.replace("True", "true").replace("False", "false"))
    return p


def test_cli_live_run_stops_on_ctrl_c_with_everything_written(tmp_path):
    import signal
    import subprocess
    import sys
    from orpflow.persistence import Store
    with loopback([SAMPLE], speed=10) as srv:
        db = tmp_path / "live.db"
        cfg = _live_toml(tmp_path, srv, db)
        proc = subprocess.Popen([sys.executable, "-m", "orpflow", "run", str(cfg)], cwd=str(tmp_path),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.time() + 90
            while time.time() < deadline and proc.poll() is None:
                if db.exists():
                    try:
                        with Store(str(db)) as s:
                            if len(s.trades()) >= 2:
                                break
                    except Exception:
                        pass
                time.sleep(0.1)
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == 0, err
    assert "live from ws://127.0.0.1" in out and "stopped      gracefully" in out, out
    assert "feed         " in out and "REST snapshots" in out and "wire -> order" in out, out
    with Store(str(db)) as s:
        assert list(s.runs()["status"]) == ["stopped"]
        import re
        n = int(re.search(r"(\d[\d,]*) fills in", out).group(1).replace(",", ""))
        assert len(s.trades()) == n > 0
    # the recording holds what the session received, complete (closed cleanly)
    files = recording_files(tmp_path / "cli.gz")
    assert files and all(gzip.open(f).read() for f in files)


@pytest.mark.parametrize("extra, key", [
    ("speed = 2", "speed and repeat are for replays"),
    ("depth_ms = 250", "depth_ms must be one of (100, 1000)"),
    ("ws_url2 = 1", "unknown key 'ws_url2'"),
    ('record = "x.txt"', "record must name a .gz file"),
])
def test_cli_live_config_mistakes_are_one_line(tmp_path, extra, key):
    import subprocess
    import sys

    class Srv:
        ws_url, rest_url = "ws://127.0.0.1:1", "http://127.0.0.1:1"
    cfg = _live_toml(tmp_path, Srv, tmp_path / "x.db", extra)
    text = cfg.read_text()
    if "ws_url2" not in extra and extra.split(" = ")[0] in ("speed", "depth_ms", "record"):
        text = text.replace(f'record = "{tmp_path / "cli.gz"}"\n', "") if extra.startswith("record") else text
    cfg.write_text(text)
    proc = subprocess.run([sys.executable, "-m", "orpflow", "run", str(cfg)], cwd=str(tmp_path),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert key in proc.stderr and "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


# ------------------------------------------------------------------ REST weight budget


def test_rest_weight_budget():
    from orpflow.feeds.live import RestWeights
    w = RestWeights(100)
    t = 1_000_000.0
    for _ in range(2):
        assert w.wait_s(50, t) == 0.0
        w.spend(50, t)
    assert w.wait_s(50, t + 1.0) == 59.0          # our own spending: until the oldest expires
    assert w.wait_s(50, t + 60.5) == 0.0
    w2 = RestWeights(100)                                 # others on the same IP spent it
    w2.observe({"x-mbx-used-weight-1m": "90"}, 200, t)
    assert 0 < w2.wait_s(20, t) <= 60.0 and w2.wait_s(10, t) == 0.0
    w3 = RestWeights(100)                                 # the venue said: too many
    w3.observe({"retry-after": "7"}, 429, t)
    assert w3.wait_s(1, t) == 7.0 and w3.wait_s(1, t + 7.0) == 0.0
    w3.observe({}, 418, t + 8)                            # banned without a Retry-After: a minute
    assert w3.wait_s(1, t + 8) == 60.0


def test_venue_weights_and_streams():
    from orpflow.feeds.live import stream_names
    from orpflow.venues import VENUES
    spot, usdm = VENUES["binance-spot"], VENUES["binance-usdm"]
    assert (spot.depth_weight(1000), spot.depth_weight(100), usdm.depth_weight(1000), usdm.depth_weight(50)) == (50, 5, 20, 2)
    assert stream_names(spot, ["BTCUSDT"], 100, "trade") == ["btcusdt@depth@100ms", "btcusdt@trade", "btcusdt@bookTicker"]
    assert stream_names(usdm, ["BTCUSDT"], 250, "aggTrade")[0] == "btcusdt@depth"
