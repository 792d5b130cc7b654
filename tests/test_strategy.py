"""Strategies through the API: callbacks and their order, the context, timers, errors,
backtest == threaded engine, recovery of a strategy's open orders, and the signal strategy
being one strategy among others."""
from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any, Dict, List, Tuple

import numpy as np
import pytest

import orpflow as of
from orpflow import records as R
from orpflow.backtest import backtest
from orpflow.config import config_from_dict
from orpflow.engine import Engine, load_engine_events
from orpflow.events import Reason
from orpflow._core.signal_strategy import SignalStrategy
from orpflow.runtime import make_broker
from orpflow.signals import make_generator
from helpers import SAMPLE
from test_engine import sample_config, threaded

SECOND = 1_000_000_000


@pytest.fixture(scope="module")
def sample_events() -> np.ndarray:
    cfg = sample_config()
    ev, _ = load_engine_events(cfg, cfg.make_instruments())
    return ev


class Quoter(of.Strategy):
    """Quotes both sides at the best every `every_ns` of local time (a timer), one lot-multiple
    each, cancelling the previous quotes; logs every callback and checks the context."""

    def __init__(self, every_ns: int = SECOND // 2, size_lots: int = 20, max_lots: int = 200) -> None:
        self.every = every_ns
        self.size_lots = size_lots
        self.max_lots = max_lots
        self.log: List[Tuple[str, Any]] = []
        self.fills: List[of.FillUpdate] = []
        self.updates: Dict[int, List[of.OrderUpdate]] = {}
        self.position = 0
        self.due = 0

    def on_start(self, ctx: Any) -> None:
        self.log.append(("start", ctx.now))
        self.due = ctx.now + self.every
        ctx.set_timer(self.due, 1)

    def on_book(self, ctx: Any) -> None:
        self.log.append(("book", ctx.rows))

    def on_trade(self, ctx: Any, trade: of.Trade) -> None:
        assert trade.price_ticks > 0 and trade.qty_units > 0 and trade.side in (1, -1, 0)
        self.log.append(("trade", ctx.rows))

    def on_timer(self, ctx: Any, timer_id: int) -> None:
        assert timer_id == 1 and ctx.now == self.due       # the clock is at the due time
        self.log.append(("timer", ctx.now))
        self.due = ctx.now + self.every
        ctx.set_timer(self.due, 1)
        ctx.cancel_all()
        lot = ctx.instrument.lot_units
        bids, asks = ctx.top(3)
        assert (bids[0][0] if bids else 0) == ctx.best_bid
        assert (asks[0][0] if asks else 0) == ctx.best_ask
        if ctx.best_bid and ctx.position < self.max_lots * lot:
            ctx.submit("buy", self.size_lots * lot, ctx.best_bid, type="post_only", client_id=7)
        if ctx.best_ask and ctx.position > -self.max_lots * lot:
            ctx.submit(-1, self.size_lots * lot, ctx.best_ask, type="post_only", client_id=8)

    def on_order(self, ctx: Any, order: of.OrderUpdate) -> None:
        self.log.append(("order", order.id))
        self.updates.setdefault(order.id, []).append(order)
        open_ids = [o.id for o in ctx.open_orders()]
        assert (order.id in open_ids) == order.is_open

    def on_fill(self, ctx: Any, fill: of.FillUpdate) -> None:
        assert fill.order_id in self.updates              # on_order came first
        self.position += fill.side * fill.qty_units
        # position_units: after this fill; ctx.position is the account now (a later fill of
        # the same record may be in it already)
        assert fill.position_units == self.position
        self.fills.append(fill)

    def on_stop(self, ctx: Any) -> None:
        assert ctx.position == self.position
        self.log.append(("stop", len(ctx.open_orders())))
        ctx.cancel_all()


def test_python_strategy_sees_every_callback_in_order(sample_events: np.ndarray) -> None:
    q = Quoter()
    res = backtest(sample_events, sample_config(), strategy=q)
    kinds = [k for k, _ in q.log]
    assert kinds[0] == "start" and kinds[-1] == "stop"
    assert kinds.count("start") == 1 and kinds.count("stop") == 1
    # on_book / on_trade: exactly the feature rows, numbered 1, 2, ...
    rows = [v for k, v in q.log if k in ("book", "trade")]
    assert rows == list(range(1, res.counters["rows"] + 1))
    assert kinds.count("trade") > 0 and kinds.count("book") > 0
    # timers every half second of local time over the recording
    span = (sample_events["ts_local"].max() - sample_events["ts_local"].min()) / SECOND
    assert abs(kinds.count("timer") - span * 2) <= 2
    # what the strategy saw == what the broker did
    fills = res.fills["BTCUSDT"]
    orders = res.orders["BTCUSDT"]
    assert len(fills) > 5, "the quoter must trade on the sample"
    assert [f.order_id for f in q.fills] == list(fills["order_id"])
    assert [f.qty_units for f in q.fills] == list(fills["qty"])
    assert [f.price_ticks for f in q.fills] == list(fills["price"])
    assert sorted(q.updates) == list(orders["id"])
    for o in orders:
        seen = q.updates[int(o["id"])]
        assert seen[0].status == "pending"
        assert seen[-1].filled_units <= o["filled"]
        assert o["client_id"] in (7, 8)
    # every order state change was both written and given to on_order, in the same order
    ev = res.order_events
    assert [int(i) for i in ev["order_id"]] == [i for k, i in q.log if k == "order"]


def test_backtest_equals_threaded_engine_for_a_strategy(sample_events: np.ndarray) -> None:
    cfg = sample_config()
    a, b = Quoter(), Quoter()
    bt = backtest(sample_events, cfg, strategy=a)
    eng = threaded(cfg, sample_events, keep_records=True, strategy=b)
    assert len(bt.fills["BTCUSDT"]) > 5
    assert np.array_equal(bt.records, eng.records())
    assert np.array_equal(bt.orders["BTCUSDT"], eng.orders())
    assert a.log == b.log


def test_signal_strategy_is_the_default(sample_events: np.ndarray) -> None:
    cfg = sample_config()
    inst = cfg.make_instruments()[0]
    explicit = SignalStrategy(make_generator(cfg.signal, inst), cfg.signal.resolve(inst),
                              cfg.execution.resolve())
    a = backtest(sample_events, cfg)
    b = backtest(sample_events, cfg, strategy=explicit)
    assert len(a.signals) > 0
    assert np.array_equal(a.records, b.records)


class Boom(of.Strategy):
    def __init__(self, after_orders: int) -> None:
        self.after = after_orders
        self.sent = 0

    def on_book(self, ctx: Any) -> None:
        if self.sent >= self.after:
            self.explode(ctx)
        if ctx.best_bid:
            ctx.submit("buy", ctx.instrument.lot_units, max(1, ctx.best_bid - 500), type="limit")
            self.sent += 1

    def explode(self, ctx: Any) -> None:
        raise ZeroDivisionError("strategy bug on purpose")


def test_strategy_exception_surfaces_with_its_traceback(sample_events: np.ndarray) -> None:
    with pytest.raises(ZeroDivisionError, match="on purpose") as info:
        backtest(sample_events, sample_config(), strategy=Boom(5))
    names = [entry.name for entry in info.traceback]
    assert "explode" in names and "on_book" in names


def test_strategy_exception_stops_the_engine_with_everything_persisted(
        tmp_path: Path, sample_events: np.ndarray) -> None:
    db = tmp_path / "boom.db"
    # a market ring far smaller than the recording: the feed is blocked on a full ring when
    # the strategy fails, and must still stop
    cfg = sample_config(persistence={"path": str(db), "batch_ms": 5}, feed={"market_ring": 1024})
    e = Engine(cfg, events=sample_events, strategy=Boom(5)).start()
    with pytest.raises(ZeroDivisionError, match="on purpose"):
        e.wait(60)
    e.close()
    for t in e._threads.values():                       # the feed too, though it was blocked
        t.join(5)
        assert not t.is_alive(), t.name
    assert e.orders()["id"].tolist() == [1, 2, 3, 4, 5]
    with of.Store(str(db)) as s:
        runs = s.runs()
        assert list(runs["status"]) == ["failed"]
        orders = s.orders()
        assert sorted(set(int(i) for i in orders["order_id"])) == [1, 2, 3, 4, 5]


class Args(of.Strategy):
    def __init__(self) -> None:
        self.results: Dict[str, Any] = {}
        self.rejected: List[int] = []

    def on_book(self, ctx: Any) -> None:
        if self.results or not ctx.best_bid:
            return
        lot = ctx.instrument.lot_units
        for name, call in (("side", lambda: ctx.submit(2, lot, ctx.best_bid)),
                           ("type", lambda: ctx.submit("buy", lot, ctx.best_bid, type="stop")),
                           ("tif", lambda: ctx.submit("buy", lot, ctx.best_bid, type="ioc", tif="GTC"))):
            with pytest.raises(ValueError):
                call()
            self.results[name] = "raised"
        self.results["lot"] = ctx.submit("buy", lot + 1, ctx.best_bid)
        self.results["price"] = ctx.submit("buy", lot, 0)
        self.results["gtd"] = ctx.submit("buy", lot, ctx.best_bid, tif="GTD")
        self.results["cancel_unknown"] = ctx.cancel(10 ** 9)
        self.results["modify_unknown"] = ctx.modify(10 ** 9, 1, lot)
        self.results["timer_cancel_unknown"] = ctx.cancel_timer(99)
        with pytest.raises(KeyError):
            ctx.feature("no_such_column")
        self.results["mid"] = ctx.feature("mid") == ctx.features()["mid"]
        for i in range(16):
            ctx.set_timer(ctx.now + 10 ** 15, i)
        with pytest.raises(ValueError):
            ctx.set_timer(ctx.now + 10 ** 15, 16)
        ctx.set_timer(ctx.now + 10 ** 15, 3)          # moving an existing id still works
        self.ctx = ctx

    def on_order(self, ctx: Any, order: of.OrderUpdate) -> None:
        if order.status == "rejected":
            self.rejected.append(order.reason)


def test_bad_arguments_are_rejected_with_reasons_or_raise(sample_events: np.ndarray) -> None:
    a = Args()
    backtest(sample_events[:20000], sample_config(), strategy=a)
    r = a.results
    assert r["side"] == r["type"] == r["tif"] == "raised"
    assert r["lot"] == -int(Reason.ORDER_BAD_QTY)
    assert r["price"] == -int(Reason.ORDER_BAD_PRICE)
    assert r["gtd"] == -int(Reason.ORDER_BAD_EXPIRY)
    assert r["cancel_unknown"] is False and r["modify_unknown"] == -1
    assert r["timer_cancel_unknown"] is False and r["mid"]
    assert a.rejected == [int(Reason.ORDER_BAD_QTY), int(Reason.ORDER_BAD_PRICE),
                          int(Reason.ORDER_BAD_EXPIRY)]
    with pytest.raises(RuntimeError, match="inside a strategy callback"):
        a.ctx.position


def test_strategy_argument_forms(sample_events: np.ndarray) -> None:
    cfg = sample_config()
    ev = sample_events[:5000]
    with pytest.raises(TypeError, match="orpflow.Strategy"):
        backtest(ev, cfg, strategy=object())
    with pytest.raises(ValueError, match="missing"):
        backtest(ev, cfg, strategy={"ETHUSDT": of.Strategy()})
    made: List[Any] = []
    backtest(ev, cfg, strategy=lambda inst: made.append(inst.symbol) or of.Strategy())
    assert made == ["BTCUSDT"]
    backtest(ev, cfg, strategy={"BTCUSDT": of.CStrategy()})
    two = config_from_dict({"instruments": [
        {"symbol": "BTCUSDT", "id": 1, "paths": [str(SAMPLE)]},
        {"symbol": "ETHUSDT", "id": 2, "paths": [str(SAMPLE)]}]})
    with pytest.raises(ValueError, match="one strategy instance"):
        backtest(ev, two, strategy=of.Strategy())
    shared = of.Strategy()
    with pytest.raises(ValueError, match="one strategy object per instrument"):
        backtest(ev, two, strategy=lambda inst: shared)


class Rester(of.Strategy):
    """Rests one buy far below the market and never cancels it."""

    def __init__(self) -> None:
        self.orders: List[of.OrderUpdate] = []
        self.sent = False

    def on_book(self, ctx: Any) -> None:
        if not self.sent and ctx.best_bid:
            self.sent = True
            ctx.submit("buy", ctx.instrument.lot_units * 3, ctx.best_bid // 2, type="limit")

    def on_order(self, ctx: Any, order: of.OrderUpdate) -> None:
        self.orders.append(order)


def test_restart_resends_a_strategys_open_orders(tmp_path: Path, sample_events: np.ndarray) -> None:
    db = tmp_path / "r.db"
    cfg = sample_config(persistence={"path": str(db), "batch_ms": 5}, execution={"warmup_rows": 10})
    first = Rester()
    e = Engine(cfg, events=sample_events, strategy=first).start()
    assert e.wait(60)
    e.close()
    resting = [o for o in first.orders if o.status == "accepted"]
    assert len(resting) == 1
    second = Rester()
    second.sent = True                                   # it only watches
    e2 = Engine(cfg, events=sample_events, strategy=second).start()
    assert e2.wait(60)
    e2.close()
    again = [o for o in second.orders if o.client_id == resting[0].id]
    assert again and again[0].status == "pending"
    assert again[0].price_ticks == resting[0].price_ticks and again[0].qty_units == resting[0].qty_units
    assert again[-1].status == "accepted"


class CountingCStrategy(of.CStrategy):
    """A Python subclass of the compiled base: its cdef callbacks stay the base's no-ops."""


def test_compiled_base_strategy_trades_nothing(sample_events: np.ndarray) -> None:
    res = backtest(sample_events, sample_config(), strategy=CountingCStrategy())
    assert len(res.orders["BTCUSDT"]) == 0 and res.counters["rows"] > 0
    assert len(res.signals) == 0


STRATEGY_FILE = '''
import orpflow as of

class OneBid(of.Strategy):
    def __init__(self, offset_ticks=100):
        self.offset = offset_ticks
        self.sent = False

    def on_book(self, ctx):
        if not self.sent and ctx.best_bid:
            self.sent = True
            ctx.submit("buy", ctx.instrument.lot_units, ctx.best_bid - self.offset)
'''


def _toml(tmp_path: Path, strategy: str) -> Path:
    cfg = tmp_path / "s.toml"
    cfg.write_text(f"""
[strategy]
id = "mine"
{strategy}
[[instruments]]
symbol = "BTCUSDT"
paths = [{str(SAMPLE)!r}]
[persistence]
path = "s.db"
""")
    return cfg


def test_config_names_a_strategy_file_for_the_cli(tmp_path: Path) -> None:
    from orpflow.cli import main
    (tmp_path / "mine.py").write_text(STRATEGY_FILE)
    cfg = _toml(tmp_path, 'class = "mine.py:OneBid"\n[strategy.params]\noffset_ticks = 250')
    loaded = of.load_config(str(cfg))
    res = backtest(load_engine_events(loaded, loaded.make_instruments())[0], loaded)
    orders = res.orders["BTCUSDT"]
    assert len(orders) == 1 and len(res.signals) == 0
    first_bid = res.order_events["price_ticks"][0]
    assert first_bid == orders["price"][0]
    import subprocess
    import sys
    proc = subprocess.run([sys.executable, "-m", "orpflow", "run", str(cfg)], capture_output=True,
                          text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    with of.Store(str(tmp_path / "s.db")) as s:
        assert len(s.orders()) >= 1


@pytest.mark.parametrize("line, message", [
    ('class = "nope.py:OneBid"', "file not found"),
    ('class = "mine.py:Missing"', "has no 'Missing'"),
    ('class = "mine.py:of"', "not an orpflow.Strategy"),
    ('class = "no_such_module_xyz:A"', "cannot import"),
    ('class = "OneBid"', "module:Name"),
    ('class = "mine.py:OneBid"\n[strategy.params]\nwrong = 1', "refused them"),
    ('class = "broken.py:X"', "loading"),
])
def test_config_strategy_mistakes_are_one_line_errors(tmp_path: Path, line: str, message: str) -> None:
    import subprocess
    import sys
    (tmp_path / "mine.py").write_text(STRATEGY_FILE)
    (tmp_path / "broken.py").write_text("def oops(:\n")
    cfg = _toml(tmp_path, line)
    proc = subprocess.run([sys.executable, "-m", "orpflow", "backtest", str(cfg)], capture_output=True,
                          text=True, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_orders_sent_from_order_updates_meet_a_whole_book() -> None:
    """Fills inside a multi-record depth message are given to the strategy when the message
    ends: a refill sent from on_order then meets a usable book (it was refused with
    RISK_BOOK_NOT_SYNCED 17 times on this run when they were given mid-message)."""
    import importlib.util
    from helpers import REPO, SPOT
    spec = importlib.util.spec_from_file_location("grid_example", REPO / "examples" / "market_making" / "grid.py")
    grid = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(grid)
    ev = of.read_binance(SAMPLE, SPOT)
    # local times moved so the smallest feed latency is 0 (the recorder ran 1.27 s behind the
    # venue): orders reach the venue within the recording, and fills land mid-message
    stamped = ev["ts_exch"] > 0
    ev["ts_local"] -= (ev["ts_local"][stamped] - ev["ts_exch"][stamped]).min()
    cfg = sample_config(features={"groups": ["book"]}, execution={"warmup_rows": 0},
                        broker={"cash": "100000"})
    g = grid.Grid(int(SPOT.size_to_units("0.001")), step=200, levels=5)
    res = backtest(ev, cfg, strategy=g)
    orders = res.orders["BTCUSDT"]
    assert g.refills > 20
    refused = orders[orders["status"] == int(of.OrderStatus.REJECTED)]
    assert int(Reason.RISK_BOOK_NOT_SYNCED) not in refused["reason"].tolist()
