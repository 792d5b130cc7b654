"""Compiled broker == pure-Python twin on random order flow over random markets, plus the
accounting invariants (exact): cash moves by notional and fees only, the position is the sum
of signed fills, no order fills beyond its size, equity = start + realised + unrealised - fees."""
from __future__ import annotations

from decimal import Decimal
from typing import Any, List

import numpy as np
from hypothesis import HealthCheck, given, settings, strategies as st

import orpflow as of
from broker_helpers import IMPLS, F, rec, events

# lot = 2 size units, so odd book sizes exercise the whole-lot rounding of every fill
INST = of.Instrument("TEST", venue="generic", tick_size="0.01", lot_size="0.002", size_increment="0.001")
LOT = 2
MID = 10_000
QUEUE_MODELS = ["risk_averse", "prob_power", "prob_power2", "prob_power3", "prob_log", "prob_log2"]


@st.composite
def scenarios(draw: Any) -> dict:
    steps: List[tuple] = []
    ts = 1
    levels = st.integers(0, 4)
    sizes = st.integers(0, 40)
    bids = [(MID - draw(levels) - 1, draw(st.integers(1, 40))) for _ in range(draw(st.integers(1, 5)))]
    asks = [(MID + draw(levels), draw(st.integers(1, 40))) for _ in range(draw(st.integers(1, 5)))]
    steps.append(("events", _snapshot(dict(bids), dict(asks), ts)))
    for _ in range(draw(st.integers(1, 60))):
        ts += draw(st.integers(0, 400))
        kind = draw(st.sampled_from(["depth", "depth", "depth", "trade", "trade", "submit", "submit", "submit",
                                     "cancel", "modify", "advance", "snapshot", "breaker"]))
        price = MID + draw(st.integers(-6, 6))
        if kind == "depth":
            side = draw(st.sampled_from([F.BID, F.ASK]))
            steps.append(("events", events(rec(side | F.DEPTH | F.LAST, price, draw(sizes), ts))))
        elif kind == "trade":
            aggr = draw(st.sampled_from([F.BUY, F.SELL, F.BUY, F.SELL, 0, F.BUY | F.SELL]))
            steps.append(("events", events(rec(F.TRADE | aggr | F.LAST, price, draw(st.integers(1, 30)), ts))))
        elif kind == "snapshot":
            b = {MID - draw(levels) - 1: draw(st.integers(1, 40)) for _ in range(draw(st.integers(0, 4)))}
            a = {MID + draw(levels): draw(st.integers(1, 40)) for _ in range(draw(st.integers(0, 4)))}
            steps.append(("events", _snapshot(b, a, ts)))
        elif kind == "submit":
            otype = draw(st.sampled_from(["market", "limit", "limit", "post_only", "ioc", "fok"]))
            tif = None
            expire = None
            if otype in ("limit", "post_only") and draw(st.booleans()):
                tif, expire = "GTD", ts + draw(st.integers(-50, 2000))
            qty = draw(st.sampled_from([1, 2, 3, 5, 8, 12, 20, 40])) * LOT * (draw(st.sampled_from([1, 1, 1, 0])) or 0.5)
            steps.append(("submit", draw(st.sampled_from(["buy", "sell"])), Decimal(int(qty * 2)) / 2000,
                          otype, None if otype == "market" else Decimal(price) / 100, tif, expire, ts))
        elif kind == "cancel":
            steps.append(("cancel", draw(st.integers(1, 30)), ts))
        elif kind == "breaker":
            steps.append((draw(st.sampled_from(["trip", "trip", "reset"])),))
        elif kind == "modify":
            steps.append(("modify", draw(st.integers(1, 30)), Decimal(price) / 100,
                          Decimal(draw(st.integers(1, 12)) * LOT) / 1000, ts))
        else:
            steps.append(("advance", ts))
    latency = draw(st.sampled_from([0, (300, 100), of.Latency(50, 20, jitter_ns=500)]))
    risk = of.RiskLimits(rate_per_second=draw(st.sampled_from([0, 0, 3])), rate_per_minute=0, rate_per_hour=0,
                         max_position=draw(st.sampled_from([None, "0.03", "0.05"])),
                         qty_policy=draw(st.sampled_from(["reject", "clip"])),
                         max_consecutive_losses=draw(st.sampled_from([None, None, 2])),
                         reject_storm=draw(st.sampled_from([None, None, 3])), reject_storm_window_s=0.001,
                         max_drawdown=draw(st.sampled_from([None, None, "0.0001"])),
                         on_breaker=draw(st.sampled_from(["reduce_only", "halt", "flatten"])))
    broker = dict(cash=draw(st.sampled_from([10_000, "1.5"])), latency=latency,
                  fees=draw(st.sampled_from([("0.0001", "0.0004"), ("-0.00025", "0.00075")])),
                  queue_model=draw(st.sampled_from(QUEUE_MODELS)),
                  queue_power=draw(st.sampled_from([1.0, 2.0, 3.0])), seed=draw(st.integers(0, 2**64 - 1)))
    return {"steps": steps, "risk": risk, "broker": broker}


@st.composite
def queue_scenarios(draw: Any) -> dict:
    """Many passive orders at a few busy levels, then depth changes and trades right there:
    the queue models' ground."""
    prices = [MID - 2, MID - 1, MID, MID + 1, MID + 2]       # bids below MID, asks from MID
    sizes = st.integers(0, 300)
    book = {p: draw(st.integers(1, 300)) for p in prices}
    steps: List[tuple] = [("events", _snapshot({p: q for p, q in book.items() if p < MID},
                                               {p: q for p, q in book.items() if p >= MID}, 1))]
    for ts in range(2, 2 + draw(st.integers(1, 12))):
        p = draw(st.sampled_from(prices))
        side = "buy" if p < MID else "sell"
        steps.append(("submit", side, Decimal(draw(st.integers(1, 40)) * LOT) / 1000, "post_only",
                      Decimal(p) / 100, None, None, ts))
    for ts in range(100, 100 + draw(st.integers(1, 80))):
        p = draw(st.sampled_from(prices))
        if draw(st.integers(0, 2)):
            side = F.BID if p < MID else F.ASK
            steps.append(("events", events(rec(side | F.DEPTH | F.LAST, p, draw(sizes), ts))))
        else:
            aggr = F.SELL if p < MID else F.BUY
            steps.append(("events", events(rec(F.TRADE | aggr | F.LAST, p, draw(st.integers(1, 120)), ts))))
    risk = of.RiskLimits(rate_per_second=0, rate_per_minute=0, rate_per_hour=0)
    broker = dict(cash=10_000, queue_model=draw(st.sampled_from(QUEUE_MODELS)),
                  queue_power=draw(st.sampled_from([0.5, 1.0, 2.0, 3.0])))
    return {"steps": steps, "risk": risk, "broker": broker}


def _snapshot(bids: dict, asks: dict, ts: int) -> np.ndarray:
    recs = [rec(F.SNAPSHOT | F.BID, p, q, ts) for p, q in bids.items()] + \
           [rec(F.SNAPSHOT | F.ASK, p, q, ts) for p, q in asks.items()]
    if not recs:
        recs = [rec(F.CLEAR, 0, 0, ts)]
    last = recs[-1]
    recs[-1] = last[:7] + (last[7] | int(F.LAST),) + last[8:]
    return events(*recs)


def run(impl: str, sc: dict, check_each_step: bool = False) -> Any:
    """Play the scenario; with check_each_step, the invariants hold after every step (every
    mark, fill and order)."""
    Sim, Broker = IMPLS[impl]
    sim = Sim(INST, broker=Broker(INST, **sc["broker"]), risk=sc["risk"])
    start = Decimal(str(sc["broker"]["cash"]))
    results = []
    for step in sc["steps"]:
        if check_each_step:
            check_invariants(sim, start)
        kind = step[0]
        if kind == "events":
            sim.apply(step[1])
        elif kind == "submit":
            _, side, qty, otype, price, tif, expire, ts = step
            results.append(sim.submit(side, qty, otype, price, tif, expire_at=expire, ts=ts))
        elif kind == "cancel":
            results.append(sim.cancel(step[1], ts=step[2]))
        elif kind == "trip":
            sim.trip_breaker()
        elif kind == "reset":
            sim.reset_breakers()
        elif kind == "modify":
            try:
                results.append(sim.modify(step[1], price=step[2], qty=step[3], ts=step[4]))
            except ValueError as e:
                results.append(str(e))
        else:
            sim.advance(step[1])
    return sim, results


def play_both(sc: dict, check_each_step: bool = False) -> tuple:
    """Run the scenario on both implementations and demand identical returns, orders, fills,
    account and risk counters; returns (compiled, twin)."""
    compiled, r1 = run("compiled", sc, check_each_step)
    twin, r2 = run("twin", sc)
    assert r1 == r2
    assert compiled.orders().tobytes() == twin.orders().tobytes()
    assert compiled.fills().tobytes() == twin.fills().tobytes()
    assert compiled.account() == twin.account()
    assert compiled.risk_stats() == twin.risk_stats()
    return compiled, twin


def check_invariants(sim: Any, start_cash: Decimal) -> None:
    inst = sim.instrument
    orders, fills, a = sim.orders(), sim.fills(), sim.account()
    side = fills["side"].astype(np.int64)
    assert a["position_units"] == int((side * fills["qty"]).sum())
    for o in orders:
        mine = fills[fills["order_id"] == o["id"]]
        assert int(mine["qty"].sum()) == o["filled"] <= o["qty"]
        assert (mine["qty"] % inst.lot_units == 0).all()
    px = [inst.ticks_to_price(int(p)) * inst.units_to_size(int(q)) for p, q in zip(fills["price"], fills["qty"])]
    assert a["cash"] == start_cash - sum((s * v for s, v in zip(side.tolist(), px)), Decimal(0)) - a["fees"]
    if a["mark_price"] is not None:
        value = inst.units_to_size(a["position_units"]) * a["mark_price"]
        assert a["cash"] + value == start_cash + a["realised_pnl"] + a["unrealised_pnl"] - a["fees"]
        assert a["equity"] == a["cash"] + value
    open_ = [o for o in orders if o["status"] in (0, 1, 2)]
    buy = sum(int(o["qty"] - o["filled"]) for o in open_ if o["side"] > 0)
    sell = sum(int(o["qty"] - o["filled"]) for o in open_ if o["side"] < 0)
    assert sim.open_exposure() == (buy, sell, len(open_))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(scenarios())
def test_compiled_equals_twin_and_the_books_balance(sc: dict) -> None:
    compiled, twin = play_both(sc, check_each_step=True)
    start = Decimal(str(sc["broker"]["cash"]))
    check_invariants(compiled, start)
    check_invariants(twin, start)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(queue_scenarios())
def test_compiled_equals_twin_on_busy_queues(sc: dict) -> None:
    compiled, _ = play_both(sc)
    check_invariants(compiled, Decimal(10_000))


ANY_INT = st.one_of(st.integers(-2**63, 2**63 - 1), st.integers(-5, 20_000), st.integers(MID - 10, MID + 10))


@st.composite
def garbage_scenarios(draw: Any) -> dict:
    """Records with any flags and any int64 fields (times at the ends of int64 included),
    interleaved with orders: nothing may crash, and both implementations must agree."""
    recs = [(draw(ANY_INT), draw(ANY_INT), draw(ANY_INT), draw(ANY_INT), draw(ANY_INT), draw(ANY_INT),
             draw(ANY_INT), draw(st.integers(0, 2**10 - 1)), draw(st.sampled_from([0, 0, 0, 1])))
            for _ in range(draw(st.integers(1, 40)))]
    steps: List[tuple] = [("events", _snapshot({MID: 40}, {MID + 1: 40}, 1))]
    cut = draw(st.integers(0, len(recs)))
    for part in (recs[:cut], recs[cut:]):
        for _ in range(draw(st.integers(0, 4))):
            otype = draw(st.sampled_from(["market", "limit", "ioc", "post_only"]))
            price = None if otype == "market" else Decimal(MID + draw(st.integers(-3, 3))) / 100
            steps.append(("submit", draw(st.sampled_from(["buy", "sell"])), Decimal(LOT * draw(st.integers(1, 5))) / 1000,
                          otype, price, None, None, None))
        steps.append(("events", np.array(part, dtype=of.EVENT_DTYPE)))
    steps.append(("advance", 2**63 - 1))
    latency = draw(st.sampled_from([0, (300, 100), of.Latency(50, 20, jitter_ns=500)]))
    risk = of.RiskLimits(rate_per_second=0, rate_per_minute=0, rate_per_hour=0)
    return {"steps": steps, "risk": risk, "broker": dict(cash=10**6, latency=latency,
                                                         queue_model=draw(st.sampled_from(QUEUE_MODELS)))}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(garbage_scenarios())
def test_garbage_records_never_crash_and_both_agree(sc: dict) -> None:
    compiled, _ = play_both(sc)
    check_invariants(compiled, Decimal(10**6))
