"""Signal rules one by one (each "none" reason reachable), sizing, exits; compiled and twin.

Rows are hand-built feature rows, so each rule is driven by exactly the feature it reads.
"""
import math

import numpy as np
import pytest

import orpflow as of
from orpflow.events import Reason
from orpflow.reference import signals as ref_signals

INST = of.Instrument("T", venue="generic", tick_size="0.01", lot_size="0.001", size_increment="0.001")
MS = 1_000_000

GOOD = dict(kind=0, book_ok=1, mid=100.0, spread_bps=1.0, imbalance=0.9, weighted_imbalance=0.9,
            volatility_z=0.0, momentum=0.001, imbalance_momentum=0.01)


@pytest.fixture(params=["reference", "compiled"])
def run(request):
    fn = ref_signals.signals_from_features if request.param == "reference" else of.signals_from_features

    def go(rows, **cfg):
        return fn(feature_rows(rows), INST, of.SignalConfig(**cfg))
    return go


def feature_rows(rows):
    """Feature rows from dicts; unspecified features NaN, one row per 10 ms by default."""
    out = np.zeros(len(rows), dtype=of.FEATURE_DTYPE)
    for name in of.FEATURE_NAMES:
        out[name] = np.nan
    for i, r in enumerate(rows):
        r = dict(r)
        out["ts_exch"][i] = r.pop("t", i * 10 * MS)
        out["seq"][i] = i
        for k, v in r.items():
            out[k][i] = v
    return out


def good(**kw):
    return {**GOOD, **kw}


def reasons(sig):
    return [Reason(r).name for r in sig["reason"]]


def test_full_signal_fields(run):
    s = run([good(), good(), good()])
    assert reasons(s) == ["SIG_PERSISTENCE", "SIG_PERSISTENCE", "SIG_ENTER"]
    last = s[-1]
    assert last["side"] == 1
    assert last["strength"] == 1.0                             # clamp(0.9 / 0.3)
    conf = 0.4 * 0.9 + 0.2 * 0.9 + 0.2 * 0.3 + 0.1             # streak 3, imb momentum agrees
    assert last["confidence"] == pytest.approx(conf, rel=1e-15)
    assert last["holding_ms"] == pytest.approx(1000 / 0.9)
    assert last["size"] == 10.0 and last["size_units"] == 10_000   # 10_000 * 0.1 / 100
    assert last["position_units"] == 10_000


def test_sell_side(run):
    s = run([good(imbalance=-0.5, weighted_imbalance=-0.9, momentum=-0.001,
                  imbalance_momentum=-0.01)] * 3, threshold=0.45, min_confidence=0.5)
    assert s["side"][-1] == -1 and reasons(s)[-1] == "SIG_ENTER"
    # rule 4 lets only |imbalance| >= threshold through, so the clamp always gives -1 or 1
    assert s["strength"][-1] == -1.0 and s["position_units"][-1] == -10_000


@pytest.mark.parametrize("row", [dict(book_ok=0), dict(imbalance=math.nan), dict(mid=math.nan)])
def test_rule1_undefined_or_out_of_sync(run, row):
    assert reasons(run([good(**row)]))[0] == "SIG_BOOK_UNUSABLE"


def test_rule2_spread_filter_runs_before_the_streak(run):
    rows = [good(), good(), good(imbalance=-0.9, spread_bps=11.0), good()]
    s = run(rows)
    assert reasons(s) == ["SIG_PERSISTENCE", "SIG_PERSISTENCE", "SIG_SPREAD", "SIG_ENTER"]


def test_rule3_exact_zero_resets_the_streak(run):
    s = run([good(), good(), good(imbalance=0.0), good(), good(), good()])
    assert reasons(s) == ["SIG_PERSISTENCE", "SIG_PERSISTENCE", "SIG_BELOW_THRESHOLD",
                          "SIG_PERSISTENCE", "SIG_PERSISTENCE", "SIG_ENTER"]


def test_rule3_sign_flip_restarts_at_one(run):
    s = run([good(), good(), good(imbalance=-0.9), good(), good(), good()])
    assert reasons(s)[3:] == ["SIG_PERSISTENCE", "SIG_PERSISTENCE", "SIG_ENTER"]


def test_rule4_threshold_after_the_streak(run):
    """Below-threshold messages still extend the streak (rule 3 runs first)."""
    s = run([good(imbalance=0.1), good(imbalance=0.1), good()])
    assert reasons(s) == ["SIG_BELOW_THRESHOLD", "SIG_BELOW_THRESHOLD", "SIG_ENTER"]


def test_rule5_persistence(run):
    assert reasons(run([good()] * 5, persistence=5)) == ["SIG_PERSISTENCE"] * 4 + ["SIG_ENTER"]


def test_rule6_confidence(run):
    # 0.36 + 0.02 + 0.06 + 0.1 = 0.54 < 0.6
    assert reasons(run([good(weighted_imbalance=0.1)] * 3))[-1] == "SIG_LOW_CONFIDENCE"
    # volatility_z < -1 adds 0.1 (0.64), > 1 takes it away (0.44)
    assert reasons(run([good(weighted_imbalance=0.1, volatility_z=-1.5)] * 3))[-1] == "SIG_ENTER"
    s = run([good(volatility_z=1.5, weighted_imbalance=1.0)] * 3)
    assert reasons(s)[-1] == "SIG_ENTER"
    assert s["confidence"][-1] == pytest.approx(0.36 + 0.2 + 0.06 - 0.1 + 0.1)
    assert reasons(run([good(volatility_z=1.5, weighted_imbalance=0.5)] * 3))[-1] == "SIG_LOW_CONFIDENCE"


def test_rule7_momentum_confirmation(run):
    assert reasons(run([good(momentum=0.00005)] * 3))[-1] == "SIG_NO_MOMENTUM"
    assert reasons(run([good(momentum=math.nan)] * 3))[-1] == "SIG_NO_MOMENTUM"
    assert reasons(run([good(momentum=-0.001)] * 3))[-1] == "SIG_NO_MOMENTUM"
    assert reasons(run([good(momentum=-0.001)] * 3, momentum_confirmation=False))[-1] == "SIG_ENTER"


def test_rule8_divergence(run):
    assert reasons(run([good(imbalance_momentum=-0.01)] * 3))[-1] == "SIG_DIVERGENCE"
    # undefined imbalance momentum is no evidence of divergence (but earns no confidence)
    s = run([good(imbalance=0.95, weighted_imbalance=0.95, imbalance_momentum=math.nan)] * 3)
    assert reasons(s)[-1] == "SIG_ENTER"


@pytest.mark.parametrize("vz,units", [(0.0, 10_000), (-1.5, 15_000), (1.5, 5_000)])
def test_rule9_volatility_adjusted_size(run, vz, units):
    s = run([good(volatility_z=vz, weighted_imbalance=1.0)] * 3)
    assert s["size_units"][-1] == units


def test_rule9_size_rounds_down_to_the_lot(run):
    s = run([good(mid=30000.0)] * 3)                  # 1000 / 30000 = 0.0333.. -> 0.033
    assert s["size_units"][-1] == 33 and s["size"][-1] == 0.033
    # 0.3 / 0.1 is 2.9999999999999996 in floats: still 3 lots of 0.1
    inst = of.Instrument("T", venue="generic", tick_size="0.01", lot_size="0.1", size_increment="0.001")
    cfg = of.SignalConfig(equity=0.3, base_position_pct=1.0)
    for fn in (of.signals_from_features, ref_signals.signals_from_features):
        s = fn(feature_rows([good(mid=1.0)] * 3), inst, cfg)
        assert s["size_units"][-1] == 300 and s["size"][-1] == pytest.approx(0.3)


def test_rule9_zero_size(run):
    assert reasons(run([good()] * 3, equity=0.05))[-1] == "SIG_SIZE_ZERO"


def test_holding_period_clamps(run):
    s = run([good(imbalance=0.02, weighted_imbalance=1.0)] * 3, threshold=0.01, min_confidence=0.0)
    assert s["holding_ms"][-1] == 10_000.0                 # 1000 / 0.02 = 50 000 -> 10 000
    s = run([good(imbalance=1.0)] * 3)
    assert s["holding_ms"][-1] == 1000.0


def test_trade_rows_give_no_imbalance_signal_and_keep_the_streak(run):
    rows = [good(), dict(good(), kind=1), good(), good()]
    assert reasons(run(rows)) == ["SIG_PERSISTENCE", "SIG_TRADE_ROW", "SIG_PERSISTENCE", "SIG_ENTER"]


def test_min_interval_then_add_at_half_size(run):
    rows = [good(t=0), good(t=10 * MS), good(t=20 * MS), good(t=500 * MS), good(t=1020 * MS)]
    s = run(rows)
    assert reasons(s) == ["SIG_PERSISTENCE", "SIG_PERSISTENCE", "SIG_ENTER", "SIG_MIN_INTERVAL", "SIG_ADD"]
    assert s["size_units"][-1] == 5_000 and s["position_units"][-1] == 15_000


def test_holding_exit_and_renewal(run):
    # entry at 20 ms, holding 1111 ms; a renewing signal at 500 ms extends to 1611 ms
    rows = [good(t=0), good(t=10 * MS), good(t=20 * MS), good(t=500 * MS),
            good(imbalance=0.1, t=1200 * MS), good(imbalance=0.1, t=1700 * MS),
            good(imbalance=0.1, t=1800 * MS)]
    s = run(rows)
    assert reasons(s) == ["SIG_PERSISTENCE", "SIG_PERSISTENCE", "SIG_ENTER", "SIG_MIN_INTERVAL",
                          "SIG_BELOW_THRESHOLD", "SIG_EXIT_HOLDING", "SIG_BELOW_THRESHOLD"]
    assert s["side"][5] == -1 and s["size_units"][5] == 10_000 and s["position_units"][5] == 0
    s = run(rows, exit_on_holding=False)
    assert (s["side"][3:] == 0).all() and s["position_units"][-1] == 10_000


def test_exit_fires_on_a_trade_row(run):
    rows = [good(t=0), good(t=10 * MS), good(t=20 * MS), dict(good(), kind=1, t=2000 * MS)]
    assert reasons(run(rows))[-1] == "SIG_EXIT_HOLDING"


def test_opposite_signal_reverses(run):
    sell = dict(imbalance=-0.9, weighted_imbalance=-0.9, momentum=-0.001, imbalance_momentum=-0.01)
    rows = [good(t=0), good(t=10 * MS), good(t=20 * MS)] + [good(t=(30 + 10 * i) * MS, **sell) for i in range(3)]
    s = run(rows)
    assert reasons(s)[-1] == "SIG_REVERSE"
    assert s["side"][-1] == -1 and s["size_units"][-1] == 20_000 and s["position_units"][-1] == -10_000


def test_opposite_signal_with_zero_new_size_only_closes(run):
    sell = dict(imbalance=-0.9, weighted_imbalance=-1.0, momentum=-0.001, imbalance_momentum=-0.01,
                volatility_z=1.5)
    rows = [good(t=0), good(t=10 * MS), good(t=20 * MS)] + [good(t=(30 + 10 * i) * MS, **sell) for i in range(3)]
    s = run(rows, equity=1.5)
    # equity 1.5 * 0.1 / 100 = 0.0015 -> 1 lot; at half size (vol_z > 1) 0.00075 -> 0 lots
    assert reasons(s)[2] == "SIG_ENTER" and s["size_units"][2] == 1
    assert reasons(s)[-1] == "SIG_EXIT_OPPOSITE" and s["size_units"][-1] == 1
    assert s["position_units"][-1] == 0


def test_linear_generator(run):
    w = {"imbalance": 2.0, "trade_flow": -1.0}
    s = run([good(trade_flow=0.5)], generator="linear", weights=w, bias=0.1, entry_threshold=0.5)
    z = math.tanh(2.0 * 0.9 - 1.0 * 0.5 + 0.1)
    assert s["side"][0] == 1 and s["strength"][0] == pytest.approx(z, rel=1e-12)
    assert s["confidence"][0] == pytest.approx(abs(z)) and s["holding_ms"][0] == 1000.0
    assert reasons(run([good()], generator="linear", weights=w))[0] == "SIG_FEATURE_NAN"
    assert reasons(run([good(trade_flow=1.8)], generator="linear", weights=w))[0] == "SIG_WEAK"
    assert reasons(run([good(trade_flow=0.0, book_ok=0)], generator="linear", weights=w))[0] == "SIG_BOOK_UNUSABLE"


def test_python_callable_generator(run):
    seen = []

    def fn(row):
        seen.append(row["imbalance"])
        return None if row["momentum"] < 0 else row["imbalance"]
    s = run([good(), good(momentum=-1.0), good(imbalance=0.2), good(imbalance=math.nan)], generator=fn)
    assert reasons(s) == ["SIG_ENTER", "SIG_USER_NONE", "SIG_WEAK", "SIG_USER_NONE"]
    assert seen[:3] == [0.9, 0.9, 0.2]


def test_python_callable_errors_propagate():
    def boom(row):
        raise KeyError("nope")
    with pytest.raises(KeyError):
        of.signals_from_features(feature_rows([good()]), INST, of.SignalConfig(generator=boom))
    with pytest.raises(ValueError, match="strength"):
        of.signals_from_features(feature_rows([good()]), INST, of.SignalConfig(generator=lambda r: 3.0))


def test_base_cython_generator_says_none():
    s = of.signals_from_features(feature_rows([good()]), INST, of.SignalConfig(generator=of.SignalGenerator()))
    assert reasons(s) == ["SIG_USER_NONE"]


@pytest.mark.parametrize("kwargs,err", [
    ({"generator": "nope"}, ValueError), ({"generator": 42}, TypeError),
    ({"threshold": 0}, ValueError), ({"persistence": 0}, ValueError),
    ({"min_confidence": 1.5}, ValueError), ({"equity": -1}, ValueError),
    ({"weights": {"nope": 1.0}}, ValueError), ({"momentum_confirmation": 1}, TypeError),
    ({"min_interval_ms": -1}, ValueError), ({"max_spread_bps": math.nan}, ValueError),
])
def test_signal_config_rejects_bad_values(kwargs, err):
    with pytest.raises(err):
        of.SignalConfig(**kwargs)
