"""The paper broker over real Binance recordings: thousands of random orders replay to the
same fills twice with the same seed, the accounting invariants hold, and the twin agrees
exactly on the bundled sample."""
from __future__ import annotations

import functools
from decimal import Decimal
from typing import Any

import numpy as np
import pytest

import orpflow as of
from orpflow.reference import broker as twin
from helpers import SAMPLE, SPOT, USDM, shared_file
from test_broker_differential import check_invariants

RECORDINGS = {
    "sample": (SPOT, lambda: [SAMPLE]),
    "spot-0808": (SPOT, lambda: [shared_file("binance", "spot_btcusdt_20240808.gz")]),
    "usdm-0808": (USDM, lambda: [shared_file("binance", "usdm_btcusdt_20240808.gz")]),
}
START_CASH = 100_000


@functools.lru_cache(maxsize=None)
def recording(name: str) -> Any:
    inst, paths = RECORDINGS[name]
    return inst, of.read_binance(paths(), inst)


def drive(Sim: Any, Broker: Any, inst: Any, events: np.ndarray, seed: int, n_orders: int) -> Any:
    """Random orders around the touch at random points of the recording (numpy RNG `seed`);
    the broker's latency jitter is seeded with the same seed."""
    rng = np.random.default_rng(seed)
    lot = inst.units_to_size(inst.lot_units)
    sim = Sim(inst, broker=Broker(inst, cash=START_CASH, latency=of.Latency(200_000, 100_000, jitter_ns=300_000),
                                  queue_model="prob_power2", seed=seed),
              risk=of.RiskLimits(rate_per_second=0, rate_per_minute=0, rate_per_hour=0,
                                 max_position=lot * 200, qty_policy="clip", max_consecutive_losses=None,
                                 reject_storm=None))
    num, den = inst.price_scale
    cuts = np.sort(rng.choice(np.arange(1, len(events)), size=n_orders, replace=False))
    prev = 0
    for cut in cuts.tolist():
        sim.apply(events[prev:cut])
        prev = cut
        bid, ask = sim.book.best_bid(), sim.book.best_ask()
        if bid is None or ask is None:
            continue
        touch = round((bid[0] if rng.random() < 0.5 else ask[0]) * den / num)
        side = "buy" if rng.random() < 0.5 else "sell"
        kind = rng.choice(["limit", "limit", "post_only", "market", "ioc", "cancel"])
        qty = lot * int(rng.integers(1, 30))
        if kind == "cancel":
            sim.cancel(int(rng.integers(1, len(sim.orders()) + 1)) if len(sim.orders()) else 1)
        elif kind == "market":
            sim.submit(side, qty, "market")
        else:
            price = inst.ticks_to_price(touch + int(rng.integers(-3, 4)))
            sim.submit(side, qty, kind, price)
    sim.apply(events[prev:])
    return sim


def outcome(sim: Any) -> tuple:
    return sim.orders().tobytes(), sim.fills().tobytes(), sim.account(), sim.risk_stats()


@pytest.mark.parametrize("name", sorted(RECORDINGS))
def test_random_orders_replay_identically_with_the_same_seed(name: str) -> None:
    inst, events = recording(name)
    n = 3000 if name != "sample" else 800
    first = drive(of.ExecutionSim, of.PaperBroker, inst, events, seed=11, n_orders=n)
    second = drive(of.ExecutionSim, of.PaperBroker, inst, events, seed=11, n_orders=n)
    assert outcome(first) == outcome(second)
    fills = first.fills()
    assert len(fills) > n // 10 and (fills["liquidity"] == 0).any() and (fills["liquidity"] == 1).any()
    assert (first.orders()["status"] == of.OrderStatus.PARTIALLY_FILLED).any() or \
        (np.unique(fills["order_id"], return_counts=True)[1] > 1).any()
    check_invariants(first, Decimal(START_CASH))
    other = drive(of.ExecutionSim, of.PaperBroker, inst, events, seed=12, n_orders=n)
    assert outcome(other)[1] != outcome(first)[1]


def test_the_twin_agrees_on_the_sample() -> None:
    inst, events = recording("sample")
    compiled = drive(of.ExecutionSim, of.PaperBroker, inst, events, seed=5, n_orders=300)
    reference = drive(twin.ExecutionSim, twin.PaperBroker, inst, events, seed=5, n_orders=300)
    assert outcome(compiled) == outcome(reference)
    check_invariants(compiled, Decimal(START_CASH))
