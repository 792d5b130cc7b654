"""Engine rows for benchmarks/run.py: `orpflow bench`'s table, plus (with --callgrind) the
noise-free instructions per event of the engine loop (valgrind --toggle-collect on core_step,
so only the compiled per-event function is counted)."""
from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, Sequence

import numpy as np

CG_CHILD = """
import sys
import numpy as np
from orpflow.backtest import backtest
from orpflow.bench import bench_config
events = np.load(sys.argv[2])
cfg = bench_config([], features={"groups": sys.argv[3].split(",")}) if sys.argv[3] else bench_config([])
res = backtest(events, cfg, measure=sys.argv[1] == "measure")
print(res.counters["orders"], res.counters["rows"])
"""


def callgrind_engine(tmp: Path, events: np.ndarray, add: Callable, valgrind_batch: Callable,
                     n: int = 100_000, timeout: float = 900) -> None:
    (tmp / "cg_engine.py").write_text(CG_CHILD)
    np.save(tmp / "engine_events.npy", events[:n])
    runs: Dict[str, Sequence[str]] = {"measure": ("measure", ""), "nomeasure": ("off", ""),
                                      "lean": ("measure", "book,history")}
    jobs = {key: ["--toggle-collect=*engine_core_step*", f"--callgrind-out-file={tmp / ('cge.' + key + '.out')}",
                  sys.executable, str(tmp / "cg_engine.py"), what, str(tmp / "engine_events.npy"), groups]
            for key, (what, groups) in runs.items()}
    t0 = time.time()
    counts = valgrind_batch(jobs, timeout)
    m = min(n, len(events))
    add("callgrind engine loop (core_step)", "instr/event", counts["measure"] / m,
        note=f"{m:,} spot events, busy rules, all features, latency clocks on")
    add("callgrind engine loop, clocks off", "instr/event", counts["nomeasure"] / m, note="measure=False")
    add("callgrind engine loop, book+history", "instr/event", counts["lean"] / m,
        note=f"the groups the imbalance rules read; valgrind {time.time() - t0:.0f}s")


def run_engine(data_paths: Sequence[str], quick: bool, add: Callable) -> Dict[str, Any]:
    from orpflow.bench import run_bench
    out: Dict[str, Any] = {}
    run_bench(data_paths, 10_000_000, quick, out)
    add("engine backtest", "M events/s", out["backtest_events_per_s"] / 1e6, note="orpflow bench table above")
    add("engine threaded, full speed", "M events/s", out["threaded_events_per_s"] / 1e6)
    add("engine RSS growth, long replay", "MB", out["rss_growth_mb"], note="busy rules, keep_history=false")
    add("persistence, synchronous=NORMAL", "rows/s", out["persistence_rows_per_s_normal"],
        note=f"{out['persistence_records_per_s_normal']:,.0f} records/s; the Writer alone")
    add("engine stop(), largest rings full", "ms", out["stop_s"] * 1e3, note="database on; budget 1 s")
    return out
