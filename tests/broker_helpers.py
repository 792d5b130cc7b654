"""Builders shared by the broker tests: a small generic-venue market and both implementations."""
from __future__ import annotations

from typing import Any, Callable, Tuple

import numpy as np
import pytest

import orpflow as of
from orpflow.reference import broker as twin

F = of.flags
# 1 tick = 0.01, 1 size unit = 0.001 = 1 lot: prices and sizes below are integers in those units.
G = of.Instrument("TEST", venue="generic", tick_size="0.01", lot_size="0.001", size_increment="0.001")
NO_RATE_LIMITS = dict(rate_per_second=0, rate_per_minute=0, rate_per_hour=0)

IMPLS = {"compiled": (of.ExecutionSim, of.PaperBroker), "twin": (twin.ExecutionSim, twin.PaperBroker)}


def rec(flags: Any, price: int = 0, qty: int = 0, ts: int = 0, ts_local: int | None = None) -> tuple:
    return (ts, ts if ts_local is None else ts_local, 0, 0, 0, price, qty, int(flags), 0)


def events(*records: tuple) -> np.ndarray:
    return np.array(list(records), dtype=of.EVENT_DTYPE)


def snapshot(bids: list, asks: list, ts: int = 1) -> np.ndarray:
    """A complete snapshot message: bids and asks as [(price, qty)], best first or not."""
    recs = [rec(F.SNAPSHOT | F.BID, p, q, ts) for p, q in bids] + \
           [rec(F.SNAPSHOT | F.ASK, p, q, ts) for p, q in asks]
    last = recs[-1]
    recs[-1] = last[:7] + (last[7] | int(F.LAST),) + last[8:]
    return events(*recs)


def depth(side: str, price: int, qty: int, ts: int) -> np.ndarray:
    return events(rec((F.BID if side == "bid" else F.ASK) | F.DEPTH | F.LAST, price, qty, ts))


def trade(aggressor: str, price: int, qty: int, ts: int) -> np.ndarray:
    return events(rec(F.TRADE | (F.BUY if aggressor == "buy" else F.SELL) | F.LAST, price, qty, ts))


# bids 100.00 x 5, 99.99 x 2; asks 100.05 x 3, 100.06 x 4 (sizes in units of 0.001)
BIDS = [(10000, 5000), (9999, 2000)]
ASKS = [(10005, 3000), (10006, 4000)]

Factory = Callable[..., Any]


@pytest.fixture(params=sorted(IMPLS))
def make_sim(request: Any) -> Factory:
    """make_sim(risk=None, bids=BIDS, asks=ASKS, **broker_kw) -> a sim with the snapshot applied."""
    Sim, Broker = IMPLS[request.param]

    def make(risk: Any = None, bids: Any = BIDS, asks: Any = ASKS, snapshot_ts: int = 1,
             inst: Any = G, **broker_kw: Any) -> Any:
        broker_kw.setdefault("fees", ("0.0001", "0.0004"))
        sim = Sim(inst, broker=Broker(inst, **broker_kw),
                  risk=risk if risk is not None else of.RiskLimits(**NO_RATE_LIMITS))
        if bids is not None:
            sim.apply(snapshot(bids, asks, snapshot_ts))
        return sim

    make.impl = request.param  # type: ignore[attr-defined]
    return make


def order(sim: Any, oid: int) -> Any:
    return sim.orders()[oid - 1]


def fills_of(sim: Any, oid: int) -> list:
    return [(int(f["price"]), int(f["qty"]), int(f["liquidity"])) for f in sim.fills() if f["order_id"] == oid]


def status(sim: Any, oid: int) -> Tuple[str, str]:
    o = order(sim, oid)
    return of.OrderStatus(int(o["status"])).name, of.Reason(int(o["reason"])).name
