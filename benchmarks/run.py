#!/usr/bin/env python
"""orpflow benchmarks: one command, one table of medians.

    python benchmarks/run.py [--quick] [--callgrind] [--json PATH] [--reps N]

Every figure is the median of several repetitions (the machine is shared and small); a ratio
is the median of per-repetition ratios measured side by side (compiled and reference run
alternately in the same process). Nothing here asserts a timing. See benchmarks/README.md.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
_INPLACE = any((REPO / "orpflow" / "_core").glob("book.*.so")) or any((REPO / "orpflow" / "_core").glob("book.*.pyd"))
if _INPLACE and str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))          # an in-place build (pip install -e .): benchmark this checkout
# otherwise the installed package is benchmarked (pip install . leaves no compiled modules here)

import numpy as np  # noqa: E402

import orpflow as of  # noqa: E402
from orpflow._core import ring, snapshot  # noqa: E402
from orpflow._core.convert import BinanceConverter  # noqa: E402
from orpflow.feeds._io import read_lines  # noqa: E402
from orpflow.reference.book import OrderBook as RefBook  # noqa: E402
from orpflow.reference import signals as ref_signals  # noqa: E402

SPOT = of.Instrument("BTCUSDT", venue="binance-spot", tick_size="0.01", lot_size="0.00001")
USDM = of.Instrument("BTCUSDT", venue="binance-usdm", tick_size="0.1", lot_size="0.001")
SPOT_FILES = ("spot_btcusdt_20240808.gz", "spot_btcusdt_20240809.gz")
USDM_FILE = "usdm_btcusdt_20240808.gz"
SAMPLE = REPO / "examples" / "data" / "binance_spot_btcusdt_sample.gz"

pc = time.perf_counter_ns


# ---------------------------------------------------------------------------- sizes

def sizes(quick: bool, reps: int | None) -> dict:
    if quick:
        s = dict(reps=3, reps_slow=3, feed_files=1, convert_lines=20_000, book_prefix=50_000,
                 ring_n=2_000_000, lat_n=50_000, snap_reads=2_000_000, snap_writes=2_000_000,
                 contended_s=0.15, publish_n=200_000, read_n=20_000,
                 cg_records=100_000, cg_lines=20_000, twin_events=20_000)
    else:
        s = dict(reps=7, reps_slow=5, feed_files=2, convert_lines=None, book_prefix=100_000,
                 ring_n=10_000_000, lat_n=200_000, snap_reads=20_000_000, snap_writes=20_000_000,
                 contended_s=0.5, publish_n=1_000_000, read_n=50_000,
                 cg_records=None, cg_lines=None, twin_events=60_000)
    if reps:
        s["reps"] = s["reps_slow"] = reps
    return s


# ---------------------------------------------------------------------------- data

def find_data() -> dict:
    """Where the market data is: ORPFLOW_DATA, else ../shared/data, else the bundled sample."""
    env = os.environ.get("ORPFLOW_DATA")
    root = Path(env) if env else Path(__file__).resolve().parents[1].parent / "shared" / "data"
    binance = root / "binance"
    spot = [binance / f for f in SPOT_FILES]
    usdm = binance / USDM_FILE
    if all(p.is_file() for p in spot):
        return dict(source=str(binance), spot=spot, usdm=usdm if usdm.is_file() else None,
                    sample=False, looked=[str(binance)])
    if SAMPLE.is_file():
        return dict(source=str(SAMPLE), spot=[SAMPLE], usdm=None, sample=True,
                    looked=[str(binance)])
    return dict(source=None, spot=[], usdm=None, sample=False, looked=[str(binance), str(SAMPLE)])


# ---------------------------------------------------------------------------- results

RESULTS: list[dict] = []


def med(xs):
    return statistics.median(xs) if xs else None


def add(name, unit, orp=None, ref=None, ratio=None, samples=None, ref_samples=None,
        note="", skipped=None):
    row = dict(benchmark=name, unit=unit, orpflow=orp, reference=ref, ratio=ratio,
               runs=len(samples) if samples else 0, samples=samples, ref_samples=ref_samples,
               note=note, skipped=skipped)
    RESULTS.append(row)
    if skipped:
        print(f"  .. {name}: skipped ({skipped})", file=sys.stderr, flush=True)
    else:
        r = f" ref {fmt(ref)}" if ref is not None else ""
        print(f"  .. {name}: {fmt(orp)}{r} {unit}", file=sys.stderr, flush=True)
    return row


def fmt(x) -> str:
    if x is None:
        return "-"
    if isinstance(x, str):
        return x
    ax = abs(x)
    if ax == 0:
        return "0"
    if ax >= 1000:
        return f"{x:,.0f}"
    if ax >= 100:
        return f"{x:.0f}"
    if ax >= 10:
        return f"{x:.1f}"
    if ax >= 1:
        return f"{x:.2f}"
    return f"{x:.3g}"


def spread(samples) -> str:
    """min..max of the runs, formatted like the values."""
    if not samples or len(samples) < 2:
        return ""
    return f"{fmt(min(samples))}..{fmt(max(samples))}"


def timed(fn) -> int:
    gc.collect()
    t0 = pc()
    fn()
    return pc() - t0


def paired(orp_fn, ref_fn, reps, warm=True):
    """Run both alternately (order swapped each repetition); returns (orp_ns, ref_ns) lists."""
    if warm:
        orp_fn()
    a, b = [], []
    for i in range(reps):
        if i % 2 == 0:
            a.append(timed(orp_fn))
            b.append(timed(ref_fn))
        else:
            b.append(timed(ref_fn))
            a.append(timed(orp_fn))
    return a, b


def rate_row(name, count, orp_ns, ref_ns=None, note="", scale=1e3, unit="k msg/s"):
    """Throughput row: count per second (in `scale`s); ratio = orpflow rate / reference rate."""
    o = [count / (t / 1e9) / scale for t in orp_ns]
    r = [count / (t / 1e9) / scale for t in ref_ns] if ref_ns else None
    ratio = med([ti_r / ti_o for ti_o, ti_r in zip(orp_ns, ref_ns)]) if ref_ns else None
    return add(name, unit, med(o), med(r) if r else None, ratio, o, r, note)


def per_item_row(name, count, orp_ns, ref_ns=None, note="", unit="ns/record"):
    """Cost row: ns per item; ratio = reference time / orpflow time."""
    o = [t / count for t in orp_ns]
    r = [t / count for t in ref_ns] if ref_ns else None
    ratio = med([ti_r / ti_o for ti_o, ti_r in zip(orp_ns, ref_ns)]) if ref_ns else None
    return add(name, unit, med(o), med(r) if r else None, ratio, o, r, note)


# ---------------------------------------------------------------------------- feed

def bench_feed(data, S):
    files = data["spot"][: S["feed_files"]] if not data["sample"] else data["spot"]
    label = "+".join(p.name.replace("spot_btcusdt_", "").replace(".gz", "") for p in files)
    try:
        from orpflow.reference.convert import read_binance as ref_read
        from orpflow.reference.convert import BinanceConverter as RefConverter
        ref_missing = None
    except Exception as e:                          # the reference converter may not exist yet
        ref_read = RefConverter = None
        ref_missing = f"orpflow.reference.convert unavailable: {type(e).__name__}: {e}"
        print(f"  .. note: {ref_missing}", file=sys.stderr)

    rep = of.FeedReport()
    of.read_binance(files, SPOT, report=rep)
    msgs = rep.messages
    note = f"{msgs:,} msgs, {rep.records:,} records, files {label}"

    def orp():
        of.read_binance(files, SPOT)

    if ref_read is not None:
        def ref():
            ref_read(files, SPOT)
        o, r = paired(orp, ref, S["reps_slow"], warm=True)
        rate_row("feed read_binance (gzip+json+convert)", msgs, o, r, note)
    else:
        o = [timed(orp) for _ in range(S["reps_slow"])]
        rate_row("feed read_binance (gzip+json+convert)", msgs, o, None, note + "; " + ref_missing)

    # decompression alone, then conversion of already-decompressed lines
    o = [timed(lambda: [read_lines(p) for p in files]) for _ in range(S["reps"])]
    rate_row("  gzip decompress+splitlines only", msgs, o, None, "stdlib gzip; part of the row above")

    parts = [read_lines(p) for p in files]
    if S["convert_lines"]:
        parts = [parts[0][: S["convert_lines"]]]
    nlines = sum(len(p) for p in parts)

    def orp_conv():
        for lines in parts:
            c = BinanceConverter(SPOT)
            c.feed_lines(lines)
            c.out.take()

    cnote = f"{nlines:,} lines already in memory"
    if RefConverter is not None:
        def ref_conv():
            for lines in parts:
                c = RefConverter(SPOT)
                c.feed_lines(lines)
                c.take()
        o, r = paired(orp_conv, ref_conv, S["reps_slow"], warm=True)
        rate_row("  convert only (json+convert, no gzip)", nlines, o, r, cnote)
    else:
        o = [timed(orp_conv) for _ in range(S["reps"])]
        rate_row("  convert only (json+convert, no gzip)", nlines, o, None, cnote + "; " + ref_missing)

    try:
        import orjson
    except ImportError:
        add("  orjson.loads only", "k msg/s", skipped="orjson not installed")
        return
    payloads = [ln.partition(b" ")[2] for lines in parts for ln in lines]

    def loads_only():
        loads = orjson.loads
        for pl in payloads:
            loads(pl)

    loads_only()
    o = [timed(loads_only) for _ in range(S["reps"])]
    rate_row("  orjson.loads only (decode, discard)", len(payloads), o, None,
             "the JSON part of the row above, for scale")


# ---------------------------------------------------------------------------- book

def bench_book(name, inst, events, S, prefix_n):
    n_all = len(events)

    def orp_all():
        of.OrderBook(inst).apply(events)

    orp_all()
    o = []
    for _ in range(S["reps"]):
        b = of.OrderBook(inst)
        gc.collect()
        t0 = pc()
        b.apply(events)
        o.append(pc() - t0)
    applied = b.stats()["applied"]
    per_item_row(f"book apply {name}, all records", n_all, o, None,
                 f"{n_all:,} records ({applied:,} level updates applied)")

    pre = events[:prefix_n]
    npre = len(pre)
    results = {}

    def run(cls, key):
        bk = cls(inst)
        gc.collect()
        t0 = pc()
        results[key] = bk.apply(pre)
        return pc() - t0

    run(of.OrderBook, "orp")
    run(RefBook, "ref")
    o, r = [], []
    for i in range(S["reps"] if npre <= 100_000 else S["reps_slow"]):
        if i % 2 == 0:
            o.append(run(of.OrderBook, "orp"))
            r.append(run(RefBook, "ref"))
        else:
            r.append(run(RefBook, "ref"))
            o.append(run(of.OrderBook, "orp"))
    note = f"first {npre:,} records, same prefix for both"
    if results["orp"] != results["ref"]:
        note += f"; MISMATCH apply() returned {results['orp']} vs reference {results['ref']}"
    per_item_row(f"book apply {name}, prefix", npre, o, r, note)


# ---------------------------------------------------------------------------- features + signal

BUDGET_NS = 300.0          # in-core tick-to-trade p50 target per event (docs/architecture.md, Engine)
FEATURES_CFG = of.FeatureConfig(vpin_bucket_volume="1")


def _book_only(inst, events):
    of.OrderBook(inst).apply(events)


def _features(inst, events):
    of.compute_features(events, inst, FEATURES_CFG)


def _signals(inst, events):
    of.compute_signals(events, inst, of.SignalConfig(features=FEATURES_CFG))


def bench_features(inst, events, S):
    """Book + features + imbalance signal over the spot recording, measured alternately with
    the book alone; and compiled vs twin on a prefix."""
    n = len(events)
    rows = len(of.compute_features(events, inst, FEATURES_CFG))
    variants = {"book": lambda: _book_only(inst, events),
                "features": lambda: _features(inst, events),
                "signals": lambda: _signals(inst, events)}
    for fn in variants.values():
        fn()
    samples = {k: [] for k in variants}
    keys = list(variants)
    for i in range(S["reps"]):
        for k in (keys if i % 2 == 0 else keys[::-1]):
            samples[k].append(timed(variants[k]))
    per_item_row("book+features+signal, all events", n, samples["signals"], None,
                 f"{n:,} events -> {rows:,} feature rows; includes book apply", unit="ns/event")
    feat_sig = [s - b for s, b in zip(samples["signals"], samples["book"])]
    per_item_row("features+signal (minus book apply)", n, feat_sig, None,
                 f"{med(feat_sig) / n / BUDGET_NS:.0%} of the {BUDGET_NS:.0f} ns/event budget",
                 unit="ns/event")
    per_item_row("features+signal per feature row", rows, feat_sig, None,
                 "the same time over rows (book messages and trades); per group: --callgrind",
                 unit="ns/row")
    # the twin, side by side on a prefix (it re-scans its windows on every row)
    pre = events[: S["twin_events"]]
    cfg = of.SignalConfig(features=FEATURES_CFG)
    same = {}

    def orp():
        same["orp"] = of.compute_signals(pre, inst, cfg)

    def ref():
        same["ref"] = ref_signals.compute_signals(pre, inst, cfg)
    o, r = paired(orp, ref, S["reps_slow"])
    note = f"first {len(pre):,} events, same prefix for both"
    if not np.array_equal(same["orp"][["side", "reason", "size_units"]],
                          same["ref"][["side", "reason", "size_units"]]):
        note += "; MISMATCH in signal decisions"
    per_item_row("book+features+signal vs twin", len(pre), o, r, note, unit="ns/event")


# ---------------------------------------------------------------------------- ring

CPU_WARNINGS: list[str] = []


def _cpu_share(fn, out, key):
    """Run fn, storing in out[key] the share of a core this thread got (CPU time / wall)."""
    def run():
        c0, w0 = time.thread_time_ns(), pc()
        fn()
        out[key] = (time.thread_time_ns() - c0) / max(1, pc() - w0)
    return run


def _two_threads(f1, f2, share):
    t1 = threading.Thread(target=_cpu_share(f1, share, 1), daemon=True)
    t2 = threading.Thread(target=_cpu_share(f2, share, 2), daemon=True)
    t0 = pc()
    t1.start()
    t2.start()
    t2.join()
    t1.join()
    return pc() - t0


def _share_note(shares, what, names):
    """'cpu share a/b 99%/97%' from per-run shares (min over runs); records a warning if low."""
    lo = [min(s[i] for s in shares) for i in (1, 2)]
    if min(lo) < 0.9:
        CPU_WARNINGS.append(f"{what}: a spinning thread got only {min(lo):.0%} of a core in some run")
    return f"min cpu share {names} {lo[0]:.0%}/{lo[1]:.0%}"


def bench_ring(S):
    n = S["ring_n"]
    samples, spins, errors, shares = [], [], 0, []
    for _ in range(S["reps_slow"]):
        r = ring.EventRing(65536)
        out, share = {}, {}

        def cons():
            out["err"] = ring._consume_check(r, n, None)

        def prod():
            out["spins"] = ring._produce_sequence(r, n, 0)

        samples.append(_two_threads(cons, prod, share))
        shares.append(share)
        errors += out["err"]
        spins.append(out["spins"])
    note = (f"{n:,} records 1-by-1, cap 65536; full-spins/rec {med(spins) / n:.2f}; "
            + _share_note(shares, "ring throughput", "cons/prod"))
    if errors:
        note += f"; SEQUENCE ERRORS {errors}"
    rate_row("ring SPSC throughput (1 record/op)", n, samples, None, note, scale=1e6, unit="M rec/s")

    # batch push / pop_into from Python, one thread (no contention; API + memcpy cost)
    batch = 4096
    arr = np.zeros(batch, dtype=of.EVENT_DTYPE)
    dst = np.empty(batch, dtype=of.EVENT_DTYPE)
    rr = ring.EventRing(65536)
    loops = max(1, (S["ring_n"] // 10) // batch)

    def batch_loop():
        push, pop_into = rr.push, rr.pop_into
        for _ in range(loops):
            push(arr)
            pop_into(dst)

    batch_loop()
    o = [timed(batch_loop) for _ in range(S["reps"])]
    per_item_row("ring push+pop_into, batches of 4096", loops * batch, o, None,
                 "1 thread, from Python", unit="ns/record")

    # paced hand-off latency
    n = S["lat_n"]
    pct = {50: [], 99: [], 99.9: [], 100: []}
    errors, shares = 0, []
    for _ in range(S["reps_slow"]):
        r = ring.EventRing(65536)
        lat = np.zeros(n, dtype=np.int64)
        out, share = {}, {}

        def cons():
            out["err"] = ring._consume_check(r, n, lat)

        def prod():
            out["spins"] = ring._produce_sequence(r, n, 2000)

        _two_threads(cons, prod, share)
        shares.append(share)
        errors += out["err"]
        q = np.percentile(lat, [50, 99, 99.9, 100])
        for k, v in zip(pct, q):
            pct[k].append(float(v) / 1e3)
    note = (f"{n:,} records paced 2 us apart, push->pop; "
            + _share_note(shares, "ring latency", "cons/prod"))
    if errors:
        note += f"; SEQUENCE ERRORS {errors}"
    for k, label in ((50, "p50"), (99, "p99"), (99.9, "p99.9"), (100, "max")):
        add(f"ring hand-off latency {label}", "us", med(pct[k]), samples=pct[k],
            note=note if k == 50 else "median over runs of each run's " + label)


# ---------------------------------------------------------------------------- seqlock

def _pause_ns() -> float:
    """Cost of one ORP_pause instruction here (the writer's gap unit), from two short runs."""
    s = snapshot.MarketSnapshot()
    k = 20_000
    best0 = min(timed(lambda: snapshot._stress_write(s, k, 0)) for _ in range(3))
    best64 = min(timed(lambda: snapshot._stress_write(s, k, 64)) for _ in range(3))
    return max(0.05, (best64 - best0) / (k * 64))


def _contended_read(S, gap, per_publish_ns):
    """A writer thread publishes for about S['contended_s'] seconds (`gap` pause instructions
    between publishes) while the main thread reads in chunks of 10k; only chunks that ran
    entirely while the writer was running count."""
    s = snapshot.MarketSnapshot()
    snapshot._stress_write(s, 1)
    nw = max(10_000, int(S["contended_s"] * 1e9 / per_publish_ns))
    done = threading.Event()
    wt = {}

    def writer():
        t0, c0 = pc(), time.thread_time_ns()
        snapshot._stress_write(s, nw, gap)
        wt["ns"] = pc() - t0
        wt[2] = (time.thread_time_ns() - c0) / max(1, wt["ns"])
        done.set()

    th = threading.Thread(target=writer, daemon=True)
    th.start()
    chunk = 10_000
    reads = retries = ns = chunks = 0
    first = True
    c0, w0 = time.thread_time_ns(), pc()
    while not done.is_set():
        t0 = pc()
        rt = snapshot._bench_read(s, chunk)
        t1 = pc()
        if done.is_set():
            break
        if first:                      # the writer may not have reached its loop yet
            first = False
            continue
        reads += chunk
        retries += rt
        ns += t1 - t0
        chunks += 1
    wt[1] = (time.thread_time_ns() - c0) / max(1, pc() - w0)
    th.join()
    share = {1: wt[1], 2: wt[2]}
    if not reads:
        return None, None, wt["ns"] / nw, 0, share
    return ns / reads, retries / reads, wt["ns"] / nw, chunks, share


def bench_seqlock(S, book):
    n = S["snap_reads"]
    s = snapshot.MarketSnapshot()
    snapshot._stress_write(s, 1)
    snapshot._bench_read(s, n // 10)
    o = [timed(lambda: snapshot._bench_read(s, n)) for _ in range(S["reps"])]
    per_item_row("seqlock read, uncontended", n, o, None,
                 f"{n:,} back-to-back reads (20-level copy), nogil", unit="ns/read")

    n = S["snap_writes"]
    o = [timed(lambda: snapshot._stress_write(s, n)) for _ in range(S["reps"])]
    per_item_row("seqlock write (synthetic), no reader", n, o, None,
                 "_stress_write, nogil", unit="ns/write")

    write_ns = med([t / n for t in o])
    pause = _pause_ns()
    paced_gap = max(1, round(1000 / pause))          # about 1 us between publishes
    for gap in (0, paced_gap):
        per_pub = write_ns + gap * pause
        ns_read, retry_rate, w_ns, chunks, shares = [], [], [], [], []
        for _ in range(S["reps_slow"]):
            a, b, c, d, sh = _contended_read(S, gap, per_pub)
            if a is not None:
                ns_read.append(a)
                retry_rate.append(b)
            w_ns.append(c)
            chunks.append(d)
            shares.append(sh)
        label = "writer back-to-back" if gap == 0 else "writer every ~1 us"
        snote = _share_note(shares, f"seqlock contended ({label})", "reader/writer")
        if not ns_read:
            add(f"seqlock read, contended ({label})", "ns/read",
                skipped="writer finished before any full read chunk")
            continue
        extra = "" if gap == 0 else f" ({gap} pauses of {pause:.1f} ns)"
        add(f"seqlock read, contended ({label})", "ns/read", med(ns_read), samples=ns_read,
            note=f"1 writer + 1 reader thread; writer {fmt(med(w_ns))} ns/publish{extra}; "
                 f"{int(med(chunks))} chunks of 10k reads")
        add(f"  retries per read ({label})", "retries", med(retry_rate), samples=retry_rate,
            note="seq odd or changed during the copy; " + snote)

    if book is None:
        add("snapshot.publish(book) from Python", "ns/call", skipped="no market data for a book")
    else:
        m = S["publish_n"]
        s2 = snapshot.MarketSnapshot()

        def loop():
            pub = s2.publish
            for _ in range(m):
                pub(book)

        loop()
        o = [timed(loop) for _ in range(S["reps"])]
        d = book.depth()
        per_item_row("snapshot.publish(book) from Python", m, o, None,
                     f"book {d[0]}x{d[1]} levels; incl. metrics + Python call/loop", unit="ns/call")

        k = S["read_n"]

        def rloop():
            rd = s2.read
            for _ in range(k):
                rd()

        rloop()
        o = [timed(rloop) for _ in range(S["reps"])]
        per_item_row("snapshot.read() from Python", k, o, None,
                     "builds the dict + two numpy arrays", unit="ns/call")


# ---------------------------------------------------------------------------- callgrind

CHILD = r'''
import gc
import sys
import numpy as np
import orpflow as of
from orpflow._core.convert import BinanceConverter
what, mode, path = sys.argv[1:4]
groups = tuple(g for g in sys.argv[4].split(",") if g) if len(sys.argv) > 4 else None
inst = of.Instrument("BTCUSDT", venue="binance-spot", tick_size="0.01", lot_size="0.00001")
if what in ("book", "signals", "features"):
    ev = np.load(path)
    if mode == "setup":
        ev = ev[:0]
    # everything is built before the measured call, and no GC pass can land inside it: the
    # difference between variants is then only the compiled per-event work
    fc = of.FeatureConfig(vpin_bucket_volume="1", **({"groups": groups} if groups else {}))
    book = of.OrderBook(inst)
    features = of.FeatureRunner(inst, fc).engine
    signals = of.SignalRunner(inst, of.SignalConfig(features=fc)).engine
    gc.disable()
    if what == "book":
        book.apply(ev)
    elif groups:
        features.run(ev)
    else:
        signals.run(ev)
else:
    with open(path, "rb") as fh:
        lines = fh.read().splitlines()
    if mode == "setup":
        lines = []
    conv = BinanceConverter(inst)
    conv.feed_lines(lines)
    conv.out.take()
'''


def child_env() -> dict:
    """The environment of a valgrind child: the checkout goes on PYTHONPATH only for an
    in-place build; against an installed (non-editable) package the uncompiled source tree
    would shadow it and the child would measure nothing. Children also run from their
    temporary folder, never from the checkout."""
    keep = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep)
            if p and Path(p).resolve() != REPO]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(([str(REPO)] if _INPLACE else []) + keep))
    env["PYTHONHASHSEED"] = "0"
    return env


def _instructions(total: int, what: str) -> int:
    if total <= 0:
        raise RuntimeError(f"callgrind counted 0 instructions for {what}: the child did not run "
                           "the compiled code (is orpflow importable from the child?)")
    return total


# Every callgrind run also simulates the branch predictor (same run, no extra one): the out
# file's totals then carry Bc/Bcm (conditional branches / mispredicted) and Bi/Bim (indirect).
BRANCH_SIM = "--branch-sim=yes"


class Cost(int):
    """An instruction total (an int, so existing arithmetic keeps working) that also carries
    the run's simulated branch figures: `.mis` = Bcm + Bim, `.ev` = every event total."""

    ev: dict
    mis: int

    @classmethod
    def of(cls, ev: dict, what: str) -> "Cost":
        c = cls(_instructions(ev.get("Ir", 0), what))
        c.ev = ev
        c.mis = ev.get("Bcm", 0) + ev.get("Bim", 0)
        return c


def cg_totals(out: Path) -> dict:
    """Event totals of a callgrind out file ({"Ir": .., "Bc": .., "Bcm": .., ...}): the
    `totals:` line (or `summary:`) against the `events:` header."""
    names, vals = None, None
    for line in Path(out).read_text(errors="replace").splitlines():
        if line.startswith("events:"):
            names = line.split()[1:]
        elif line.startswith(("totals:", "summary:")):
            vals = [int(x) for x in line.split()[1:]]
    if not names or vals is None:
        raise RuntimeError(f"no 'events:' / 'totals:' lines in {out}")
    return dict(zip(names, vals + [0] * (len(names) - len(vals))))


def cg_top_functions(out: Path, event: str = "Bcm", n: int = 5) -> list:
    """The n functions with the highest self cost of `event` in a callgrind out file, as
    (name, {event: self cost}) pairs. Self cost = the cost lines under `fn=`, without the
    inclusive cost line that follows each `calls=` line."""
    names: list = []
    ids: dict = {}
    self_cost: dict = {}
    fn = None
    skip_next = False

    def name_of(spec: str) -> str:
        spec = spec.strip()
        if spec.startswith("("):
            k, _, rest = spec.partition(")")
            if rest.strip():
                ids[k] = rest.strip()
            return ids.get(k, spec)
        return spec

    for line in Path(out).read_text(errors="replace").splitlines():
        if line.startswith("events:"):
            names = line.split()[1:]
        elif line.startswith("fn="):
            fn = name_of(line[3:])
        elif line.startswith(("cfn=", "cfi=", "cfl=")):
            if line.startswith("cfn="):
                name_of(line[4:])           # registers a compressed name
        elif line.startswith("calls="):
            skip_next = True
        elif line[:1].isdigit() or line[:1] in "+-*":
            if skip_next:
                skip_next = False
                continue
            if fn is None:
                continue
            parts = line.split()[1:]
            acc = self_cost.setdefault(fn, [0] * len(names))
            for i, v in enumerate(parts[: len(names)]):
                acc[i] += int(v)
    if event not in names:
        return []
    k = names.index(event)
    ranked = sorted(self_cost.items(), key=lambda kv: kv[1][k], reverse=True)[:n]
    return [(f, dict(zip(names, c))) for f, c in ranked]


def add_cg(name: str, unit: str, instr: float, mis: float, note: str = "", mis_note: str = ""):
    """An instructions row and, right below it, the same figure's simulated branch
    mispredicts (Bcm + Bim, from the same valgrind runs)."""
    add(name, unit, instr, note=note)
    per = unit.split("/", 1)[1] if "/" in unit else unit
    add(f"  {name.strip()}: mispredicts", f"mispred/{per}", mis, note=mis_note)


def _callgrind_pair(tmp: Path, what: str, path: Path, timeout: float,
                    extra: tuple = ()) -> tuple:
    """Instruction totals (`Cost`, with branch figures) of the child with all the input and
    with setup only (run in parallel: instruction counts do not depend on load)."""
    env = child_env()
    procs = {}
    for mode in ("all", "setup"):
        out = tmp / f"cg.{what}.{mode}.{'-'.join(extra)}.out"
        cmd = ["valgrind", "--tool=callgrind", BRANCH_SIM, f"--callgrind-out-file={out}",
               sys.executable, str(tmp / "child.py"), what, mode, str(path), *extra]
        procs[mode] = (subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        text=True, env=env, cwd=str(tmp)), out)
    totals = {}
    try:
        for mode, (p, out) in procs.items():
            _, err = p.communicate(timeout=timeout)
            if p.returncode != 0:
                raise RuntimeError(f"valgrind exit {p.returncode}: {err.strip().splitlines()[-1:]}")
            totals[mode] = Cost.of(cg_totals(out), f"{what} ({mode})")
    finally:
        for p, _ in procs.values():
            if p.poll() is None:
                p.kill()
                p.wait()
    return totals["all"], totals["setup"]


def argv_dir(argv: list) -> Path:
    """The folder of the child script in a valgrind argv (its temporary folder)."""
    for a in argv:
        if str(a).endswith(".py"):
            return Path(a).resolve().parent
    return Path(tempfile.gettempdir())


def valgrind_batch(jobs: dict, timeout: float) -> dict:
    """Run `valgrind --tool=callgrind` jobs (key -> argv after "valgrind") two at a time (two
    cores) and return each one's instruction total as a `Cost` (an int that also carries the
    simulated branch figures: every job runs with --branch-sim=yes). A job must name its
    --callgrind-out-file."""
    env = child_env()
    out: dict = {}
    pending = list(jobs.items())
    while pending:
        batch, pending = pending[:2], pending[2:]
        procs = [(key, subprocess.Popen(["valgrind", "--tool=callgrind", BRANCH_SIM, *argv], stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True, env=env, cwd=str(argv_dir(argv))))
                 for key, argv in batch]
        for key, p in procs:
            _, err = p.communicate(timeout=timeout)
            if p.returncode != 0:
                raise RuntimeError(f"valgrind exit {p.returncode}: {err.strip().splitlines()[-1:]}")
            path = next(a.split("=", 1)[1] for a in jobs[key] if str(a).startswith("--callgrind-out-file="))
            out[key] = Cost.of(cg_totals(Path(path)), key)
    return out


def _callgrind_inside(tmp: Path, runs: dict, timeout: float) -> dict:
    """Instructions executed inside the compiled call only (valgrind --toggle-collect on the
    Python wrapper of OrderBook.apply / *Engine.run): no start-up or import noise, so runs
    are exactly repeatable and variants can be subtracted. runs: key -> (what, groups)."""
    jobs = {}
    for key, (what, groups) in runs.items():
        pattern = "__pyx_pw_*OrderBook_*apply" if what == "book" else "__pyx_pw_*Engine_*run"
        jobs[key] = [f"--toggle-collect={pattern}", f"--callgrind-out-file={tmp / ('cgi.' + key + '.out')}",
                     sys.executable, str(tmp / "child.py"), what, "all", str(tmp / "events.npy"), groups]
    return valgrind_batch(jobs, timeout)


def bench_callgrind_features(tmp: Path, ev) -> None:
    """Instructions of book+features+signal, and what each feature group and the signal add:
    the noise-free version of the per-group split."""
    t0 = time.time()
    n = len(ev)
    rows = len(of.compute_features(ev, SPOT, FEATURES_CFG))
    groups = of.config.FEATURE_GROUPS
    runs = {"book": ("book", ""), "signals": ("signals", ""), "features": ("features", ",".join(groups))}
    for g in groups:
        runs[f"-{g}"] = ("features", ",".join(x for x in groups if x != g))
    runs["trades-only"] = ("features", "trades,toxicity")      # no book-derived group at all
    c = _callgrind_inside(tmp, runs, 300)
    m = {k: v.mis for k, v in c.items()}          # mispredicts of the same runs
    feat_sig = c["signals"] - c["book"]
    mis_fs = m["signals"] - m["book"]

    def rate(key):
        ev = c[key].ev
        return f"Bcm {ev.get('Bcm', 0):,} of Bc {ev.get('Bc', 0):,}, Bim {ev.get('Bim', 0):,} of Bi {ev.get('Bi', 0):,}"

    add_cg("callgrind book apply (inside apply)", "instr/event", c["book"] / n, m["book"] / n,
           note=f"{n:,} events; counted inside the compiled call only", mis_note=rate("book"))
    add_cg("callgrind book+features+signal", "instr/event", c["signals"] / n, m["signals"] / n,
           note=f"{rows:,} feature rows", mis_note=rate("signals"))
    add_cg("callgrind features+signal per row", "instr/row", feat_sig / rows, mis_fs / rows,
           note="(book+features+signal - book) / feature rows")
    marginal = {g: c["features"] - c[f"-{g}"] for g in groups}
    mmarg = {g: m["features"] - m[f"-{g}"] for g in groups}
    for g in groups:
        add_cg(f"  callgrind group {g}", "instr/row", marginal[g] / rows, mmarg[g] / rows,
               note=f"{marginal[g] / feat_sig:.0%} of features+signal")
    walk = c["features"] - c["trades-only"] - marginal["book"] - marginal["history"] - marginal["windows"]
    mwalk = m["features"] - m["trades-only"] - mmarg["book"] - mmarg["history"] - mmarg["windows"]
    add_cg("  callgrind top-of-book walk (shared)", "instr/row", walk / rows, mwalk / rows,
           note=f"{walk / feat_sig:.0%} of features+signal; needed by book, history and windows")
    sig = c["signals"] - c["features"]
    add_cg("  callgrind signal + position rules", "instr/row", sig / rows,
           (m["signals"] - m["features"]) / rows, note=f"{sig / feat_sig:.0%} of features+signal")
    rest = feat_sig - sig - walk - sum(marginal.values())
    mrest = mis_fs - (m["signals"] - m["features"]) - mwalk - sum(mmarg.values())
    add_cg("  callgrind common (event scan, clock, rows)", "instr/row", rest / rows, mrest / rows,
           note=f"{rest / feat_sig:.0%} of features+signal; valgrind {time.time() - t0:.0f}s")


def bench_callgrind(S, events, spot_files):
    if shutil.which("valgrind") is None:
        add("callgrind book apply", "instr/record", skipped="valgrind not on PATH")
        return
    if events is None:
        add("callgrind book apply", "instr/record", skipped="no market data")
        return
    with tempfile.TemporaryDirectory(prefix="orpflow-cg-") as td:
        tmp = Path(td)
        (tmp / "child.py").write_text(CHILD)
        ev = events if not S["cg_records"] else events[: S["cg_records"]]
        np.save(tmp / "events.npy", ev)
        try:
            t0 = time.time()
            full, base = _callgrind_pair(tmp, "book", tmp / "events.npy", 150)
            add_cg("callgrind book apply (spot)", "instr/record", (full - base) / len(ev),
                   (full.mis - base.mis) / len(ev),
                   note=f"({full:,} - {base:,}) / {len(ev):,} records; valgrind {time.time() - t0:.0f}s",
                   mis_note=f"({full.mis:,} - {base.mis:,}) / {len(ev):,} records (Bcm + Bim)")
        except Exception as e:  # noqa: BLE001
            add("callgrind book apply (spot)", "instr/record", skipped=f"{type(e).__name__}: {e}")
        try:
            bench_callgrind_features(tmp, ev)
        except Exception as e:  # noqa: BLE001
            add("callgrind book+features+signal", "instr/event", skipped=f"{type(e).__name__}: {e}")

        try:
            from bench_engine import callgrind_engine
            callgrind_engine(tmp, events, add, valgrind_batch)
        except Exception as e:  # noqa: BLE001
            add("callgrind engine loop (core_step)", "instr/event", skipped=f"{type(e).__name__}: {e}")

        try:
            from bench_broker import callgrind_broker
            callgrind_broker(tmp, events, add, valgrind_batch)
        except Exception as e:  # noqa: BLE001
            add("callgrind broker", "instr/event", skipped=f"{type(e).__name__}: {e}")

        lines = read_lines(spot_files[0])          # one file keeps valgrind under a minute
        if S["cg_lines"]:
            lines = lines[: S["cg_lines"]]
        (tmp / "lines.txt").write_bytes(b"\n".join(lines) + b"\n")
        try:
            t0 = time.time()
            full, base = _callgrind_pair(tmp, "convert", tmp / "lines.txt", 150)
            add_cg("callgrind convert (json+convert)", "instr/msg", (full - base) / len(lines),
                   (full.mis - base.mis) / len(lines),
                   note=f"({full:,} - {base:,}) / {len(lines):,} lines incl. orjson; "
                        f"valgrind {time.time() - t0:.0f}s")
        except Exception as e:  # noqa: BLE001
            add("callgrind convert (json+convert)", "instr/msg", skipped=f"{type(e).__name__}: {e}")


# ---------------------------------------------------------------------------- hftbacktest

def bench_hftbacktest(quick: bool) -> None:
    """benchmarks/bench_hftbacktest.py in a child process (numba and hftbacktest stay out of this
    one): the same rule in both engines, identical orders checked, loop times compared."""
    import importlib.util
    name = "vs hftbacktest 2.4.4, same rule and orders"
    if importlib.util.find_spec("hftbacktest") is None or importlib.util.find_spec("numba") is None:
        add(name, "x", skipped="hftbacktest not importable (pip install 'orpflow[bench]')")
        return
    with tempfile.TemporaryDirectory(prefix="orpflow-hbt-") as td:
        out = Path(td) / "hbt.json"
        cmd = [sys.executable, str(Path(__file__).resolve().parent / "bench_hftbacktest.py"), "--json", str(out)]
        p = subprocess.run(cmd + (["--quick"] if quick else []), capture_output=True, text=True, timeout=1800)
        if not out.is_file():
            add(name, "x", skipped=f"bench_hftbacktest.py exit {p.returncode}: {p.stderr.strip().splitlines()[-1:]}")
            return
        res = json.loads(out.read_text())
    if res.get("skipped"):
        add(name, "x", skipped=res["skipped"])
        return
    same = "identical orders and fills" if res.get("identical") else "ORDERS DIFFER (see bench_hftbacktest.py)"
    loop = res["loop"]
    orp = loop["orpflow backtest (Cython)"]
    for key, label in (("roivec", "ROIVectorMarketDepthBacktest"), ("hashmap", "HashMapMarketDepthBacktest")):
        if f"ratio_orpflow_vs_{key}" not in res:
            continue
        h = loop[label]
        add(f"backtest loop, orpflow vs hftbacktest {label.replace('MarketDepthBacktest', '')}",
            "speed ratio", res[f"ratio_orpflow_vs_{key}"],
            note=f"hftbacktest loop time / orpflow's (> 1: orpflow faster); {Path(res['data']).name}: "
                 f"orpflow {orp['messages_per_s']:,.0f} msg/s, hftbacktest {h['messages_per_s']:,.0f} msg/s "
                 f"(median of {res['reps']}); {same}")


# ---------------------------------------------------------------------------- report

def machine_info(data) -> dict:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    try:
        load = os.getloadavg()
    except OSError:
        load = None
    try:
        rev = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, timeout=5).stdout.strip()
    except Exception:  # noqa: BLE001
        rev = ""
    return dict(python=platform.python_version(), implementation=platform.python_implementation(),
                numpy=np.__version__, orpflow=of.__version__, git=rev, cpu_count=os.cpu_count(),
                usable_cpus=usable, cpu=cpu, platform=platform.platform(), loadavg_start=load,
                data=data["source"], sample_only=data["sample"])


def table(rows) -> str:
    head = ("benchmark", "orpflow", "reference", "ratio", "unit", "runs", "min..max", "notes")
    body = []
    for r in rows:
        if r["skipped"]:
            body.append((r["benchmark"], "skipped", "-", "-", r["unit"], "0", "", r["skipped"]))
            continue
        body.append((r["benchmark"], fmt(r["orpflow"]), fmt(r["reference"]),
                     f"{r['ratio']:.1f}x" if r["ratio"] is not None else "-", r["unit"],
                     str(r["runs"]), spread(r["samples"]), r["note"]))
    w = [max(len(x[i]) for x in [head] + body) for i in range(len(head))]
    right = {1, 2, 3, 5}

    def line(cells):
        out = []
        for i, c in enumerate(cells):
            if i == len(cells) - 1:
                out.append(c)
            else:
                out.append(c.rjust(w[i]) if i in right else c.ljust(w[i]))
        return " | ".join(out).rstrip()

    sep = "-+-".join("-" * x for x in w[:-1]) + "-+-" + "-" * min(w[-1], 20)
    return "\n".join([line(head), sep] + [line(b) for b in body])


def run_broker(spot_events, S) -> None:
    print("* broker", file=sys.stderr, flush=True)
    from bench_broker import bench_broker
    bench_broker(SPOT, spot_events, S, timed, per_item_row, add, med)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes, 3 repetitions (< 30 s)")
    ap.add_argument("--callgrind", action="store_true",
                    help="also count instructions under valgrind --tool=callgrind (needs valgrind)")
    ap.add_argument("--json", metavar="PATH", help="also write all results (with samples) as JSON")
    ap.add_argument("--reps", type=int, default=None, help="override the repetition count")
    ap.add_argument("--broker-only", action="store_true", help="only the broker and risk rows")
    ap.add_argument("--engine-only", action="store_true", help="only the engine rows (orpflow bench)")
    args = ap.parse_args(argv)
    S = sizes(args.quick, args.reps)
    t_start = time.time()

    data = find_data()
    info = machine_info(data)
    print(f"orpflow {info['orpflow']} ({info['git'] or 'no git'}) | Python {info['python']} "
          f"({info['implementation']}) | numpy {info['numpy']} | cpus {info['cpu_count']} "
          f"(usable {info['usable_cpus']}) | {info['cpu'] or platform.machine()}", flush=True)
    if info["loadavg_start"]:
        la = info["loadavg_start"]
        print(f"load average at start: {la[0]:.2f} {la[1]:.2f} {la[2]:.2f}"
              + ("  (busy machine: expect noisy thread benchmarks)" if la[0] > 0.5 else ""))
    if data["source"] is None:
        print("SKIP market-data benchmarks: no data found (looked for "
              + ", ".join(data["looked"]) + "; set ORPFLOW_DATA to the folder holding binance/). "
              "Ring and seqlock benchmarks still run.", flush=True)
    elif data["sample"]:
        print(f"NOTE: {data['looked'][0]} missing; using the bundled sample {SAMPLE.name} "
              "(30,000 lines): feed/book figures are on that, USD-M rows skipped.", flush=True)
    else:
        print(f"data: {data['source']}", flush=True)
    print(f"mode: {'quick' if args.quick else 'full'}; medians of {S['reps']} runs "
          f"({S['reps_slow']} for slow rows); progress on stderr", flush=True)

    spot_events = None
    book = None
    if args.engine_only:
        from bench_engine import callgrind_engine, run_engine
        paths = [str(p) for p in data["spot"]] if data["source"] is not None else []
        run_engine(paths, args.quick, add)
        if args.callgrind and shutil.which("valgrind") and paths:
            spot = of.read_binance(data["spot"][:1], SPOT)
            with tempfile.TemporaryDirectory(prefix="orpflow-cg-") as td:
                callgrind_engine(Path(td), spot, add, valgrind_batch)
        print()
        print(table(RESULTS))
        return 0
    if args.broker_only:
        if data["source"] is None:
            print("SKIP broker benchmarks: no market data", flush=True)
            return 0
        spot = of.read_binance(data["spot"], SPOT)
        run_broker(spot, S)
        if args.callgrind and shutil.which("valgrind"):
            with tempfile.TemporaryDirectory(prefix="orpflow-cg-") as td:
                from bench_broker import callgrind_broker
                callgrind_broker(Path(td), spot, add, valgrind_batch)
        print()
        print(table(RESULTS))
        return 0
    if data["source"] is not None:
        print("* feed", file=sys.stderr, flush=True)
        bench_feed(data, S)
        print("* book", file=sys.stderr, flush=True)
        spot_events = of.read_binance(data["spot"], SPOT)
        bench_book("spot", SPOT, spot_events, S, S["book_prefix"])
        if data["usdm"] is not None:
            usdm_events = of.read_binance([data["usdm"]], USDM)
            bench_book("usdm", USDM, usdm_events, S, S["book_prefix"])
            del usdm_events
        else:
            add("book apply usdm", "ns/record", skipped="usdm_btcusdt_20240808.gz not present")
        book = of.OrderBook(SPOT)
        book.apply(spot_events)
        print("* features", file=sys.stderr, flush=True)
        bench_features(SPOT, spot_events, S)
        run_broker(spot_events, S)
    else:
        for name, unit in (("feed read_binance", "k msg/s"), ("book apply", "ns/record")):
            add(name, unit, skipped="no market data")

    print("* ring", file=sys.stderr, flush=True)
    bench_ring(S)
    print("* seqlock", file=sys.stderr, flush=True)
    bench_seqlock(S, book)
    print("* hftbacktest", file=sys.stderr, flush=True)
    bench_hftbacktest(args.quick)
    if args.callgrind:
        print("* callgrind", file=sys.stderr, flush=True)
        bench_callgrind(S, spot_events, data["spot"])

    print()
    print(table(RESULTS))
    print()
    try:
        la = os.getloadavg()
        info["loadavg_end"] = la
        print(f"load average at end: {la[0]:.2f} {la[1]:.2f} {la[2]:.2f}; "
              f"wall time {time.time() - t_start:.0f} s")
    except OSError:
        pass
    for w in CPU_WARNINGS:
        print(f"WARNING {w}: the machine was busy, so that row measures time-slicing too")
    print("ratio = reference time / orpflow time (same work, measured alternately in this run); "
          "min..max = fastest and slowest run (orpflow column)")

    if args.json:
        with open(args.json, "w") as fh:
            json.dump(dict(machine=info, mode="quick" if args.quick else "full", sizes=S,
                           results=RESULTS), fh, indent=1, default=str)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
