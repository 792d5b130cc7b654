#!/usr/bin/env python
"""A market maker in orpflow and in hftbacktest 2.4.4 on the same recording, side by side.

    python benchmarks/bench_mm_hftbacktest.py [--quick] [--reps N] [--data FILE] [--json PATH]
                                              [--requote-ms N] [--half-spread T] [--skew T]

The strategy, in both: one post-only order a side of a fixed size (`--qty`, default one lot) around
the mid, shifted against the inventory q (position / order size):
r = mid - q * skew; bid = floor(r - half_spread), ask = ceil(r + half_spread), in ticks, kept
off the other side's best; no bid at +max_position orders, no ask at -max_position.
Decisions after every depth message (the REST snapshot included) once the book is synced, or
every `--requote-ms` of local time. A side whose desired price changed has its open order
cancelled and a new one sent at once; a side whose order is still in flight (sent, not yet
acknowledged) waits: hftbacktest cannot cancel an order before its acknowledgement, so
orpflow's strategy waits for it too.

- orpflow: examples/market_making/mm_cython.pyx (MarketMaker, microprice off: the mid), built
  in a temporary folder against the installed package, run by `of.backtest(..., strategy=)`;
  broker: constant latencies, the default queue model `prob_power2` (n = 3), maker fee 1 bp.
- hftbacktest: its own converter (exchange times made monotone in arrival order, as in
  bench_hftbacktest.py, so its exchange replays orpflow's venue timeline), a
  `no_partial_fill_exchange` asset with `power_prob_queue_model2(3)` (the same function, the
  same n), the same constant latencies and fees, and an @njit loop that `elapse`s to each
  decision time and mirrors the rules above. With one-lot orders nothing can fill in part in
  either engine, and hftbacktest's no-partial-fill exchange is its partial-fill one without
  two faults of 2.4.4's partial-fill exchange that a market maker hits: an order filled to
  the last unit by a trade stays in its book and the next trade at that price stops the run
  with InvalidOrderStatus (error 14; hftbacktest issues #301, #312: after 40 decisions on
  the USD-M file), and partial fills never reach the local position and balance (#299, #316).

Printed: fills (buys / sells), traded volume, PnL (cash + position x last mid - fees), and the
backtest loops' throughput (input messages/s, and events/s in each engine's own unit; medians
of N alternating runs in one process; building, data loading and numba compilation excluded)
and their ratio. The same strategy in Python (examples/market_making/mm.py) is run and timed
too, and its orders and fills must be identical to the Cython one's (else exit status 1).

Why the fills differ (model definitions, not bugs; the taker rule of bench_hftbacktest.py,
which depends on none of them, matches order for order):
1. Queue position: orpflow's queue ahead is an integer of size units, and the probabilistic
   estimate after a depth decrease is rounded UP (an estimate never moves the order forward
   by a fraction); hftbacktest keeps a float in base-asset units.
2. Depth granularity: orpflow applies a depth message as one unit (the queue model sees each
   level's size before and after the message, and fills by a crossing best are checked after
   the complete message); hftbacktest applies one row per level, checking after each.
3. A best crossing the order: orpflow fills a resting bid when the best ask moves strictly
   below it (through the order); hftbacktest already when the best ask reaches its price.
4. When the strategy learns: orpflow delivers on_order / on_fill when the venue acts (its
   account, and `ctx.position`, are the venue's truth, the conservative side for limits);
   hftbacktest's local state changes when the response arrives (+ response latency), so its
   position and the end of "in flight" lag by that latency.
5. Volume beyond the queue: orpflow fills whole lots out of each trade's volume beyond the
   queue and drops the sub-lot rest (the queue ahead is then 0); hftbacktest keeps the queue
   negative, so two trades each 0.6 lot beyond it fill a one-lot order there, not in orpflow.
6. Trades without an aggressor side are ignored by orpflow's venue (none in Binance data).
With --requote-ms both decide at the same local times (orpflow's timer runs with the local
clock at its due time, before the first record at or after it; hftbacktest's elapse includes
rows stamped exactly at the due time: a tie only).
Orders, prices and decision times are the same function of the same book; the gap in fills is
the gap between those definitions, on a strategy whose fills depend on nothing else.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
import bench_hftbacktest as B  # noqa: E402  (the data preparation shared with the taker rule)

EXAMPLE = REPO / "examples" / "market_making"
ENTRY_NS = B.ENTRY_NS
RESPONSE_NS = B.RESPONSE_NS
MAKER_FEE = 0.0001
TAKER_FEE = 0.0004
QUEUE_POWER = 3.0
# order size (base asset): one lot, so no order can fill in part in either engine; hftbacktest
# then runs its no_partial_fill_exchange, which for one-lot orders is its partial-fill model
# without that model's two known faults in 2.4.4 (a fully filled order left in its book stops
# the run with InvalidOrderStatus, hftbacktest issues #301/#312; partial fills never reach the
# local position and balance, #299/#316)
QTY = {m: v["lot"] for m, v in B.MARKETS.items()}


def find_input(arg, quick):
    """(path, market) of the recording: --data, else the bundled sample."""
    if arg:
        p = Path(arg)
        if not p.is_file():
            return None, f"{p} not found"
        return p, ("spot" if "spot" in p.name else "usdm")
    return (B.SAMPLE, "spot") if B.SAMPLE.is_file() else (None, f"{B.SAMPLE} not found")


# ---------------------------------------------------------------------------- orpflow side

def build_example(dst: Path):
    """Build examples/market_making's Cython strategies in dst against the installed orpflow
    and import mm_cython (the built module)."""
    for name in ("mm_cython.pyx", "grid_cython.pyx", "setup.py"):
        shutil.copy(EXAMPLE / name, dst / name)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    p = subprocess.run([sys.executable, "setup.py", "build_ext", "--inplace"], cwd=dst, env=env,
                       capture_output=True, text=True, timeout=900)
    if p.returncode != 0:
        raise RuntimeError("building examples/market_making failed:\n" + (p.stdout + p.stderr)[-3000:])
    sys.path.insert(0, str(dst))
    import mm_cython
    return mm_cython


def orp_config(market: str):
    from orpflow.config import config_from_dict
    m = B.MARKETS[market]
    return config_from_dict({
        "instruments": [{"symbol": "BTCUSDT", "venue": m["venue"], "tick_size": m["tick"], "lot_size": m["lot"]}],
        "persistence": {"path": None},
        "features": {"groups": ["book"]},
        "risk": {"rate_per_second": 0, "rate_per_minute": 0, "rate_per_hour": 0,
                 "max_consecutive_losses": None, "reject_storm": None},
        "execution": {"warmup_rows": 0},
        "broker": {"latency_entry_ns": ENTRY_NS, "latency_response_ns": RESPONSE_NS, "cash": "1000000",
                   "taker_fee": str(TAKER_FEE), "maker_fee": str(MAKER_FEE),
                   "queue_model": "prob_power2", "queue_power": QUEUE_POWER},
    })


def orp_strategy(mod, p: dict):
    return mod.MarketMaker(p["order_units"], half_spread=p["half_spread"], skew=p["skew"],
                           max_position=p["max_orders"] * p["order_units"], microprice=False,
                           requote_ns=p["requote_ns"])


def orp_run(ev, cfg, mod, p: dict) -> tuple:
    import orpflow as of
    r = of.backtest(ev, cfg, strategy=orp_strategy(mod, p), measure=False)
    return r.seconds, r


def python_mm():
    """examples/market_making/mm.py (the Python twin of the Cython strategy)."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("mm_example_py", EXAMPLE / "mm.py")
    m = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(m)
    return m


def orp_summary(r, market: str, mid_last: float) -> dict:
    """Fills, volume (base asset) and PnL (quote) from orpflow's own records."""
    import numpy as np
    sym = next(iter(r.fills))
    f = r.fills[sym]
    o = r.orders[sym]
    tick = float(B.MARKETS[market]["tick"])
    qty = f["qty"].astype(np.float64) / B.SIZE_SCALE
    px = f["price"].astype(np.float64) * tick
    side = f["side"].astype(np.float64)
    cash = float(-(side * px * qty).sum())
    fees = float(f["fee"].sum())
    pos = float((side * qty).sum())
    return {"orders": int(len(o)), "fills": int(len(f)), "buy_fills": int((f["side"] > 0).sum()),
            "sell_fills": int((f["side"] < 0).sum()), "volume": float(qty.sum()),
            "buy_volume": float(qty[side > 0].sum()), "sell_volume": float(qty[side < 0].sum()),
            "position": pos, "fees": fees, "pnl": cash + pos * mid_last - fees,
            "maker_fills": int((f["liquidity"] == 0).sum())}


# ---------------------------------------------------------------------------- hftbacktest side

try:                                   # the loop exists only where hftbacktest does
    import numpy as _np
    from numba import njit as _njit
    from hftbacktest.order import (CANCELED as _CANCELED, EXPIRED as _EXPIRED, FILLED as _FILLED,
                                   GTX as _GTX, LIMIT as _LIMIT, NEW as _NEW, NONE as _NONE,
                                   PARTIALLY_FILLED as _PARTIAL)
except ImportError:                    # pragma: no cover - main() says why and skips
    _njit = None

if _njit is not None:
    @_njit
    def _side_state(od, oid):
        # 0 none (unknown or final), 1 in flight (new or cancel request pending), 2 open
        if oid == 0 or oid not in od:
            return 0
        o = od.get(oid)
        if o is None:
            return 0
        if o.status == _FILLED or o.status == _CANCELED or o.status == _EXPIRED:
            return 0
        if o.req != _NONE:
            return 1
        if o.status == _NEW or o.status == _PARTIAL:
            return 2
        return 0

    @_njit
    def _mm_loop(hbt, ts, step_ns, half, skew, max_orders, qty, units, scale, end_ts, out):
        # out[0]: decisions, out[1]: orders sent, out[2]: cancels sent, out[3]: the code of an
        # elapse that stopped the loop early (1: end of the data), out[4]: when
        bid_id = 0
        ask_id = 0
        bid_px = 0
        ask_px = 0
        next_id = 1
        n_dec = 0
        n_new = 0
        n_cxl = 0
        hbt.elapse(1)                          # starts the clock at the first row
        i = 0
        t = ts[0] if len(ts) else end_ts
        while True:
            if step_ns == 0:
                if i >= len(ts):
                    break
                t = ts[i]
                i += 1
            elif t > end_ts:
                break
            now = hbt.current_timestamp
            if t > now:
                rc = hbt.elapse(t - now)
                if rc != 0:
                    out[3] = rc
                    out[4] = now
                    break
            if step_ns > 0:
                t += step_ns
            depth = hbt.depth(0)
            bb = depth.best_bid_tick
            ba = depth.best_ask_tick
            if bb >= ba or depth.best_bid_qty <= 0 or depth.best_ask_qty <= 0:
                continue                       # crossed or an empty side: no usable book
            n_dec += 1
            # inventory in orders, from exact size units as orpflow's strategy computes it
            pos_units = round(hbt.position(0) * scale)
            q = float(pos_units) / float(units)
            r = (bb + ba) * 0.5 - q * skew
            want_b = int(math.floor(r - half))
            want_a = int(math.ceil(r + half))
            if want_b >= ba:
                want_b = ba - 1
            if want_a <= bb:
                want_a = bb + 1
            if pos_units >= max_orders * units or want_b <= 0:
                want_b = 0
            if pos_units <= -max_orders * units:
                want_a = 0
            od = hbt.orders(0)
            sb = _side_state(od, bid_id)
            sa = _side_state(od, ask_id)
            if not (sb == 1 or (sb == 2 and bid_px == want_b)):
                if sb == 2:
                    hbt.cancel(0, bid_id, False)
                    n_cxl += 1
                    bid_id = 0
                if want_b > 0:
                    hbt.submit_buy_order(0, next_id, want_b * depth.tick_size, qty, _GTX, _LIMIT, False)
                    bid_id = next_id
                    bid_px = want_b
                    next_id += 1
                    n_new += 1
            if not (sa == 1 or (sa == 2 and ask_px == want_a)):
                if sa == 2:
                    hbt.cancel(0, ask_id, False)
                    n_cxl += 1
                    ask_id = 0
                if want_a > 0:
                    hbt.submit_sell_order(0, next_id, want_a * depth.tick_size, qty, _GTX, _LIMIT, False)
                    ask_id = next_id
                    ask_px = want_a
                    next_id += 1
                    n_new += 1
            hbt.clear_inactive_orders(0)
        now = hbt.current_timestamp
        if end_ts > now:
            hbt.elapse(end_ts - now)
        out[0] = n_dec
        out[1] = n_new
        out[2] = n_cxl
        return n_dec


def hbt_asset(data, market: str, roi: tuple):
    from hftbacktest import BacktestAsset
    m = B.MARKETS[market]
    return (BacktestAsset().data([data]).linear_asset(1.0)
            .constant_order_latency(ENTRY_NS, RESPONSE_NS)
            .power_prob_queue_model2(QUEUE_POWER).no_partial_fill_exchange()
            .trading_value_fee_model(MAKER_FEE, TAKER_FEE)
            .tick_size(float(m["tick"])).lot_size(float(m["lot"]))
            .roi_lb(roi[0]).roi_ub(roi[1]).last_trades_capacity(0))


def hbt_build(data, market: str, roi: tuple):
    from hftbacktest import ROIVectorMarketDepthBacktest
    return ROIVectorMarketDepthBacktest([hbt_asset(data, market, roi)])


def hbt_run(data, market: str, roi: tuple, ts, p: dict, end_ts: int) -> tuple:
    import numpy as np
    hbt = hbt_build(data, market, roi)                   # data load: not timed
    out = np.zeros(5, np.int64)
    t0 = time.perf_counter()
    _mm_loop(hbt, ts, p["requote_ns"], p["half_spread"], p["skew"], p["max_orders"], p["qty"],
             p["order_units"], float(B.SIZE_SCALE), end_ts, out)
    dt = time.perf_counter() - t0
    return dt, hbt, out


def hbt_summary(hbt, out, mid_last: float, qty: float) -> dict:
    """From hftbacktest's state values; every fill is one whole order (no partial fills), so
    bought / qty is the number of buy fills."""
    sv = hbt.state_values(0)
    pos = float(sv.position)
    vol = float(sv.trading_volume)
    res = {"orders": int(out[1]), "cancels": int(out[2]), "decisions": int(out[0]), "fills": int(sv.num_trades),
           "buy_fills": round((vol + pos) / 2 / qty), "sell_fills": round((vol - pos) / 2 / qty),
           "volume": vol, "buy_volume": (vol + pos) / 2, "sell_volume": (vol - pos) / 2,
           "position": pos, "fees": float(sv.fee),
           "pnl": float(sv.balance) + pos * mid_last - float(sv.fee)}
    hbt.close()
    return res


# ---------------------------------------------------------------------------- main

def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="3 repetitions (default 7)")
    ap.add_argument("--reps", type=int, default=None, help="timed repetitions (default 7; 3 quick)")
    ap.add_argument("--data", help="a Binance recording (default: the bundled spot sample)")
    ap.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    ap.add_argument("--requote-ms", type=float, default=0.0,
                    help="decide every N ms of local time (default 0: after every depth message)")
    ap.add_argument("--half-spread", type=float, default=0.5, help="ticks (default 0.5: join the touch)")
    ap.add_argument("--skew", type=float, default=0.5, help="ticks per order of inventory (default 0.5)")
    ap.add_argument("--max-orders", type=int, default=5, help="position limit in orders (default 5)")
    ap.add_argument("--qty", help="order size, base asset (default: one lot; more than a lot fills whole "
                                  "orders only in hftbacktest, in lots in orpflow)")
    args = ap.parse_args(argv)
    reps = args.reps or (3 if args.quick else 7)
    result: dict = {"tool": "bench_mm_hftbacktest", "quick": args.quick, "reps": reps}

    def finish(code: int) -> int:
        if args.json:
            Path(args.json).write_text(json.dumps(result, indent=1, default=str))
            print(f"wrote {args.json}")
        return code

    try:
        import hftbacktest
        import numba
    except ImportError as e:
        result["skipped"] = f"hftbacktest not importable ({e}); pip install 'orpflow[bench]'"
        print(f"SKIP: {result['skipped']}")
        return finish(0)
    path, market = find_input(args.data, args.quick)
    if path is None:
        result["skipped"] = f"no recording: {market}"
        print(f"SKIP: {result['skipped']}")
        return finish(0)
    if args.half_spread < 0 or args.max_orders <= 0 or args.requote_ms < 0:
        print("error: --half-spread and --requote-ms must be >= 0, --max-orders > 0", file=sys.stderr)
        return 2

    import numpy as np
    import orpflow as of

    m = B.MARKETS[market]
    qty_s = args.qty or QTY[market]
    inst = of.Instrument("BTCUSDT", venue=m["venue"], tick_size=m["tick"], lot_size=m["lot"])
    try:
        order_units = int(inst.size_to_units(qty_s))
    except (ValueError, ArithmeticError) as e:
        print(f"error: --qty {qty_s}: {e}", file=sys.stderr)
        return 2
    params = {"order_units": order_units, "qty": float(qty_s), "half_spread": args.half_spread,
              "skew": args.skew, "max_orders": args.max_orders, "requote_ns": int(args.requote_ms * 1e6)}
    result["params"] = params
    print(f"orpflow {of.__version__} | hftbacktest {hftbacktest.__version__} | numba {numba.__version__} "
          f"| numpy {np.__version__} | Python {sys.version.split()[0]} | cpus {os.cpu_count()}")
    print(f"market maker: half-spread {args.half_spread} ticks around the mid, skew {args.skew} ticks per "
          f"order of inventory, {qty_s} a quote, max {args.max_orders} orders of inventory, "
          + (f"requote every {args.requote_ms:g} ms" if args.requote_ms else "requote after every depth message")
          + f"; latency {ENTRY_NS / 1e6:g} ms + {RESPONSE_NS / 1e6:g} ms; queue models orpflow prob_power2 / "
          f"hftbacktest PowerProbQueueFunc2, n = {QUEUE_POWER:g}")
    with tempfile.TemporaryDirectory(prefix="orpflow-mm-hbt-") as td:
        tmp = Path(td)
        src = path
        if market == "spot":
            src = tmp / "spot_for_both.gz"
            B.spot_for_hftbacktest(path, src)
        print(f"data: {path} ({market}; the same {'rewritten ' if src != path else ''}file for both)")
        result.update(data=str(path), market=market)
        build = tmp / "build"
        build.mkdir()
        t0 = time.perf_counter()
        mod = build_example(build)
        print(f"built examples/market_making (Cython) in {time.perf_counter() - t0:.1f} s")

        shift = B.hbt_shift(src)
        data = B.hbt_arrival_order(B.hbt_convert(src, "t"), B.hbt_shift(src, True) - shift)
        ev = B.orp_events(src, market, shift)
        ts = B.hbt_eval_points(data)
        end_ts = int(data["exch_ts"].max())
        prices = data["px"][(data["ev"] & 0xFF) == 2]
        mid = float(np.median(prices)) if len(prices) else float(np.median(data["px"]))
        roi = (round(mid * 0.8), round(mid * 1.2))
        cfg = orp_config(market)

        # the compared runs; the first hftbacktest one compiles the numba loop
        _, r = orp_run(ev, cfg, mod, params)
        pymod = python_mm()
        _, rp = orp_run(ev, cfg, pymod, params)
        sym = next(iter(r.fills))
        same_py = bool(np.array_equal(r.orders[sym], rp.orders[sym]) and np.array_equal(r.fills[sym], rp.fills[sym]))
        t0 = time.perf_counter()
        _, hbt, out = hbt_run(data, market, roi, ts, params, end_ts)
        print(f"hftbacktest first run (numba compilation included): {time.perf_counter() - t0:.1f} s")
        if out[3] not in (0, 1):
            print(f"*** hftbacktest stopped early: elapse returned {out[3]} at {out[4]} (its error code) ***")
            result["hftbacktest_error"] = int(out[3])
        mid_last = 0.5 * (float(hbt.depth(0).best_bid) + float(hbt.depth(0).best_ask))
        h = hbt_summary(hbt, out, mid_last, params["qty"])
        o = orp_summary(r, market, mid_last)

        samples: dict = {"orpflow": [], "hftbacktest": [], "orpflow_python": []}
        for _ in range(reps):                            # alternating, same process
            samples["orpflow"].append(orp_run(ev, cfg, mod, params)[0])
            samples["orpflow_python"].append(orp_run(ev, cfg, pymod, params)[0])
            dt, hb, _o = hbt_run(data, market, roi, ts, params, end_ts)
            hb.close()
            samples["hftbacktest"].append(dt)
        med = {k: statistics.median(v) for k, v in samples.items()}
        lines_n = sum(1 for _ in __import__("gzip").open(src, "rb"))

        print()
        print(f"  {'':28} {'orpflow (Cython strategy)':>26} {'hftbacktest (@njit loop)':>26}")
        rows = [("orders sent", "orders", "d"), ("fills", "fills", "d"), ("  buy fills", "buy_fills", "d"),
                ("  sell fills", "sell_fills", "d"), ("traded volume (base)", "volume", ".5f"),
                ("  bought", "buy_volume", ".5f"), ("  sold", "sell_volume", ".5f"),
                ("final position (base)", "position", ".5f"), ("fees (quote)", "fees", ".4f"),
                ("PnL at the last mid (quote)", "pnl", ".4f")]
        for label, key, fmt in rows:
            a = o.get(key)
            b = h.get(key)
            fa = "-" if a is None else format(a, fmt)
            fb = "-" if b is None else format(b, fmt)
            print(f"  {label:28} {fa:>26} {fb:>26}")
        print(f"  {'loop s (median of ' + str(reps) + ')':28} {med['orpflow']:26.4f} {med['hftbacktest']:26.4f}")
        print(f"  {'messages/s':28} {lines_n / med['orpflow']:26,.0f} {lines_n / med['hftbacktest']:26,.0f}")
        n_orp, n_hbt = int(r.counters["events"]), len(data)
        print(f"  {'events/s (own unit)':28} {n_orp / med['orpflow']:26,.0f} {n_hbt / med['hftbacktest']:26,.0f}")
        print(f"  {'  events':28} {n_orp:>17,} records {n_hbt:>21,} rows")
        ratio = med["hftbacktest"] / med["orpflow"]
        print(f"orpflow / hftbacktest throughput: {ratio:.2f}x (hftbacktest loop time / orpflow loop time "
              f"on {lines_n:,} messages; > 1: orpflow faster)")
        print(f"orpflow with the same strategy in Python (mm.py): {med['orpflow_python']:.4f} s, "
              f"{lines_n / med['orpflow_python']:,.0f} messages/s ({med['orpflow_python'] / med['orpflow']:.1f}x the "
              f"Cython one's time); orders and fills {'IDENTICAL to' if same_py else '*** DIFFERENT from ***'} "
              "the Cython strategy's")
        print("fills differ by the two venues' model definitions, listed in this script's docstring "
              "(queue estimate rounding, per-message vs per-row depth, touch vs through, when the "
              "strategy learns)")
        result.update(orpflow=o, hftbacktest=h, loop={k: {"median_s": med[k], "samples": samples[k],
                                                          "messages_per_s": lines_n / med[k]} for k in med},
                      ratio=ratio, messages=lines_n, python_identical=same_py,
                      events={"orpflow_records": n_orp, "hftbacktest_rows": n_hbt})
    return finish(0 if same_py else 1)


if __name__ == "__main__":
    sys.exit(main())
