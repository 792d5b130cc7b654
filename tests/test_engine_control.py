"""The control thread during a threaded run: snapshot(), stats() and latency() hammered from
another thread while the feed and strategy threads run (paced and full speed). No call raises,
every value is in range, and nothing that only grows is ever seen going back."""
from __future__ import annotations

import threading
import time
from typing import Any, Dict, List

import numpy as np
import pytest

from orpflow.engine import Engine, load_engine_events
from orpflow.config import EngineConfig
from test_engine import sample_config

# every counter in stats() only grows during a run (the rest are levels: utilisation, positions)
MONOTONE = ("events", "rows", "signals", "orders", "rejected", "fills", "out_records", "out_waits",
            "unknown", "idle_sleeps", "market_waits", "fed", "breaker_trips", "records_persisted")


@pytest.fixture(scope="module")
def sample_events() -> np.ndarray:
    cfg = sample_config()
    ev, _ = load_engine_events(cfg, cfg.make_instruments())
    return ev


def hammer(cfg: EngineConfig, events: np.ndarray, min_calls: int = 300) -> Dict[str, Any]:
    """Run the engine while this thread calls the control API in a loop; go on after the run
    until min_calls rounds were made (a fast run must not make the check vacuous)."""
    seen: Dict[str, Any] = {"calls": 0, "errors": [], "back": [], "range": []}
    last: Dict[str, float] = {}
    from orpflow.metrics import EngineCollector
    e = Engine(cfg, events=events).start()
    collector = EngineCollector(e)
    try:
        while e.running() or seen["calls"] < min_calls:
            try:
                snap = e.snapshot("BTCUSDT")
                pub = e.core.slot_stats(0)               # before stats(): it cannot be ahead
                st = e.stats()
                lat = e.latency()
                rejections = e.risk_rejections()
                scraped = list(collector.collect())      # what /metrics serves, on this thread
            except Exception as exc:           # any exception at all is the failure
                seen["errors"].append(repr(exc))
                break
            seen["calls"] += 1
            now = {"version": snap["version"], "book_seq": snap["book_seq"]}
            now.update({k: st[k] for k in MONOTONE})
            now.update({f"lat_{k}_count": v["count"] for k, v in lat.items()})
            now.update({f"book_{k}": pub["book"][k] for k in ("records", "messages", "applied", "gaps")})
            now.update({"published_at": pub["events"], "risk_refused": sum(rejections.values())})
            if pub["events"] > st["events"] or not scraped:
                seen["range"].append(("published ahead of the counters", pub["events"], st["events"]))
            for k, v in now.items():
                if v < last.get(k, -1):
                    seen["back"].append((k, last[k], v))
                last[k] = v
            for k in ("market_ring_utilisation", "out_ring_utilisation"):
                if k in st and not 0.0 <= st[k] <= 1.0:
                    seen["range"].append((k, st[k]))
            b, a = snap["bids"], snap["asks"]
            if not ((np.diff(b[:, 0]) < 0).all() and (np.diff(a[:, 0]) > 0).all()):
                seen["range"].append(("unsorted book", snap["version"]))
            # the debug build's line tracing takes the GIL in the engine's nogil calls: a
            # control loop that never lets go of it would slow the run to the GIL's pace
            time.sleep(0.0001)
        assert e.wait(120)
    finally:
        e.stop()
        e.close()
    seen["final"] = e.stats()
    seen["final_published"] = e.core.slot_stats(0)
    seen["book"] = e._parts[0][0].book.stats()
    return seen


@pytest.mark.parametrize("feed", [{"speed": 40.0}, {"speed": 0.0, "repeat": 3}],
                         ids=["paced-x40", "full-speed-x3"])
def test_control_thread_hammering_a_run(sample_events: np.ndarray, feed: Dict[str, Any]) -> None:
    seen = hammer(sample_config(feed=feed), sample_events)
    assert seen["errors"] == [] and seen["back"] == [] and seen["range"] == []
    assert seen["calls"] >= 300
    final = seen["final"]
    assert final["events"] == len(sample_events) * feed.get("repeat", 1) and final["orders"] > 0
    # at the end the published counters are the loop's own
    assert seen["final_published"]["events"] == final["events"]
    assert seen["final_published"]["book"] == {k: v for k, v in seen["book"].items()
                                                if k in seen["final_published"]["book"]}
