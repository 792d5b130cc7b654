"""The user-extension example (examples/custom_cython) compiles against the installed orpflow
and runs inside the nogil loop: its extra feature columns and its signal generator."""
import shutil
import subprocess
import sys

import numpy as np
import pytest

import orpflow as of
from helpers import REPO, SAMPLE, SPOT


@pytest.fixture(scope="module")
def my_strategy(tmp_path_factory):
    pytest.importorskip("Cython")
    src = tmp_path_factory.mktemp("custom_cython")
    for name in ("my_strategy.pyx", "setup.py"):
        shutil.copy(REPO / "examples" / "custom_cython" / name, src / name)
    proc = subprocess.run([sys.executable, "setup.py", "build_ext", "--inplace"], cwd=src,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    sys.path.insert(0, str(src))
    try:
        import my_strategy
        yield my_strategy
    finally:
        sys.path.remove(str(src))
        sys.modules.pop("my_strategy", None)


def test_extension_columns(my_strategy):
    events = of.read_binance(SAMPLE, SPOT)
    cfg = of.FeatureConfig(extension=my_strategy.SpreadAndLastTrade())
    rows = of.compute_features(events, SPOT, cfg)
    assert rows.dtype.names[-2:] == ("spread_ticks", "last_trade_units")
    base = of.compute_features(events, SPOT)
    for name in base.dtype.names:
        np.testing.assert_array_equal(rows[name], base[name])
    ok = rows["book_ok"] == 1
    spread_ticks = np.round((rows["spread_bps"] * rows["mid"] / 1e4) / 0.01)
    np.testing.assert_array_equal(rows["spread_ticks"][ok], spread_ticks[ok])
    trades = events[(events["flags"] & of.flags.TRADE) != 0]
    np.testing.assert_array_equal(rows["last_trade_units"][rows["kind"] == 1], trades["qty"])


def test_cython_signal_generator(my_strategy):
    events = of.read_binance(SAMPLE, SPOT)
    feats_cfg = of.FeatureConfig(extension=my_strategy.SpreadAndLastTrade())
    cfg = of.SignalConfig(generator=my_strategy.FadeTheFlow(0.8), features=feats_cfg)
    feats, sig = of.SignalRunner(SPOT, cfg).run_with_features(events)
    fired = sig["side"] != 0
    assert fired.sum() > 0
    entries = np.isin(sig["reason"], [of.Reason.SIG_ENTER, of.Reason.SIG_ADD, of.Reason.SIG_REVERSE])
    # entries fade the flow on one-tick spreads after trades
    assert (feats["kind"][entries] == 1).all() and (feats["spread_ticks"][entries] == 1).all()
    assert (np.sign(feats["trade_flow"][entries]) == -sig["side"][entries]).all()
    assert (np.abs(feats["trade_flow"][entries]) >= 0.8).all()


def test_extension_after_the_order_same_results(my_strategy):
    """The imbalance rules read no extension column: the extension runs after the order, with
    the same values (feature rows compared at chunk boundaries) and the same records. A Cython
    generator declares nothing: everything before its decision."""
    import dataclasses
    from orpflow.engine import load_engine_events
    from orpflow.runtime import build_core
    from test_feature_order import config, run_both
    cfg = config(SAMPLE)
    feats = dataclasses.replace(cfg.signal.features, extension=my_strategy.SpreadAndLastTrade())
    cfg = dataclasses.replace(cfg, signal=dataclasses.replace(cfg.signal, features=feats))
    events = load_engine_events(cfg, cfg.make_instruments())[0]
    core, _ = build_core(cfg, cfg.make_instruments())
    assert core.feature_order(0)["extension"] == "after"
    run_both(cfg, events)
    fade = dataclasses.replace(cfg, signal=dataclasses.replace(cfg.signal, generator=my_strategy.FadeTheFlow(0.8)))
    core, _ = build_core(fade, fade.make_instruments())
    assert core.feature_order(0) == {"first": ["book", "history", "trades", "windows", "toxicity"],
                                     "after": [], "extension": "first"}
