"""Only what the decision reads before the order: the engine computes the feature groups its
generator reads (and the book group), decides, places the order, then the other groups.
The split must change nothing: the same records, fills, accounts and feature rows, byte for
byte, as computing every group first (EngineCore.set_feature_reads(slot, READS_ALL))."""
from __future__ import annotations

from typing import Any, Dict

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import orpflow as of
from orpflow._core import features as _features
from orpflow._core.features import FEATURE_GROUPS, READS_ALL, READS_EXTENSION
from orpflow._core.signals import ImbalanceSignal, LinearSignal, PythonSignal
from orpflow.bench import BENCH_RULES
from orpflow.config import EngineConfig, config_from_dict
from orpflow.engine import load_engine_events
from orpflow.feature_names import FEATURE_GROUP, FEATURE_NAMES
from orpflow.features import FeatureRunner
from orpflow.runtime import build_core
from helpers import SAMPLE, SPOT, USDM, shared_file
from test_features_differential import GEN, configs, generic_streams

G = FEATURE_GROUPS
BUSY = {**BENCH_RULES, "persistence": {"path": None}}
INSTRUMENTS = {
    "spot": {"symbol": "BTCUSDT", "venue": "binance-spot", "tick_size": "0.01", "lot_size": "0.00001"},
    "usdm": {"symbol": "BTCUSDT", "venue": "binance-usdm", "tick_size": "0.1", "lot_size": "0.001"},
}


def config(path, venue: str = "spot", **sections: Any) -> EngineConfig:
    data: Dict[str, Any] = {"instruments": [{**INSTRUMENTS[venue], "paths": [str(path)]}]}
    for k, v in BUSY.items():
        data[k] = dict(v)
    for k, v in sections.items():
        data.setdefault(k, {}).update(v)
    return config_from_dict(data)


# ------------------------------------------------------------------ what each generator reads

def test_column_groups_match_the_feature_table() -> None:
    groups = _features.column_groups()
    assert groups[:len(FEATURE_NAMES)] == [G[FEATURE_GROUP[n]] for n in FEATURE_NAMES]
    assert set(groups[len(FEATURE_NAMES):]) == {READS_EXTENSION}


def test_generators_declare_what_they_read() -> None:
    cfg = config(SAMPLE)
    params = cfg.signal.resolve(cfg.make_instruments()[0])
    assert ImbalanceSignal(params).feature_reads() == G["book"] | G["history"]
    w = [0.0] * 30
    w[FEATURE_NAMES.index("vwap")] = 1.0
    w[FEATURE_NAMES.index("ofi_window")] = -1.0
    assert LinearSignal(w).feature_reads() == G["book"] | G["trades"] | G["windows"]
    w[len(FEATURE_NAMES)] = 0.5                      # an extension column
    assert LinearSignal(w).feature_reads() == G["book"] | G["trades"] | G["windows"] | READS_EXTENSION
    assert PythonSignal(lambda r: 0.0, FEATURE_NAMES).feature_reads() == READS_ALL
    assert of.SignalGenerator().feature_reads() == READS_ALL

    class Sub(ImbalanceSignal):                     # may read anything: unknown = everything
        pass
    assert Sub(params).feature_reads() == READS_ALL


def test_engine_orders_the_groups_at_build_time() -> None:
    cfg = config(SAMPLE, features={"vpin_bucket_volume": "0.5"})
    core, _ = build_core(cfg, cfg.make_instruments())
    assert core.feature_order(0) == {"first": ["book", "history"], "after": ["trades", "windows", "toxicity"],
                                     "extension": None}
    core.set_feature_reads(0, READS_ALL)
    assert core.feature_order(0)["after"] == []
    core.set_feature_reads(0, G["windows"])
    assert core.feature_order(0) == {"first": ["book", "windows"], "after": ["history", "trades", "toxicity"],
                                     "extension": None}
    # without the book group, history and windows read book columns that are NaN-ed after
    # them: nothing is split
    cfg = config(SAMPLE, features={"groups": ["history", "trades", "windows"]})
    core, _ = build_core(cfg, cfg.make_instruments())
    assert core.feature_order(0)["after"] == []


# ------------------------------------------------------------------ the same results

def run_both(cfg: EngineConfig, events: np.ndarray, chunks: int = 40, reads_all_in: str = "b",
             measure: bool = False):
    """Two engines over the same events, one splitting the row around the order (the
    generator's declaration), one computing every group first; the feature rows are compared
    at every chunk boundary, the records and broker state at the end. measure: the latency
    histograms on (rows timed for the feature histogram are computed all first)."""
    insts = cfg.make_instruments()
    cores = []
    for which in "ab":
        core, parts = build_core(cfg, insts)
        core.measure = measure
        if which == reads_all_in:
            core.set_feature_reads(0, READS_ALL)
        cores.append((core, parts))
    (a, pa), (b, pb) = cores
    assert a.feature_order(0)["after"], "the split engine defers nothing: the test would prove nothing"
    assert b.feature_order(0)["after"] == []
    bounds = np.linspace(0, len(events), chunks + 1).astype(int)
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        a.run_array(events[lo:hi], False)
        b.run_array(events[lo:hi], False)
        assert a.feature_row(0) == b.feature_row(0), f"feature row differs after event {hi}"
    a.final_accounts()
    b.final_accounts()
    ra, rb = a.take_records(), b.take_records()
    assert ra.tobytes() == rb.tobytes()
    sa, sb = pa[0][0], pb[0][0]
    assert sa.orders().tobytes() == sb.orders().tobytes()
    assert sa.fills().tobytes() == sb.fills().tobytes()
    assert a.counters() == b.counters()
    return ra, a.counters()


@pytest.fixture(scope="module")
def sample_events() -> np.ndarray:
    cfg = config(SAMPLE)
    return load_engine_events(cfg, cfg.make_instruments())[0]


SAMPLE_CASES = {
    "imbalance rules": {},
    "imbalance rules, VPIN on, ioc": {"features": {"vpin_bucket_volume": "0.5"},
                                      "execution": {"order_type": "ioc", "slippage_ticks": 1}},
    "linear over trades and windows": {"signal": {"generator": "linear", "entry_threshold": 0.1,
                                                  "weights": {"trade_flow": 2.0, "ofi_window": 0.5,
                                                              "imbalance": 1.0}}},
}


@pytest.mark.parametrize("measure", [False, True])
@pytest.mark.parametrize("case", list(SAMPLE_CASES))
def test_split_gives_the_same_results_on_the_sample(sample_events: np.ndarray, case: str, measure: bool) -> None:
    recs, counters = run_both(config(SAMPLE, **SAMPLE_CASES[case]), sample_events, measure=measure)
    assert counters["orders"] > 50 and counters["fills"] > 0, counters


@pytest.mark.parametrize("name,venue", [("spot_btcusdt_20240808.gz", "spot"),
                                        ("usdm_btcusdt_20240808.gz", "usdm")])
def test_split_gives_the_same_results_on_shared_recordings(name: str, venue: str) -> None:
    path = shared_file("binance", name)
    cfg = config(path, venue, features={"vpin_bucket_volume": "1"})
    events = load_engine_events(cfg, cfg.make_instruments())[0]
    recs, counters = run_both(cfg, events, chunks=25)
    assert counters["orders"] > 50 and counters["fills"] > 0, counters


def test_split_order_is_the_default_in_backtest(sample_events: np.ndarray) -> None:
    """backtest() builds the split engine; its records equal an all-first engine's."""
    cfg = config(SAMPLE)
    ref, _ = run_both(cfg, sample_events, chunks=1)
    res = of.backtest(sample_events, cfg)
    assert res.records.tobytes() == ref.tobytes()


# ------------------------------------------------------------------ the two phases alone

def rows_with_first(events: np.ndarray, inst: Any, cfg: Any, first: int) -> bytes:
    return FeatureRunner(inst, cfg).engine.run(events, first=first).tobytes()


def test_every_split_gives_the_same_rows_on_the_sample() -> None:
    events = of.read_binance(SAMPLE, SPOT)
    cfg = of.FeatureConfig(vpin_bucket_volume="0.5")
    want = rows_with_first(events, SPOT, cfg, READS_ALL)
    for first in range(32):
        assert rows_with_first(events, SPOT, cfg, first) == want, f"first = {first}"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(generic_streams(), configs(), st.integers(0, 31))
def test_every_split_gives_the_same_rows_generic(arr: np.ndarray, cfg: Any, first: int) -> None:
    assert rows_with_first(arr, GEN, cfg, first) == rows_with_first(arr, GEN, cfg, READS_ALL)
