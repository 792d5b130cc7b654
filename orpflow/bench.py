"""``orpflow bench``: the engine's benchmark table on real data.

Every row is measured in this run and printed as measured (medians where repeated; the
pure-Python twin beside the compiled loop where one exists). Nothing is asserted: the
figures depend on the machine, and on a shared 2-core VM p99.9 and max are set by the
platform's stalls. The noise-free per-event figure is instructions (benchmarks/run.py
--engine --callgrind).
"""
from __future__ import annotations

import dataclasses
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from orpflow.config import EngineConfig, config_from_dict

SIM_ORDER_BYTES = 160      # sizeof(SimOrder), sizeof(SimFill) (broker_state.pxd)
SIM_FILL_BYTES = 112


def find_sample() -> Path:
    """The bundled sample (orpflow.sample_path())."""
    from orpflow.bundled import sample_path
    return sample_path()

# Loose rules so a few minutes of data give a few thousand orders (enough latency samples);
# rate limits off. The order path is the same as with the default rules, only more often.
BENCH_RULES: Dict[str, Dict[str, Any]] = {
    "signal": {"threshold": 0.2, "min_confidence": 0.3, "persistence": 1, "momentum_confirmation": False,
               "min_interval_ms": 0, "max_spread_bps": 50},
    "risk": {"rate_per_second": 0, "rate_per_minute": 0, "rate_per_hour": 0, "max_consecutive_losses": None,
             "reject_storm": None},
    "execution": {"warmup_rows": 20},
    "broker": {"latency_entry_ns": 1_000_000, "latency_response_ns": 1_000_000},
}


# BTCUSDT on each Binance market the bench can read (venue, tick size, lot size)
BENCH_MARKETS = {"binance-spot": ("0.01", "0.00001"), "binance-usdm": ("0.1", "0.001")}


def recording_venue(path: str, lines: int = 2000) -> str:
    """"binance-usdm" if the recording's depth diffs carry the futures field "pu" within its
    first lines, else "binance-spot" (a spot grid on a futures file never gives a usable book)."""
    import gzip
    try:
        with gzip.open(path, "rt", encoding="utf-8", errors="replace") as f:
            for i, line in enumerate(f):
                if '"depthUpdate"' in line:
                    return "binance-usdm" if '"pu":' in line else "binance-spot"
                if i >= lines:
                    break
    except (OSError, EOFError):
        pass                           # not gzip text: the loader reports it
    return "binance-spot"


def bench_config(paths: Sequence[str], **sections: Any) -> EngineConfig:
    venue = recording_venue(paths[0]) if paths else "binance-spot"
    tick, lot = BENCH_MARKETS[venue]
    data: Dict[str, Any] = {"instruments": [{"symbol": "BTCUSDT", "venue": venue, "tick_size": tick,
                                             "lot_size": lot, "paths": list(paths)}],
                            "persistence": {"path": None}}
    for k, v in BENCH_RULES.items():
        data[k] = dict(v)
    for k, v in sections.items():
        data.setdefault(k, {}).update(v)
    return config_from_dict(data)


def rss_mb() -> float:
    """Resident set size of this process now (Linux /proc; else the peak from getrusage)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 20
    except OSError:                                  # pragma: no cover - not Linux
        import resource
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class RssSampler:
    """RSS every `every` seconds on a sleeping thread: (first, peak, last) in MB."""

    def __init__(self, every: float = 0.05) -> None:
        self.samples: List[Tuple[float, float]] = []
        self.every = every
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        t0 = time.perf_counter()
        while not self._stop.is_set():
            self.samples.append((time.perf_counter() - t0, rss_mb()))
            time.sleep(self.every)

    def __enter__(self) -> "RssSampler":
        self._t.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._t.join()
        self.samples.append((self.samples[-1][0] if self.samples else 0.0, rss_mb()))


def _lat(d: Dict[str, Any]) -> str:
    def f(v: float) -> str:
        if v != v:
            return "n/a"
        return f"{v / 1e3:,.1f} us" if v >= 1e4 else f"{v:,.0f} ns"
    return f"p50 {f(d['p50'])} | p99 {f(d['p99'])} | p99.9 {f(d['p99_9'])} (n={d['count']:,})"


def run_bench(data: Optional[Sequence[str]] = None, long_events: int = 10_000_000, quick: bool = False,
              out: Any = None) -> int:
    """Measure and print the table; returns 0. `data`: recordings (default: the bundled sample)."""
    import orpflow as of
    from orpflow.backtest import backtest
    from orpflow.engine import Engine, load_engine_events, repeat_events
    from orpflow.reference.engine import EngineTwin

    rows: List[Tuple[str, str, str]] = []
    results: Dict[str, Any] = {}

    def row(name: str, compiled: str, reference: str = "") -> None:
        rows.append((name, compiled, reference))
        print(f"  {name:<44} {compiled:<46} {reference}", flush=True)

    paths = list(data) if data else [str(find_sample())]
    cfg = bench_config(paths)
    events, _ = load_engine_events(cfg, cfg.make_instruments())
    reps = 3 if quick else 5
    print(f"orpflow bench: {len(events):,} events from {', '.join(Path(p).name for p in paths)}; "
          f"medians of {reps}; busy rules (loose thresholds, no rate limits) for many orders", flush=True)
    print(f"  {'measure':<44} {'compiled':<46} pure-Python twin / note")

    # 1. backtest throughput, beside the twin on the same prefix
    prefix = events[: (10_000 if quick else 30_000)]
    ns_c, ns_t = [], []
    for _ in range(reps if not quick else 2):
        t = time.perf_counter_ns()
        backtest(prefix, cfg, measure=False)
        ns_c.append((time.perf_counter_ns() - t) / len(prefix))
    for _ in range(1 if quick else 2):
        t = time.perf_counter_ns()
        EngineTwin(cfg).run(prefix)
        ns_t.append((time.perf_counter_ns() - t) / len(prefix))
    whole = []
    res = None
    for _ in range(reps):
        res = backtest(events, cfg, measure=False)
        whole.append(res.events_per_second)
    assert res is not None
    eps = statistics.median(whole)
    row("backtest, whole recording", f"{eps / 1e6:,.2f} M events/s ({1e9 / eps:,.0f} ns/event)",
        f"{res.counters['orders']:,} orders, {res.counters['fills']:,} fills")
    c, tw = statistics.median(ns_c), statistics.median(ns_t)
    row(f"backtest, first {len(prefix):,} events", f"{c:,.0f} ns/event", f"{tw:,.0f} ns/event = {tw / c:,.0f}x")
    results["backtest_events_per_s"] = eps

    # 2. in-core tick-to-trade and feature time, measured inside the backtest loop
    lats = [backtest(events, cfg).latency for _ in range(reps)]
    mid = sorted(lats, key=lambda d: d["incore"]["p50"])[len(lats) // 2]
    row("tick-to-trade in-core, backtest", _lat(mid["incore"]), "record dequeued -> order record written")
    row("features per row, backtest", _lat(mid["feature"]), "all 22 features; one row in 16 timed")
    # the same run with every feature group computed before the decision (the order before
    # the engine deferred the groups the generator does not read): same records, more work first
    first = _all_first_latency(events, cfg, reps)
    row("tick-to-trade in-core, every group first", _lat(first["incore"]),
        f"engine defers {'+'.join(first['after']) or 'nothing'}; records {'identical' if first['same'] else 'DIFFER'}")
    # the imbalance rules read only the book and history groups: computing only those gives
    # the same orders with less work per row
    lean = bench_config(paths, features={"groups": ["book", "history"]})
    lres = [backtest(events, lean) for _ in range(reps)]
    same = np.array_equal(lres[0].fills["BTCUSDT"], res.fills["BTCUSDT"])
    lmid = sorted((r.latency for r in lres), key=lambda d: d["incore"]["p50"])[len(lres) // 2]
    row("tick-to-trade in-core, book+history groups", _lat(lmid["incore"]),
        "same fills as all groups" if same else "FILLS DIFFER from all groups")
    row("features per row, book+history groups", _lat(lmid["feature"]))

    # 2b. a model as the generator: per-row cost of both evaluators, then in-core
    # tick-to-trade with the native MLP beside the imbalance rules (same features, same run)
    _model_rows(row, results, events, paths, reps, quick)

    # 2c. your own strategy: the cost of the callbacks themselves
    _strategy_rows(row, results, events, cfg, reps, quick)

    # 3. through the threads at full speed
    runs = []
    for _ in range(reps):
        e = Engine(cfg, events=events).start()
        e.wait(600)
        e.close()
        runs.append((e.stats(), e.latency()))
    runs.sort(key=lambda r: r[0]["events"] / max(r[0]["elapsed_s"], 1e-9))
    st, lat = runs[len(runs) // 2]
    row("threaded engine, full speed", f"{st['events'] / st['elapsed_s'] / 1e6:,.2f} M events/s",
        f"feed waited {st['market_waits']:,}x on a full market ring")
    row("tick-to-trade in-core, threads", _lat(lat["incore"]))
    row("feed push -> order, full speed", _lat(lat["ingress"]), "includes queueing behind a full ring")
    row("feed push -> popped, full speed", _lat(lat["handoff"]), "first record of each pop of up to 256")
    results["threaded_events_per_s"] = st["events"] / st["elapsed_s"]

    # 4. paced: the hand-off latency without a queue
    span = 20e9 if quick else 60e9
    t0 = events["ts_local"][0]
    paced = events[events["ts_local"] < t0 + span]
    speed = 10.0
    e = Engine(dataclasses.replace(cfg, feed=dataclasses.replace(cfg.feed, speed=speed), spin_us=1e6),
               events=paced).start()
    e.wait(600)
    e.close()
    lat = e.latency()
    row(f"feed push -> order, paced {speed:g}x", _lat(lat["ingress"]),
        f"{span / 1e9:.0f} s of data; strategy spins (spin_us=1e6)")
    row(f"feed push -> popped, paced {speed:g}x", _lat(lat["handoff"]), "the ring hand-off alone")
    row(f"tick-to-trade in-core, paced {speed:g}x", _lat(lat["incore"]))

    # 5. persistence: the writer alone over many records, then a graceful stop with the
    # largest rings the config allows, both rings full
    many = repeat_events(events, 5 if quick else 20)
    recs = backtest(many, cfg, measure=False).records
    for sync in ("NORMAL", "FULL"):
        p = persistence_rate(recs, cfg, sync, reps)
        row(f"persistence, synchronous={sync}", f"{p['rows_per_s']:,.0f} rows/s ({p['records_per_s']:,.0f} records/s)",
            f"{len(recs):,} records -> {p['rows']:,} rows, {p['commits']} commits; CPU {p['cpu_rows_per_s']:,.0f} rows/s")
        results[f"persistence_rows_per_s_{sync.lower()}"] = p["rows_per_s"]
        results[f"persistence_records_per_s_{sync.lower()}"] = p["records_per_s"]
    st = stop_time(events, cfg, reps)
    row("stop() with the largest rings, both full", f"{st['stop_s'] * 1e3:,.0f} ms (max of {reps}: "
        f"{st['max_s'] * 1e3:,.0f} ms)", f"rings {st['market_ring']:,} + {st['out_ring']:,}; "
        f"{st['records']:,.0f} records written during the stop; rings {st['market_fill']:.0%} / "
        f"{st['out_fill']:.0%} full at stop()")
    results["stop_s"] = st["stop_s"]

    # 6. memory over a long replay, in a fresh interpreter (the sample repeated; the feed
    # shifts the copies as it pushes them, so no big array is built)
    repeat = max(1, -(-long_events // len(events)))
    if quick:
        repeat = min(repeat, 3)
    for rules, keep in (("busy", True), ("busy", False), ("default", True)):
        mem = _memory_subprocess(paths, repeat, rules, keep)
        label = f"{rules} rules, keep_history={'true' if keep else 'false'}"
        row(f"long replay, {label}", f"{mem['events_per_s'] / 1e6:,.2f} M events/s, {mem['records']:,} records",
            f"{mem['events'] / 1e6:,.1f} M events (repeat {repeat}x), DB on; {mem['orders']:,} orders, "
            f"{mem['fills']:,} fills")
        if rules == "busy" and keep:
            row("RSS: python+numpy+orpflow / +events / +engine",
                f"{mem['base']:,.1f} MB / +{mem['data']:,.1f} MB / +{mem['built']:,.1f} MB")
        growth = (f"{mem['growth']:+,.1f} MB from 10% to 90%" if mem["samples"] >= 20 else
                  "growth n/a: run too short to sample (full bench: >= 10 M events)")
        row("  RSS during that run: peak / growth", f"+{mem['peak']:,.1f} MB over built / {growth}",
            f"order+fill arrays held at the end: {mem['history_mb']:,.1f} MB")
        results[f"rss_growth_mb_{rules}_{'keep' if keep else 'nokeep'}"] = mem["growth"]
    results["rss_growth_mb"] = results["rss_growth_mb_busy_nokeep"]
    if out is not None:
        out.update(results)
    return 0


def _strategy_rows(row: Any, results: Dict[str, Any], events: np.ndarray, cfg: EngineConfig,
                   reps: int, quick: bool) -> None:
    """Per-callback cost of a compiled (no-op CStrategy) and a Python strategy, the callbacks
    per event on this recording, and the loop's throughput with the no-op strategy beside the
    signal strategy, same run."""
    import orpflow as of
    from orpflow.backtest import backtest
    from orpflow._core.broker import ExecutionSim
    from orpflow._core.strategy import PythonStrategy, _bench_callback

    class Noop(of.Strategy):
        def on_book(self, ctx: Any) -> None:
            pass

    inst = cfg.make_instruments()[0]
    n = 200_000 if quick else 2_000_000
    c_ns = statistics.median(_bench_callback(of.CStrategy(), ExecutionSim(inst), n) for _ in range(reps))
    py_ns = statistics.median(_bench_callback(PythonStrategy(Noop()), ExecutionSim(inst), n // 20)
                              for _ in range(reps))
    noop, sig = [], []
    rows_n = 0
    for _ in range(reps):
        r = backtest(events, cfg, measure=False, strategy=of.CStrategy())
        noop.append(r.seconds / r.counters["events"] * 1e9)
        rows_n = r.counters["rows"]
        r = backtest(events, cfg, measure=False)
        sig.append(r.seconds / r.counters["events"] * 1e9)
    per_event = rows_n / len(events)
    row("strategy callback, compiled (no-op CStrategy)", f"{c_ns:,.1f} ns per callback",
        f"{per_event:.3f} row callbacks per event -> {c_ns * per_event:,.2f} ns/event")
    row("strategy callback, Python (no-op on_book)", f"{py_ns:,.0f} ns per callback",
        "GIL taken per callback; callbacks not overridden never take it")
    row("backtest loop, no-op CStrategy / signal strategy", f"{statistics.median(noop):,.1f} / "
        f"{statistics.median(sig):,.1f} ns/event", "book + features + (nothing | signal, risk, orders)")
    results["strategy_callback_ns"] = c_ns
    results["strategy_callback_ns_per_event"] = c_ns * per_event
    results["python_callback_ns"] = py_ns


def _all_first_latency(events: np.ndarray, cfg: EngineConfig, reps: int) -> Dict[str, Any]:
    """In-core latency with every feature group before the decision; also whether the records
    equal the default (split) engine's and which groups it defers."""
    from orpflow.engine import latency_percentiles
    from orpflow.runtime import build_core
    from orpflow._core.features import READS_ALL
    lats, recs, after = [], [], []
    for split in [False] * reps + [True]:
        core, _ = build_core(cfg, cfg.make_instruments())
        after = core.feature_order(0)["after"] if split else after
        if not split:
            core.set_feature_reads(0, READS_ALL)
        core.run_array(events)
        recs.append(core.take_records())
        if not split:
            lats.append({"incore": latency_percentiles(core, "incore")})
    mid = sorted(lats, key=lambda d: d["incore"]["p50"])[len(lats) // 2]
    return {"incore": mid["incore"], "after": after, "same": recs[0].tobytes() == recs[-1].tobytes()}


def _model_rows(row: Any, results: Dict[str, Any], events: np.ndarray, paths: Sequence[str], reps: int,
                quick: bool) -> None:
    import importlib.util
    missing = [m for m in ("onnx", "onnxruntime") if importlib.util.find_spec(m) is None]
    if missing:
        row("ONNX models", "skipped", f"needs {' and '.join(missing)}: pip install 'orpflow[ml]'")
        return
    import orpflow as of
    from orpflow.backtest import backtest
    from orpflow.ml.bench_models import bench_rows, mlp_model, per_row_ns
    for name, model in bench_rows():
        r = per_row_ns(model, rows=500 if quick else 2000, reps=reps)
        row(f"model per row, {name}", f"native {r['native_ns']:,.0f} ns, onnxruntime {r['onnxruntime_ns']:,.0f} ns",
            f"native {r['ratio']:,.0f}x faster; max |difference| {r['max_abs_diff']:.1e}")
        results[f"model_{name.split()[0].lower()}_native_ns"] = r["native_ns"]
        results[f"model_{name.split()[0].lower()}_ratio"] = r["ratio"]
    # every built-in feature in, toxicity on (a VPIN bucket) so no input is always undefined
    features = {"vpin_bucket_volume": "0.5"}
    imb = bench_config(paths, features=features)
    feats = of.compute_features(events, imb.make_instruments()[0], imb.signal.features)
    names = list(of.FEATURE_NAMES)
    mean = [float(np.nanmean(feats[n])) for n in names]
    std = [float(np.nanstd(feats[n])) or 1.0 for n in names]
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "mlp.onnx")
        with open(path, "wb") as f:
            f.write(mlp_model((len(names), 32, 16, 1)).SerializeToString())
        sig = of.OnnxSignal(path, inputs=tuple(names), normalize="zscore", mean=mean, std=std, evaluator="native")
        mlp = dataclasses.replace(imb, signal=dataclasses.replace(imb.signal, generator=sig, entry_threshold=0.2,
                                                                    min_interval_ms=0))
        out = {}
        for label, cfg in (("imbalance rules", imb), ("native MLP 22-32-16-1", mlp)):
            runs = [backtest(events, cfg) for _ in range(reps)]
            mid = sorted((r.latency for r in runs), key=lambda d: d["incore"]["p50"])[len(runs) // 2]
            out[label] = (mid["incore"], runs[0].counters["orders"])
        (li, ni), (lm, nm) = out["imbalance rules"], out["native MLP 22-32-16-1"]
        row("tick-to-trade in-core, imbalance rules", _lat(li), f"{ni:,} orders; all groups + VPIN")
        row("tick-to-trade in-core, native MLP 22-32-16-1", _lat(lm),
            f"{nm:,} orders; p50 {lm['p50'] - li['p50']:+,.0f} ns vs the imbalance rules")
        results["model_mlp_incore_p50_delta_ns"] = lm["p50"] - li["p50"]


def persistence_rate(recs: np.ndarray, cfg: EngineConfig, synchronous: str = "NORMAL",
                     reps: int = 3) -> Dict[str, Any]:
    """The Writer alone (decode + SQLite) over `recs` in pops of 4096, as the persistence
    thread does: medians of rows/s and records/s (wall clock), and CPU-time rows/s."""
    import orpflow as of
    from orpflow.persistence import Writer
    walls, cpus = [], []
    rows = commits = 0
    for _ in range(reps):
        with tempfile.TemporaryDirectory() as d:
            pc = of.config.PersistenceConfig(path=os.path.join(d, "b.db"), synchronous=synchronous)
            w = Writer(pc.path, pc, "bench", cfg.make_instruments(), "{}", [0])
            t, c = time.perf_counter(), time.process_time()
            for i in range(0, len(recs), 4096):
                w.write(recs[i:i + 4096])
            w.commit()
            walls.append(time.perf_counter() - t)
            cpus.append(time.process_time() - c)
            rows, commits = w.rows_written, w.commits
            w.close("finished", 0)
    wall, cpu = statistics.median(walls), statistics.median(cpus)
    return {"rows": rows, "commits": commits, "rows_per_s": rows / wall, "records_per_s": len(recs) / wall,
            "cpu_rows_per_s": rows / cpu}


def stop_time(events: np.ndarray, cfg: EngineConfig, reps: int = 3) -> Dict[str, Any]:
    """engine.stop() of a full-speed run with the database on and the largest rings the
    config allows, once the market ring is full (the out ring then is too, or the writer
    keeps up): median and max seconds, and the records written during the stop."""
    import orpflow as of
    from orpflow.config import MARKET_RING_MAX, OUT_RING_MAX
    from orpflow.engine import Engine
    times, written, fill = [], [], []
    feed = dataclasses.replace(cfg.feed, repeat=1000, market_ring=MARKET_RING_MAX, out_ring=OUT_RING_MAX)
    for _ in range(reps):
        with tempfile.TemporaryDirectory() as d:
            c = dataclasses.replace(cfg, feed=feed, persistence=of.config.PersistenceConfig(
                path=os.path.join(d, "stop.db")))
            e = Engine(c, events=events).start()
            deadline = time.perf_counter() + 10     # both full, unless the writer keeps up
            while time.perf_counter() < deadline and (len(e.market) < e.market.capacity * 0.99 or
                                                      len(e.out) < e.out.capacity * 0.99):
                time.sleep(0.01)
            fill.append((len(e.market) / e.market.capacity, len(e.out) / e.out.capacity))
            before = e.writer.records
            t = time.perf_counter()
            e.stop(timeout=30)
            times.append(time.perf_counter() - t)
            written.append(e.writer.records - before)
            e.close()
    return {"stop_s": statistics.median(times), "max_s": max(times), "records": statistics.median(written),
            "market_ring": MARKET_RING_MAX, "out_ring": OUT_RING_MAX,
            "market_fill": statistics.median(f[0] for f in fill), "out_fill": statistics.median(f[1] for f in fill)}


def _memory_subprocess(paths: Sequence[str], repeat: int, rules: str, keep: bool) -> Dict[str, Any]:
    import json
    import subprocess
    import sys
    proc = subprocess.run([sys.executable, "-m", "orpflow.bench", "memory", str(repeat), rules,
                           "keep" if keep else "nokeep", *paths],
                          capture_output=True, text=True, cwd=tempfile.gettempdir(), timeout=3600)
    if proc.returncode != 0:
        raise RuntimeError(f"memory run failed: {proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def memory_run(repeat: int, rules: str, keep: bool, paths: Sequence[str]) -> Dict[str, Any]:
    """RSS of a threaded run with a database over the recording `repeat` times: before the
    data, after loading it, after building the engine, sampled during the run. rules: "busy"
    (BENCH_RULES) or "default" (the config defaults: ORPFlow's thresholds, 5/60/500 rate limits)."""
    base = rss_mb()
    from orpflow.engine import Engine, load_engine_events
    import orpflow as of
    if rules == "busy":
        cfg = bench_config(paths, execution={"keep_history": keep})
    else:
        cfg = config_from_dict({"instruments": [{"symbol": "BTCUSDT", "paths": list(paths)}],
                                "execution": {"keep_history": keep}})
    events, _ = load_engine_events(cfg, cfg.make_instruments())
    loaded = rss_mb()
    with tempfile.TemporaryDirectory() as d:
        lcfg = dataclasses.replace(cfg, feed=dataclasses.replace(cfg.feed, repeat=repeat),
                                   persistence=of.config.PersistenceConfig(path=os.path.join(d, "long.db")))
        e = Engine(lcfg, events=events)
        built = rss_mb()
        with RssSampler() as rs:
            e.start()
            e.wait(3600)
            e.close()
        st = e.stats()
    samples = [r for _, r in rs.samples]
    q = max(1, len(samples) // 10)
    early = statistics.median(samples[q:2 * q]) if len(samples) >= 10 else samples[0]
    late = statistics.median(samples[-2 * q:-q]) if len(samples) >= 10 else samples[-1]
    n_orders = st["orders"]
    held_orders, held_fills = len(e.orders()), len(e.fills())
    # bytes the broker holds at the end: order chunks of 1024, the fill array grown by doubling
    history = (-(-held_orders // 1024) * 1024 * SIM_ORDER_BYTES
               + (2 ** max(0, held_fills - 1).bit_length() if held_fills else 0) * SIM_FILL_BYTES) / 2 ** 20
    return {"base": base, "data": loaded - base, "built": built - loaded, "peak": max(samples) - built,
            "growth": late - early, "events": st["events"], "records": st["out_records"],
            "orders": n_orders, "fills": st["fills"], "history_mb": history, "samples": len(samples),
            "events_per_s": st["events"] / max(st["elapsed_s"], 1e-9)}


if __name__ == "__main__":
    import json
    import sys
    if len(sys.argv) > 4 and sys.argv[1] == "memory":
        print(json.dumps(memory_run(int(sys.argv[2]), sys.argv[3], sys.argv[4] == "keep", sys.argv[5:])))
