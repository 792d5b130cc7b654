"""of.sweep on dask: the same N backtests serially (in this process) and on a LocalCluster.

    python benchmarks/bench_sweep.py [--tasks 200] [--workers 2] [--reps 3] [--data FILE] [--json OUT]

Each rep starts a LocalCluster of `--workers` processes (one thread each; timed: start-up, until
every worker has imported orpflow),
runs the N-task sweep on it, closes it, and runs the same sweep with client="serial". Both
sweeps convert the one data slice once (the same cost on both sides) and must give the same
rows (checked, timing columns aside). Printed: medians over the reps of tasks/s, the speed-up,
the per-task overhead (cluster wall time per task minus the serial time per task) and the
cluster start-up time; beside them the same backtests in a plain multiprocessing pool of as many
processes, which separates dask's own cost from what the machine's cores give (on a shared
2-core machine under load, two processes may get much less than two cores). The speed-up is the median of the per-rep ratios (the two sides of a
rep run back to back, in alternating order). The grid is N values of signal.threshold over the data slice.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PAPER = REPO / "examples" / "paper.toml"
SAMPLE = REPO / "examples" / "data" / "binance_spot_btcusdt_sample.gz"


def _import_orpflow() -> None:
    import orpflow.sweep  # noqa: F401


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", type=int, default=200, help="backtests per sweep")
    ap.add_argument("--workers", type=int, default=2, help="LocalCluster worker processes")
    ap.add_argument("--reps", type=int, default=3, help="repetitions (medians reported)")
    ap.add_argument("--data", default=str(SAMPLE), help="a Binance recording (default: the bundled sample)")
    ap.add_argument("--json", default=None, help="also write the figures as JSON")
    args = ap.parse_args()
    if not os.path.isfile(args.data):
        print(f"SKIP: recording not found: {args.data}")
        return 0
    import numpy as np
    import pandas as pd
    from distributed import Client, LocalCluster
    import orpflow as of
    from orpflow.sweep import TIMING_COLUMNS

    cfg = of.load_config(str(PAPER))
    events, _ = of.load_engine_events(cfg, cfg.make_instruments(), [args.data])
    work = tempfile.mkdtemp(prefix="bench-sweep-")
    npy = os.path.join(work, "slice.npy")
    np.save(npy, events)
    grid = {"signal.threshold": [round(float(t), 6) for t in np.linspace(0.3, 0.99, args.tasks)]}

    samples = {"serial_s": [], "cluster_s": [], "startup_s": [], "pool_s": []}
    same = True
    def on_cluster():
        t0 = time.perf_counter()
        cluster = LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                               dashboard_address="127.0.0.1:0", silence_logs=logging.ERROR)
        client = Client(cluster)
        client.wait_for_workers(args.workers)
        client.run(_import_orpflow)          # start-up = ready to backtest: the workers' imports too
        samples["startup_s"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        df = of.sweep(cfg, grid, [npy], client, progress=False)
        samples["cluster_s"].append(time.perf_counter() - t0)
        client.close()
        cluster.close()
        return df

    def serially():
        t0 = time.perf_counter()
        df = of.sweep(cfg, grid, [npy], "serial", progress=False)
        samples["serial_s"].append(time.perf_counter() - t0)
        return df

    def in_pool():
        """The same backtests in a plain multiprocessing pool of as many processes (started and
        warmed before the clock): what the machine's cores give without dask."""
        from multiprocessing import get_context
        from orpflow.sweep import apply_overrides, run_batch
        items = [(apply_overrides(cfg, {"signal.threshold": t}), npy) for t in grid["signal.threshold"]]
        chunks = [items[i::args.workers] for i in range(args.workers)]
        with get_context("spawn").Pool(args.workers) as pool:
            pool.map(run_batch, [items[:1]] * args.workers)
            t0 = time.perf_counter()
            pool.map(run_batch, chunks, chunksize=1)
            samples["pool_s"].append(time.perf_counter() - t0)

    for rep in range(args.reps):
        # alternate which goes first, so drift in the machine's load hits both sides
        if rep % 2 == 0:
            par, ser = on_cluster(), serially()
            in_pool()
        else:
            in_pool()
            ser, par = serially(), on_cluster()
        drop = list(TIMING_COLUMNS)
        same = same and par.drop(columns=drop).equals(ser.drop(columns=drop))
        print(f"rep {rep + 1}/{args.reps}: start-up {samples['startup_s'][-1]:.2f} s, cluster "
              f"{samples['cluster_s'][-1]:.2f} s, serial {samples['serial_s'][-1]:.2f} s, "
              f"pool {samples['pool_s'][-1]:.2f} s", file=sys.stderr)

    n = args.tasks
    med = {k: statistics.median(v) for k, v in samples.items()}
    res = {
        "tasks": n, "workers": args.workers, "reps": args.reps, "events_per_task": int(len(events)),
        "serial_tasks_per_s": n / med["serial_s"], "cluster_tasks_per_s": n / med["cluster_s"],
        # the median of per-rep ratios: each rep's two sides ran back to back
        "speedup": statistics.median(a / b for a, b in zip(samples["serial_s"], samples["cluster_s"])),
        "serial_ms_per_task": 1e3 * med["serial_s"] / n, "cluster_ms_per_task": 1e3 * med["cluster_s"] / n,
        "overhead_ms_per_task": 1e3 * (med["cluster_s"] - med["serial_s"]) / n,
        "pool_tasks_per_s": n / med["pool_s"], "pool_ms_per_task": 1e3 * med["pool_s"] / n,
        "pool_speedup": statistics.median(a / b for a, b in zip(samples["serial_s"], samples["pool_s"])),
        "dask_overhead_ms_per_task": 1e3 * (med["cluster_s"] - med["pool_s"]) / n,
        "startup_s": med["startup_s"], "identical_rows": bool(same),
        "errors": int((par["error"] != "").sum()), "samples": samples,
        "load_average": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
    }
    print(f"sweep benchmark: {n} backtests of {len(events):,} events each ({os.path.basename(args.data)}), "
          f"medians of {args.reps} reps, load average {res['load_average']:.2f}")
    rows = [
        ("serial (this process)", f"{res['serial_tasks_per_s']:,.1f}", f"{res['serial_ms_per_task']:.2f}", ""),
        (f"LocalCluster, {args.workers} workers", f"{res['cluster_tasks_per_s']:,.1f}",
         f"{res['cluster_ms_per_task']:.2f}", f"start-up {res['startup_s']:.2f} s (not in the sweep time)"),
        (f"plain pool, {args.workers} processes", f"{res['pool_tasks_per_s']:,.1f}", f"{res['pool_ms_per_task']:.2f}",
         f"no dask: what {args.workers} processes get from the machine now ({res['pool_speedup']:.2f}x serial)"),
    ]
    print(f"  {'run':<26} {'tasks/s':>9} {'ms/task':>9}  note")
    for r in rows:
        print(f"  {r[0]:<26} {r[1]:>9} {r[2]:>9}  {r[3]}")
    print(f"  speed-up {res['speedup']:.2f}x; per-task overhead (cluster ms/task - serial ms/task) "
          f"{res['overhead_ms_per_task']:+.2f} ms, of which dask's (cluster - pool) "
          f"{res['dask_overhead_ms_per_task']:+.2f} ms; rows identical: {res['identical_rows']}; "
          f"failed tasks: {res['errors']}")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1))
    import shutil
    shutil.rmtree(work, ignore_errors=True)
    return 0 if same and not res["errors"] else 1


if __name__ == "__main__":           # the LocalCluster's worker processes re-import this file
    sys.exit(main())
