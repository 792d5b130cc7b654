"""Compiled signals == the plain-Python twin (Hypothesis).

On the same feature rows every field must agree exactly, including boundary values (an
imbalance of exactly the threshold, a volatility z of exactly -1, NaNs). End to end from
events, every decision (side, reason, size) must agree exactly and the floats within 1e-9.
"""
import math

import numpy as np
from hypothesis import HealthCheck, given, settings, strategies as st

import orpflow as of
from orpflow.reference import signals as ref_signals
from test_features_differential import GEN, generic_streams
from test_signals import INST, feature_rows

MS = 1_000_000
DECISIONS = ("ts_exch", "seq", "side", "reason", "size_units", "position_units", "size")


@st.composite
def signal_configs(draw, linear_ok=True):
    gen = draw(st.sampled_from(["imbalance", "imbalance", "linear"] if linear_ok else ["imbalance"]))
    kw = dict(
        generator=gen,
        threshold=draw(st.sampled_from([0.3, 0.1, 0.5])),
        persistence=draw(st.integers(1, 4)),
        min_confidence=draw(st.sampled_from([0.0, 0.4, 0.6])),
        momentum_confirmation=draw(st.booleans()),
        momentum_threshold=draw(st.sampled_from([0.0, 1e-4])),
        equity=draw(st.sampled_from([10.0, 1000.0, 10_000.0])),
        min_interval_ms=draw(st.sampled_from([0, 5, 1000])),
        exit_on_holding=draw(st.booleans()),
        max_spread_bps=draw(st.sampled_from([10.0, 1e9])),
    )
    if gen == "linear":
        kw["weights"] = {"imbalance": draw(st.sampled_from([1.0, 3.0])),
                         "trade_flow": draw(st.sampled_from([0.0, 0.5, -2.0]))}
        kw["entry_threshold"] = draw(st.sampled_from([0.0, 0.3, 0.7]))
    return of.SignalConfig(**kw)


edge = st.sampled_from([0.0, 0.3, -0.3, 0.1, -0.1, 0.5, 1.0, -1.0, 0.29999999999999993, math.nan])
row = st.fixed_dictionaries({
    "dt": st.sampled_from([0, 1, 3, 200, 1500]),
    "kind": st.sampled_from([0, 0, 0, 1]),
    "book_ok": st.sampled_from([1, 1, 1, 0]),
    "mid": st.sampled_from([100.0, 30000.0, 0.5, math.nan]),
    "spread_bps": st.sampled_from([1.0, 10.0, 10.000000000000002]),
    "imbalance": edge, "weighted_imbalance": edge, "trade_flow": edge,
    "volatility_z": st.sampled_from([0.0, -1.0, 1.0, -1.5, 1.5, math.nan]),
    "momentum": st.sampled_from([0.0, 1e-4, -1e-4, 1e-3, -1e-3, math.nan]),
    "imbalance_momentum": st.sampled_from([0.0, 0.01, -0.01, math.nan]),
})


@settings(max_examples=400, deadline=None)
@given(st.lists(row, min_size=1, max_size=40), signal_configs())
def test_same_rows_same_signals_exactly(rows, config):
    t, built = 0, []
    for r in rows:
        r = dict(r)
        t += r.pop("dt") * MS
        built.append({**r, "t": t})
    feats = feature_rows(built)
    a = of.signals_from_features(feats, INST, config)
    b = ref_signals.signals_from_features(feats, INST, config)
    assert a.tobytes() == b.tobytes(), (a, b)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(generic_streams(), signal_configs())
def test_end_to_end_decisions_equal_twin(arr, config):
    feats_cfg = of.FeatureConfig(window_ms=5, volatility_window=3, zscore_window=4,
                                 zscore_min_history=2, momentum_window=2, imbalance_momentum_window=3)
    config = of.SignalConfig(**{**config.__dict__, "features": feats_cfg})
    a = of.compute_signals(arr, GEN, config)
    b = ref_signals.compute_signals(arr, GEN, config)
    for name in DECISIONS:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    for name in ("strength", "confidence", "holding_ms"):
        np.testing.assert_allclose(a[name], b[name], rtol=1e-9, atol=1e-12, err_msg=name)


def test_runner_in_pieces_equals_one_run():
    rng = np.random.default_rng(3)
    from test_features_differential import F, ev, with_last
    recs = with_last([ev(F.SNAPSHOT | F.BID, 99, 4, instrument=3), ev(F.SNAPSHOT | F.ASK, 101, 4, instrument=3)])
    t = 0
    for _ in range(3000):
        t += int(rng.integers(0, 4)) * MS
        if rng.random() < 0.6:
            side = F.BID if rng.random() < 0.5 else F.ASK
            px = int(rng.integers(95, 100)) if side == F.BID else int(rng.integers(101, 106))
            recs += with_last([ev(F.DEPTH | side, px, int(rng.integers(0, 20)), ts_exch=t, instrument=3)])
        else:
            recs.append(ev(F.TRADE | F.LAST | F.BUY, 100, 1, ts_exch=t, instrument=3))
    arr = np.array(recs, dtype=of.EVENT_DTYPE)
    cfg = of.SignalConfig(threshold=0.2, min_confidence=0.3, min_interval_ms=0, equity=1e6, max_spread_bps=1e4,
                          features=of.FeatureConfig(window_ms=10))
    whole = of.compute_signals(arr, GEN, cfg)
    runner = of.SignalRunner(GEN, cfg)
    parts = np.concatenate([runner.run(arr[:1000]), runner.run(arr[1000:2001]), runner.run(arr[2001:])])
    assert parts.tobytes() == whole.tobytes()
    assert (whole["side"] != 0).sum() > 10                  # the stream does trade
    assert runner.position_units == whole["position_units"][-1]
