"""The engine loop: backtest == threaded Engine on real data, the compiled loop == its twin on
random markets (Hypothesis), kill switch, back-pressure without loss, several instruments,
latency histograms."""
from __future__ import annotations

import dataclasses
import threading
import time
from typing import Any, List

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import orpflow as of
from orpflow import records as R
from orpflow.backtest import backtest
from orpflow.bench import BENCH_RULES
from orpflow.config import EngineConfig, config_from_dict
from orpflow.engine import Engine, load_engine_events, repeat_events, repeat_spans
from orpflow.reference.engine import EngineTwin
from orpflow._core.engine import FEATURE_SAMPLE_EVERY, _hist_index, hist_bucket_bounds
from orpflow._core.ring import EventRing
from broker_helpers import F, rec, events
from helpers import SAMPLE

# loose rules: many signals and orders on a few minutes of data (the benchmark's rules)
BUSY = {**BENCH_RULES, "persistence": {"path": None}}


def sample_config(**sections: Any) -> EngineConfig:
    data = {"instruments": [{"symbol": "BTCUSDT", "venue": "binance-spot", "tick_size": "0.01",
                             "lot_size": "0.00001", "paths": [str(SAMPLE)]}]}
    for k, v in BUSY.items():
        data[k] = dict(v)
    for k, v in sections.items():
        data.setdefault(k, {}).update(v)
    return config_from_dict(data)


@pytest.fixture(scope="module")
def sample_events() -> np.ndarray:
    cfg = sample_config()
    ev, _ = load_engine_events(cfg, cfg.make_instruments())
    return ev


def threaded(cfg: EngineConfig, ev: np.ndarray, **kw: Any) -> Engine:
    e = Engine(cfg, events=ev, **kw).start()
    assert e.wait(60)
    e.close()
    return e


# ------------------------------------------------------------------ backtest == Engine

@pytest.mark.parametrize("order_type", ["market", "ioc"])
def test_backtest_equals_threaded_engine_on_real_data(sample_events: np.ndarray, order_type: str) -> None:
    cfg = sample_config(execution={"order_type": order_type, "slippage_ticks": 1})
    bt = backtest(sample_events, cfg)
    eng = threaded(cfg, sample_events, keep_records=True)
    fills = bt.fills["BTCUSDT"]
    assert len(fills) > 20, "the busy config must trade"
    assert np.array_equal(fills, eng.fills())
    assert np.array_equal(bt.orders["BTCUSDT"], eng.orders())
    # every record, in the same order: order states, fills, signals, accounts, sync changes
    assert np.array_equal(bt.records, eng.records())
    assert eng.stats()["out_lost"] == 0


def test_backtest_is_deterministic_and_in_chunks_the_same(sample_events: np.ndarray) -> None:
    cfg = sample_config()
    a = backtest(sample_events, cfg)
    seen: List[int] = []
    b = backtest(sample_events, cfg, progress=lambda done, total: seen.append(done))
    assert np.array_equal(a.records, b.records)
    assert seen[-1] == len(sample_events)
    assert a.counters["events"] == len(sample_events)


def test_real_data_records_are_consistent(sample_events: np.ndarray) -> None:
    cfg = sample_config()
    res = backtest(sample_events, cfg)
    fills = res.fills["BTCUSDT"]
    # position after each fill = running sum of signed fills; the last account record agrees
    assert np.array_equal(fills["position"], np.cumsum(fills["side"].astype(np.int64) * fills["qty"]))
    eq = res.equity
    assert eq["position_units"][-1] == fills["position"][-1]
    acct = res.accounts["BTCUSDT"]
    assert float(acct["cash"]) == pytest.approx(eq["cash"][-1], abs=1e-6)
    # each signal that placed an order names an order that exists, sent at that event
    sig = res.signals
    placed = sig[sig["order"] > 0]
    orders = res.orders["BTCUSDT"]
    assert len(placed) > 0
    assert np.array_equal(orders["client_id"][placed["order"] - 1], placed["event_no"])
    # no order before warm-up
    assert (sig["no_order"][sig["event_no"] < placed["event_no"][0]] != 0).all()
    # final order states from the record stream == the broker's own orders
    final = R.final_state(res.order_events)
    assert np.array_equal(final["order_id"], orders["id"])
    assert np.array_equal(final["status"], orders["status"])
    assert np.array_equal(final["filled_units"], orders["filled"])


def test_without_history_the_same_records_and_bounded_memory(sample_events: np.ndarray) -> None:
    """keep_history = false frees fills and final orders once written: the records are the
    same, and the broker holds at most two chunks of orders at the end."""
    from orpflow._core.broker import ORDER_CHUNK_SIZE as ORDER_CHUNK
    ev = repeat_events(sample_events, 3)
    keep = backtest(ev, sample_config())
    lean = backtest(ev, sample_config(execution={"keep_history": False}))
    assert keep.counters["orders"] > 3 * ORDER_CHUNK           # several chunks were freed
    assert np.array_equal(keep.records, lean.records)
    held = lean.orders["BTCUSDT"]
    assert 0 < len(held) <= 2 * ORDER_CHUNK
    assert np.array_equal(held, keep.orders["BTCUSDT"][-len(held):])
    assert len(lean.fills["BTCUSDT"]) == 0 and len(keep.fills["BTCUSDT"]) == keep.counters["fills"]
    thr = threaded(sample_config(execution={"keep_history": False}), ev, keep_records=True)
    assert np.array_equal(thr.records(), keep.records)


# ------------------------------------------------------------------ kill switch

def test_kill_switch_stops_the_next_order(sample_events: np.ndarray) -> None:
    """Killed between two events: the very next order the loop creates is rejected."""
    cfg = sample_config()
    from orpflow.engine import build_core
    core, parts = build_core(cfg, cfg.make_instruments())
    half = len(sample_events) // 2
    core.run_array(sample_events[:half], False)
    n_before = len(parts[0][0].orders())
    parts[0][0].risk.kill()
    core.run_array(sample_events[half:])
    orders = parts[0][0].orders()
    after = orders[n_before:]
    assert len(after) > 5
    assert (after["reason"] == int(of.Reason.RISK_KILL_SWITCH)).all()
    assert (after["status"] == int(of.OrderStatus.REJECTED)).all()


def test_kill_switch_from_the_control_thread(sample_events: np.ndarray) -> None:
    """While the threaded engine runs: after kill() returns, every order made by an event
    later than the one being processed then is rejected by the kill switch."""
    cfg = sample_config(feed={"speed": 20.0})
    e = Engine(cfg, events=sample_events).start()
    deadline = time.perf_counter() + 20
    while e.core.counters()["orders"] < 3 and time.perf_counter() < deadline:
        time.sleep(0.002)
    e.kill()
    seen = e.core.counters()["events"]          # at least the event in progress at the kill
    assert e.wait(60)
    e.close()
    orders = e.orders()
    later = orders[orders["client_id"] > seen + 1]
    assert len(later) > 0, "no order attempted after the kill: the test would prove nothing"
    assert (later["reason"] == int(of.Reason.RISK_KILL_SWITCH)).all()
    assert (orders[orders["reason"] != int(of.Reason.RISK_KILL_SWITCH)]["client_id"] <= seen + 1).all()


def test_snapshot_reads_from_the_control_thread(sample_events: np.ndarray) -> None:
    """While the strategy thread publishes, reads are consistent books (sorted, uncrossed when
    in sync, versions never going back); after the run the snapshot is the final book."""
    cfg = sample_config(feed={"speed": 40.0})
    e = Engine(cfg, events=sample_events).start()
    versions = []
    deadline = time.perf_counter() + 3
    while time.perf_counter() < deadline and e.running():
        snap = e.snapshot("BTCUSDT")
        versions.append(snap["version"])
        b, a = snap["bids"], snap["asks"]
        assert (np.diff(b[:, 0]) < 0).all() and (np.diff(a[:, 0]) > 0).all()
        if snap["in_sync"] and len(b) and len(a):
            assert b[0, 0] < a[0, 0]
        time.sleep(0.001)
    e.stop()
    e.close()
    assert versions == sorted(versions) and versions[-1] > 10
    with pytest.raises(KeyError, match="ETHUSDT"):
        e.snapshot("ETHUSDT")
    final = e.snapshot("BTCUSDT")
    book = e._parts[0][0].book
    assert np.array_equal(final["bids"], book.levels_raw("bid", 20))
    assert np.array_equal(final["asks"], book.levels_raw("ask", 20))


# ------------------------------------------------------------------ back-pressure

def test_full_out_ring_waits_and_loses_nothing(sample_events: np.ndarray) -> None:
    """A tiny out ring and a slow consumer: the strategy waits (counted), nothing is lost."""
    cfg = sample_config()
    want = backtest(sample_events, cfg).records
    from orpflow.engine import build_core
    core, _ = build_core(cfg, cfg.make_instruments())
    market, out = EventRing(1024), EventRing(8)
    got: List[np.ndarray] = []
    done = threading.Event()

    def consume() -> None:
        while not done.is_set() or len(out):
            r = core.pop_out(out, 3)
            got.append(r)
            time.sleep(0.0002)

    c = threading.Thread(target=consume)
    s = threading.Thread(target=lambda: (core.run_ring(market, out), done.set()))
    c.start()
    s.start()
    core.feed(market, sample_events)
    s.join(60)
    c.join(60)
    recs = np.concatenate(got)
    assert core.counters()["out_waits"] > 0
    assert core.counters()["market_waits"] > 0      # the 1024-slot market ring back-pressured the feed
    assert np.array_equal(recs, want)


def test_out_ring_consumer_gone_does_not_hang(sample_events: np.ndarray) -> None:
    cfg = sample_config()
    from orpflow.engine import build_core
    core, _ = build_core(cfg, cfg.make_instruments())
    market, out = EventRing(4096), EventRing(4)
    core.abort_out()
    s = threading.Thread(target=core.run_ring, args=(market, out))
    s.start()
    core.feed(market, sample_events)
    s.join(30)
    assert not s.is_alive()
    c = core.counters()
    assert c["out_lost"] > 0 and c["out_records"] + c["out_lost"] > 2


# ------------------------------------------------------------------ several instruments

def test_two_instruments_trade_independently(sample_events: np.ndarray) -> None:
    cfg = sample_config()
    two = dataclasses.replace(cfg, instruments=(
        cfg.instruments[0], dataclasses.replace(cfg.instruments[0], symbol="BTCUSDT2", id=7)))
    other = sample_events.copy()
    other["instrument"] = 7
    other = other[: len(other) // 2]
    merged = np.concatenate([sample_events, other])
    merged = merged[np.argsort(merged["ts_local"], kind="stable")]
    res = backtest(merged, two)
    one = backtest(sample_events, cfg)
    half = backtest(other, dataclasses.replace(cfg, instruments=(two.instruments[1],)))

    def same(a: np.ndarray, b: np.ndarray) -> bool:   # client_id is the engine's event number
        keep = [n for n in a.dtype.names if n != "client_id"]
        return np.array_equal(a[keep], b[keep])

    assert same(res.fills["BTCUSDT"], one.fills["BTCUSDT"])
    assert same(res.fills["BTCUSDT2"], half.fills["BTCUSDT2"])
    assert len(res.fills["BTCUSDT2"]) > 0
    # a record for an instrument the engine does not trade is counted and skipped
    stray = sample_events[:100].copy()
    stray["instrument"] = 99
    assert backtest(stray, cfg).counters["unknown"] == 100


def test_engine_config_rejects_duplicate_instruments() -> None:
    cfg = sample_config()
    with pytest.raises(ValueError, match="share"):
        dataclasses.replace(cfg, instruments=(cfg.instruments[0], cfg.instruments[0]))


# ------------------------------------------------------------------ latency histograms

def test_histogram_buckets_bound_every_value() -> None:
    lo, hi = hist_bucket_bounds()
    rng = np.random.default_rng(1)
    values = np.r_[np.arange(0, 300), rng.integers(0, 2 ** 62, 2000), [2 ** 63 - 1]]
    for v in values:
        i = _hist_index(int(v))
        assert lo[i] <= v <= hi[i] or (v > 2 ** 52 and lo[i] <= float(v) <= hi[i])
        assert hi[i] - lo[i] <= max(0.0, lo[i] / 16)
    idx = [_hist_index(int(v)) for v in sorted(values)]
    assert idx == sorted(idx)


def test_latency_percentiles_from_a_run(sample_events: np.ndarray) -> None:
    res = backtest(sample_events, sample_config())
    lat = res.latency
    assert lat["incore"]["count"] == res.counters["orders"]
    # one row in FEATURE_SAMPLE_EVERY is timed (rows 0, k, 2k, ...): clock reads stay off most orders' path
    assert lat["feature"]["count"] == -(-res.counters["rows"] // FEATURE_SAMPLE_EVERY) > 0
    for d in lat.values():
        assert 0 < d["p50"] <= d["p99"] <= d["p99_9"] <= d["max_ns"]
    off = backtest(sample_events, sample_config(), measure=False)
    assert off.latency["feature"]["count"] == 0
    assert np.array_equal(off.records, res.records)


# ------------------------------------------------------------------ compiled == twin

G = of.Instrument("TEST", venue="generic", tick_size="0.01", lot_size="0.002", size_increment="0.001")
MID = 10_000


def _snap(bids: dict, asks: dict, ts: int) -> np.ndarray:
    recs = [rec(F.SNAPSHOT | F.BID, p, q, ts) for p, q in bids.items()] + \
           [rec(F.SNAPSHOT | F.ASK, p, q, ts) for p, q in asks.items()]
    if not recs:
        recs = [rec(F.CLEAR, 0, 0, ts)]
    recs[-1] = recs[-1][:7] + (recs[-1][7] | int(F.LAST),) + recs[-1][8:]
    return events(*recs)


@st.composite
def markets(draw: Any) -> dict:
    ts = 1
    parts = []
    size = st.integers(1, 60)
    parts.append(_snap({MID - 1 - i: draw(size) for i in range(draw(st.integers(1, 4)))},
                       {MID + i: draw(size) for i in range(draw(st.integers(1, 4)))}, ts))
    for _ in range(draw(st.integers(5, 120))):
        ts += draw(st.integers(0, 300_000))
        kind = draw(st.sampled_from(["depth"] * 5 + ["trade"] * 3 + ["snapshot", "garbage"]))
        price = MID + draw(st.integers(-5, 5))
        if kind == "depth":
            side = draw(st.sampled_from([F.BID, F.ASK]))
            parts.append(events(rec(side | F.DEPTH | F.LAST, price, draw(st.integers(0, 60)), ts)))
        elif kind == "trade":
            aggr = draw(st.sampled_from([F.BUY, F.SELL, F.BUY, F.SELL, 0]))
            parts.append(events(rec(F.TRADE | aggr | F.LAST, price, draw(st.integers(1, 30)), ts)))
        elif kind == "snapshot":
            parts.append(_snap({MID - 1 - i: draw(size) for i in range(draw(st.integers(0, 4)))},
                               {MID + i: draw(size) for i in range(draw(st.integers(0, 4)))}, ts))
        else:
            parts.append(events((ts, ts, draw(st.integers(-5, 5)), 0, 0, draw(st.integers(-3, MID + 9)),
                                 draw(st.integers(-5, 50)), draw(st.integers(0, 1023)),
                                 draw(st.sampled_from([0, 0, 1])))))
    generator = draw(st.sampled_from(["imbalance", "linear"]))
    signal = {"generator": generator, "equity": draw(st.sampled_from([0.5, 2.0, 20.0])),
              "base_position_pct": 0.1, "min_interval_ms": draw(st.sampled_from([0, 0.2])),
              "holding_ms": draw(st.sampled_from([0.1, 1.0])), "exit_on_holding": draw(st.booleans())}
    if generator == "linear":
        signal.update(weights={"imbalance": draw(st.sampled_from([1.0, 3.0, -2.0]))}, entry_threshold=0.3)
    else:
        signal.update(threshold=0.1, persistence=draw(st.integers(1, 2)), min_confidence=0.0,
                      momentum_confirmation=False, max_spread_bps=1000)
    cfg = config_from_dict({
        "instruments": [{"symbol": "TEST", "venue": "generic", "tick_size": "0.01", "lot_size": "0.002",
                         "size_increment": "0.001"}],
        "features": {"window_ms": 0.5, "zscore_min_history": 2, "volatility_window": 3},
        "signal": signal,
        "risk": {"rate_per_second": draw(st.sampled_from([0, 2])), "rate_per_minute": 0, "rate_per_hour": 0,
                 "max_position": draw(st.sampled_from([None, "0.02"])),
                 "qty_policy": draw(st.sampled_from(["reject", "clip"])),
                 "max_consecutive_losses": draw(st.sampled_from([None, 1, 2])),
                 "max_drawdown": draw(st.sampled_from([None, "0.001", "0.01"])),
                 "on_breaker": draw(st.sampled_from(["reduce_only", "halt", "flatten"]))},
        "broker": {"latency_entry_ns": draw(st.sampled_from([0, 200_000])),
                   "latency_response_ns": 100_000, "latency_jitter_ns": draw(st.sampled_from([0, 50_000])),
                   "queue_model": draw(st.sampled_from(["risk_averse", "prob_power2", "prob_log"])),
                   "seed": draw(st.integers(0, 2 ** 32)), "cash": "50"},
        "execution": {"order_type": draw(st.sampled_from(["market", "ioc"])),
                      "slippage_ticks": draw(st.integers(0, 2)), "warmup_rows": draw(st.integers(0, 4)),
                      "account_every_ms": draw(st.sampled_from([0, 0.5])),
                      "keep_history": draw(st.booleans())},
    })
    return {"events": np.concatenate(parts), "config": cfg}


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(markets())
def test_compiled_engine_equals_twin(m: dict) -> None:
    cfg, ev = m["config"], m["events"]
    res = backtest(ev, cfg)
    twin = EngineTwin(cfg)
    trecs = twin.run(ev)
    got = res.records[res.records["kind"] != R.OUT_ORDER]
    assert np.array_equal(got, trecs)
    if not cfg.execution.keep_history:          # the records are all; the arrays were freed
        return
    assert np.array_equal(res.orders["TEST"], twin.orders())
    assert np.array_equal(res.fills["TEST"], twin.fills())
    final = R.final_state(res.order_events)
    assert np.array_equal(final["status"], twin.orders()["status"])
    assert np.array_equal(final["filled_units"], twin.orders()["filled"])


def test_twin_agrees_on_real_data(sample_events: np.ndarray) -> None:
    cfg = sample_config(execution={"order_type": "ioc", "slippage_ticks": 2})
    ev = sample_events[:30000]
    res = backtest(ev, cfg)
    twin = EngineTwin(cfg)
    trecs = twin.run(ev)
    assert res.counters["fills"] > 5
    assert np.array_equal(res.records[res.records["kind"] != R.OUT_ORDER], trecs)


def test_python_signal_error_surfaces(sample_events: np.ndarray) -> None:
    calls = []

    def bad(row: Any) -> float:
        calls.append(1)
        if len(calls) > 50:
            raise ZeroDivisionError("user generator failed")
        return 0.0

    cfg = dataclasses.replace(sample_config(), signal=of.SignalConfig(generator=bad))
    with pytest.raises(ZeroDivisionError, match="user generator"):
        backtest(sample_events, cfg)
    e = Engine(cfg, events=sample_events).start()
    with pytest.raises(ZeroDivisionError):
        e.wait(30)
    e.close()


def test_feed_repeat_equals_backtest_of_repeated_events(sample_events: np.ndarray) -> None:
    ev = sample_events[:30000]
    cfg = sample_config(feed={"repeat": 3})
    eng = threaded(cfg, ev, keep_records=True)
    bt = backtest(repeat_events(ev, 3), cfg)
    assert eng.core.counters()["events"] == 90000
    assert np.array_equal(eng.records(), bt.records)


def test_repeat_events_resyncs_each_copy(sample_events: np.ndarray) -> None:
    cfg = sample_config()
    base = sample_events[:20000]
    ev = repeat_events(base, 3)
    assert len(ev) == 60000
    assert (np.diff(ev["ts_local"]) >= 0).all()
    # zero means absent (a REST snapshot has no exchange time) and stays zero in every copy
    assert (base["ts_exch"] == 0).any()
    for k in range(3):
        part = ev[k * 20000:(k + 1) * 20000]
        assert np.array_equal(part["ts_exch"] == 0, base["ts_exch"] == 0)
        assert np.array_equal(part["seq"] == 0, base["seq"] == 0)
    with pytest.raises(ValueError, match="overflow"):
        repeat_spans(base, 10 ** 9)
    res = backtest(ev, cfg)
    book = res.counters
    assert book["rows"] > 0
    sync = res.records[res.records["kind"] == R.OUT_SYNC]
    assert sync["v"][-1][0] == 2          # IN_SYNC at the end: each copy's snapshot re-synced the book
