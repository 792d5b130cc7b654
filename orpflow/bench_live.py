"""``orpflow bench --live``: tick-to-trade from the wire, over a loopback exchange.

A loopback exchange (``orpflow serve-replay``, its own process) plays a recording over a
websocket on 127.0.0.1 and serves its REST depth snapshots; a live Engine connects to it as
it would to Binance. Measured, not asserted:

- at recorded pace (or xN): wire -> order (frame received by orpflow -> order record
  written), its parts (decode: received -> records pushed; hand-off: received -> popped by
  the strategy; in-core), as p50 / p99 / p99.9 / max;
- flat out (the server sends as fast as the socket takes): messages per second through the
  live path, with the counts that show nothing was lost (messages received == lines sent,
  rejected, ring full waits);
- memory: the engine process's RSS above the interpreter with numpy and orpflow imported,
  sampled over the paced session (first and last minute compared: flat or not).

Thread layout on a machine with >= 2 CPUs (``[strategy] cpu``, ``[feed] cpu``,
``[persistence] cpu``): the strategy thread alone on the last CPU, spinning (spin =
"always": the only spinner); the feed, persistence and the loopback server on CPU 0.
"""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

from orpflow.config import config_from_dict

__all__ = ["run_live_bench", "loopback_server"]


@contextmanager
def loopback_server(files: Sequence[str], *, speed: float = 1.0, cpu: Optional[int] = None,
                    extra: Sequence[str] = ()) -> Iterator[Tuple[str, str, "subprocess.Popen[bytes]"]]:
    """(ws_url, rest_url, process) of an `orpflow serve-replay` child on 127.0.0.1."""
    cmd = [sys.executable, "-m", "orpflow", "serve-replay", *map(str, files), "--speed", repr(speed),
           "--port", "0", "--rest-port", "0", *extra]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=os.path.expanduser("~"))
    try:
        if cpu is not None and hasattr(os, "sched_setaffinity"):
            os.sched_setaffinity(proc.pid, {cpu})
        assert proc.stdout is not None
        line = proc.stdout.readline().decode().split()
        if len(line) < 4 or line[0] != "serving":
            err = proc.stderr.read().decode() if proc.stderr else ""
            raise RuntimeError(f"the loopback exchange did not start: {' '.join(line)} {err.strip()}")
        yield line[1], line[3], proc
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:          # pragma: no cover
            proc.kill()


def server_status(rest_url: str) -> Dict[str, Any]:
    import json
    import urllib.request
    with urllib.request.urlopen(rest_url + "/orpflow/status", timeout=5) as r:
        return json.loads(r.read())


def _layout() -> Dict[str, Optional[int]]:
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if len(cpus) < 2:
        return {"strategy": None, "other": None}
    return {"strategy": cpus[-1], "other": cpus[0]}


def live_bench_config(ws_url: str, rest_url: str, db: Optional[str], layout: Dict[str, Optional[int]],
                      spin: str = "always") -> Any:
    from orpflow.bench import BENCH_RULES
    data: Dict[str, Any] = {
        "strategy": {"id": "bench-live", "spin": spin},
        "instruments": [{"symbol": "BTCUSDT", "venue": "binance-spot", "tick_size": "0.01",
                         "lot_size": "0.00001"}],
        "feed": {"source": "binance", "ws_url": ws_url, "rest_url": rest_url, "silence_s": 30.0},
        "persistence": {"path": db},
        "execution": {"keep_history": False},     # long sessions: orders/fills freed once written
    }
    for k, v in BENCH_RULES.items():
        data.setdefault(k, {}).update(v)
    if layout["strategy"] is not None:
        data["strategy"]["cpu"] = layout["strategy"]
        data["feed"]["cpu"] = layout["other"]
        data["persistence"]["cpu"] = layout["other"]
    return config_from_dict(data)


def _rss_mb() -> float:
    from orpflow.bench import rss_mb
    return rss_mb()


def _session(files: Sequence[str], speed: float, seconds: float, db: Optional[str],
             spin: str, sample_rss: bool) -> Dict[str, Any]:
    from orpflow.engine import Engine
    layout = _layout()
    # paced: the files loop (a session as long as asked; the client resyncs at each wrap)
    with loopback_server(files, speed=speed, cpu=layout["other"],
                         extra=("--loop",) if seconds else ()) as (ws, rest, _):
        cfg = live_bench_config(ws, rest, db, layout, spin)
        base = _rss_mb()
        e = Engine(cfg)
        rss: List[Tuple[float, float]] = []
        t0 = time.perf_counter()
        e.start()
        last, still = -1, 0.0
        while True:
            time.sleep(0.25)
            now = time.perf_counter() - t0
            if sample_rss:
                rss.append((now, _rss_mb() - base))
            if seconds:
                if now >= seconds:
                    break
                continue
            st = server_status(rest)
            frames = e.stats()["feed"]["frames"]
            if st.get("done"):                       # everything sent: wait for it to arrive
                if frames == last:
                    still += 0.25
                    if still >= 0.5:
                        break
                else:
                    still = 0.0
            last = frames
        sent = server_status(rest)
        summary = e.stop(timeout=5.0)
        e.close()
    feed = summary["stats"]["feed"]
    return {"summary": summary, "feed": feed, "server": sent, "rss": rss, "layout": layout,
            "elapsed": time.perf_counter() - t0}


def run_live_bench(files: Optional[Sequence[str]] = None, *, seconds: float = 30.0, speed: float = 1.0,
                   flat_out: bool = True, db: bool = True, spin: str = "always",
                   out: Any = None) -> Dict[str, Any]:
    """Print and return the live figures (see the module docstring)."""
    import tempfile
    from orpflow.bench import find_sample
    out = out or sys.stdout
    files = [str(f) for f in files] if files else [str(find_sample())]
    results: Dict[str, Any] = {}

    def p(text: str) -> None:
        print(text, file=out, flush=True)

    def lat(d: Dict[str, Any]) -> str:
        def f(v: float) -> str:
            return "n/a" if v != v else (f"{v / 1e3:,.1f} us" if v >= 1e4 else f"{v:,.0f} ns")
        return (f"p50 {f(d['p50'])}  p99 {f(d['p99'])}  p99.9 {f(d['p99_9'])}  max {f(d['max_ns'])}  "
                f"(n={d['count']:,})")

    with tempfile.TemporaryDirectory() as tmp:
        dbp = str(Path(tmp) / "live.db") if db else None
        p(f"live bench: {', '.join(Path(f).name for f in files)} over a loopback exchange (127.0.0.1); "
          f"layout {_layout()}")
        r = _session(files, speed, seconds, dbp, spin, sample_rss=True)
        s = r["summary"]
        results["paced"] = r
        p(f"paced x{speed:g} for {r['elapsed']:.1f} s: {r['feed']['frames']:,} messages received, "
          f"{r['server'].get('sent', '?')} sent by the server; orders {s['stats']['orders']:,}")
        for key, name in (("wire", "wire -> order"), ("decode", "wire -> pushed"),
                          ("handoff", "wire -> popped"), ("incore", "in-core")):
            d = s["latency"][key]
            p(f"  {name:<16} {lat(d)}")
        rss = r["rss"]
        if rss:
            peak = max(v for _, v in rss)
            first = [v for t, v in rss if t <= min(60.0, rss[-1][0] / 2)]
            last = [v for t, v in rss if t >= rss[-1][0] - min(60.0, rss[-1][0] / 2)]
            p(f"  memory above the interpreter (numpy + orpflow imported): peak {peak:.1f} MB; "
              f"first part median {sorted(first)[len(first) // 2]:.1f} MB, last part median "
              f"{sorted(last)[len(last) // 2]:.1f} MB")
        if flat_out:
            r2 = _session(files, 0.0, 0.0, dbp + "-2" if dbp else None, "adaptive", sample_rss=False)
            results["flat_out"] = r2
            f = r2["feed"]
            span = max(f.get("last_frame_s", 0.0) - f.get("first_frame_s", 0.0), 1e-9)
            p(f"flat out: {f['frames']:,} messages in {span:.3f} s = {f['frames'] / span:,.0f} messages/s "
              f"(server sent {r2['server'].get('sent', '?')}); rejected {f['rejected']:,}, ring full "
              f"waits {r2['summary']['stats']['market_waits']:,}, lost {r2['summary']['stats']['feed_lost']:,}")
            results["flat_out_rate"] = f["frames"] / span
    return results
