#!/usr/bin/env python
"""orpflow vs hftbacktest 2.4.4 side by side: the same rule, the same orders and fills, timed.

    python benchmarks/bench_hftbacktest.py [--quick] [--reps N] [--data FILE] [--json PATH]
    python benchmarks/bench_hftbacktest.py --callgrind     # orpflow's side only, under valgrind

The rule, in both: top-5 book imbalance I = (sum bid sizes - sum ask sizes) / sum, top 5 levels,
evaluated after every complete depth message (and the REST snapshot) once the book is synced;
strength tanh(I); long when tanh(I) >= tanh(0.3), short when <= -tanh(0.3) (orpflow's "linear"
generator with weight 1 on `imbalance` and entry_threshold tanh(0.3)); the target position is
one lot on the signal's side; a signal whose side differs from the previous one sends a market
order for target - (position + open orders) (so 1 lot to enter, 2 to reverse); constant
latencies 1 ms entry and 1 ms response. orpflow: `of.backtest` with the engine config below.
hftbacktest: its own converter (hftbacktest.data.utils.binancefutures.convert), a
`partial_fill_exchange` asset, and an @njit loop that `elapse`s to each depth message's local
time and mirrors the position rules. Orders and fills are compared one by one; a mismatch is
printed loudly and the exit status is 1.

Only the backtest loops are timed (conversion and numba compilation excluded: one warm-up run
first), as medians of N alternating repetitions in one process. Whole-process time and peak RSS
come from one fresh child process per engine (load the prepared input, run once, exit).
"""
from __future__ import annotations

import argparse
import gzip
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
USDM_FILE = "usdm_btcusdt_20240808.gz"
SAMPLE = REPO / "examples" / "data" / "binance_spot_btcusdt_sample.gz"
THRESHOLD = math.tanh(0.3)
ENTRY_NS = 1_000_000
RESPONSE_NS = 1_000_000
SIZE_SCALE = 10 ** 8          # orpflow's size units: 1e-8 of the base asset
MAX_ORDERS = 1_000_000


def find_input(arg: str | None, quick: bool) -> tuple:
    """(path, market) of the recording to use, or (None, reason)."""
    if arg:
        p = Path(arg)
        if not p.is_file():
            return None, f"{p} not found"
        return p, ("spot" if "spot" in p.name else "usdm")
    if quick:
        return (SAMPLE, "spot") if SAMPLE.is_file() else (None, f"{SAMPLE} not found")
    base = Path(os.environ["ORPFLOW_DATA"]) if os.environ.get("ORPFLOW_DATA") else REPO.parent / "shared" / "data"
    p = base / "binance" / USDM_FILE
    if not p.is_file():
        return None, f"{p} not present (set ORPFLOW_DATA to the folder holding binance/)"
    return p, "usdm"


MARKETS = {
    # tick, lot; equity = 90,000 x lot so that equity / mid rounds down to one lot for any
    # mid in (45,000, 90,000): a fixed order size of one lot (BTC was ~61,800 on 2024-08-08)
    "usdm": dict(venue="binance-usdm", tick="0.1", lot="0.001"),
    "spot": dict(venue="binance-spot", tick="0.01", lot="0.00001"),
}


def spot_for_hftbacktest(src: Path, dst: Path) -> int:
    """hftbacktest 2.4.4 ships a Binance *futures* converter only. Spot messages lack fields it
    reads, so the spot file is rewritten once, for BOTH engines: depth diffs get T = E (what
    orpflow uses when T is missing), trades X = "MARKET", the REST snapshot T = its receive
    time in ms; bookTicker lines (no "e" in spot; neither strategy reads them) are dropped."""
    n = 0
    with gzip.open(src, "rb") as fi, gzip.open(dst, "wb", compresslevel=1) as fo:
        for line in fi:
            ts, _, raw = line.partition(b" ")
            msg = json.loads(raw)
            d = msg.get("data")
            if d is None:
                if "lastUpdateId" in msg:
                    msg["T"] = int(ts) // 1_000_000
                    msg["E"] = msg["T"]
            else:
                kind = d.get("e")
                if kind is None:
                    continue                       # spot bookTicker
                if kind == "depthUpdate":
                    d.setdefault("T", d["E"])
                elif kind == "trade":
                    d.setdefault("X", "MARKET")
            fo.write(ts + b" " + json.dumps(msg, separators=(",", ":")).encode() + b"\n")
            n += 1
    return n


# ---------------------------------------------------------------------------- orpflow side

def orp_config(market: str):
    import orpflow as of  # noqa: F401
    from orpflow.config import config_from_dict
    m = MARKETS[market]
    lot = float(m["lot"])
    return config_from_dict({
        "instruments": [{"symbol": "BTCUSDT", "venue": m["venue"], "tick_size": m["tick"], "lot_size": m["lot"]}],
        "persistence": {"path": None},
        # only the group the rule reads (imbalance is in "book"); hftbacktest computes nothing else
        "features": {"groups": ["book"]},
        "signal": {"generator": "linear", "weights": {"imbalance": 1.0}, "bias": 0.0,
                   "entry_threshold": THRESHOLD, "min_interval_ms": 0, "exit_on_holding": False,
                   "equity": 90_000 * lot, "base_position_pct": 1.0},
        "risk": {"rate_per_second": 0, "rate_per_minute": 0, "rate_per_hour": 0,
                 "max_consecutive_losses": None, "reject_storm": None},
        "execution": {"warmup_rows": 0, "order_type": "market"},
        "broker": {"latency_entry_ns": ENTRY_NS, "latency_response_ns": RESPONSE_NS,
                   "taker_fee": "0.0004", "maker_fee": "0.0001"},
    })


def orp_events(path: Path, market: str, shift_ns: int):
    """orpflow's records of the file, local clock shifted by hftbacktest's own correction
    (the recorder's clock ran behind the exchange's; hftbacktest moves every local time by the
    same constant so that no feed latency is negative): both engines then see identical
    local and exchange times, so the 1 ms order latency means the same thing in both."""
    import orpflow as of
    m = MARKETS[market]
    inst = of.Instrument("BTCUSDT", venue=m["venue"], tick_size=m["tick"], lot_size=m["lot"])
    ev = of.read_binance([str(path)], inst)
    ev["ts_local"] += shift_ns
    return ev


def orp_run(ev, cfg) -> tuple:
    import orpflow as of
    r = of.backtest(ev, cfg, measure=False)
    sym = next(iter(r.orders))
    return r.seconds, r.orders[sym], r.fills[sym], int(r.counters["events"])


# ---------------------------------------------------------------------------- hftbacktest side

def hbt_shift(path: Path, book_ticker: bool = False) -> int:
    """The constant hftbacktest's converter adds to every local time: -(min feed latency)
    over the rows it makes (validation.correct_local_timestamp, base latency 0): depth, market
    trades and the snapshot; bookTicker too when converted with opt="t"."""
    lat = None
    with gzip.open(path, "rb") as fh:
        for line in fh:
            ts, _, raw = line.partition(b" ")
            msg = json.loads(raw)
            d = msg.get("data", msg)
            kind = d.get("e")
            if kind == "trade" and d.get("X") != "MARKET":
                continue
            if kind in ("trade", "depthUpdate") or "lastUpdateId" in d or (book_ticker and kind == "bookTicker"):
                x = int(ts) - int(d["T"]) * 1_000_000
                lat = x if lat is None else min(lat, x)
    return -lat if lat is not None and lat < 0 else 0


def hbt_convert(src: Path, opt: str = ""):
    """hftbacktest's own converter (it prints its steps: silenced)."""
    import contextlib
    import io
    from hftbacktest.data.utils import binancefutures
    with contextlib.redirect_stdout(io.StringIO()):
        return binancefutures.convert(str(src), opt=opt, buffer_size=20_000_000)


def hbt_arrival_order(data_t, local_offset: int = 0):
    """The converter's rows (made with opt="t", so bookTicker times are there too) with each
    exchange time replaced by the running maximum of the exchange times received so far, in
    arrival order; then the bookTicker rows dropped and hftbacktest's own correct_event_order.

    Why: orpflow's simulated venue matches against the book as the recorder received it, its
    clock the running maximum of `ts_exch` over every record (bookTicker included); an order
    arriving at t is matched before the first record whose exchange time is >= t.
    hftbacktest's exchange side replays the rows in exchange-time order, so it also sees depth
    messages stamped before t that were still in flight to the recorder. With exchange times
    made monotone in arrival order, hftbacktest's exchange replays exactly orpflow's venue
    timeline; the default converter output is also run (native) and its differences shown.
    local_offset is subtracted from every local time: with opt="t" the converter's clock shift
    also covers the bookTicker rows; this puts the local times back on the default one."""
    import numpy as np
    from hftbacktest import EXCH_EVENT, LOCAL_EVENT
    from hftbacktest.data.validation import correct_event_order, validate_event_order
    rows = data_t[(data_t["ev"] & LOCAL_EVENT) != 0].copy()     # local order = arrival order
    rows["ev"] &= ~np.uint64(EXCH_EVENT | LOCAL_EVENT)
    rows["exch_ts"] = np.maximum.accumulate(rows["exch_ts"])
    rows["local_ts"] -= local_offset
    rows = rows[(rows["ev"] & 0xFF) < 100]                       # drop the custom bookTicker rows
    out = correct_event_order(rows, np.argsort(rows["exch_ts"], kind="mergesort"),
                              np.argsort(rows["local_ts"], kind="mergesort"))
    validate_event_order(out)
    return out


def hbt_eval_points(data):
    """Local times of every depth message (and the snapshot) from the snapshot on: where the
    strategy decides (orpflow's book is not usable before the snapshot)."""
    import numpy as np
    from hftbacktest import DEPTH_EVENT, DEPTH_SNAPSHOT_EVENT, LOCAL_EVENT
    kind = data["ev"] & 0xFF
    local = (data["ev"] & LOCAL_EVENT) != 0
    snap = local & (kind == DEPTH_SNAPSHOT_EVENT)
    ts = np.unique(data["local_ts"][local & ((kind == DEPTH_EVENT) | snap)])
    return ts[ts >= data["local_ts"][snap].min()] if snap.any() else ts[:0]


def hbt_asset(data, market: str, roi: tuple):
    from hftbacktest import BacktestAsset
    m = MARKETS[market]
    return (BacktestAsset().data([data]).linear_asset(1.0)
            .constant_order_latency(ENTRY_NS, RESPONSE_NS)
            .power_prob_queue_model(2.0).partial_fill_exchange()
            .trading_value_fee_model(0.0001, 0.0004)
            .tick_size(float(m["tick"])).lot_size(float(m["lot"]))
            .roi_lb(roi[0]).roi_ub(roi[1]).last_trades_capacity(0))


def hbt_build(kind: str, data, market: str, roi: tuple):
    from hftbacktest import HashMapMarketDepthBacktest, ROIVectorMarketDepthBacktest
    cls = ROIVectorMarketDepthBacktest if kind == "roivec" else HashMapMarketDepthBacktest
    return cls([hbt_asset(data, market, roi)])


try:                                   # the strategy loop exists only where hftbacktest does
    import numpy as _np
    from numba import njit as _njit
    from hftbacktest.order import BUY as _BUY, IOC as _IOC, MARKET as _MARKET, NEW as _NEW, NONE as _NONE
except ImportError:                    # pragma: no cover - main() says why and skips
    _njit = None

if _njit is not None:
    # no cache=True: hftbacktest's bindings hold ctypes pointers, which numba cannot cache, so
    # every process compiles the loop once (~10 s of CPU)

    @_njit
    def _imb5(depth, scale):
        # top 5 non-empty levels a side, sizes in orpflow's exact integer units
        b = 0
        a = 0
        n = 0
        t = depth.best_bid_tick
        stop = t - 1_000_000
        while n < 5 and t > stop:
            q = depth.bid_qty_at_tick(t)
            if q > 0:
                b += int(round(q * scale))
                n += 1
            t -= 1
        n = 0
        t = depth.best_ask_tick
        stop = t + 1_000_000
        while n < 5 and t < stop:
            q = depth.ask_qty_at_tick(t)
            if q > 0:
                a += int(round(q * scale))
                n += 1
            t += 1
        if a + b == 0:
            return _np.nan
        return float(b - a) / float(b + a)

    @_njit
    def _hbt_loop(hbt, ts, lot, scale, thr, end_ts, out):
        # out[k] = order id, local send time, side, lots, fills so far (state num_trades)
        sig = 0
        n = 0
        hbt.elapse(1)                       # starts the clock at the first row
        for i in range(len(ts)):
            now = hbt.current_timestamp
            if ts[i] > now:
                if hbt.elapse(ts[i] - now) != 0:
                    break
            depth = hbt.depth(0)
            if depth.best_bid_tick >= depth.best_ask_tick:
                continue                    # crossed or an empty side: no usable book
            imb = _imb5(depth, scale)
            if imb != imb:
                continue
            s = math.tanh(imb)
            side = 1 if s >= thr else (-1 if s <= -thr else 0)
            if side == 0 or side == sig:
                continue                    # none, or same side: an add of half a lot = 0 lots
            sig = side
            openq = 0.0
            vals = hbt.orders(0).values()
            while vals.has_next():
                o = vals.get()
                if o.status == _NEW or o.status == _NONE:
                    openq += o.leaves_qty if o.side == _BUY else -o.leaves_qty
            lots = round((side * lot - (hbt.position(0) + openq)) / lot)
            if lots * side <= 0:
                continue
            out[n, 0] = n + 1
            out[n, 1] = hbt.current_timestamp
            out[n, 2] = side
            out[n, 3] = abs(lots)
            out[n, 4] = hbt.state_values(0).num_trades
            if side > 0:
                hbt.submit_buy_order(0, n + 1, depth.best_ask, abs(lots) * lot, _IOC, _MARKET, False)
            else:
                hbt.submit_sell_order(0, n + 1, depth.best_bid, abs(lots) * lot, _IOC, _MARKET, False)
            n += 1
        # orpflow's venue handles a request only before a later record whose exchange time has
        # reached its arrival: run on to the last exchange time of the data, no further
        now = hbt.current_timestamp
        if end_ts > now:
            hbt.elapse(end_ts - now)
        return n


def hbt_run(hbt, ts, market: str, end_ts: int) -> tuple:
    import numpy as np
    lot = float(MARKETS[market]["lot"])
    out = np.zeros((MAX_ORDERS, 5), np.int64)
    t0 = time.perf_counter()
    n = _hbt_loop(hbt, ts, lot, float(SIZE_SCALE), THRESHOLD, end_ts, out)
    dt = time.perf_counter() - t0
    return dt, out[:n], hbt


def hbt_orders(out, hbt, market: str) -> list:
    """Per order: (side, lots, status, filled lots, fills, exec price in ticks or None)."""
    from hftbacktest.order import FILLED
    tick = float(MARKETS[market]["tick"])
    lot = float(MARKETS[market]["lot"])
    trades_end = hbt.state_values(0).num_trades
    od = hbt.orders(0)
    res = []
    for k in range(len(out)):
        o = od.get(int(out[k, 0]))
        nt_next = int(out[k + 1, 4]) if k + 1 < len(out) else trades_end
        if o is None:
            res.append((int(out[k, 2]), int(out[k, 3]), "missing", 0, 0, None))
            continue
        filled = round((o.qty - o.leaves_qty) / lot)
        res.append((int(out[k, 2]), int(out[k, 3]), "filled" if o.status == FILLED else f"status{o.status}",
                    filled, nt_next - int(out[k, 4]), round(o.exec_price / tick) if filled else None,
                    int(out[k, 1])))
    return res


def orp_orders(orders, fills, market: str) -> list:
    lot_units = round(float(MARKETS[market]["lot"]) * SIZE_SCALE)
    res = []
    for o in orders:
        f = fills[fills["order_id"] == o["id"]]
        last = int(f["price"][-1]) if len(f) else None
        res.append((int(o["side"]), int(o["qty"]) // lot_units, "filled" if o["filled"] == o["qty"] else "partial",
                    int(o["filled"]) // lot_units, len(f), last, int(o["ts_request"])))
    return res


def compare(orp: list, hbt: list, show: int) -> tuple:
    """Orders and fills one by one: (identical?, lines to print)."""
    lines = [f"  {'#':>4}  {'send time (local ns)':>20}  side  lots  | orpflow: filled fills price(ticks)"
             f" | hftbacktest: filled fills price(ticks)"]
    bad = []
    for i in range(max(len(orp), len(hbt))):
        a = orp[i] if i < len(orp) else None
        b = hbt[i] if i < len(hbt) else None
        same = a is not None and b is not None and a[:2] == b[:2] and a[3:6] == b[3:6] and a[6] == b[6]
        if not same:
            bad.append(i)
        if i < show or not same:
            ts = (a or b)[6]
            sa = f"{a[3]:>3} {a[4]:>3} {a[5]!s:>10}" if a else "     (none)       "
            sb = f"{b[3]:>3} {b[4]:>3} {b[5]!s:>10}" if b else "     (none)       "
            side = (a or b)[0]
            lots = (a or b)[1]
            lines.append(f"  {i + 1:>4}  {ts:>20}  {'buy ' if side > 0 else 'sell'}  {lots:>4}  | {sa}"
                         f" | {sb}{'' if same else '   <-- MISMATCH'}")
    return not bad, lines, bad


# ---------------------------------------------------------------------------- child processes

CHILD_ORP = r'''
import sys, time, json, numpy as np
sys.path.insert(0, sys.argv[1])
import bench_hftbacktest as B
ev = np.load(sys.argv[2])
cfg = B.orp_config(sys.argv[3])
sec, orders, fills, n = B.orp_run(ev, cfg)
print(json.dumps({"loop_s": sec, "orders": len(orders), "vmhwm_kb": B.vmhwm_kb()}))
'''

CHILD_HBT = r'''
import sys, time, json, numpy as np
sys.path.insert(0, sys.argv[1])
import bench_hftbacktest as B
data = np.load(sys.argv[2])["data"]
ts = B.hbt_eval_points(data)
roi = (float(sys.argv[5]), float(sys.argv[6]))
hbt = B.hbt_build(sys.argv[4], data, sys.argv[3], roi)
sec, out, hbt = B.hbt_run(hbt, ts, sys.argv[3], int(data["exch_ts"].max()))
print(json.dumps({"loop_s": sec, "orders": len(out), "vmhwm_kb": B.vmhwm_kb()}))
'''


def vmhwm_kb() -> int:
    """This process's peak RSS (Linux VmHWM; reset at exec, unlike a forked child's
    ru_maxrss, which starts from the parent's size); getrusage elsewhere."""
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def child(argv: list) -> dict:
    """Run a fresh interpreter; its wall time, CPU time and peak RSS (os.wait4's rusage)."""
    t0 = time.perf_counter()
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = p.stdout.read(), p.stderr.read()
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        raise RuntimeError(f"child exit {p.returncode}: {err.decode(errors='replace').strip().splitlines()[-1:]}")
    res = json.loads(out.decode().strip().splitlines()[-1])
    res.update(wall_s=wall, cpu_s=ru.ru_utime + ru.ru_stime, peak_rss_mb=res["vmhwm_kb"] / 1024)
    return res


# ---------------------------------------------------------------------------- main

CG_CHILD = r"""
import gc, sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
import bench_hftbacktest as B
import orpflow as of
cfg = B.orp_config(sys.argv[3])
ev = B.orp_events(Path(sys.argv[2]), sys.argv[3], 0)
of.backtest(ev[:1000], cfg, measure=False)          # warm: first-call work outside the count
gc.disable()
r = of.backtest(ev, cfg, measure=False)
print(len(ev), r.counters["orders"], r.counters["fills"])
"""


def orp_callgrind(path: Path, market: str) -> dict:
    """Instructions and simulated branch mispredicts per record of orpflow's whole loop for this
    rule (book -> features -> signal -> risk -> broker -> records), counted inside the compiled
    run only (valgrind --toggle-collect on EngineCore.run_array, --branch-sim=yes)."""
    import shutil
    if shutil.which("valgrind") is None:
        raise RuntimeError("valgrind not on PATH")
    with tempfile.TemporaryDirectory(prefix="orpflow-cg-") as td:
        tmp = Path(td)
        (tmp / "child.py").write_text(CG_CHILD)
        out = tmp / "cg.out"
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        p = subprocess.run(["valgrind", "--tool=callgrind", "--branch-sim=yes",
                            "--toggle-collect=__pyx_pw_*run_array", f"--callgrind-out-file={out}",
                            sys.executable, str(tmp / "child.py"), str(REPO / "benchmarks"), str(path), market],
                           capture_output=True, text=True, cwd=tmp, env=env, timeout=1800)
        if p.returncode != 0:
            raise RuntimeError(f"valgrind exit {p.returncode}: {p.stderr.strip().splitlines()[-1:]}")
        n, orders, fills = (int(x) for x in p.stdout.split()[-3:])
        names = totals = None
        for line in out.read_text().splitlines():
            if line.startswith("events:"):
                names = line.split()[1:]
            elif line.startswith(("summary:", "totals:")):
                totals = [int(x) for x in line.split()[1:]]
        if not names or not totals or totals[0] == 0:
            raise RuntimeError("no instruction total in the callgrind output")
        ev = dict(zip(names, totals))
        return {"records": n, "orders": orders, "fills": fills, "instr_per_record": ev["Ir"] / n,
                "mispredicts_per_record": (ev.get("Bcm", 0) + ev.get("Bim", 0)) / n,
                "cond_branches_per_record": ev.get("Bc", 0) / n}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true",
                    help="the bundled spot sample, 3 repetitions, ROIVector only, no child processes")
    ap.add_argument("--reps", type=int, default=None, help="timed repetitions (default 7; 3 quick)")
    ap.add_argument("--data", help="a Binance recording (default: the USD-M 2024-08-08 file)")
    ap.add_argument("--json", metavar="PATH", help="also write the figures and the comparison as JSON")
    ap.add_argument("--show", type=int, default=10, help="orders to print beside each other (mismatches always)")
    ap.add_argument("--callgrind", action="store_true",
                    help="only orpflow's loop for this rule under valgrind: instructions and simulated "
                         "branch mispredicts per record (no hftbacktest needed)")
    args = ap.parse_args(argv)
    reps = args.reps or (3 if args.quick else 7)
    result: dict = {"tool": "bench_hftbacktest", "quick": args.quick, "reps": reps}

    def finish(code: int) -> int:
        if args.json:
            Path(args.json).write_text(json.dumps(result, indent=1, default=str))
            print(f"wrote {args.json}")
        return code

    if args.callgrind:
        path, market = find_input(args.data, args.quick)
        if path is None:
            print(f"SKIP: no recording: {market}")
            return 0
        print(f"callgrind, orpflow's loop for the rule on {path.name} ({market}) ...", flush=True)
        cg = orp_callgrind(path, market)
        result["callgrind"] = cg
        print(f"  {cg['records']:,} records, {cg['orders']} orders, {cg['fills']} fills: "
              f"{cg['instr_per_record']:.1f} instructions, {cg['mispredicts_per_record']:.3f} branch "
              f"mispredicts, {cg['cond_branches_per_record']:.1f} conditional branches per record")
        return finish(0)
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

    import numpy as np
    import orpflow as of

    print(f"orpflow {of.__version__} | hftbacktest {hftbacktest.__version__} | numba {numba.__version__} "
          f"| numpy {np.__version__} | Python {sys.version.split()[0]} | cpus {os.cpu_count()}")
    result.update(orpflow=of.__version__, hftbacktest=hftbacktest.__version__, numba=numba.__version__)
    with tempfile.TemporaryDirectory(prefix="orpflow-hbt-") as td:
        tmp = Path(td)
        src = path
        if market == "spot":
            src = tmp / "spot_for_both.gz"
            spot_for_hftbacktest(path, src)
        print(f"data: {path} ({market}; the same {'rewritten ' if src != path else ''}file for both)")
        result.update(data=str(path), market=market)

        t0 = time.perf_counter()
        shift = hbt_shift(src)
        datas = {"arrival": hbt_arrival_order(hbt_convert(src, "t"), hbt_shift(src, True) - shift)}
        if not args.quick:
            datas["native"] = hbt_convert(src, "")
        conv_s = time.perf_counter() - t0
        ev = orp_events(src, market, shift)
        ts = hbt_eval_points(datas["arrival"])
        end_ts = int(datas["arrival"]["exch_ts"].max())

        # clock alignment check: orpflow's depth-message local times must be hftbacktest's
        last = (ev["flags"] & int(of.Flags.LAST)) != 0
        deep = (ev["flags"] & int(of.Flags.DEPTH | of.Flags.SNAPSHOT)) != 0
        o_ts = np.unique(ev["ts_local"][last & deep])
        o_ts = o_ts[o_ts >= ts[0]] if len(ts) else o_ts
        aligned = len(o_ts) == len(ts) and bool(np.array_equal(o_ts, ts))
        print(f"hftbacktest convert: {conv_s:.1f} s; local clock shift {shift:,} ns (hftbacktest's "
              f"correction, applied to orpflow's records too); decision points: {len(ts):,} depth messages; "
              f"clocks {'aligned' if aligned else 'NOT ALIGNED (orpflow ' + str(len(o_ts)) + ')'}")
        data0 = datas["arrival"]
        prices = data0["px"][(data0["ev"] & 0xFF) == 2]
        mid = float(np.median(prices)) if len(prices) else float(np.median(data0["px"]))
        roi = (round(mid * 0.8), round(mid * 1.2))
        cfg = orp_config(market)

        names = {"roivec": "ROIVectorMarketDepthBacktest", "hashmap": "HashMapMarketDepthBacktest"}
        variants = [("roivec", "arrival")] if args.quick else [
            ("roivec", "arrival"), ("hashmap", "arrival"), ("roivec", "native"), ("hashmap", "native")]
        vname = {v: f"{names[v[0]]}{'' if v[1] == 'arrival' else ' (native order)'}" for v in variants}
        # the compared runs; the first one also compiles the numba loop (the warm-up)
        o_sec, o_orders, o_fills, o_n = orp_run(ev, cfg)
        orp_list = orp_orders(o_orders, o_fills, market)
        cmp: dict = {}
        for v in variants:
            t0 = time.perf_counter()
            hsec, out, hbt = hbt_run(hbt_build(v[0], datas[v[1]], market, roi), ts, market, end_ts)
            cmp[v] = hbt_orders(out, hbt, market)
            hbt.close()
            if v == variants[0]:
                print(f"{vname[v]} first run (numba compile included): {time.perf_counter() - t0:.1f} s")

        samples: dict = {"orpflow": [], **{v: [] for v in variants}}
        for r in range(reps):                           # alternating, same process
            samples["orpflow"].append(orp_run(ev, cfg)[0])
            for v in variants:
                h = hbt_build(v[0], datas[v[1]], market, roi)     # building (data load) is not timed
                samples[v].append(hbt_run(h, ts, market, end_ts)[0])
                h.close()
        med = {k: statistics.median(x) for k, x in samples.items()}

        print()
        n_orp_fills = int(len(o_fills))
        identical = aligned
        result["compare"] = {}
        for v in variants:
            same, lines, bad = compare(orp_list, cmp[v], args.show if v == variants[0] else 0)
            n_h_fills = sum(x[4] for x in cmp[v])
            verdict = ("IDENTICAL (side, lots, filled lots, fill count, last fill price, send time)" if same
                       else f"*** MISMATCH in {len(bad)} of {max(len(orp_list), len(cmp[v]))} orders ***")
            print(f"orders and fills, orpflow vs {vname[v]}: orpflow {len(orp_list)} orders / {n_orp_fills} fills, "
                  f"hftbacktest {len(cmp[v])} orders / {n_h_fills} fills; {verdict}")
            for line in lines if len(lines) > 1 else []:
                print(line)
            shown = len(lines) - 1
            if v == variants[0] and shown < max(len(orp_list), len(cmp[v])):
                print(f"  ... {max(len(orp_list), len(cmp[v])) - shown} more orders, all identical")
            result["compare"][vname[v]] = dict(identical=same, mismatched_orders=[i + 1 for i in bad[:100]],
                                               orpflow_orders=len(orp_list), hftbacktest_orders=len(cmp[v]),
                                               orpflow_fills=n_orp_fills, hftbacktest_fills=n_h_fills)
            if v[1] == "arrival":
                identical &= same
                if not same:
                    print(f"*** MISMATCH: orpflow and {vname[v]} disagree on {len(bad)} orders "
                          "with the same venue timeline: a bug in one of the two or in this mirror ***")
            elif not same:
                print(f"  (native order: hftbacktest's exchange replays rows in exchange-time order, so an order "
                      f"also meets depth messages stamped before its arrival but still in flight to the recorder; "
                      f"orpflow's venue matches against the book as received. That accounts for these "
                      f"{len(bad)} orders; the arrival-order run above has the same input otherwise.)")
        result["identical"] = identical
        if not aligned:
            print("*** MISMATCH: the two engines' decision points (depth-message local times) differ ***")

        lines_n = sum(1 for _ in gzip.open(src, "rb"))
        print()
        print(f"backtest loop only, median of {reps} alternating runs (input: {lines_n:,} messages; "
              "build, data load and numba compilation excluded)")
        print(f"  {'engine':48} {'loop s':>8} {'market rows':>12} {'rows/s':>12} {'messages/s':>12} {'vs orpflow':>11}")
        rows = {"orpflow": o_n, **{v: len(datas[v[1]]) for v in variants}}
        label = {"orpflow": "orpflow backtest (Cython)", **vname}
        result["loop"] = {}
        for k in ["orpflow", *variants]:
            ratio = med[k] / med["orpflow"]
            print(f"  {label[k]:48} {med[k]:8.3f} {rows[k]:12,} {rows[k] / med[k]:12,.0f} {lines_n / med[k]:12,.0f} "
                  f"{'-' if k == 'orpflow' else f'{ratio:.2f}x':>11}")
            result["loop"][label[k]] = dict(median_s=med[k], samples=samples[k], rows=rows[k],
                                            rows_per_s=rows[k] / med[k], messages_per_s=lines_n / med[k])
        for v in variants:
            if v[1] == "arrival":
                result[f"ratio_orpflow_vs_{v[0]}"] = med[v] / med["orpflow"]
            print(f"orpflow / {vname[v]}: {med[v] / med['orpflow']:.2f}x")
        print("ratio = hftbacktest loop time / orpflow loop time on the same recording (> 1: orpflow faster). "
              "rows: orpflow counts its records (every level, trade and bookTicker quote once); hftbacktest "
              "its event rows (native order: most rows twice, exchange- and local-side; no bookTicker)")

        if not args.quick:
            np.save(tmp / "orp_events.npy", ev)
            np.savez(tmp / "hbt_data.npz", data=datas["arrival"])
            here = str(Path(__file__).resolve().parent)
            (tmp / "child_orp.py").write_text(CHILD_ORP)
            (tmp / "child_hbt.py").write_text(CHILD_HBT)
            procs = {"orpflow": [sys.executable, str(tmp / "child_orp.py"), here, str(tmp / "orp_events.npy"), market]}
            for k in ("roivec", "hashmap"):
                procs[names[k]] = [sys.executable, str(tmp / "child_hbt.py"), here, str(tmp / "hbt_data.npz"), market,
                                   k, str(roi[0]), str(roi[1])]
            print()
            print("whole process (fresh interpreter: imports, load the prepared input, one run, exit; "
                  "hftbacktest's run includes numba compilation), one after the other:")
            result["process"] = {}
            for k, cmd in procs.items():
                lab = label.get(k, k)
                try:
                    c = child(cmd)
                except Exception as e:  # noqa: BLE001
                    print(f"  {lab:32} failed: {e}")
                    continue
                result["process"][lab] = c
                print(f"  {lab:32} wall {c['wall_s']:6.2f} s  cpu {c['cpu_s']:6.2f} s  peak RSS "
                      f"{c['peak_rss_mb']:7.1f} MB  ({c['orders']} orders)")
    if not result.get("identical"):
        print("\n*** orpflow and hftbacktest did NOT produce identical orders and fills (see above) ***")
        return finish(1)
    return finish(0)


if __name__ == "__main__":
    sys.exit(main())
