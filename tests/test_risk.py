"""The pre-trade risk gate and the circuit breakers, on the compiled ExecutionSim and its twin.

Every test runs on both implementations (fixture ``make_sim``). Markets are built in integer
units: prices in ticks of 0.01 and sizes in units of 0.001 (instrument G), so 10000 = 100.00
and 1000 = 1.000; ``submit`` itself takes decimal strings.
"""
from __future__ import annotations

import functools
import threading
from typing import Any, Callable

import pytest

import orpflow as of
from orpflow.reference import broker as twin
from helpers import SPOT, ev, events, with_last

F = of.flags
R = of.Reason
SEC = 10 ** 9
DAY = 86_400 * SEC
T0 = 10 * SEC                      # order times: well after the opening snapshot (ts 1)

G = of.Instrument("TEST", venue="generic", tick_size="0.01", lot_size="0.001", size_increment="0.001")
G10 = of.Instrument("TEST10", venue="generic", tick_size="0.01", lot_size="0.01", size_increment="0.001")

IMPLS = {"compiled": (of.ExecutionSim, of.PaperBroker), "twin": (twin.ExecutionSim, twin.PaperBroker)}
NO_RATES = dict(rate_per_second=0, rate_per_minute=0, rate_per_hour=0)
FEES = ("0.0001", "0.0004")
NO_FEES = ("0", "0")


# ------------------------------------------------------------------ market builders

def snapshot(bids: list, asks: list, ts: int = 1) -> Any:
    """A complete generic-venue snapshot message; bids and asks as [(ticks, units)]."""
    recs = [ev(F.SNAPSHOT | F.BID, p, q, ts_exch=ts, ts_local=ts) for p, q in bids]
    recs += [ev(F.SNAPSHOT | F.ASK, p, q, ts_exch=ts, ts_local=ts) for p, q in asks]
    return events(*with_last(recs))


def quote(bid: int, ask: int, ts: int) -> Any:
    """A one-level book, deep enough (1000.000) that market orders fill at the touch."""
    return snapshot([(bid, 10 ** 6)], [(ask, 10 ** 6)], ts)


# mid exactly 100.00: bids 99.99 x 5, 99.98 x 2; asks 100.01 x 3, 100.02 x 4
BOOK = snapshot([(9999, 5000), (9998, 2000)], [(10001, 3000), (10002, 4000)])
DEEP = quote(9999, 10001, 1)


def new_sim(impl: str, inst: Any = G, *, book: Any = BOOK, cash: Any = 10_000, fees: Any = FEES,
            **limits: Any) -> Any:
    """An ExecutionSim (zero latency) with `book` applied; rate limits off unless given."""
    Sim, Broker = IMPLS[impl]
    sim = Sim(inst, broker=Broker(inst, cash=cash, fees=fees, latency=0),
              risk=of.RiskLimits(**{**NO_RATES, **limits}))
    if book is not None:
        sim.apply(book)
    return sim


@pytest.fixture(params=sorted(IMPLS))
def make_sim(request: Any) -> Callable[..., Any]:
    return functools.partial(new_sim, request.param)


# ------------------------------------------------------------------ order helpers

def ok(result: Any) -> int:
    """The order id of an accepted order (fails on a rejection, naming its reason)."""
    assert not isinstance(result, R), f"rejected with {result!r}"
    assert isinstance(result, int) and result > 0
    return result


def probe(sim: Any, **kw: Any) -> Any:
    """A tiny buy far below the market: passes every check unless the gate is shut."""
    return sim.submit("buy", "0.001", price="50.00", **kw)


def market(sim: Any, side: str, qty: str) -> int:
    """A market order, run at the venue at once (zero latency)."""
    oid = ok(sim.submit(side, qty, "market"))
    sim.advance(sim.now)
    return oid


def qty_units(sim: Any, oid: int) -> int:
    return int(sim.orders()[oid - 1]["qty"])


def decisions(sim: Any) -> dict:
    return {R(k).name: n for k, n in sim.risk_stats()["decisions"].items()}


def breakers(sim: Any) -> tuple:
    s = sim.risk_stats()
    return s["breakers"], s["trips"]


def evidence(sim: Any, name: str) -> dict:
    """The latest trip of breaker `name`: ts, value, limit, extra (core units)."""
    return sim.risk_stats()["last_trips"][name]


# ------------------------------------------------------------------ pre-trade checks

def test_kill_switch(make_sim):
    sim = make_sim()
    sim.kill()
    assert sim.risk_stats()["killed"]
    assert sim.submit("buy", "1", price="99.00") is R.RISK_KILL_SWITCH
    assert sim.submit("sell", "1", "market") is R.RISK_KILL_SWITCH
    sim.reset_kill()
    assert not sim.risk_stats()["killed"]
    ok(sim.submit("buy", "1", price="99.00"))


def test_book_not_synced_before_first_snapshot(make_sim):
    sim = make_sim(book=None)
    assert sim.submit("buy", "1", price="99.00") is R.RISK_BOOK_NOT_SYNCED
    assert sim.submit("buy", "1", "market") is R.RISK_BOOK_NOT_SYNCED
    sim.apply(BOOK)
    ok(sim.submit("buy", "1", price="99.00"))


@pytest.mark.parametrize("message", [
    BOOK,                                                                  # a fresh snapshot
    events(*with_last([ev(F.DEPTH | F.BID, 9997, 1000, ts_exch=2, ts_local=2),
                       ev(F.DEPTH | F.ASK, 10003, 1000, ts_exch=2, ts_local=2)])),  # a depth update
], ids=["snapshot", "depth"])
def test_book_not_synced_mid_message(make_sim, message):
    sim = make_sim()
    sim.apply(message[:-1])                          # LAST not seen yet: the message is open
    assert sim.submit("buy", "1", price="99.00") is R.RISK_BOOK_NOT_SYNCED
    sim.apply(message[-1:])
    ok(sim.submit("buy", "1", price="99.00"))


@pytest.mark.parametrize("on_breaker, refused", [("reduce_only", R.RISK_BREAKER_REDUCE_ONLY),
                                                  ("halt", R.RISK_BREAKER)])
def test_manual_breaker_until_reset(make_sim, on_breaker, refused):
    sim = make_sim(on_breaker=on_breaker)
    sim.trip_breaker()
    assert breakers(sim) == (["manual"], {"manual": 1})
    assert probe(sim) is refused                     # flat: nothing can reduce
    sim.reset_breakers()
    assert breakers(sim) == ([], {"manual": 1})      # trips are a history, not a state
    ok(probe(sim))


@pytest.mark.parametrize("field, limit, window_s, reason", [
    ("rate_per_second", 5, 1, R.RISK_RATE_SECOND),
    ("rate_per_minute", 3, 60, R.RISK_RATE_MINUTE),
    ("rate_per_hour", 4, 3600, R.RISK_RATE_HOUR),
])
def test_rate_limit_token_bucket(make_sim, field, limit, window_s, reason):
    sim = make_sim(**{field: limit})
    for _ in range(limit):                           # a full burst at one instant
        ok(probe(sim, ts=T0))
    assert probe(sim, ts=T0) is reason
    refill = window_s * SEC // limit                 # one token back per window / limit
    assert probe(sim, ts=T0 + refill - 1) is reason
    ok(probe(sim, ts=T0 + refill))
    assert probe(sim, ts=T0 + refill) is reason      # and only one
    assert decisions(sim) == {"OK": limit + 1, reason.name: 3}


def test_default_rate_limits():
    limits = of.RiskLimits()
    assert (limits.rate_per_second, limits.rate_per_minute, limits.rate_per_hour) == (5, 60, 500)


def test_max_order_qty_rejects(make_sim):
    sim = make_sim(max_order_qty="2")
    ok(sim.submit("buy", "2", price="99.00"))
    assert sim.submit("buy", "2.001", price="99.00") is R.RISK_ORDER_QTY
    assert sim.submit("sell", "2.001", "market") is R.RISK_ORDER_QTY


def test_max_order_qty_clips_to_whole_lots(make_sim):
    sim = make_sim(G10, max_order_qty="2.005", qty_policy="clip")      # lot 0.01
    assert qty_units(sim, ok(sim.submit("buy", "5", price="99.00"))) == 2000
    assert qty_units(sim, ok(sim.submit("buy", "2", price="99.00"))) == 2000   # within: untouched
    assert decisions(sim) == {"OK": 2, "RISK_CLIPPED": 1}


def test_clip_below_one_lot_rejects(make_sim):
    sim = make_sim(G10, max_order_qty="0.005", qty_policy="clip")
    assert sim.submit("buy", "0.01", price="99.00") is R.RISK_ORDER_QTY
    assert decisions(sim) == {"RISK_ORDER_QTY": 1}


def test_max_order_notional(make_sim):
    sim = make_sim(max_order_notional="100")
    ok(sim.submit("buy", "1", price="100.00"))                           # exactly 100
    assert sim.submit("buy", "1", price="100.01") is R.RISK_ORDER_NOTIONAL
    assert sim.submit("buy", "1", "market") is R.RISK_ORDER_NOTIONAL      # priced at the ask 100.01
    ok(sim.submit("sell", "1", "market"))                                # priced at the bid 99.99


def test_max_position_counts_position_and_same_side_open_orders(make_sim):
    sim = make_sim(max_position="2")
    market(sim, "buy", "1.5")
    assert sim.account()["position_units"] == 1500
    ok(sim.submit("buy", "0.5", price="99.00"))                          # 1.5 + 0.5 = 2
    assert sim.submit("buy", "0.001", price="99.00") is R.RISK_POSITION
    ok(sim.submit("sell", "3.5", price="101.00"))                        # 1.5 - 3.5 = -2
    assert sim.submit("sell", "0.001", price="101.00") is R.RISK_POSITION


def test_max_position_clips_to_remaining_room_in_whole_lots(make_sim):
    sim = make_sim(G10, max_position="2.005", qty_policy="clip")        # lot 0.01
    ok(sim.submit("buy", "1.5", price="99.00"))
    assert qty_units(sim, ok(sim.submit("buy", "1", price="99.00"))) == 500   # room 0.505
    assert sim.submit("buy", "0.01", price="99.00") is R.RISK_POSITION   # room 0.005: under a lot
    assert decisions(sim) == {"OK": 2, "RISK_CLIPPED": 1, "RISK_POSITION": 1}


def test_max_gross_exposure(make_sim):
    sim = make_sim(max_gross_exposure="200")
    ok(sim.submit("buy", "1", price="100.00"))
    ok(sim.submit("buy", "1", price="100.00"))                           # projected 2 x 100 = 200
    assert sim.submit("buy", "0.001", price="100.00") is R.RISK_GROSS_EXPOSURE
    ok(sim.submit("sell", "2", price="100.00"))                          # the sell side on its own


def test_price_band(make_sim):
    sim = make_sim(price_band_bps="10")              # mid 100.00: 10 bp = 0.10
    ok(sim.submit("buy", "1", price="99.90"))                            # exactly on the band
    ok(sim.submit("sell", "1", price="100.10"))
    assert sim.submit("buy", "1", price="99.89") is R.RISK_PRICE_BAND
    assert sim.submit("sell", "1", price="100.11") is R.RISK_PRICE_BAND
    ok(sim.submit("buy", "1", "market"))                                 # market orders have no limit


def test_max_open_orders_counts_in_flight_and_resting(make_sim):
    sim = make_sim(max_open_orders=2)
    first = ok(probe(sim, ts=T0))
    ok(probe(sim, ts=T0))
    assert probe(sim, ts=T0) is R.RISK_OPEN_ORDERS   # both still in flight
    sim.advance(T0)
    assert probe(sim, ts=T0) is R.RISK_OPEN_ORDERS   # both resting
    assert sim.cancel(first, ts=T0 + 1)
    sim.advance(T0 + 1)
    ok(probe(sim, ts=T0 + 2))


def test_min_balance_cash_after_a_buy(make_sim):
    sim = make_sim(min_balance="9900")
    ok(sim.submit("buy", "1", price="100.00"))                           # leaves exactly 9900
    assert sim.submit("buy", "1.001", price="100.00") is R.RISK_MIN_BALANCE
    ok(sim.submit("sell", "5", price="101.00"))                          # a sell spends no cash


def test_min_balance_equity(make_sim):
    sim = make_sim(min_balance="10000.01")           # equity is 10000
    assert sim.submit("sell", "1", price="101.00") is R.RISK_MIN_BALANCE
    ok(make_sim(min_balance="10000").submit("sell", "1", price="101.00"))


def test_min_balance_counts_the_buys_already_open(make_sim):
    sim = make_sim(min_balance="9900", fees=NO_FEES)
    ok(sim.submit("buy", "0.5", price="100.00"))
    ok(sim.submit("buy", "0.5", price="100.00"))                         # together: exactly 9900 left
    assert sim.submit("buy", "0.001", price="100.00") is R.RISK_MIN_BALANCE


def test_modify_is_checked_as_the_order_it_becomes(make_sim):
    sim = make_sim(max_order_qty="2")
    oid = ok(sim.submit("buy", "2", price="99.00"))
    sim.advance(sim.now)
    assert sim.modify(oid, qty="3") is R.RISK_ORDER_QTY
    assert sim.modify(oid, price="99.50") is True                        # its own 2 do not count twice
    sim.advance(sim.now)
    sim.kill()
    assert sim.modify(oid, price="99.60") is R.RISK_KILL_SWITCH
    assert sim.modify(oid, qty="1") is True                              # a size cut only lowers risk
    sim.advance(sim.now)
    o = sim.orders()[oid - 1]
    assert (int(o["price"]), int(o["qty"])) == (9950, 1000)


def test_limits_beyond_the_core_ranges_are_refused_by_name():
    with pytest.raises(ValueError, match="max_position"):
        of.RiskLimits(max_position="1e16").resolve(G)
    with pytest.raises(ValueError, match="price_band_bps"):
        of.RiskLimits(price_band_bps="1e17")
    big = of.RiskLimits(max_gross_exposure=10 ** 10).resolve(SPOT)       # 1e28 money units: exact
    assert big["max_gross_exposure"] == 10 ** 28
    sim = of.ExecutionSim(SPOT, broker=of.PaperBroker(SPOT, cash=10 ** 10))
    assert sim.account()["cash"] == 10 ** 10


def test_market_order_without_opposite_side_has_no_price(make_sim):
    sim = make_sim(book=snapshot([(9999, 5000)], []))
    assert sim.submit("buy", "1", "market") is R.RISK_NO_PRICE
    ok(sim.submit("sell", "1", "market"))
    ok(sim.submit("buy", "1", price="99.00"))        # a limit order brings its own price


def test_price_band_needs_both_sides(make_sim):
    sim = make_sim(book=snapshot([(9999, 5000)], []), price_band_bps="10")
    assert sim.submit("buy", "1", price="99.99") is R.RISK_NO_PRICE


@pytest.mark.parametrize("inst, qty, price, reason", [
    (G, "0.0005", "99.00", R.ORDER_BAD_QTY),         # off the size grid
    (G, "0", "99.00", R.ORDER_BAD_QTY),
    (G, "-1", "99.00", R.ORDER_BAD_QTY),
    (G10, "0.015", "99.00", R.ORDER_BAD_QTY),        # on the size grid, not whole lots
    (G, "1", None, R.ORDER_BAD_PRICE),               # a limit order without its price
    (G, "1", "99.001", R.ORDER_BAD_PRICE),           # off tick
], ids=["off-grid", "zero", "negative", "off-lot", "no-price", "off-tick"])
def test_bad_order_arguments(make_sim, inst, qty, price, reason):
    sim = make_sim(inst)
    assert sim.submit("buy", qty, price=price) is reason
    ok(sim.submit("buy", "0.02", price="99.00"))
    assert decisions(sim) == {reason.name: 1, "OK": 1}


# ------------------------------------------------------------------ order of the checks

# Each check, in the documented order, with what violates it for PROBE below. The book's mid
# is 100.00; a sell of 0.001 at 100.03 rests first (it passes every limit listed here).
CHECKS = [
    ("RISK_KILL_SWITCH", {}, lambda sim: sim.kill()),
    ("RISK_BOOK_NOT_SYNCED", {}, lambda sim: sim.apply(
        events(ev(F.DEPTH | F.BID, 9990, 1000, ts_exch=2, ts_local=2)))),   # message left open
    ("RISK_BREAKER_REDUCE_ONLY", {}, lambda sim: sim.trip_breaker()),     # PROBE buys while flat
    ("RISK_RATE_SECOND", {"rate_per_second": 1}, None),  # the resting sell spent the token
    ("RISK_ORDER_QTY", {"max_order_qty": "0.5"}, None),
    ("RISK_ORDER_NOTIONAL", {"max_order_notional": "99"}, None),       # 1 x 99.90
    ("RISK_POSITION", {"max_position": "0.5"}, None),
    ("RISK_GROSS_EXPOSURE", {"max_gross_exposure": "99"}, None),
    ("RISK_PRICE_BAND", {"price_band_bps": "5"}, None),                # 99.90 is 10 bp off mid
    ("RISK_OPEN_ORDERS", {"max_open_orders": 1}, None),                # the resting sell
    ("RISK_MIN_BALANCE", {"min_balance": "9950"}, None),               # 10000 - 99.90 < 9950
]
PROBE = dict(side="buy", qty="1", price="99.90", ts=T0)


@pytest.mark.parametrize("first", range(len(CHECKS) + 1),
                         ids=[name for name, _, _ in CHECKS] + ["none"])
def test_first_failing_check_wins(make_sim, first):
    """Violate CHECKS[first:] at once: the earliest one is the reason (none: accepted)."""
    violated = CHECKS[first:]
    limits = {k: v for _, kw, _ in violated for k, v in kw.items()}
    sim = make_sim(**limits)
    ok(sim.submit("sell", "0.001", price="100.03", ts=T0))
    sim.advance(T0)
    for _, _, action in violated:
        if action is not None:
            action(sim)
    result = sim.submit(**PROBE)
    if violated:
        assert result is R[violated[0][0]]
    else:
        ok(result)


# ------------------------------------------------------------------ circuit breakers

def test_drawdown_breaker(make_sim):
    sim = make_sim(book=DEEP, fees=NO_FEES, max_drawdown="0.001")   # 10 below the 10000 peak
    market(sim, "buy", "1")                                          # at 100.01: cash 9899.99
    sim.apply(quote(9001, 9002, ts=2))                               # equity 9990.005
    assert breakers(sim) == ([], {})
    ok(probe(sim))
    sim.apply(quote(9000, 9002, ts=3))                               # equity 9990.00: 0.1% down
    assert breakers(sim) == (["drawdown"], {"drawdown": 1})
    # the evidence: at ts 3, 0.1% (in 1e-9 of peak) against the 0.1% limit
    assert evidence(sim, "drawdown") == {"ts": 3, "value": 10 ** 6, "limit": 10 ** 6, "extra": 0}
    assert probe(sim) is R.RISK_BREAKER_REDUCE_ONLY
    sim.apply(quote(9999, 10001, ts=4))                              # recovering does not reset it
    assert probe(sim) is R.RISK_BREAKER_REDUCE_ONLY
    sim.reset_breakers()
    assert breakers(sim) == ([], {"drawdown": 1})
    ok(probe(sim))


def test_daily_loss_breaker(make_sim):
    sim = make_sim(book=DEEP, fees=NO_FEES, max_daily_loss="10")
    market(sim, "buy", "1")                                          # day 0 opened at 10000
    sim.apply(quote(9100, 9102, ts=2))                               # equity 9991.00: -9.00
    sim.apply(quote(8200, 8202, ts=DAY + 1))                         # day 1 opens at 9982.00
    sim.apply(quote(7201, 7203, ts=DAY + 2))                         # 9972.01: -9.99 today
    assert breakers(sim) == ([], {})
    ok(probe(sim))
    sim.apply(quote(7200, 7202, ts=DAY + 3))                         # 9972.00: -10.00 today
    assert breakers(sim) == (["daily_loss"], {"daily_loss": 1})
    e = evidence(sim, "daily_loss")                                  # 10.00 lost = the limit
    assert e["ts"] == DAY + 3 and e["value"] == e["limit"] > 0
    sim.apply(quote(9999, 10001, ts=2 * DAY + 1))                    # a new day does not reset it
    assert probe(sim) is R.RISK_BREAKER_REDUCE_ONLY
    sim.reset_breakers()
    ok(probe(sim))


def round_trip(sim: Any, exit_bid: int, ts: int) -> None:
    """Buy 1 at the ask 100.01, move the book to `exit_bid`, sell 1 there."""
    sim.apply(quote(9999, 10001, ts))
    market(sim, "buy", "1")
    sim.apply(quote(exit_bid, exit_bid + 2, ts + 1))
    market(sim, "sell", "1")


LOSS, FLAT, WIN = 9990, 10001, 10020     # exit bids; FLAT is gross 0, a loss after fees


def test_consecutive_losses_breaker(make_sim):
    sim = make_sim(book=None, max_consecutive_losses=3)
    for i, exit_bid in enumerate([LOSS, FLAT, WIN, LOSS, LOSS]):
        round_trip(sim, exit_bid, ts=10 * (i + 1))
    assert sim.risk_stats()["consecutive_losses"] == 2               # the win reset the count
    assert breakers(sim) == ([], {})
    ok(probe(sim))
    round_trip(sim, LOSS, ts=100)
    s = sim.risk_stats()
    assert (s["breakers"], s["trips"], s["consecutive_losses"]) == (
        ["consecutive_losses"], {"consecutive_losses": 1}, 3)
    assert (sim.account()["round_trips"], sim.account()["losing_round_trips"]) == (6, 5)
    assert evidence(sim, "consecutive_losses") == {"ts": 101, "value": 3, "limit": 3, "extra": 0}
    assert probe(sim) is R.RISK_BREAKER_REDUCE_ONLY
    sim.reset_breakers()
    assert sim.risk_stats()["consecutive_losses"] == 0
    ok(probe(sim))


def test_reject_storm_breaker(make_sim):
    sim = make_sim(reject_storm=3, reject_storm_window_s=1.0, max_order_qty="10")
    ms = SEC // 1000
    assert sim.submit("buy", "0", price="99.00", ts=T0) is R.ORDER_BAD_QTY
    assert sim.submit("buy", "11", price="99.00", ts=T0 + 600 * ms) is R.RISK_ORDER_QTY
    ok(sim.submit("buy", "1", "post_only", price="100.01", ts=T0 + 1200 * ms))
    sim.advance(T0 + 1200 * ms)                       # crosses the ask: rejected by the venue
    assert sim.risk_stats()["venue"] == {R.POST_ONLY_CROSS.value: 1}
    assert breakers(sim) == ([], {})                  # three rejects, but over 1.2 s
    ok(probe(sim, ts=T0 + 1300 * ms))
    assert sim.submit("buy", "1", ts=T0 + 1600 * ms) is R.ORDER_BAD_PRICE
    assert breakers(sim) == (["reject_storm"], {"reject_storm": 1})   # the last three: 1.0 s
    assert evidence(sim, "reject_storm") == {"ts": T0 + 1600 * ms, "value": 3, "limit": 3, "extra": 1000 * ms}
    assert probe(sim, ts=T0 + 1700 * ms) is R.RISK_BREAKER_REDUCE_ONLY
    sim.reset_breakers()
    ok(probe(sim, ts=T0 + 1800 * ms))
    assert sim.submit("buy", "0", price="99.00", ts=T0 + 1900 * ms) is R.ORDER_BAD_QTY
    assert breakers(sim) == ([], {"reject_storm": 1})  # the reset forgot the old rejects


def spot_snapshot(last_update_id: int, ts: int) -> Any:
    recs = [ev(F.SNAPSHOT | F.BID, 10000, 100_000, seq=last_update_id, ts_exch=ts, ts_local=ts),
            ev(F.SNAPSHOT | F.ASK, 10001, 100_000, seq=last_update_id, ts_exch=ts, ts_local=ts)]
    return events(*with_last(recs))


def spot_diff(first_id: int, last_id: int, ts: int) -> Any:
    return events(*with_last([ev(F.DEPTH | F.BID, 9999, 5000, seq=last_id, seq_first=first_id,
                                 ts_exch=ts, ts_local=ts)]))


def test_book_desync_breaker(make_sim):
    sim = make_sim(SPOT, book=None, max_book_desyncs=2)
    sim.apply(spot_snapshot(100, ts=1))
    ok(probe(sim))
    sim.apply(spot_diff(102, 103, ts=2))                             # 101 is missing: a gap
    assert sim.risk_stats()["book_desyncs"] == 1 and breakers(sim) == ([], {})
    assert probe(sim) is R.RISK_BOOK_NOT_SYNCED
    sim.apply(spot_snapshot(103, ts=3))
    ok(probe(sim))
    sim.apply(spot_diff(105, 106, ts=4))                             # a second gap: trips
    assert breakers(sim) == (["book_desync"], {"book_desync": 1})
    assert evidence(sim, "book_desync") == {"ts": 4, "value": 2, "limit": 2, "extra": 0}
    sim.apply(spot_snapshot(106, ts=5))                              # back in sync, still tripped
    assert probe(sim) is R.RISK_BREAKER_REDUCE_ONLY
    sim.reset_breakers()
    assert sim.risk_stats()["book_desyncs"] == 0
    ok(probe(sim))


# ------------------------------------------------------------------ what a tripped breaker lets through

def test_reduce_only_lets_reducing_orders_through(make_sim):
    sim = make_sim(book=DEEP, fees=NO_FEES)
    market(sim, "buy", "2")
    sim.trip_breaker()
    assert sim.risk_stats()["on_breaker"] == "reduce_only"
    assert sim.submit("buy", "1", "market") is R.RISK_BREAKER_REDUCE_ONLY       # adds to the long
    assert sim.submit("buy", "1", price="99.00") is R.RISK_BREAKER_REDUCE_ONLY
    oid = market(sim, "sell", "0.5")                                           # reduces: passes
    assert sim.account()["position_units"] == 1500
    oid = ok(sim.submit("sell", "3", "market"))                                # would go short 1.5:
    assert qty_units(sim, oid) == 1500                                         # cut to the position
    sim.advance(sim.now)
    assert sim.account()["position_units"] == 0
    assert sim.submit("sell", "0.001", "market") is R.RISK_BREAKER_REDUCE_ONLY  # flat: nothing passes
    assert sim.submit("buy", "0.001", "market") is R.RISK_BREAKER_REDUCE_ONLY
    assert decisions(sim)["RISK_CLIPPED"] == 1 and decisions(sim)["RISK_BREAKER_REDUCE_ONLY"] == 4
    sim.reset_breakers()
    ok(sim.submit("buy", "1", "market"))


def test_reduce_only_counts_open_orders_on_the_closing_side(make_sim):
    sim = make_sim(book=DEEP, fees=NO_FEES)
    market(sim, "sell", "1")                                                   # short 1
    ok(sim.submit("buy", "0.6", price="99.00"))                                # rests below the bid
    sim.trip_breaker()
    oid = ok(sim.submit("buy", "1", price="99.50"))                            # only 0.4 can still close
    assert qty_units(sim, oid) == 400
    assert sim.submit("buy", "0.001", price="99.50") is R.RISK_BREAKER_REDUCE_ONLY   # covered
    assert sim.submit("sell", "0.001", price="101.00") is R.RISK_BREAKER_REDUCE_ONLY  # adds


def test_reduce_only_cuts_to_whole_lots(make_sim):
    sim = make_sim(G10, book=DEEP, fees=NO_FEES)                               # lot 0.01
    market(sim, "buy", "0.05")
    ok(sim.submit("sell", "0.02", price="101.00"))                             # rests: 0.03 left to close
    sim.trip_breaker()
    oid = ok(sim.submit("sell", "0.1", price="101.00"))
    assert qty_units(sim, oid) == 30


def test_reducing_orders_still_face_the_other_checks(make_sim):
    sim = make_sim(book=DEEP, fees=NO_FEES, price_band_bps="10", rate_per_second=2)
    market(sim, "buy", "1")                                                    # one token spent
    sim.trip_breaker()
    assert sim.submit("sell", "0.5", price="95.00", ts=sim.now) is R.RISK_PRICE_BAND
    ok(sim.submit("sell", "0.5", price="99.99", ts=sim.now))                   # the second token
    assert sim.submit("sell", "0.1", price="99.99", ts=sim.now) is R.RISK_RATE_SECOND


def test_halt_blocks_reducing_orders_too(make_sim):
    sim = make_sim(book=DEEP, fees=NO_FEES, on_breaker="halt")
    market(sim, "buy", "1")
    sim.trip_breaker()
    assert sim.risk_stats()["on_breaker"] == "halt"
    assert sim.submit("sell", "1", "market") is R.RISK_BREAKER
    assert sim.account()["position_units"] == 1000
    sim.reset_breakers()
    market(sim, "sell", "1")


def test_reduce_only_modify(make_sim):
    """A modify is checked as the order it becomes: growing a closing order past the position
    is cut back to it."""
    sim = make_sim(book=DEEP, fees=NO_FEES)
    market(sim, "buy", "1")
    oid = ok(sim.submit("sell", "0.5", price="101.00"))
    sim.trip_breaker()
    assert sim.modify(oid, qty="2") is True
    sim.advance(sim.now)
    assert sim.orders()[oid - 1]["qty"] == 1000


# ------------------------------------------------------------------ kill switch across threads

def test_kill_from_another_thread(make_sim):
    sim = make_sim()
    ok(probe(sim))
    killer = threading.Thread(target=sim.kill)
    killer.start()
    killer.join()
    assert sim.risk_stats()["killed"]
    assert probe(sim) is R.RISK_KILL_SWITCH
    sim.reset_kill()
    ok(probe(sim))


# ------------------------------------------------------------------ decision accounting

MIX_LIMITS = dict(max_order_qty="2", qty_policy="clip", max_order_notional="250",
                  max_open_orders=6, rate_per_second=5)
MIX_DECISIONS = {"OK": 6, "RISK_CLIPPED": 1, "RISK_ORDER_NOTIONAL": 1, "ORDER_BAD_QTY": 1,
                 "ORDER_BAD_PRICE": 1, "RISK_RATE_SECOND": 1, "RISK_OPEN_ORDERS": 1,
                 "RISK_KILL_SWITCH": 2, "RISK_BREAKER_REDUCE_ONLY": 1}


def mixed_orders(sim: Any) -> int:
    """Submit a fixed mix of accepted, clipped and rejected orders; returns how many."""
    submits = [
        lambda: sim.submit("buy", "1", price="99.00", ts=T0),          # OK
        lambda: sim.submit("buy", "3", price="99.00", ts=T0),          # clipped to 2: OK
        lambda: sim.submit("buy", "3", price="130.00", ts=T0),         # 2 x 130 > 250
        lambda: sim.submit("buy", "0.0001", price="99.00", ts=T0),     # off grid
        lambda: sim.submit("buy", "1", ts=T0),                         # no price
        lambda: sim.submit("sell", "1", price="101.00", ts=T0),        # OK
        lambda: sim.submit("sell", "1", price="102.00", ts=T0),        # OK
        lambda: sim.submit("sell", "1", price="103.00", ts=T0),        # OK: 5 tokens spent
        lambda: sim.submit("sell", "1", price="104.00", ts=T0),        # rate
        lambda: sim.submit("sell", "1", price="104.00", ts=T0 + SEC),  # OK: 6 open
        lambda: sim.submit("sell", "1", price="105.00", ts=T0 + 2 * SEC),  # open orders
    ]
    for submit in submits:
        submit()
    sim.kill()
    probe(sim, ts=T0 + 3 * SEC)
    probe(sim, ts=T0 + 3 * SEC)
    sim.reset_kill()
    sim.trip_breaker()
    probe(sim, ts=T0 + 4 * SEC)
    sim.reset_breakers()
    return len(submits) + 3


def test_every_decision_is_counted(make_sim):
    sim = make_sim(**MIX_LIMITS)
    n = mixed_orders(sim)
    assert decisions(sim) == MIX_DECISIONS
    assert len(sim.orders()) == n == sum(MIX_DECISIONS.values()) - MIX_DECISIONS["RISK_CLIPPED"]


def test_decisions_identical_between_compiled_and_twin():
    stats, orders = {}, {}
    for impl in IMPLS:
        sim = new_sim(impl, **MIX_LIMITS)
        mixed_orders(sim)
        stats[impl], orders[impl] = sim.risk_stats(), sim.orders()
    assert stats["compiled"] == stats["twin"]
    assert orders["compiled"].tolist() == orders["twin"].tolist()


# ------------------------------------------------------------------ RiskLimits validation

@pytest.mark.parametrize("kwargs, error, field", [
    (dict(max_position="-1"), ValueError, "max_position"),
    (dict(max_order_qty=0), ValueError, "max_order_qty"),
    (dict(max_order_notional="abc"), ValueError, "max_order_notional"),
    (dict(max_gross_exposure=True), TypeError, "max_gross_exposure"),
    (dict(price_band_bps="1.234"), ValueError, "price_band_bps"),
    (dict(qty_policy="round"), ValueError, "qty_policy"),
    (dict(max_drawdown="1.5"), ValueError, "max_drawdown"),
    (dict(max_open_orders=2.0), TypeError, "max_open_orders"),
    (dict(max_open_orders=0), ValueError, "max_open_orders"),
    (dict(rate_per_second=-1), ValueError, "rate_per_second"),
    (dict(rate_per_minute="60"), TypeError, "rate_per_minute"),
    (dict(reject_storm_window_s=0), ValueError, "reject_storm_window_s"),
    (dict(max_book_desyncs=True), TypeError, "max_book_desyncs"),
    (dict(on_breaker="stop"), ValueError, "on_breaker"),
])
def test_risk_limits_validation(kwargs, error, field):
    with pytest.raises(error, match=field):
        of.RiskLimits(**kwargs)
