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
    rows = [("callgrind engine loop (core_step)", "measure",
             f"{m:,} spot events, busy rules, all features, latency clocks on; "
             "book -> features -> signal -> risk -> broker"),
            ("callgrind engine loop, clocks off", "nomeasure", "measure=False"),
            ("callgrind engine loop, book+history", "lean",
             f"the groups the imbalance rules read; valgrind {time.time() - t0:.0f}s")]
    for name, key, note in rows:
        c = counts[key]
        add(name, "instr/event", c / m, note=note)
        ev = getattr(c, "ev", {})
        add(f"  {name}: mispredicts", "mispred/event", getattr(c, "mis", 0) / m,
            note=f"Bcm {ev.get('Bcm', 0):,} of Bc {ev.get('Bc', 0):,}, Bim {ev.get('Bim', 0):,} of Bi {ev.get('Bi', 0):,}")
    try:
        from run import cg_top_functions
        top = cg_top_functions(tmp / "cge.measure.out", "Bcm", 5)
    except Exception as e:  # noqa: BLE001
        top = []
        print(f"top mispredict functions: {type(e).__name__}: {e}", file=sys.stderr)
    total_bcm = getattr(counts["measure"], "ev", {}).get("Bcm", 0) or 1
    for rank, (fn, cost) in enumerate(top, 1):
        add(f"  top mispredicts #{rank}: {short_fn(fn)}", "Bcm/event", cost.get("Bcm", 0) / m,
            note=f"{cost.get('Bcm', 0) / total_bcm:.0%} of the loop's Bcm; "
                 f"{cost.get('Ir', 0) / m:.0f} instr/event, Bim {cost.get('Bim', 0) / m:.3g}/event; {fn}")


def short_fn(name: str) -> str:
    """A Cython C function name without its module prefix: __pyx_f_7orpflow_5_core_4book_X
    -> book.X (Cython length-prefixes each dotted part)."""
    import re
    mm = re.match(r"__pyx_f_7orpflow_5_core_(\d+)", name)
    if mm:
        k = int(mm.group(1))
        rest = name[mm.end():]
        return f"{rest[:k]}.{rest[k + 1:]}"
    return name if len(name) <= 48 else name[:45] + "..."


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
