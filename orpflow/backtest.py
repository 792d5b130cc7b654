"""backtest(): the engine's loop in the caller's thread over an event array (docs/engine.md).

The same compiled ``core_step`` as the threaded Engine, with no rings and no threads: its
output records go to a buffer instead of the `out` ring. Decisions read event time only, so
the same events, config and seed give the same orders and fills as an Engine run.
"""
from __future__ import annotations

import logging
import time
from typing import Any, Callable, Optional, Union

import numpy as np

from orpflow.config import EngineConfig, load_config
# the result, its statistics and its decoding live in orpflow.results; importable from here too
from orpflow.results import SECONDS_PER_YEAR, BacktestResult, risk_rejections, statistics

__all__ = ["backtest", "BacktestResult", "statistics", "risk_rejections"]

PROGRESS_CHUNK = 1 << 20                    # events per nogil call when reporting progress
log = logging.getLogger("orpflow.engine")     # the engine's loop: one lifecycle logger for both


def backtest(events: np.ndarray, config: Union[EngineConfig, str], *,
             progress: Union[bool, Callable[[int, int], None], None] = None,
             measure: bool = True, strategy: Any = None, log_events: bool = True) -> BacktestResult:
    """Run the engine's loop over `events` in this thread; returns a BacktestResult.

    Parameters
    ----------
    events
        EVENT_DTYPE records of the config's instruments (Instrument.id in ``instrument``), in
        arrival order. Records of other instruments are counted and skipped.
    config
        An EngineConfig or the path of its TOML file (persistence, metrics and feed are not used).
    progress
        True: a progress bar (tqdm if installed, else a line on stderr) for runs of more than
        2**20 events; or a callable
        ``f(done, total)``. Progress is reported between nogil chunks of 2**20 events, so it
        costs nothing per event.
    measure
        Keep the latency histograms (two clock reads per feature row).
    strategy
        Your own strategy instead of the config's signal strategy: an ``orpflow.Strategy`` or a
        compiled ``CStrategy`` (single-instrument config), a dict {symbol: strategy}, or a
        callable ``f(instrument) -> strategy``. An exception in one of its callbacks stops the
        run and is re-raised here.
    log_events
        Log the run's start and end (``orpflow.engine``), its circuit breaker trips
        (``orpflow.risk``) and book sync changes (``orpflow.feed``) after it ends. False: none
        (sweeps: thousands of backtests, their trips counted in the result rows).
    """
    from orpflow.engine import latency_percentiles
    from orpflow.runtime import build_core, model_descriptions
    from orpflow.events import check_event_array
    cfg = load_config(config) if isinstance(config, str) else config
    if not isinstance(cfg, EngineConfig):
        raise TypeError("config must be an EngineConfig or a path to a TOML file")
    check_event_array(events)
    insts = cfg.make_instruments()
    core, parts = build_core(cfg, insts, strategy)
    core.measure = measure
    n = len(events)
    if log_events:
        log.info("backtest started: %s", ", ".join(i.symbol for i in insts),
                 extra={"symbols": [i.symbol for i in insts], "events": n, "strategy_id": cfg.strategy_id})
    report: Optional[Callable[[int, int], None]] = None
    if callable(progress):
        report = progress
    elif progress and n > PROGRESS_CHUNK:
        from orpflow.progress import progress_callback
        report = progress_callback("backtest", "events")
    t0 = time.perf_counter()
    if report is None:
        core.run_array(events)
    else:
        for i in range(0, n, PROGRESS_CHUNK):
            core.run_array(events[i:i + PROGRESS_CHUNK], False)
            report(min(n, i + PROGRESS_CHUNK), n)
        core.final_accounts()
    seconds = time.perf_counter() - t0
    lat = {name: latency_percentiles(core, name) for name in ("incore", "feature")}
    res = BacktestResult(insts, [p[0] for p in parts], core.take_records(), core.counters(), lat, seconds,
                         model_descriptions([i.symbol for i in insts], parts))
    if log_events:
        _log_end(res)
    return res


def _log_end(res: BacktestResult) -> None:
    """Breaker trips and book sync changes of the run, then its end (orpflow.logs)."""
    from orpflow.logs import log_out_records
    log_out_records(res.records, res.instruments)
    c = res.counters
    log.info("backtest finished", extra={
        "symbols": res.symbols, "status": "finished", "events": int(c["events"]),
        "orders": int(c["orders"]), "fills": int(c["fills"]), "breaker_trips": len(res.breaker_trips),
        "elapsed_s": round(res.seconds, 6)})

