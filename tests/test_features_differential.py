"""Compiled features == the plain-Python twin on random event streams (Hypothesis).

Tolerance table (docs/features.md): integer-derived features must agree exactly; features the
compiled core keeps as running float sums (or whose twin sums in another order) agree within
1e-9 relative, with the absolute floor stated per feature for values that are exactly 0.
"""
import math

import numpy as np
from hypothesis import HealthCheck, given, settings, strategies as st

import orpflow as of
from orpflow.reference.features import compute_features as twin_features
from helpers import ev, with_last
from test_book_differential import INSTRUMENTS, streams as book_streams

F = of.flags
MS = 1_000_000
GEN = of.Instrument("X", venue="generic", tick_size="1", lot_size="1", size_increment="1", id=3)

EXACT = {"mid", "spread_bps", "imbalance", "weighted_imbalance", "depth_ratio", "bid_pressure", "ask_pressure",
         "book_pressure", "weighted_mid", "ofi", "momentum", "imbalance_momentum", "vwap",
         "trade_flow", "ofi_window", "price_acceleration", "toxicity"}
# feature: (relative, absolute)
TOLERANCE = {
    "volatility": (1e-9, 1e-15),             # shifted running sums vs numpy two-pass std
    "volatility_z": (1e-9, 1e-9),
    "imbalance_z": (1e-9, 1e-9),
    "imbalance_twa": (1e-9, 1e-12),          # compensated running integral vs a fresh sum
    "volume_surge": (1e-12, 0.0),
}
assert EXACT | set(TOLERANCE) == set(of.FEATURE_NAMES)


def assert_same_rows(a, b):
    assert len(a) == len(b)
    for name in ("ts_exch", "seq", "kind", "book_ok"):
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    for name in of.FEATURE_NAMES:
        x, y = a[name], b[name]
        np.testing.assert_array_equal(np.isnan(x), np.isnan(y), err_msg=f"{name}: NaN pattern")
        if name in EXACT:
            np.testing.assert_array_equal(x, y, err_msg=name)
        else:
            rel, abs_ = TOLERANCE[name]
            np.testing.assert_allclose(x, y, rtol=rel, atol=abs_, err_msg=name)


@st.composite
def configs(draw):
    zw = draw(st.integers(2, 8))
    return of.FeatureConfig(
        window_ms=draw(st.sampled_from([1, 2, 5, 10, 1000])),
        volatility_window=draw(st.integers(3, 6)),
        zscore_window=zw,
        zscore_min_history=draw(st.integers(1, zw)),
        momentum_window=draw(st.integers(2, 5)),
        imbalance_momentum_window=draw(st.integers(2, 5)),
        imbalance_levels=draw(st.integers(1, 4)),
        weighted_levels=draw(st.integers(1, 4)),
        weighted_decay=draw(st.sampled_from([0.5, 0.9, 1.0])),
        depth_ratio_levels=draw(st.integers(1, 6)),
        pressure_levels=draw(st.integers(1, 4)),
        volume_surge_windows=draw(st.integers(1, 5)),
        vpin_bucket_volume=draw(st.sampled_from([None, 1, 3, 7, 20])),
        vpin_buckets=draw(st.integers(1, 4)),
        groups=tuple(draw(st.sets(st.sampled_from(of.config.FEATURE_GROUPS), min_size=1))),
    )


@st.composite
def generic_streams(draw):
    """Snapshots, diffs, trades and CLEARs of a generic venue, with times that mostly advance."""
    recs, t = [], 0
    level = st.tuples(st.integers(95, 105), st.sampled_from([0, 1, 1, 2, 3, 5, 8]))
    for _ in range(draw(st.integers(1, 40))):
        t += draw(st.sampled_from([0, 1, 1, 2, 3, 7, -2])) * MS // draw(st.sampled_from([1, 2]))
        kind = draw(st.sampled_from(["diff"] * 5 + ["trade"] * 4 + ["snapshot", "clear"]))
        if kind == "diff":
            lv = draw(st.lists(st.tuples(st.sampled_from([F.BID, F.ASK]), level), min_size=1, max_size=4))
            msg = [ev(F.DEPTH | s, p, q, seq=len(recs), ts_exch=t, instrument=3) for s, (p, q) in lv]
        elif kind == "snapshot":
            bids = draw(st.lists(st.tuples(st.integers(90, 100), st.integers(1, 9)), max_size=5))
            asks = draw(st.lists(st.tuples(st.integers(100, 110), st.integers(1, 9)), max_size=5))
            msg = [ev(F.SNAPSHOT | F.BID, p, q, ts_exch=t, instrument=3) for p, q in bids]
            msg += [ev(F.SNAPSHOT | F.ASK, p, q, ts_exch=t, instrument=3) for p, q in asks]
            msg = msg or [ev(F.SNAPSHOT, ts_exch=t, instrument=3)]
        elif kind == "clear":
            msg = [ev(F.CLEAR, ts_exch=t, instrument=3)]
        else:
            side = draw(st.sampled_from([F.BUY, F.SELL, F.BUY, F.SELL, 0]))
            msg = [ev(F.TRADE | side, draw(st.integers(95, 105)), draw(st.integers(-1, 12)),
                      seq=len(recs), ts_exch=t, instrument=3)]
        recs += with_last(msg)
    # start from a snapshot so most rows have a book
    head = with_last([ev(F.SNAPSHOT | F.BID, 99, 4, instrument=3), ev(F.SNAPSHOT | F.ASK, 101, 4, instrument=3)])
    return np.array(head + recs, dtype=of.EVENT_DTYPE)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(generic_streams(), configs())
def test_compiled_features_equal_twin_generic(arr, config):
    assert_same_rows(of.compute_features(arr, GEN, config), twin_features(arr, GEN, config))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(book_streams(), configs(), st.data())
def test_compiled_features_equal_twin_binance_sync(stream, config, data):
    """The book differential streams (gaps, stale diffs, resyncs, bad records), given times."""
    venue, arr = stream[0], stream[1].copy()
    steps = data.draw(st.lists(st.integers(-1, 3), min_size=len(arr), max_size=len(arr)))
    arr["ts_exch"] = np.cumsum(np.array(steps, dtype=np.int64) * MS) if len(arr) else arr["ts_exch"]
    inst = INSTRUMENTS[venue]
    assert_same_rows(of.compute_features(arr, inst, config), twin_features(arr, inst, config))


def test_long_stream_stays_within_tolerance():
    """Tens of thousands of rows: running sums must not drift away from the fresh sums."""
    rng = np.random.default_rng(7)
    recs, t = [], 0
    recs += with_last([ev(F.SNAPSHOT | F.BID, 990 - i, 5, instrument=3) for i in range(10)]
                      + [ev(F.SNAPSHOT | F.ASK, 1010 + i, 5, instrument=3) for i in range(10)])
    for i in range(20000):
        t += int(rng.integers(0, 3)) * MS
        if rng.random() < 0.5:
            side = F.BID if rng.random() < 0.5 else F.ASK
            px = int(rng.integers(985, 1000)) if side == F.BID else int(rng.integers(1000, 1016))
            recs += with_last([ev(F.DEPTH | side, px, int(rng.integers(0, 9)), ts_exch=t, instrument=3)])
        else:
            recs.append(ev(F.TRADE | F.LAST | (F.BUY if rng.random() < 0.5 else F.SELL), 1000,
                           int(rng.integers(1, 50)), ts_exch=t, instrument=3))
    arr = np.array(recs, dtype=of.EVENT_DTYPE)
    cfg = of.FeatureConfig(window_ms=20, vpin_bucket_volume=40, vpin_buckets=10)
    assert_same_rows(of.compute_features(arr, GEN, cfg), twin_features(arr, GEN, cfg))
