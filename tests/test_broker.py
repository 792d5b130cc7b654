"""The paper broker's fill rules, one test per rule, on the compiled broker and its twin.

Market (generic venue, 1 tick = 0.01, 1 unit = 1 lot = 0.001):
bids 100.00 x 5000, 99.99 x 2000; asks 100.05 x 3000, 100.06 x 4000. Fees: maker 1 bp,
taker 4 bp. Latency 0 unless a test says otherwise; the snapshot is at ts 1.
"""
from __future__ import annotations

from decimal import Decimal

import numpy as np
import pytest

import orpflow as of
from broker_helpers import (
    F, G, depth, events, fills_of, make_sim, order, rec, snapshot, status, trade,
)
from helpers import ev, with_last

__all__ = ["make_sim"]


# ------------------------------------------------------------------ takers

def test_market_order_walks_the_book_level_by_level(make_sim):
    sim = make_sim()
    oid = sim.submit("buy", "4", "market")
    sim.advance(1)
    assert fills_of(sim, oid) == [(10005, 3000, 1), (10006, 1000, 1)]
    assert status(sim, oid) == ("FILLED", "OK")
    # taker fee on each level: 100.05 * 3 * 0.0004 + 100.06 * 1 * 0.0004
    assert sim.account()["fees"] == Decimal("0.12006") + Decimal("0.040024")


def test_consumed_liquidity_is_not_taken_twice_until_its_level_updates(make_sim):
    sim = make_sim()
    first = sim.submit("buy", "4", "market")
    second = sim.submit("buy", "4", "market")
    sim.advance(1)
    assert fills_of(sim, first) == [(10005, 3000, 1), (10006, 1000, 1)]
    assert fills_of(sim, second) == [(10006, 3000, 1)]          # 100.05 used up, 3 left at 100.06
    assert status(sim, second) == ("EXPIRED", "IOC_REMAINDER")
    third = sim.submit("buy", "1", "market")
    sim.advance(1)
    assert status(sim, third) == ("EXPIRED", "NO_LIQUIDITY")
    sim.apply(depth("ask", 10006, 2500, ts=2))                  # the level updates: usable again
    fourth = sim.submit("buy", "3", "market")
    sim.advance(2)
    assert fills_of(sim, fourth) == [(10006, 2500, 1)]          # 100.05 still remembered as taken


def test_ioc_fills_what_the_depth_allows_and_expires_the_rest(make_sim):
    sim = make_sim()
    oid = sim.submit("buy", "4", "ioc", "100.05")
    none = sim.submit("sell", "1", "ioc", "100.01")
    sim.advance(1)
    assert fills_of(sim, oid) == [(10005, 3000, 1)]
    assert status(sim, oid) == ("EXPIRED", "IOC_REMAINDER")
    assert order(sim, oid)["filled"] == 3000
    assert status(sim, none) == ("EXPIRED", "NO_LIQUIDITY")


def test_fok_fills_fully_or_expires_untouched(make_sim):
    sim = make_sim()
    short = sim.submit("buy", "8", "fok", "100.06")              # 7 available up to 100.06
    sim.advance(1)
    assert status(sim, short) == ("EXPIRED", "FOK_UNFILLABLE")
    assert fills_of(sim, short) == []
    full = sim.submit("buy", "7", "limit", "100.06", "FOK")
    sim.advance(1)
    assert fills_of(sim, full) == [(10005, 3000, 1), (10006, 4000, 1)]
    assert status(sim, full) == ("FILLED", "OK")


def test_post_only_that_would_cross_is_rejected(make_sim):
    sim = make_sim()
    crossing = sim.submit("buy", "1", "post_only", "100.05")
    passive = sim.submit("buy", "1", "post_only", "100.04")
    joining = sim.submit("buy", "1", "post_only", "100.00")
    sim.advance(1)
    assert status(sim, crossing) == ("REJECTED", "POST_ONLY_CROSS")
    assert status(sim, passive) == ("ACCEPTED", "OK")
    assert order(sim, passive)["queue_ahead"] == 0
    assert order(sim, joining)["queue_ahead"] == 5000
    assert sim.fills().size == 0


def test_crossing_limit_fills_its_marketable_part_and_rests_the_rest(make_sim):
    sim = make_sim()
    oid = sim.submit("buy", "5", "limit", "100.05")
    sim.advance(1)
    assert fills_of(sim, oid) == [(10005, 3000, 1)]
    o = order(sim, oid)
    assert status(sim, oid) == ("PARTIALLY_FILLED", "OK")
    assert (o["filled"], o["queue_ahead"]) == (3000, 0)
    sim.apply(trade("sell", 10005, 1500, ts=2))                  # now it is a maker at 100.05
    assert fills_of(sim, oid)[-1] == (10005, 1500, 0)


# ------------------------------------------------------------------ resting orders

def test_trades_at_the_price_reduce_the_queue_then_fill_beyond_it(make_sim):
    sim = make_sim()
    oid = sim.submit("buy", "1", "limit", "100.00")
    sim.advance(1)
    assert order(sim, oid)["queue_ahead"] == 5000
    sim.apply(trade("sell", 10000, 2000, ts=2))
    assert order(sim, oid)["queue_ahead"] == 3000 and fills_of(sim, oid) == []
    sim.apply(trade("buy", 10000, 9000, ts=3))                   # a buyer's trade never hits bids
    assert order(sim, oid)["queue_ahead"] == 3000
    sim.apply(trade("sell", 10000, 3400, ts=4))                  # 400 trade beyond the queue
    assert fills_of(sim, oid) == [(10000, 400, 0)]
    assert status(sim, oid) == ("PARTIALLY_FILLED", "OK")
    assert sim.account()["position_units"] == 400                # partial fills reach the position
    sim.apply(trade("sell", 10000, 5000, ts=5))                  # capped at what the order has left
    assert fills_of(sim, oid) == [(10000, 400, 0), (10000, 600, 0)]
    assert status(sim, oid) == ("FILLED", "OK")


def test_trades_of_another_instrument_or_without_one_aggressor_touch_nothing(make_sim):
    sim = make_sim()
    oid = sim.submit("buy", "1", "limit", "100.00")
    sim.advance(1)
    other = rec(F.TRADE | F.SELL | F.LAST, 9990, 9000, 2)[:8] + (7,)
    both = rec(F.TRADE | F.SELL | F.BUY | F.LAST, 9990, 9000, 3)
    sim.apply(events(other, both))
    assert order(sim, oid)["queue_ahead"] == 5000 and fills_of(sim, oid) == []


def test_traded_volume_beyond_the_queue_is_shared_not_duplicated(make_sim):
    sim = make_sim()
    a = sim.submit("buy", "1", "limit", "100.00")
    b = sim.submit("buy", "1", "limit", "100.00")
    sim.advance(1)
    sim.apply(trade("sell", 10000, 5600, ts=2))                  # 600 beyond the visible queue
    assert fills_of(sim, a) == [(10000, 600, 0)]
    assert fills_of(sim, b) == []                                # a took those 600 first


def test_a_trade_through_the_price_fills_the_order(make_sim):
    sim = make_sim()
    oid = sim.submit("buy", "2", "limit", "100.00")
    sim.advance(1)
    sim.apply(trade("sell", 9999, 100, ts=2))                    # printed below our bid
    assert fills_of(sim, oid) == [(10000, 2000, 0)]


def test_the_opposite_side_moving_through_the_order_fills_it(make_sim):
    sim = make_sim()
    oid = sim.submit("sell", "1", "limit", "100.05")
    sim.advance(1)
    assert order(sim, oid)["queue_ahead"] == 3000
    sim.apply(depth("bid", 10005, 100, ts=2))                    # locked: no fill
    assert fills_of(sim, oid) == []
    sim.apply(depth("bid", 10006, 100, ts=3))                    # a bid above our ask
    assert fills_of(sim, oid) == [(10005, 1000, 0)]


# Queue ahead 60, the level grows to 100 (the increase is behind us), then shrinks to 70:
# prev 100, new 70, chg 30, front 60, back 40, n = 2. est = front - (1-p)*chg + min(back - p*chg, 0):
#   risk_averse: decreases never help                    -> 60
#   prob_power   p = 40^2/(40^2+60^2) = 0.30769          -> 60 - 0.69231*30 = 39.23 -> 40
#   prob_power2  p = 40^2/100^2 = 0.16                    -> 60 - 0.84*30 = 34.8     -> 35
#   prob_power3  p = 1 - (60/100)^2 = 0.64                -> 60 - 0.36*30 = 49.2     -> 50
#   prob_log     p = ln41/(ln41+ln61) = 0.47461           -> 60 - 0.52539*30 = 44.24 -> 45
#   prob_log2    p = ln41/ln101 = 0.80465                 -> 60 - 0.19535*30 = 54.14 -> 55
# (queue positions round up: the estimate never moves an order forward by a fraction.)
QUEUE_VECTORS = {"risk_averse": 60, "prob_power": 40, "prob_power2": 35, "prob_power3": 50,
                 "prob_log": 45, "prob_log2": 55}


@pytest.mark.parametrize("model", sorted(QUEUE_VECTORS))
def test_queue_model_attributes_a_depth_decrease_by_hand_vector(make_sim, model):
    sim = make_sim(bids=[(10000, 60)], queue_model=model, queue_power=2.0)
    oid = sim.submit("buy", "0.001", "limit", "100.00")
    sim.advance(1)
    assert order(sim, oid)["queue_ahead"] == 60
    sim.apply(depth("bid", 10000, 100, ts=2))
    assert order(sim, oid)["queue_ahead"] == 60                  # growth lands behind us
    sim.apply(depth("bid", 10000, 70, ts=3))
    assert order(sim, oid)["queue_ahead"] == QUEUE_VECTORS[model]
    sim.apply(depth("bid", 10000, 20, ts=4))                     # never more ahead than the level
    assert order(sim, oid)["queue_ahead"] <= 20


@pytest.mark.parametrize("model", sorted(QUEUE_VECTORS))
def test_a_trade_and_the_depth_decrease_it_causes_count_once(make_sim, model):
    sim = make_sim(bids=[(10000, 100)], queue_model=model, queue_power=2.0)
    oid = sim.submit("buy", "0.001", "limit", "100.00")
    sim.advance(1)
    sim.apply(trade("sell", 10000, 30, ts=2))
    assert order(sim, oid)["queue_ahead"] == 70
    sim.apply(depth("bid", 10000, 70, ts=3))                     # the same 30, seen by the book
    assert order(sim, oid)["queue_ahead"] == 70


# ------------------------------------------------------------------ latency and races

def test_orders_reach_the_venue_after_the_entry_latency(make_sim):
    sim = make_sim(latency=(1000, 500))
    oid = sim.submit("buy", "1", "market", ts=10)
    sim.apply(depth("ask", 10005, 0, ts=1005))                   # before arrival: the order misses it
    sim.apply(depth("ask", 10006, 4000, ts=1010))                # at arrival: the order goes first
    o = order(sim, oid)
    assert (o["ts_request"], o["ts_arrival"], o["ts_ack"]) == (10, 1010, 1510)
    f = sim.fills()[0]
    assert (f["price"], f["ts_exch"], f["ts_local"]) == (10006, 1010, 1510)


def test_recorded_latency_is_interpolated_in_request_time(make_sim):
    lat = of.Latency.recorded(request=[0, 1000], exchange=[100, 1300], response=[150, 1400])
    sim = make_sim(latency=lat, snapshot_ts=0)
    oid = sim.submit("buy", "1", "limit", "99.00", ts=500)       # entry 100 + 200*0.5 = 200
    sim.advance(10_000)
    o = order(sim, oid)
    assert o["ts_arrival"] == 700
    assert o["ts_ack"] == 700 + 85                              # response 50 + 50*0.7


def test_latency_jitter_is_deterministic_for_a_seed(make_sim):
    def arrivals(seed):
        sim = make_sim(latency=of.Latency(100, 0, jitter_ns=10_000), seed=seed)
        for _ in range(20):
            sim.submit("buy", "1", "limit", "99.00")
        sim.advance(10**6)
        return sim.orders()["ts_arrival"].tolist()
    assert arrivals(7) == arrivals(7)
    assert arrivals(7) != arrivals(8)
    assert all(1 + 100 <= t <= 1 + 100 + 10_000 for t in arrivals(7))


def test_a_fill_can_beat_a_cancel(make_sim):
    sim = make_sim(latency=(1000, 0))
    full = sim.submit("buy", "1", "limit", "100.00", ts=10)
    sim.apply(events(rec(F.DEPTH | F.BID | F.LAST, 9990, 1, ts=1500)))    # the order now rests
    assert sim.cancel(full, ts=2000)                             # arrives at 3000
    sim.apply(trade("sell", 10000, 6000, ts=2500))               # 1000 beyond the queue: filled
    sim.advance(3000)
    assert status(sim, full) == ("FILLED", "OK")
    assert sim.risk_stats()["venue"][of.Reason.CANCEL_REJECTED] == 1


def test_a_cancel_after_a_partial_fill_cancels_the_rest(make_sim):
    sim = make_sim(latency=(1000, 0))
    oid = sim.submit("buy", "1", "limit", "100.00", ts=10)
    sim.advance(1010)
    sim.cancel(oid, ts=2000)
    sim.apply(trade("sell", 10000, 5500, ts=2500))
    sim.advance(3000)
    assert status(sim, oid) == ("CANCELLED", "CANCELLED")
    assert order(sim, oid)["filled"] == 500 and order(sim, oid)["ts_done"] == 3000
    assert sim.open_exposure() == (0, 0, 0)


def test_a_cancel_that_overtakes_its_order_is_rejected(make_sim):
    # The entry leg shrinks from 5000 ns to 100 ns: the cancel (sent later) arrives first.
    lat = of.Latency.recorded(request=[0, 1000], exchange=[5000, 1100], response=[5000, 1100])
    sim = make_sim(latency=lat, snapshot_ts=0)
    oid = sim.submit("buy", "1", "limit", "100.00", ts=0)
    sim.cancel(oid, ts=1000)
    sim.advance(10_000)
    assert status(sim, oid) == ("ACCEPTED", "OK")
    assert sim.risk_stats()["venue"][of.Reason.CANCEL_REJECTED] == 1


def test_gtd_orders_expire_at_their_time_before_a_trade_then(make_sim):
    sim = make_sim()
    oid = sim.submit("buy", "1", "limit", "100.00", "GTD", expire_at=5000)
    late = sim.submit("buy", "1", "limit", "100.00", "GTD", expire_at=1)   # already past on arrival
    sim.advance(2)
    sim.apply(trade("sell", 10000, 9000, ts=5000))
    assert status(sim, oid) == ("EXPIRED", "GTD_EXPIRED")
    assert order(sim, oid)["ts_done"] == 5000 and fills_of(sim, oid) == []
    assert status(sim, late) == ("EXPIRED", "GTD_EXPIRED")


def test_orders_reaching_an_unsynced_book_are_rejected(make_sim):
    spot = of.Instrument("BTCUSDT", venue="binance-spot", tick_size="0.01", lot_size="0.00001")
    sim = make_sim(inst=spot, bids=None, latency=(1000, 0))
    snap = with_last([ev(F.SNAPSHOT | F.BID, 10000, 5000, seq=100, ts_exch=1, ts_local=1),
                      ev(F.SNAPSHOT | F.ASK, 10005, 5000, seq=100, ts_exch=1, ts_local=1)])
    sim.apply(np.array(snap, dtype=of.EVENT_DTYPE))
    oid = sim.submit("buy", "0.001", "limit", "100.00", ts=10)
    gap = [ev(F.DEPTH | F.BID | F.LAST, 10000, 1, seq=150, seq_first=140, ts_exch=500, ts_local=500)]
    sim.apply(np.array(gap + [ev(F.TRADE | F.BUY | F.LAST, 10000, 1, seq=1, ts_exch=2000, ts_local=2000)],
                       dtype=of.EVENT_DTYPE))
    assert status(sim, oid) == ("REJECTED", "VENUE_BOOK_NOT_SYNCED")


def test_modify_size_cut_keeps_the_queue_and_a_price_change_requeues(make_sim):
    sim = make_sim()
    oid = sim.submit("buy", "2", "limit", "100.00")
    sim.advance(1)
    sim.apply(trade("sell", 10000, 1000, ts=2))
    assert sim.modify(oid, qty="1")
    sim.advance(2)
    o = order(sim, oid)
    assert (o["qty"], o["queue_ahead"]) == (1000, 4000)
    assert sim.modify(oid, price="99.99")
    sim.advance(2)
    o = order(sim, oid)
    assert (o["price"], o["queue_ahead"]) == (9999, 2000)
    assert sim.modify(oid, price="100.06")                        # crosses: takes, then is filled
    sim.advance(2)
    assert fills_of(sim, oid) == [(10005, 1000, 1)]
    assert not sim.modify(oid, qty="3")                           # final orders cannot be modified


# ------------------------------------------------------------------ account

ORP = of.Instrument("ORP", venue="generic", tick_size="0.005", lot_size="0.1", size_increment="0.001")


def test_orpflow_partial_reduction_keeps_the_entry_price(make_sim):
    """ORPFlow's broker moved the entry to 310.05 on this and skipped the sell fee."""
    sim = make_sim(inst=ORP, bids=[(20000, 100_000)], asks=[(20010, 100_000)])   # 100.00 / 100.05
    sim.submit("buy", "1", "market")
    sim.advance(1)
    sim.apply(snapshot([(21989, 100_000)], [(22000, 100_000)], ts=2))          # bid 109.945
    sim.submit("sell", "0.5", "market")
    sim.advance(2)
    a = sim.account()
    fees = Decimal("100.05") * 1 * Decimal("0.0004") + Decimal("109.945") * Decimal("0.5") * Decimal("0.0004")
    assert a["avg_entry_price"] == Decimal("100.05")
    assert a["position"] == Decimal("0.5")
    assert a["realised_pnl"] == Decimal("0.5") * (Decimal("109.945") - Decimal("100.05"))
    assert a["fees"] == fees
    assert a["net_realised_pnl"] == Decimal("0.5") * (Decimal("109.945") - Decimal("100.05")) - fees
    sim.submit("sell", "1", "market")                                          # flip to short 0.5
    sim.advance(2)
    a = sim.account()
    assert a["position"] == Decimal("-0.5") and a["avg_entry_price"] == Decimal("109.945")
    assert a["realised_pnl"] == Decimal("1") * (Decimal("109.945") - Decimal("100.05"))
    assert a["round_trips"] == 1


def test_the_entry_price_is_the_average_of_increases_only(make_sim):
    sim = make_sim(asks=[(10005, 1000), (10010, 3000)])
    sim.submit("buy", "2", "market")                             # 1 @ 100.05 + 1 @ 100.10
    sim.advance(1)
    assert sim.account()["avg_entry_price"] == Decimal("100.075")
    sim.submit("sell", "1", "market")                            # at the 100.00 bid
    sim.advance(1)
    a = sim.account()
    assert a["avg_entry_price"] == Decimal("100.075")
    assert a["realised_pnl"] == Decimal("-0.075")


def test_a_maker_rebate_adds_to_cash(make_sim):
    sim = make_sim(fees=("-0.0001", "0.0004"))
    oid = sim.submit("buy", "1", "limit", "100.00")
    sim.advance(1)
    sim.apply(trade("sell", 10000, 6000, ts=2))
    assert fills_of(sim, oid) == [(10000, 1000, 0)]
    a = sim.account()
    assert a["fees"] == Decimal("-0.01")
    assert a["cash"] == Decimal(10_000) - Decimal("100.00") + Decimal("0.01")


def test_equity_marks_to_mid_and_tracks_peak_and_drawdown(make_sim):
    sim = make_sim(cash=1000)
    sim.submit("buy", "1", "market")
    sim.advance(1)
    sim.apply(snapshot([(9000, 5000)], [(9010, 5000)], ts=2))    # mid 90.05
    a = sim.account()
    assert a["unrealised_pnl"] == Decimal("90.05") - Decimal("100.05")
    assert a["equity"] == a["cash"] + Decimal("90.05")
    peak = Decimal(1000)                                          # the mark before the buy
    assert a["peak_equity"] == peak
    assert a["max_drawdown"] == pytest.approx(float((peak - a["equity"]) / peak), rel=1e-12)


def test_bad_constructor_arguments_raise_clear_errors():
    with pytest.raises(ValueError, match="queue_model"):
        of.PaperBroker(G, queue_model="fifo")
    with pytest.raises(ValueError, match="fees.maker"):
        of.PaperBroker(G, fees=("0.000000001", "0"))
    with pytest.raises(ValueError, match="cash"):
        of.PaperBroker(G, cash="0.0000000000000000001")
    with pytest.raises(ValueError, match="request <= exchange"):
        of.Latency.recorded([0, 10], [5, 5], [1, 20])
    with pytest.raises(TypeError, match="latency"):
        of.PaperBroker(G, latency="fast")


def test_bad_orders_are_rejected_with_a_reason_or_raise_for_bad_names(make_sim):
    sim = make_sim()
    assert sim.submit("buy", "0.0005", "limit", "100.00") == of.Reason.ORDER_BAD_QTY
    assert sim.submit("buy", "0", "limit", "100.00") == of.Reason.ORDER_BAD_QTY
    assert sim.submit("buy", "1", "limit", "100.001") == of.Reason.ORDER_BAD_PRICE
    assert sim.submit("buy", "1", "limit") == of.Reason.ORDER_BAD_PRICE
    assert sim.submit("buy", "1", "limit", "100.00", "GTD") == of.Reason.ORDER_BAD_EXPIRY
    with pytest.raises(ValueError, match="side"):
        sim.submit("hold", "1", "limit", "100.00")
    with pytest.raises(ValueError, match="market orders are IOC or FOK"):
        sim.submit("buy", "1", "market", tif="GTC")
    with pytest.raises(TypeError):
        sim.submit("buy", None, "market")
    assert [int(s) for s in sim.orders()["status"]] == [of.OrderStatus.REJECTED] * 5
    assert sim.cancel(99) is False and sim.cancel(1) is False


def test_a_broker_serves_one_sim_only():
    broker = of.PaperBroker(G)
    of.ExecutionSim(G, broker=broker)
    with pytest.raises(ValueError, match="already belongs"):
        of.ExecutionSim(G, broker=broker)
