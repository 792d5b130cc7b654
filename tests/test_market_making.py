"""examples/market_making: the Python and Cython market makers (and grids) compute the same
integer prices, so on the bundled sample they send the same orders and get identical fills.
The notebook runs (and its plot and fills are checked) in tests/test_notebooks.py."""
import importlib
from collections import Counter
import shutil
import subprocess
import sys

import numpy as np
import pytest

import orpflow as of
from helpers import REPO, SAMPLE, SPOT

EXAMPLE = REPO / "examples" / "market_making"

pytestmark = pytest.mark.skipif(not hasattr(of, "Strategy"), reason="needs the Strategy API (of.Strategy)")


@pytest.fixture(scope="module")
def py_mods():
    sys.path.insert(0, str(EXAMPLE))
    try:
        yield importlib.import_module("mm"), importlib.import_module("grid")
    finally:
        sys.path.remove(str(EXAMPLE))
        sys.modules.pop("mm", None)
        sys.modules.pop("grid", None)


@pytest.fixture(scope="module")
def cy_mods(tmp_path_factory):
    pytest.importorskip("Cython")
    src = tmp_path_factory.mktemp("market_making")
    for name in ("mm_cython.pyx", "grid_cython.pyx", "setup.py"):
        shutil.copy(EXAMPLE / name, src / name)
    proc = subprocess.run([sys.executable, "setup.py", "build_ext", "--inplace"], cwd=src,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    sys.path.insert(0, str(src))
    try:
        yield importlib.import_module("mm_cython"), importlib.import_module("grid_cython")
    finally:
        sys.path.remove(str(src))
        sys.modules.pop("mm_cython", None)
        sys.modules.pop("grid_cython", None)


@pytest.fixture(scope="module")
def events():
    """The sample with local times moved so the smallest feed latency is 0 (the recorder ran
    1.27 s behind Binance): orders then spend their 1 ms latency in flight, and the
    strategies' in-flight rules are exercised."""
    ev = of.read_binance(SAMPLE, SPOT)
    stamped = ev["ts_exch"] > 0
    ev["ts_local"] -= (ev["ts_local"][stamped] - ev["ts_exch"][stamped]).min()
    return ev


def config():
    from orpflow.config import config_from_dict
    return config_from_dict({
        "instruments": [{"symbol": "BTCUSDT", "venue": "binance-spot", "tick_size": "0.01",
                         "lot_size": "0.00001"}],
        "persistence": {"path": None},
        "features": {"groups": ["book"]},
        "risk": {"rate_per_second": 0, "rate_per_minute": 0, "rate_per_hour": 0,
                 "max_consecutive_losses": None, "reject_storm": None},
        "execution": {"warmup_rows": 0},
        "broker": {"latency_entry_ns": 1_000_000, "latency_response_ns": 1_000_000, "cash": "100000"},
    })


UNITS = int(SPOT.size_to_units("0.001"))


def run(events, strategy):
    r = of.backtest(events, config(), strategy=strategy, measure=False)
    return r.orders["BTCUSDT"], r.fills["BTCUSDT"], r


def assert_same(a, b):
    (oa, fa, ra), (ob, fb, rb) = a, b
    np.testing.assert_array_equal(oa, ob)
    np.testing.assert_array_equal(fa, fb)
    assert ra.accounts == rb.accounts


@pytest.mark.parametrize("kw", [
    dict(half_spread=0.5, skew=0.4, microprice=True),
    dict(half_spread=1.5, skew=1.0, microprice=False),
    dict(half_spread=0.5, skew=0.25, microprice=True, requote_ns=50_000_000),
], ids=["microprice", "mid-wide", "timer-50ms"])
def test_python_and_cython_market_makers_fill_identically(events, py_mods, cy_mods, kw):
    mm, _ = py_mods
    mmc, _ = cy_mods
    py = run(events, mm.MarketMaker(UNITS, max_position=5 * UNITS, **kw))
    cy = run(events, mmc.MarketMaker(UNITS, max_position=5 * UNITS, **kw))
    orders, fills, r = py
    # non-trivial: it quoted both sides, requoted, and was filled on both sides as a maker
    assert len(orders) > 20 and (orders["side"] > 0).any() and (orders["side"] < 0).any()
    assert len(fills) > 0 and (fills["side"] > 0).any() and (fills["side"] < 0).any()
    assert (fills["liquidity"] == 0).all()                     # post-only: never a taker
    assert (orders["type"] == int(of.OrderType.POST_ONLY)).all()
    # the limit, plus what may still be in flight: the new quote and the one being cancelled
    assert np.abs(fills["position"]).max() < 7 * UNITS
    assert_same(py, cy)


def test_quotes_follow_the_formula(events, py_mods):
    """Every quote is mm.quote_prices of the book the strategy saw: a bid never at or above
    the ask it saw, so no post-only order crossed at send time; skew pushes quotes down when
    long."""
    mm, _ = py_mods
    assert mm.quote_prices(100, 5, 101, 5, 0, 10, 0.5, 1.0, 50, True) == (100, 101)
    # long 2 orders, skew 1 tick each: reservation 98.5 -> bid 98; ask 99 would cross: best bid + 1
    assert mm.quote_prices(100, 5, 101, 5, 20, 10, 0.5, 1.0, 50, False) == (98, 101)
    assert mm.quote_prices(100, 5, 101, 5, -20, 10, 0.5, 1.0, 50, False) == (100, 103)
    # microprice leans to the thin side: a thin ask pulls the reference up
    assert mm.quote_prices(100, 90, 101, 10, 0, 10, 0.0, 0.0, 50, True) == (100, 101)
    assert mm.quote_prices(1000, 90, 1010, 10, 0, 10, 0.5, 0.0, 50, True) == (1008, 1010)
    # at the limit one side is dropped
    assert mm.quote_prices(100, 5, 101, 5, 50, 10, 0.5, 0.0, 50, True)[0] == 0
    assert mm.quote_prices(100, 5, 101, 5, -50, 10, 0.5, 0.0, 50, True)[1] == 0


def test_python_and_cython_grids_fill_identically(events, py_mods, cy_mods):
    _, grid = py_mods
    _, gridc = cy_mods
    g = grid.Grid(UNITS, step=200, levels=5)
    gc = gridc.Grid(UNITS, step=200, levels=5)
    py = run(events, g)
    cy = run(events, gc)
    orders, fills, _ = py
    assert len(fills) > 0 and (fills["side"] > 0).any() and (fills["side"] < 0).any()
    # the ladder: 5 + 5 post-only orders every 200 ticks around a multiple of 200
    first = orders[:10]
    assert (first["price"] % 200 == 0).all() and len(np.unique(first["price"])) == 10
    assert (first["type"] == int(of.OrderType.POST_ONLY)).all()
    # refill on fill: every refill sent is the mirror of a filled order (a buy filled at p ->
    # a sell at p + 200, a sell at p -> a buy at p - 200); none lost
    refills = orders[10:]
    assert len(refills) > 0 and (refills["type"] == int(of.OrderType.LIMIT)).all()
    done = orders[orders["status"] == int(of.OrderStatus.FILLED)]
    side = done["side"].astype(np.int64)
    mirror = Counter(zip((-side).tolist(), (done["price"] + side * 200).tolist()))
    sent = refills[refills["status"] != int(of.OrderStatus.REJECTED)]
    assert not Counter(zip(sent["side"].tolist(), sent["price"].tolist())) - mirror
    assert len(sent) == g.refills and g.dropped == 0
    # a refill the risk gate refused was sent again later
    for o in refills[refills["status"] == int(of.OrderStatus.REJECTED)]:
        later = sent[sent["id"] > o["id"]]
        assert ((later["side"] == o["side"]) & (later["price"] == o["price"])).any() or \
            (o["side"], o["price"], o["qty"]) in g.waiting
    assert (g.refills, g.dropped) == (gc.refills, gc.dropped)
    assert_same(py, cy)
