"""Broker and risk rows for benchmarks/run.py: pre-trade check, taker fill, and the cost of
resting orders per book event with 1 / 100 / 10,000 of them open; compiled beside the twin."""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

import orpflow as of
from orpflow._core.broker import _bench_risk_check, _bench_taker
from orpflow.reference import broker as twin
from orpflow.reference.risk import OrderContext

NO_RATES = dict(rate_per_second=0, rate_per_minute=0, rate_per_hour=0, max_consecutive_losses=None,
                reject_storm=None)
OPEN_COUNTS = (0, 1, 100, 10_000)


def _synced_sim(Sim: Any, Broker: Any, inst: Any, events: np.ndarray) -> tuple:
    """A sim over the recording up to its first in-sync complete message; returns (sim, next index)."""
    sim = Sim(inst, broker=Broker(inst, cash=10**9), risk=of.RiskLimits(**NO_RATES))
    i, step = 0, 2_000
    while i < len(events):
        sim.apply(events[i:i + step])
        i += step
        if sim.book.in_sync and sim.book.best_bid() and sim.book.best_ask():
            return sim, i
    raise RuntimeError("the recording never syncs")


def _ticks(sim: Any, inst: Any) -> tuple:
    num, den = inst.price_scale
    return round(sim.book.best_bid()[0] * den / num), round(sim.book.best_ask()[0] * den / num)


def _rest_orders(sim: Any, inst: Any, n: int) -> None:
    """n one-lot post-only orders, half each side, round-robin over up to 500 levels behind the touch."""
    bid, ask = _ticks(sim, inst)
    lot = inst.units_to_size(inst.lot_units)
    levels = max(1, min(500, n // 2))
    for k in range(n):
        off = 1 + (k // 2) % levels
        if k % 2 == 0:
            sim.submit("buy", lot, "post_only", inst.ticks_to_price(bid - off))
        else:
            sim.submit("sell", lot, "post_only", inst.ticks_to_price(ask + off))
    sim.advance(sim.now)


def bench_broker(inst: Any, events: np.ndarray, S: dict, timed: Callable,
                 per_item_row: Callable, add: Callable, med: Callable) -> None:
    # --- pre-trade risk check
    sim, _ = _synced_sim(of.ExecutionSim, of.PaperBroker, inst, events)
    rsim, _ = _synced_sim(twin.ExecutionSim, twin.PaperBroker, inst, events[:200_000])
    n_c, n_r = 2_000_000, 20_000
    bid, _ = _ticks(rsim, inst)
    ctx = OrderContext(side=1, qty=inst.lot_units, price=bid, now=0, book_usable=True, bid=bid,
                       ask=bid + 1, position=0, open_buy=0, open_sell=0, open_orders=0,
                       cash=10**30, equity=10**30)

    def ref_checks() -> None:
        for i in range(n_r):
            ctx.now = i
            rsim.risk.check(ctx)
    orp = [_bench_risk_check(sim, n_c) for _ in range(S["reps"])]
    ref = [timed(ref_checks) for _ in range(S["reps_slow"])]
    o, r = med([t / n_c for t in orp]), med([t / n_r for t in ref])
    add("risk: pre-trade check", "ns/check", o, r, r / o, [t / n_c for t in orp], [t / n_r for t in ref],
        "all 11 checks on, every one passes (worst case); timed inside the nogil loop")

    # --- taker: submit + risk + arrival + walk + fill + account
    n_c, n_r = 100_000, 2_000
    orp, ref = [], []
    for _ in range(S["reps"]):
        s, _ = _synced_sim(of.ExecutionSim, of.PaperBroker, inst, events[:200_000])
        orp.append(_bench_taker(s, n_c))
    for _ in range(S["reps_slow"]):
        s, _ = _synced_sim(twin.ExecutionSim, twin.PaperBroker, inst, events[:200_000])
        lot = inst.units_to_size(inst.lot_units)

        def ref_takers(s: Any = s) -> None:
            for i in range(n_r):
                s.submit("buy" if i % 2 == 0 else "sell", lot, "market")
                s.advance(s.now)
                s.broker.consumed.clear()
        ref.append(timed(ref_takers))
    o, r = med([t / n_c for t in orp]), med([t / n_r for t in ref])
    add("taker: 1-lot market order, end to end", "ns/order", o, r, r / o, [t / n_c for t in orp],
        [t / n_r for t in ref], "risk check + send + match at the touch + fill + account, and the order/fill "
        "history growing by doubling: fresh pages fault on first touch, so a cold process "
        "(--broker-only) reads ~3x a warm one (twin: through its Python submit)")

    # --- resting orders: cost per book event with N open
    chunk = S.get("broker_chunk", 20_000)
    twin_chunk = S.get("broker_twin_chunk", 2_000)
    book_ns = []
    for rep in range(S["reps"]):
        s, i = _synced_sim(of.ExecutionSim, of.PaperBroker, inst, events)
        book = of.OrderBook(inst)
        book.apply(events[:i])
        part = events[i:i + chunk]
        book_ns.append(timed(lambda: book.apply(part)))
    per_item_row("  the same events, book alone", chunk, book_ns, None,
                 "OrderBook.apply on the chunk the rows below use: the broker's cost is the difference",
                 unit="ns/event")
    base = {}
    for n_open in OPEN_COUNTS:
        orp_ns, ref_ns, left = [], [], []
        for rep in range(S["reps"]):
            s, i = _synced_sim(of.ExecutionSim, of.PaperBroker, inst, events)
            _rest_orders(s, inst, n_open)
            part = events[i:i + chunk]
            orp_ns.append(timed(lambda: s.apply(part)))
            left.append(int(s.open_exposure()[2]))
        twin_n = twin_chunk if n_open <= 100 else twin_chunk // 10     # the twin scans all orders
        for rep in range(S["reps_slow"]):
            t, i = _synced_sim(twin.ExecutionSim, twin.PaperBroker, inst, events[:200_000])
            _rest_orders(t, inst, n_open)
            part = events[i:i + twin_n]
            ref_ns.append(timed(lambda: t.apply(part)) * chunk / twin_n)
        per_ev = [x / chunk for x in orp_ns]
        base[n_open] = med(per_ev)
        note = (f"{chunk:,} spot events after sync ({twin_n:,} for the twin); "
                f"{med(left):,.0f} still open at the end")
        if n_open:
            note += f"; +{base[n_open] - base[0]:.1f} ns/event over no orders"
        per_item_row(f"book event with {n_open:,} resting orders", chunk, orp_ns, ref_ns or None,
                     note, unit="ns/event")


# ---------------------------------------------------------------------------- callgrind

CG_CHILD = r'''
import gc, sys
import numpy as np
sys.path.insert(0, sys.argv[1])
import orpflow as of
from orpflow._core.broker import _bench_risk_check, _bench_taker
from bench_broker import _synced_sim, _rest_orders
SPOT = of.Instrument("BTCUSDT", venue="binance-spot", tick_size="0.01", lot_size="0.00001")
what, n, path = sys.argv[2], int(sys.argv[3]), sys.argv[4]
events = np.load(path)
gc.disable()
sim, i = _synced_sim(of.ExecutionSim, of.PaperBroker, SPOT, events)
if what == "risk":
    _bench_risk_check(sim, n)
elif what == "taker":
    _bench_taker(sim, n)
else:                                    # rest-N-M: N resting orders, then M events (M may be 0)
    _, n_open, m = what.split("-")
    _rest_orders(sim, SPOT, int(n_open))
    if int(m):
        sim.apply(events[i:i + int(m)])
'''

CG_PATTERNS = {"risk": "__pyx_pw_*_bench_risk_check", "taker": "__pyx_pw_*_bench_taker",
               "rest": "__pyx_pw_*ExecutionSim_*apply"}


def callgrind_broker(tmp: Any, events: np.ndarray, add: Callable, valgrind_batch: Callable,
                     timeout: float = 600) -> None:
    """Instructions inside the compiled calls (valgrind --toggle-collect): per risk check, per
    taker order, and per book event with N resting orders (setup-only runs subtracted)."""
    import sys
    import time
    from pathlib import Path

    here = Path(__file__).resolve().parent
    (tmp / "cg_broker.py").write_text(CG_CHILD)
    np.save(tmp / "broker_events.npy", events[:120_000])
    chunk = 20_000
    runs = {"risk": ("risk", 100_000), "taker": ("taker", 20_000)}
    for n_open in OPEN_COUNTS:
        runs[f"rest{n_open}"] = (f"rest-{n_open}-{chunk}", 0)
        runs[f"setup{n_open}"] = (f"rest-{n_open}-0", 0)
    jobs = {key: [f"--toggle-collect={CG_PATTERNS[what.split('-')[0]]}",
                  f"--callgrind-out-file={tmp / ('cgb.' + key + '.out')}", sys.executable,
                  str(tmp / "cg_broker.py"), str(here), what, str(n), str(tmp / "broker_events.npy")]
            for key, (what, n) in runs.items()}
    t0 = time.time()
    counts = valgrind_batch(jobs, timeout)
    def both(name, unit, c, per, note):
        add(name, unit, c / per, note=note)
        add(f"  {name}: mispredicts", "mispred/" + unit.split("/", 1)[1],
            getattr(c, "mis", 0) / per, note="Bcm + Bim, same valgrind run (--branch-sim=yes)")

    both("callgrind risk: pre-trade check", "instr/check", counts["risk"], runs["risk"][1],
         "all 11 checks, each passing; inside the nogil loop")
    both("callgrind taker: 1-lot market order", "instr/order", counts["taker"], runs["taker"][1],
         "risk + send + match + fill + account")
    base = (counts["rest0"] - counts["setup0"]) / chunk
    for n_open in OPEN_COUNTS:
        c_rest, c_setup = counts[f"rest{n_open}"], counts[f"setup{n_open}"]
        per = (c_rest - c_setup) / chunk
        add(f"callgrind book event, {n_open:,} resting", "instr/event", per,
            note=f"{chunk:,} spot events after sync, book apply included; +{per - base:.1f} over none"
                 + (f"; valgrind {time.time() - t0:.0f}s" if n_open == OPEN_COUNTS[-1] else ""))
        add(f"  callgrind book event, {n_open:,} resting: mispredicts", "mispred/event",
            (getattr(c_rest, "mis", 0) - getattr(c_setup, "mis", 0)) / chunk,
            note="(run - setup-only run) Bcm + Bim")
