"""The strategy API against its pure-Python twin (orpflow.reference.engine.EngineTwin with
strategy=): random event-driven strategies (a seeded generator inside the strategy decides, on
every callback, whether to submit, cancel, modify, cancel_all or set timers) on small synthetic
markets (Hypothesis) and on the bundled sample.

- the twin's invariants after every callback: position = signed fills, cash identity in money
  units, open orders = the broker's open exposure, fills only of orders already reported;
- compiled == twin: the same callbacks with the same arguments and context views, the same
  output records (order journal included), orders and fills;
- of.backtest == the threaded of.Engine: byte-identical records.
"""
from __future__ import annotations

import random
from decimal import Decimal
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import orpflow as of
from orpflow import records as R
from orpflow.backtest import backtest
from orpflow.config import FEE_SCALE, EngineConfig, MoneyScale, config_from_dict
from orpflow.engine import Engine, load_engine_events
from orpflow.events import Reason
from orpflow.reference.engine import EngineTwin
from orpflow.strategy_types import FillUpdate, OrderUpdate, Trade
from broker_helpers import F, rec, events
from helpers import SAMPLE
from test_engine import MID, _snap

MAX_ORDERS = 150                 # per random strategy and run
OPEN = ("pending", "accepted", "partially_filled")
FINAL = ("filled", "cancelled", "rejected", "expired")
FAST = settings(max_examples=60, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


# ------------------------------------------------------------------ markets and configs

@st.composite
def streams(draw: Any) -> np.ndarray:
    """A snapshot, then depth updates, trades (aggressor known or not), snapshots, multi-record
    book messages and the odd malformed record, at random event-time gaps."""
    ts = 1
    size = st.integers(1, 60)
    parts = [_snap({MID - 1 - i: draw(size) for i in range(draw(st.integers(1, 4)))},
                   {MID + i: draw(size) for i in range(draw(st.integers(1, 4)))}, ts)]
    for _ in range(draw(st.integers(5, 80))):
        ts += draw(st.integers(0, 400_000))
        kind = draw(st.sampled_from(["depth"] * 5 + ["trade"] * 4 + ["message", "snapshot", "garbage"]))
        price = MID + draw(st.integers(-5, 5))
        if kind == "depth":
            side = draw(st.sampled_from([F.BID, F.ASK]))
            parts.append(events(rec(side | F.DEPTH | F.LAST, price, draw(st.integers(0, 60)), ts)))
        elif kind == "trade":
            aggr = draw(st.sampled_from([F.BUY, F.SELL, F.BUY, F.SELL, 0]))
            parts.append(events(rec(F.TRADE | aggr | F.LAST, price, draw(st.integers(1, 30)), ts)))
        elif kind == "message":          # two levels in one message: timers wait for its end
            parts.append(events(rec(F.BID | F.DEPTH, MID - 1 - draw(st.integers(0, 3)), draw(size), ts),
                                rec(F.ASK | F.DEPTH | F.LAST, MID + draw(st.integers(0, 3)), draw(size),
                                    ts, ts + draw(st.integers(0, 200_000)))))
        elif kind == "snapshot":
            parts.append(_snap({MID - 1 - i: draw(size) for i in range(draw(st.integers(0, 4)))},
                               {MID + i: draw(size) for i in range(draw(st.integers(0, 4)))}, ts))
        else:
            parts.append(events((ts, ts, draw(st.integers(-5, 5)), 0, 0, draw(st.integers(-3, MID + 9)),
                                 draw(st.integers(-5, 50)), draw(st.integers(0, 1023)),
                                 draw(st.sampled_from([0, 0, 1])))))
    return np.concatenate(parts)


def make_config(signal: Optional[dict] = None, two: bool = False, **v: Any) -> EngineConfig:
    """The TEST instrument (1 tick = 0.01, lot = 2 size units of 0.001); `v` overrides the
    defaults below (the first of each choice the Hypothesis configs draw from)."""
    p = {"rate": 0, "max_position": None, "max_open_orders": None, "qty_policy": "reject", "losses": None,
         "on_breaker": "reduce_only", "entry": 0, "jitter": 0, "queue": "risk_averse", "seed": 0,
         "order_type": "market", "slippage": 0, "warmup": 0, "account_ms": 0, **v}
    data: Dict[str, Any] = {
        "instruments": [{"symbol": "TEST", "venue": "generic", "tick_size": "0.01", "lot_size": "0.002",
                         "size_increment": "0.001"}],
        "features": {"window_ms": 0.5, "zscore_min_history": 2, "volatility_window": 3},
        "risk": {"rate_per_second": p["rate"], "rate_per_minute": 0, "rate_per_hour": 0,
                 "max_position": p["max_position"], "max_open_orders": p["max_open_orders"],
                 "qty_policy": p["qty_policy"], "max_consecutive_losses": p["losses"],
                 "on_breaker": p["on_breaker"]},
        "broker": {"latency_entry_ns": p["entry"], "latency_response_ns": 100_000, "latency_jitter_ns": p["jitter"],
                   "queue_model": p["queue"], "seed": p["seed"], "cash": "50", "maker_fee": "-0.0001",
                   "taker_fee": "0.0004"},
        "execution": {"order_type": p["order_type"], "slippage_ticks": p["slippage"], "warmup_rows": p["warmup"],
                      "account_every_ms": p["account_ms"], "keep_history": True},
    }
    if two:                              # a second instrument, id 1, with other grid sizes
        data["instruments"].append({"symbol": "TEST2", "venue": "generic", "tick_size": "0.5",
                                    "lot_size": "0.01", "size_increment": "0.01"})
    if signal is not None:
        data["signal"] = signal
    return config_from_dict(data)


def _draw_params(draw: Any) -> Dict[str, Any]:
    return {"rate": draw(st.sampled_from([0, 0, 20])), "max_position": draw(st.sampled_from([None, "0.02"])),
            "max_open_orders": draw(st.sampled_from([None, 4])),
            "qty_policy": draw(st.sampled_from(["reject", "clip"])),
            "losses": draw(st.sampled_from([None, None, 2])),
            "on_breaker": draw(st.sampled_from(["reduce_only", "halt", "flatten"])),
            "entry": draw(st.sampled_from([0, 200_000])), "jitter": draw(st.sampled_from([0, 50_000])),
            "queue": draw(st.sampled_from(["risk_averse", "prob_power2", "prob_log"])),
            "seed": draw(st.integers(0, 2 ** 32)), "order_type": draw(st.sampled_from(["market", "ioc"])),
            "slippage": draw(st.integers(0, 2)), "warmup": draw(st.integers(0, 4)),
            "account_ms": draw(st.sampled_from([0, 0.5]))}


@st.composite
def configs(draw: Any) -> EngineConfig:
    return make_config(**_draw_params(draw))


@st.composite
def signal_configs(draw: Any) -> EngineConfig:
    return make_config({"generator": "imbalance", "equity": draw(st.sampled_from([0.5, 2.0, 20.0])),
                        "base_position_pct": 0.1, "min_interval_ms": 0, "holding_ms": 0.5,
                        "exit_on_holding": draw(st.booleans()), "threshold": 0.1, "persistence": 1,
                        "min_confidence": 0.0, "momentum_confirmation": False, "max_spread_bps": 1000},
                       **_draw_params(draw))


# ------------------------------------------------------------------ the random strategy

Base: Any = getattr(of, "Strategy", object)


class RandomStrategy(Base):
    """Decides with its own seeded generator on every callback; logs every callback with its
    arguments, a view of the context and the results of what it did (the differential tests
    compare logs). `check(ctx, self, callback name)` runs after every callback."""

    def __init__(self, seed: int, lot: int, activity: float = 0.5,
                 check: Optional[Callable[[Any, "RandomStrategy", str], None]] = None) -> None:
        self.rng = random.Random(seed)
        self.lot = lot
        self.activity = activity
        self.check = check
        self.log: List[tuple] = []
        self.reported: Dict[int, str] = {}      # order id -> last status given to on_order
        self.fills: List[FillUpdate] = []
        self.sent: List[int] = []

    # -- what it looks at
    def view(self, ctx: Any) -> tuple:
        return (ctx.now, ctx.venue_time, ctx.rows, ctx.position, ctx.best_bid, ctx.best_ask,
                tuple(ctx.open_orders()), ctx.top(3))

    def _price(self, ctx: Any, side: int) -> int:
        ref = (ctx.best_bid if side > 0 else ctx.best_ask) or ctx.best_ask or ctx.best_bid or MID
        return max(1, ref + self.rng.randint(-3, 3))

    def act(self, ctx: Any, activity: float) -> None:
        rng = self.rng
        while rng.random() < activity:
            what = rng.choice(["submit"] * 4 + ["cancel", "modify", "cancel_all", "timer", "cancel_timer"])
            if what == "submit" and len(self.sent) >= MAX_ORDERS:
                what = "cancel_all"
            if what == "submit":
                side = rng.choice([1, -1, "buy", "sell"])
                s = 1 if side in (1, "buy") else -1
                kind = rng.choice(["limit", "limit", "post_only", "ioc", "fok", "market", "gtd"])
                qty = self.lot * rng.randint(1, 4)
                cid = rng.randint(0, 99)
                if kind == "market":
                    r = ctx.submit(side, qty, type="market", client_id=cid)
                elif kind == "gtd":
                    r = ctx.submit(side, qty, self._price(ctx, s), tif="GTD", client_id=cid,
                                   expire_at=ctx.venue_time + rng.randint(1, 1_500_000))
                else:
                    r = ctx.submit(side, qty, self._price(ctx, s), type=kind, client_id=cid)
                if r > 0:
                    self.sent.append(r)
            elif what == "cancel":
                oid = rng.choice(self.sent) if self.sent and rng.random() < 0.9 else rng.randint(0, 50)
                r = ctx.cancel(oid)
            elif what == "modify":
                oid = rng.choice(self.sent) if self.sent and rng.random() < 0.9 else rng.randint(0, 50)
                o = ctx.order(oid)
                side = o.side if o is not None else 1
                r = ctx.modify(oid, self._price(ctx, side), self.lot * rng.randint(1, 5))
            elif what == "cancel_all":
                r = ctx.cancel_all(rng.choice([0, 1, -1, "buy", "sell"]))
            elif what == "timer":
                tid = rng.randint(0, 9)
                ctx.set_timer(ctx.now + rng.randint(0, 3_000_000), tid)
                r = tid
            else:
                r = ctx.cancel_timer(rng.randint(0, 9))
            self.log.append(("act", what, r))

    def _after(self, ctx: Any, name: str) -> None:
        # an order leads to several on_order / on_fill calls: acting less often on those keeps
        # the chain of orders leading to orders finite (a subcritical branching process)
        self.act(ctx, self.activity / 4 if name in ("order", "fill") else self.activity)
        if self.check is not None:
            self.check(ctx, self, name)

    # -- the callbacks
    def on_start(self, ctx: Any) -> None:
        self.log.append(("start", self.view(ctx), ctx.instrument.symbol))
        self._after(ctx, "start")

    def on_book(self, ctx: Any) -> None:
        f = ctx.features()
        self.log.append(("book", self.view(ctx), f["ts_exch"], f["seq"], f["kind"], f["book_ok"]))
        self._after(ctx, "book")

    def on_trade(self, ctx: Any, trade: Trade) -> None:
        assert isinstance(trade, tuple) and trade.side in (-1, 0, 1)
        self.log.append(("trade", tuple(trade), self.view(ctx)))
        self._after(ctx, "trade")

    def on_order(self, ctx: Any, order: OrderUpdate) -> None:
        prev = self.reported.get(order.id)
        assert prev not in FINAL, f"order {order.id} reported after its final state {prev}"
        if prev is None:
            assert order.status in ("pending", "rejected"), order
        self.reported[order.id] = order.status
        self.log.append(("order", tuple(order), self.view(ctx)))
        self._after(ctx, "order")

    def on_fill(self, ctx: Any, fill: FillUpdate) -> None:
        assert fill.order_id in self.reported, f"fill of order {fill.order_id} before its on_order"
        assert fill.liquidity in ("maker", "taker")
        self.fills.append(fill)
        assert fill.position_units == sum(f.side * f.qty_units for f in self.fills)
        self.log.append(("fill", tuple(fill), self.view(ctx)))
        self._after(ctx, "fill")

    def on_timer(self, ctx: Any, timer_id: int) -> None:
        self.log.append(("timer", timer_id, self.view(ctx)))
        self._after(ctx, "timer")

    def on_stop(self, ctx: Any) -> None:
        self.log.append(("stop", self.view(ctx)))
        if self.rng.random() < 0.5:
            self.log.append(("act", "cancel_all", ctx.cancel_all()))
        if self.check is not None:
            self.check(ctx, self, "stop")


# ------------------------------------------------------------------ invariants (twin)

def twin_checker(twin: EngineTwin, slot: int = 0) -> Callable[[Any, RandomStrategy, str], None]:
    """After every callback: position = signed fills; cash = initial - signed notional - fees
    (money units: 1 tick x 1 size unit x 1e-8); the open orders' leaves per side = the
    broker's open exposure; an order shown final in open_orders() is one whose final state
    the strategy has not been told yet."""
    s = twin.slots[slot]
    b = s.sim.broker
    scale = MoneyScale(s.inst)
    cash0 = b.p["cash"]

    def check(ctx: Any, strat: RandomStrategy, name: str) -> None:
        fills = b.fills
        assert ctx.position == sum(f[2] * f[5] for f in fills)
        if fills:
            assert ctx.position == fills[-1][8]
        acct = ctx.account()
        notional = sum(f[2] * f[4] * f[5] for f in fills) * FEE_SCALE      # ticks x units x 1e8
        fees = sum(f[6] for f in fills)
        assert scale.to_money("cash", acct["cash"]) == cash0 - notional - fees
        assert scale.to_money("fees", acct["fees"]) == fees
        opens = ctx.open_orders()
        live = [o for o in opens if o.status in OPEN]
        buy = sum(o.qty_units - o.filled_units for o in live if o.side > 0)
        sell = sum(o.qty_units - o.filled_units for o in live if o.side < 0)
        assert (buy, sell, len(live)) == b.open_exposure()
        for o in opens:
            assert strat.reported.get(o.id) not in FINAL
        ids = [o.id for o in opens]
        assert ids == sorted(ids)
        for oid, status in strat.reported.items():
            if status in FINAL:
                assert oid not in ids
    return check


def delivered_checker(cash: str) -> Callable[[Any, RandomStrategy, str], None]:
    """What a strategy can check itself from what it was given (either engine): in on_stop,
    after every fill was delivered, position and cash agree with the fills it saw."""
    def check(ctx: Any, strat: RandomStrategy, name: str) -> None:
        if name != "stop":
            return
        scale = MoneyScale(ctx.instrument)
        assert ctx.position == sum(f.side * f.qty_units for f in strat.fills)
        acct = ctx.account()
        notional = sum(f.side * f.price_ticks * f.qty_units for f in strat.fills) * FEE_SCALE
        fees = scale.to_money("fees", acct["fees"])
        assert scale.to_money("cash", acct["cash"]) == scale.to_money("cash", Decimal(cash)) - notional - fees
    return check


def run_twin(cfg: EngineConfig, ev: np.ndarray, seed: int, activity: float = 0.5,
             checked: bool = True) -> Tuple[EngineTwin, RandomStrategy, np.ndarray]:
    strat = RandomStrategy(seed, cfg.make_instruments()[0].lot_units, activity)
    twin = EngineTwin(cfg, strategy=strat)
    if checked:
        strat.check = twin_checker(twin)
    return twin, strat, twin.run(ev)


# ------------------------------------------------------------------ the twin on its own

@FAST
@given(streams(), configs(), st.integers(0, 2 ** 32))
def test_twin_strategy_invariants(ev: np.ndarray, cfg: EngineConfig, seed: int) -> None:
    twin, strat, recs = run_twin(cfg, ev, seed)
    kinds = [x[0] for x in strat.log]
    assert kinds[0] == "start" and "stop" in kinds
    # every state change was written, once, in order; every fill too
    orders = recs[recs["kind"] == R.OUT_ORDER]
    given_orders = [x[1] for x in strat.log if x[0] == "order"]
    assert [int(v[0]) for v in orders["v"]] == [o[0] for o in given_orders]
    assert len(recs[recs["kind"] == R.OUT_FILL]) == len(strat.fills) == len(twin.fills())
    assert not (recs["kind"] == R.OUT_SIGNAL).any()          # the strategy replaced the signal rules
    final = R.final_state(R.order_rows(recs, twin.insts))
    assert np.array_equal(final["status"], twin.orders()["status"])


def test_twin_strategy_on_the_sample() -> None:
    cfg = sample_config()
    ev = sample_events()[:6000]
    twin, strat, recs = run_twin(cfg, ev, 7, activity=0.3)
    assert len(strat.fills) > 5 and len(twin.orders()) > 50, "the random strategy must trade"
    assert {x[1] for x in strat.log if x[0] == "act"} >= {"submit", "cancel", "modify", "cancel_all", "timer"}
    assert any(x[0] == "timer" for x in strat.log)


def test_timers_fire_in_due_order_before_the_record() -> None:
    """Due by a record's local time and between book messages: earliest first (a tie: the
    lower id), the local clock at the due time, before the record is applied."""
    cfg = make_config()
    calls: List[tuple] = []

    class Timers(Base):
        def on_start(self, ctx: Any) -> None:
            calls.append(("start", ctx.now))
            ctx.set_timer(5_000, 3)
            ctx.set_timer(5_000, 1)
            ctx.set_timer(2_000, 2)
            ctx.set_timer(9_999_999, 4)
            assert ctx.cancel_timer(4) and not ctx.cancel_timer(4)

        def on_timer(self, ctx: Any, tid: int) -> None:
            calls.append(("timer", tid, ctx.now, ctx.venue_time))
            if tid == 2:
                ctx.set_timer(2_500, 5)          # due already by this record: fires before it

        def on_book(self, ctx: Any) -> None:
            calls.append(("book", ctx.now))

    ev = np.concatenate([_snap({MID - 1: 5}, {MID: 5}, 1_000),
                         events(rec(F.BID | F.DEPTH, MID - 2, 3, 3_000, 3_000),       # a message from
                                rec(F.ASK | F.DEPTH | F.LAST, MID + 1, 3, 3_000, 6_000)),  # 3_000 to 6_000
                         events(rec(F.BID | F.DEPTH | F.LAST, MID - 1, 4, 7_000, 7_000))])
    for impl in ("twin", "compiled"):
        calls.clear()
        if impl == "twin":
            EngineTwin(cfg, strategy=Timers()).run(ev)
        else:
            backtest(ev, cfg, strategy=Timers())
        # 2 and then 5 (set by 2, due by then) before the message's first record; 1 and 3 (a
        # tie: the lower id first) wait for the message's end, the clock past their due time
        assert calls == [("start", 1_000), ("book", 1_000),
                         ("timer", 2, 2_000, 1_000), ("timer", 5, 2_500, 1_000), ("book", 6_000),
                         ("timer", 1, 6_000, 3_000), ("timer", 3, 6_000, 3_000), ("book", 7_000)], impl


# ------------------------------------------------------------------ the context's arguments

def _ctx_calls(fn: Callable[[Any], None], impl: str) -> None:
    class Once(Base):
        def on_book(self, ctx: Any) -> None:
            if ctx.rows == 1:
                fn(ctx)
    ev = _snap({MID - 1: 50}, {MID: 50}, 1_000)
    cfg = make_config()
    if impl == "twin":
        EngineTwin(cfg, strategy=Once()).run(ev)
    else:
        backtest(ev, cfg, strategy=Once())


@pytest.mark.parametrize("impl", ["twin", "compiled"])
@pytest.mark.parametrize("call", [
    lambda c: c.submit(2, 2, MID),
    lambda c: c.submit("hold", 2, MID),
    lambda c: c.submit(1, 2, MID, type="stop"),
    lambda c: c.submit(1, 2, MID, tif="DAY"),
    lambda c: c.submit(1, 2, MID, type="ioc", tif="FOK"),
    lambda c: c.cancel_all(3),
    lambda c: [c.set_timer(10 ** 9, k) for k in range(17)],
], ids=["side", "side-name", "type", "tif", "ioc-fok", "cancel_all-side", "17-timers"])
def test_unknown_names_raise_value_error(impl: str, call: Any) -> None:
    with pytest.raises(ValueError):
        _ctx_calls(call, impl)


PAIRS_NEVER_ACCEPTED = [
    lambda c: c.submit(1, 2, MID, type="market"),         # a market order with a price
    lambda c: c.submit(1, 2, type="market", tif="GTC"),
    lambda c: c.submit(1, 2, MID, type="post_only", tif="IOC"),
]


@pytest.mark.parametrize("impl", ["twin", "compiled"])
@pytest.mark.parametrize("call", PAIRS_NEVER_ACCEPTED, ids=["market-price", "market-gtc", "post-only-ioc"])
def test_pairs_the_venue_never_accepts_raise_value_error(impl: str, call: Any) -> None:
    """As ExecutionSim.submit: a programming error, not an order."""
    with pytest.raises(ValueError):
        _ctx_calls(call, impl)


OFF_GRID = [
    (lambda c: c.submit(1, 3, MID), -int(Reason.ORDER_BAD_QTY)),       # lot = 2 units
    (lambda c: c.submit(1, 0, MID), -int(Reason.ORDER_BAD_QTY)),
    (lambda c: c.submit(1, 2, 0), -int(Reason.ORDER_BAD_PRICE)),       # a limit without a price
    (lambda c: c.submit(1, 2, MID, tif="GTD"), -int(Reason.ORDER_BAD_EXPIRY)),
    (lambda c: c.submit(1, 2, MID, expire_at=5), -int(Reason.ORDER_BAD_EXPIRY)),
    (lambda c: c.modify(c.submit(1, 2, MID - 3), 0, 2), int(Reason.ORDER_BAD_PRICE)),
    (lambda c: c.modify(c.submit(1, 2, MID - 3), MID - 3, 3), int(Reason.ORDER_BAD_QTY)),
]


@pytest.mark.parametrize("call, expected", OFF_GRID, ids=["qty-lot", "qty-0", "no-price", "gtd-no-expiry",
                                                          "expiry-no-gtd", "modify-price", "modify-qty"])
def test_values_off_the_grid_give_the_same_reason_in_both(call: Any, expected: int) -> None:
    """A size, price or expiry off the grid is a rejected order (recorded, counted) or a refused
    modify with the reason, in the twin and the compiled context alike."""
    got = {}
    for impl in ("twin", "compiled"):
        seen: List[Any] = []
        _ctx_calls(lambda c: seen.append(call(c)), impl)
        got[impl] = seen
    assert got["twin"] == got["compiled"] == [expected]


def test_twin_context_views() -> None:
    seen: Dict[str, Any] = {}

    class Look(Base):
        def on_book(self, ctx: Any) -> None:
            if ctx.rows == 1:
                seen.update(bid=ctx.best_bid, ask=ctx.best_ask, top=ctx.top(2), top0=ctx.top(0),
                            feats=ctx.features(), imb=ctx.feature("imbalance"), unknown=ctx.order(99),
                            cancel=ctx.cancel(99), modify=ctx.modify(99, MID, 2))
                oid = ctx.submit("buy", 4, MID - 2, client_id=7)
                seen["order"] = ctx.order(oid)
                seen["open"] = ctx.open_orders()

    ev = _snap({MID - 1: 50, MID - 2: 30, MID - 4: 5}, {MID: 50, MID + 3: 9}, 1_000)
    EngineTwin(make_config(), strategy=Look()).run(ev)
    assert (seen["bid"], seen["ask"]) == (MID - 1, MID)
    assert seen["top"] == ([(MID - 1, 50), (MID - 2, 30)], [(MID, 50), (MID + 3, 9)])
    assert seen["top0"] == ([], [])
    assert seen["feats"]["book_ok"] == 1
    assert seen["feats"]["imbalance"] == seen["imb"] == pytest.approx((85 - 59) / (85 + 59))
    assert (seen["unknown"], seen["cancel"], seen["modify"]) == (None, False, -1)
    o = seen["order"]
    assert (o.side, o.type, o.tif, o.status, o.price_ticks, o.qty_units, o.client_id) == \
        (1, "limit", "GTC", "pending", MID - 2, 4, 7)
    assert seen["open"] == [o]


@pytest.mark.parametrize("impl", ["twin", "compiled"])
def test_a_callback_exception_stops_the_run(impl: str) -> None:
    class Boom(Base):
        def on_book(self, ctx: Any) -> None:
            if ctx.rows == 2:
                raise ZeroDivisionError("strategy bug")

    ev = np.concatenate([_snap({MID - 1: 5}, {MID: 5}, 1_000), _snap({MID - 1: 6}, {MID: 5}, 2_000)])
    with pytest.raises(ZeroDivisionError, match="strategy bug"):
        if impl == "twin":
            EngineTwin(make_config(), strategy=Boom()).run(ev)
        else:
            backtest(ev, make_config(), strategy=Boom())


# ------------------------------------------------------------------ compiled == twin

def compare(cfg: EngineConfig, ev: np.ndarray, seed: int, activity: float = 0.5) -> Tuple[Any, RandomStrategy]:
    """The same random strategy through of.backtest and EngineTwin: the same callbacks, records,
    orders and fills. Returns (the backtest's result, the compiled run's strategy)."""
    lot = cfg.make_instruments()[0].lot_units
    a = RandomStrategy(seed, lot, activity, check=delivered_checker("50"))
    res = backtest(ev, cfg, strategy=a)
    twin, b, trecs = run_twin(cfg, ev, seed, activity)
    first_log = next((k for k, (x, y) in enumerate(zip(a.log, b.log)) if x != y), None)
    assert first_log is None and len(a.log) == len(b.log), \
        f"seed {seed}: callbacks differ at {first_log}: compiled {a.log[first_log or 0]} twin {b.log[first_log or 0]}"
    got = res.records
    if len(got) != len(trecs) or not np.array_equal(got, trecs):
        k = next((k for k in range(min(len(got), len(trecs))) if got[k] != trecs[k]), min(len(got), len(trecs)))
        raise AssertionError(f"seed {seed}: records differ at {k} of {len(got)}/{len(trecs)}: "
                             f"compiled {got[k] if k < len(got) else None} twin {trecs[k] if k < len(trecs) else None}")
    sym = twin.insts[0].symbol
    assert np.array_equal(res.orders[sym], twin.orders())
    assert np.array_equal(res.fills[sym], twin.fills())
    return res, a


@FAST
@given(streams(), configs(), st.integers(0, 2 ** 32))
def test_compiled_strategy_equals_twin(ev: np.ndarray, cfg: EngineConfig, seed: int) -> None:
    compare(cfg, ev, seed)


@settings(max_examples=15, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(streams(), streams(), st.integers(0, 2 ** 32))
def test_two_instruments_compiled_equals_twin(a: np.ndarray, b: np.ndarray, seed: int) -> None:
    """A strategy per instrument ({symbol: strategy}), their records interleaved in time."""
    b = b.copy()
    b["instrument"] = np.where(b["instrument"] == 0, 1, 7)          # 7: an instrument nobody trades
    ev = np.concatenate([a, b])
    ev = ev[np.argsort(ev["ts_local"], kind="stable")]
    cfg = make_config(two=True, entry=200_000, queue="prob_power2")
    lots = [i.lot_units for i in cfg.make_instruments()]

    def pair() -> Dict[str, RandomStrategy]:
        return {"TEST": RandomStrategy(seed, lots[0]), "TEST2": RandomStrategy(seed + 1, lots[1])}
    comp, tw = pair(), pair()
    res = backtest(ev, cfg, strategy=comp)
    twin = EngineTwin(cfg, strategy=tw)
    trecs = twin.run(ev)
    for sym in ("TEST", "TEST2"):
        assert comp[sym].log == tw[sym].log, sym
    assert np.array_equal(res.records, trecs)
    assert np.array_equal(res.orders["TEST2"], twin.orders(1))
    assert set(trecs["slot"][trecs["kind"] == R.OUT_ORDER]) <= {0, 1}


@settings(max_examples=40, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(streams(), signal_configs())
def test_twin_journal_equals_compiled_records(ev: np.ndarray, cfg: EngineConfig) -> None:
    """The signal strategy (no strategy=): with its journal on, the twin writes every record
    the compiled engine writes, order state changes included."""
    res = backtest(ev, cfg)
    trecs = EngineTwin(cfg, journal=True).run(ev)
    assert np.array_equal(res.records, trecs)


def test_compiled_strategy_equals_twin_on_the_sample() -> None:
    cfg = sample_config()
    res, strat = compare(cfg, sample_events()[:6000], 11, activity=0.3)
    assert len(strat.fills) > 5


def test_twin_journal_equals_compiled_on_the_sample() -> None:
    cfg = sample_config(execution={"order_type": "ioc", "slippage_ticks": 2})
    ev = sample_events()[:20000]
    res = backtest(ev, cfg)
    assert res.counters["fills"] > 5
    assert np.array_equal(res.records, EngineTwin(cfg, journal=True).run(ev))


# ------------------------------------------------------------------ backtest == threaded Engine

def test_backtest_equals_threaded_engine_with_a_strategy() -> None:
    cfg = sample_config()
    ev = sample_events()[:20000]
    lot = cfg.make_instruments()[0].lot_units
    a, b = RandomStrategy(3, lot, 0.3), RandomStrategy(3, lot, 0.3)
    res = backtest(ev, cfg, strategy=a)
    eng = Engine(cfg, events=ev, keep_records=True, strategy=b).start()
    assert eng.wait(60)
    eng.close()
    assert len(a.fills) > 5
    assert a.log == b.log
    assert res.records.tobytes() == eng.records().tobytes()
    assert np.array_equal(res.orders["BTCUSDT"], eng.orders())


# ------------------------------------------------------------------ the bundled sample

_SAMPLE: Dict[str, np.ndarray] = {}
BUSY = {"persistence": {"path": None}, "risk": {"rate_per_second": 0, "rate_per_minute": 0, "rate_per_hour": 0},
        "execution": {"warmup_rows": 0, "account_every_ms": 100.0}}


def sample_config(**sections: Any) -> EngineConfig:
    data: Dict[str, Any] = {"instruments": [{"symbol": "BTCUSDT", "venue": "binance-spot", "tick_size": "0.01",
                                             "lot_size": "0.00001", "paths": [str(SAMPLE)]}],
                            "broker": {"cash": "50", "latency_entry_ns": 300_000, "latency_response_ns": 200_000}}
    for k, v in BUSY.items():
        data.setdefault(k, {}).update(v)
    for k, v in sections.items():
        data.setdefault(k, {}).update(v)
    return config_from_dict(data)


def sample_events() -> np.ndarray:
    if "ev" not in _SAMPLE:
        cfg = sample_config()
        _SAMPLE["ev"], _ = load_engine_events(cfg, cfg.make_instruments())
    return _SAMPLE["ev"]


def test_config_strategy_class_in_both(tmp_path: Any) -> None:
    """[strategy] class / params: the twin loads the same class (through orpflow.runtime)."""
    (tmp_path / "quoter.py").write_text(
        "import orpflow as of\n"
        "class Quoter(of.Strategy):\n"
        "    def __init__(self, lots):\n"
        "        self.lots = lots\n"
        "    def on_book(self, ctx):\n"
        "        if ctx.best_bid and not ctx.open_orders():\n"
        "            ctx.submit('buy', self.lots * ctx.instrument.lot_units, ctx.best_bid - 1, type='post_only')\n"
        "    def on_trade(self, ctx, trade):\n"
        "        if ctx.position > 0:\n"
        "            ctx.submit('sell', ctx.position, type='market')\n")
    cfg = sample_config(strategy={"class": f"{tmp_path / 'quoter.py'}:Quoter", "params": {"lots": 3}})
    ev = sample_events()[:8000]
    res = backtest(ev, cfg)
    trecs = EngineTwin(cfg).run(ev)
    assert res.counters["fills"] > 2
    assert (trecs["kind"] == R.OUT_ORDER).any() and not (trecs["kind"] == R.OUT_SIGNAL).any()
    assert np.array_equal(res.records, trecs)
