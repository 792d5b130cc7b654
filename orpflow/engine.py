"""Engine: the threaded paper-trading session (docs/engine.md).

    feed thread ──market ring──> strategy thread (one nogil loop) ──out ring──> persistence thread

The feed replays recorded files message by message (full speed, or paced to recorded time);
the strategy thread runs ``EngineCore.run_ring`` (book, snapshot, features, signal, risk,
order, paper broker: orpflow/_core/loop.pyx) until the feed is done and the ring drained;
the persistence thread drains the out ring into SQLite in batched transactions. Neither ring
drops anything: a full ring makes its producer wait (counted). The control thread (the caller)
reads snapshots, counters and latency histograms lock-free and flips the kill switch.
"""
from __future__ import annotations

import atexit
import logging
import threading
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from orpflow._core.engine import EngineCore, hist_bucket_bounds
from orpflow._core.ring import EventRing
from orpflow.config import ConfigError, EngineConfig, MoneyScale, load_config
from orpflow.instrument import Instrument
from orpflow.logs import log_failure, log_out_records
from orpflow.runtime import build_core, model_descriptions

__all__ = ["Engine", "build_core", "load_engine_events", "latency_percentiles", "repeat_events",
           "repeat_spans"]

_BOUNDS: Optional[Tuple[np.ndarray, np.ndarray]] = None
log = logging.getLogger(__name__)
PERCENTILES = (50.0, 90.0, 99.0, 99.9)


# ------------------------------------------------------------------ building blocks

def _read(inst: Instrument, paths: Sequence[str], fmt: Optional[str], report: Any,
          tick: Any = None) -> np.ndarray:
    import os
    import orpflow as of
    if not paths:
        raise ConfigError(f"[instruments] {inst.symbol}: no data files (paths = [...])")
    parts = []
    for path in paths:
        if not os.path.exists(path):
            raise FileNotFoundError(f"{inst.symbol}: data file not found: {path}")
        f = fmt or ("npy" if path.endswith(".npy") else
                    "tardis" if path.endswith((".csv", ".csv.gz")) else "binance")
        if f == "npy":
            ev = of.load_events(path)
            ev = ev.copy()
            ev["instrument"] = inst.id
            parts.append(ev)
        elif f == "tardis":
            parts.append(of.read_tardis(path, inst, report=report))
        else:
            parts.append(of.read_binance([path], inst, report=report))
        if tick is not None:
            tick()
    return np.concatenate(parts) if len(parts) > 1 else parts[0]


TS_COLS = ("ts_exch", "ts_local")
SEQ_COLS = ("seq", "seq_first", "seq_prev")


def repeat_spans(events: np.ndarray, times: int = 1) -> Tuple[int, int]:
    """(ns, sequence numbers) by which each repeated copy of a recording is shifted. Zero
    means "absent" in these fields (a REST snapshot has no exchange time) and stays zero."""
    if len(events) == 0:
        return 0, 0
    ts = np.concatenate([events[c][events[c] > 0] for c in TS_COLS])
    span_t = int(ts.max() - ts.min()) + 1_000_000 if len(ts) else 0
    span_s = int(max(events[c].max() for c in SEQ_COLS)) + 1
    top = max(int(ts.max()) if len(ts) else 0, span_s)
    if times > 1 and top + (times - 1) * max(span_t, span_s) >= 2 ** 63:
        raise ValueError(f"repeating this recording {times} times would overflow int64 timestamps")
    return span_t, span_s


def repeat_events(events: np.ndarray, times: int) -> np.ndarray:
    """The recording `times` over, each copy shifted after the previous one in time and in
    venue sequence numbers (so the book resyncs on each copy's snapshot instead of dropping
    the copy as stale); zero fields stay zero. For long benchmark runs; the Engine's feed
    repeats the same way without building the copies."""
    if times <= 1 or len(events) == 0:
        return events
    span_t, span_s = repeat_spans(events, times)
    out = np.empty(len(events) * times, events.dtype)
    for k in range(times):
        part = out[k * len(events):(k + 1) * len(events)]
        part[:] = events
        if k:
            for cols, span in ((TS_COLS, span_t), (SEQ_COLS, span_s)):
                for c in cols:
                    nz = part[c] != 0
                    part[c][nz] += k * span
    return out


def load_engine_events(config: EngineConfig, insts: Sequence[Instrument],
                       paths: Optional[Sequence[str]] = None,
                       progress: Any = None) -> Tuple[np.ndarray, Any]:
    """(events, FeedReport) for the config's instruments, merged in local-time order.
    `paths` replaces the files of a single-instrument config. ([feed] repeat is applied by
    the Engine's feed; for a backtest use repeat_events.) `progress`: True shows files
    converted (orpflow.progress, when there are several), or a callable ``f(done, total)``."""
    import orpflow as of
    from orpflow.progress import progress_callback
    report = of.FeedReport()
    if paths is not None and len(insts) != 1:
        raise ConfigError("data files on the command line need a config with exactly one instrument")
    files = [list(paths) if paths is not None else list(ic.paths) for ic in config.instruments]
    total = sum(len(f) for f in files)
    cb = progress if callable(progress) else progress_callback("load", "files", bool(progress) and total > 1)
    done = [0]

    def tick() -> None:
        done[0] += 1
        cb(done[0], total)                  # type: ignore[misc]
    arrays = []
    for ic, inst, f in zip(config.instruments, insts, files):
        arrays.append(_read(inst, f, ic.format, report, tick if cb is not None else None))
    if len(arrays) == 1:
        events = arrays[0]
    else:
        events = np.concatenate(arrays)
        events = events[np.argsort(events["ts_local"], kind="stable")]
    return np.ascontiguousarray(events), report


def latency_percentiles(core: EngineCore, name: str,
                        qs: Sequence[float] = PERCENTILES) -> Dict[str, Any]:
    """Percentiles (ns, the upper edge of the histogram bucket: at most 6% above the value;
    exact below 16 ns), count, mean and max of one latency histogram."""
    global _BOUNDS
    if _BOUNDS is None:
        _BOUNDS = hist_bucket_bounds()
    counts, n, total, mx = core.histogram(name)
    out: Dict[str, Any] = {"count": int(n), "mean_ns": (total / n) if n else float("nan"),
                           "max_ns": int(mx) if n else float("nan")}
    cum = np.cumsum(counts)
    for q in qs:
        key = f"p{q:g}".replace(".", "_")
        if n == 0 or cum[-1] == 0:
            out[key] = float("nan")
            continue
        i = int(np.searchsorted(cum, q / 100.0 * cum[-1], side="left"))
        out[key] = float(min(_BOUNDS[1][min(i, len(cum) - 1)], mx))
    return out


def _cpus(cfg: EngineConfig) -> Dict[str, Optional[int]]:
    return {"strategy": cfg.strategy_cpu, "feed": cfg.feed.cpu, "persistence": cfg.persistence.cpu}


def _check_cpus(cfg: EngineConfig) -> None:
    """Each pinned thread's CPU must be one this process may run on."""
    import os
    pins = {k: v for k, v in _cpus(cfg).items() if v is not None}
    if not pins:
        return
    if not hasattr(os, "sched_getaffinity"):                  # pragma: no cover - not Linux
        raise ConfigError("[strategy]/[feed]/[persistence] cpu: pinning threads needs Linux")
    allowed = os.sched_getaffinity(0)
    for name, cpu in pins.items():
        if cpu not in allowed:
            raise ConfigError(f"[{name}] cpu = {cpu}: this process may run on CPUs {sorted(allowed)}")


def _pin(cpu: Optional[int]) -> None:
    """Pin the calling thread (Linux: pid 0 is the calling thread) to one CPU."""
    if cpu is not None:
        import os
        os.sched_setaffinity(0, {cpu})


def _start_metrics(engine: Any, cfg: EngineConfig) -> Any:
    """The Prometheus endpoint; a port in use is a config error naming the key."""
    import errno
    from orpflow.metrics import MetricsServer
    m = cfg.metrics
    try:
        return MetricsServer(engine, m.host, m.port)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise ConfigError(f"[metrics] port {m.port} is already in use on {m.host} (another "
                              "orpflow run or program); choose another port, or 0 for any free "
                              "one") from None
        raise ConfigError(f"[metrics] cannot listen on {m.host}:{m.port}: "
                          f"{exc.strerror or exc}") from None


# ------------------------------------------------------------------ the engine

class Engine:
    """A paper-trading session: feed, strategy and persistence threads around the compiled loop.

    Parameters
    ----------
    config
        An EngineConfig, or the path of its TOML file.
    events
        EVENT_DTYPE records to replay instead of the config's files (one array, all
        instruments, in arrival order).
    strategy
        Your own strategy instead of the config's signal strategy (as ``orpflow.backtest``):
        the same callbacks in the same order as a backtest, on the strategy thread; an
        exception in one stops the run (everything written until then is persisted) and
        ``wait()`` re-raises it.
    progress
        Show the config's data files converting at start() (orpflow.progress; several files).

    Use ``start()`` then ``wait()`` (run the replay to its end) or ``stop()`` (graceful: stop
    the feed, drain both rings, commit; < 1 s), or ``with Engine(cfg) as e: ...``.
    """

    def __init__(self, config: Union[EngineConfig, str], events: Optional[np.ndarray] = None,
                 *, paths: Optional[Sequence[str]] = None, keep_records: bool = False,
                 strategy: Any = None, progress: bool = False) -> None:
        self.config = load_config(config) if isinstance(config, str) else config
        if not isinstance(self.config, EngineConfig):
            raise TypeError("config must be an EngineConfig or a path to a TOML file")
        self.instruments = self.config.make_instruments()
        self.symbols = [i.symbol for i in self.instruments]
        self.core, self._parts = build_core(self.config, self.instruments, strategy)
        self._events = events
        self._paths = paths
        self._progress = progress
        self.feed_report: Any = None
        self.writer: Any = None
        self.metrics: Any = None
        self.restored: Dict[str, Any] = {}
        self.error: Optional[BaseException] = None
        self._threads: Dict[str, threading.Thread] = {}
        self._strategy_done = threading.Event()
        self._state = "new"
        self._t_start = 0.0
        self._t_end = 0.0
        self.last_accounts: Dict[int, Any] = {}
        self.stop_seconds: Optional[float] = None
        self.keep_records = keep_records
        self._stopping = False
        self._kept: List[np.ndarray] = []
        self._fill_counts = np.zeros(len(self.symbols), np.int64)
        self._trips: List[Any] = []           # BreakerTrip, appended by the persistence thread
        self.live: Any = None                 # the LiveFeed when [feed] source = "binance"
        if self.config.feed.live and (events is not None or paths is not None):
            raise ValueError("a live feed ([feed] source = \"binance\") reads the venue: "
                             "no events or paths")

    # -- lifecycle
    def start(self) -> "Engine":
        if self._state != "new":
            raise RuntimeError(f"an Engine starts once (it is {self._state})")
        cfg = self.config
        if cfg.persistence.path is not None:          # refuse early, before loading any data
            from orpflow.persistence import check_writable
            check_writable(cfg.persistence.path)
        _check_cpus(cfg)
        if cfg.feed.live:
            self.market = EventRing(cfg.feed.market_ring)
            self._make_live()
        else:
            if self._events is None:
                self._events, self.feed_report = load_engine_events(cfg, self.instruments, self._paths,
                                                                    progress=self._progress)
            from orpflow.events import check_event_array
            check_event_array(self._events)
            self.market = EventRing(cfg.feed.market_ring)
        self.out = EventRing(2 * cfg.feed.out_ring)
        if cfg.metrics.enabled:
            self.metrics = _start_metrics(self, cfg)
        try:
            if cfg.persistence.path is not None:
                self._open_store()
        except BaseException:
            self._close_metrics()
            if self.writer is not None:           # opened, then the restore failed
                self.writer.close("failed", 0)
            if self.live is not None and self.live.recorder is not None:
                self.live.recorder.close()        # its thread; no file was opened yet
            raise
        self.core.reset_control()
        self._state = "running"
        self._t_start = time.perf_counter()
        self._threads = {
            "persistence": threading.Thread(target=self._persist, name="orpflow-persistence", daemon=True),
            "strategy": threading.Thread(target=self._strategy, name="orpflow-strategy", daemon=True),
            "feed": threading.Thread(target=self._feed, name="orpflow-feed", daemon=True),
        }
        # the threads are daemons (an abandoned engine must not keep the interpreter alive for a
        # whole replay), so at exit a running engine is stopped and drained here, before
        # daemon threads are frozen: whatever reached the out ring is written, the run marked
        atexit.register(self._at_exit)
        # before the threads: their records (sync changes, trips, the end) come after this one
        log.info("engine started: %s", ", ".join(self.symbols), extra={
            "run_id": getattr(self.writer, "run_id", None), "strategy_id": cfg.strategy_id,
            "symbols": self.symbols, "source": "live" if cfg.feed.live else "replay",
            "events": None if self._events is None else len(self._events) * cfg.feed.repeat,
            "database": cfg.persistence.path, "restored": bool(self.restored.get("symbols"))})
        for t in self._threads.values():
            t.start()
        return self

    def _make_live(self) -> None:
        try:
            from orpflow.feeds.live import LiveFeed
        except ImportError as exc:
            raise ConfigError(f"[feed] source = {self.config.feed.source!r} needs the live extra "
                              f"(pip install 'orpflow[live]'): {exc}") from None
        self.live = LiveFeed(self.config.feed, self.instruments, self.core, self.market,
                             [part[1] for part in self._parts])
        self.core.wire_stamps = True

    def _open_store(self) -> None:
        import json
        from orpflow.persistence import Writer
        cfg = self.config
        cash0 = [MoneyScale(i).to_money("cash", cfg.broker.cash) for i in self.instruments]
        text = json.dumps({"source": cfg.source, "strategy_id": cfg.strategy_id,
                           "symbols": self.symbols, "config": repr(cfg)})
        self.writer = Writer(cfg.persistence.path, cfg.persistence, cfg.strategy_id, self.instruments,
                             text, cash0)
        self.restored = self.writer.restored
        for slot, sym in enumerate(self.symbols):
            st = self.restored["symbols"].get(sym)
            if st is None:
                continue
            self.core.restore(slot, cash=st["cash"], cost=st["cost"], realised=st["realised"],
                              fees=st["fees"], position=st["position"], round_trips=st["round_trips"],
                              losing_round_trips=st["losing_round_trips"])
            for o in st["open_orders"]:
                self.core.add_restored_order(slot, o["side"], o["type"], o["tif"], o["price_ticks"],
                                             o["qty_units"], o["order_id"], o["expire_at"] or 0)

    def _feed(self) -> None:
        if self.live is not None:
            try:
                _pin(self.config.feed.cpu)
                self.live.run()
            except BaseException as exc:
                self.error = self.error or exc
            finally:
                self.core.mark_feed_done()
            return
        try:
            _pin(self.config.feed.cpu)
            span_t, span_s = repeat_spans(self._events, self.config.feed.repeat)
            self.core.feed(self.market, self._events, self.config.feed.speed, self.config.feed.repeat,
                           span_t, span_s)
        except BaseException as exc:          # pragma: no cover - defensive
            self.error = self.error or exc
            self.core.mark_feed_done()

    def _strategy(self) -> None:
        try:
            _pin(self.config.strategy_cpu)
            self.core.run_ring(self.market, self.out)
        except BaseException as exc:
            self.error = self.error or exc
            self._stop_feed()
        finally:
            self._t_end = time.perf_counter()
            self._strategy_done.set()

    def _persist(self) -> None:
        w = self.writer
        try:
            _pin(self.config.persistence.cpu)
            idle = 0
            while True:
                done = self._strategy_done.is_set()
                recs = self.core.pop_out(self.out, 4096) if len(self.out) else None
                if recs is not None and len(recs):
                    idle = 0
                    self._note(recs)
                    if w is not None:
                        w.write(recs)
                    continue
                if done:
                    break
                if w is not None:
                    w.commit_if_due()
                # 1 ms after work, up to 5 ms when idle: every wake-up takes the GIL, which a
                # live feed thread may be waiting for with a frame in hand
                idle += 1
                time.sleep(0.001 if idle < 8 else 0.005)
        except BaseException as exc:
            self.error = self.error or exc
            self.core.abort_out()          # the strategy must not wait for a consumer that is gone
            self._stop_feed()
        if w is not None:
            self._close_store(w)
        self._log_end()

    def _log_end(self) -> None:
        """The run's end (once, by the persistence thread, after the last record)."""
        status = "failed" if self.error is not None else "stopped" if self._stopping else "finished"
        c = self.core.counters()
        extra = {"run_id": getattr(self.writer, "run_id", None), "strategy_id": self.config.strategy_id,
                 "symbols": self.symbols, "status": status, "events": int(c["events"]),
                 "orders": int(c["orders"]), "fills": int(c["fills"]), "breaker_trips": len(self._trips),
                 "elapsed_s": round((self._t_end or time.perf_counter()) - self._t_start, 6)}
        if self.error is not None:
            err = self.error
            log_failure(log, err, f"engine failed: {type(err).__name__}: {err}", extra)
        else:
            log.info("engine %s", status, extra=extra)

    def _close_store(self, w: Any) -> None:
        """The run's end, written by the thread that wrote its records (whoever waits for it,
        or nobody): everything committed, the true status, performance, the lock released.
        If even that fails the run stays 'running' and the next start marks it 'crashed'."""
        if not self._strategy_done.is_set():
            self._strategy_done.wait(5.0)     # after an abort the strategy stops without waiting
        try:
            status = "failed" if self.error is not None else "stopped" if self._stopping else "finished"
            perf = self.performance() if self.error is None else None
            w.close(status, self.core.counters()["events"], perf)
        except BaseException as exc:
            self.error = self.error or exc
            try:
                w.lock.release()
            except Exception:             # pragma: no cover - defensive
                pass

    def _note(self, recs: np.ndarray) -> None:
        from orpflow import records as R
        log_out_records(recs, self.instruments, getattr(self.writer, "run_id", None))
        if self.keep_records:
            self._kept.append(recs)
        self._fill_counts += np.bincount(recs["slot"][recs["kind"] == R.OUT_FILL], minlength=len(self.symbols))
        if (recs["kind"] == R.OUT_BREAKER).any():
            self._trips.extend(R.breaker_trips(recs, self.instruments))
        acc = recs[recs["kind"] == R.OUT_ACCOUNT]
        if len(acc):                                   # the latest of each instrument only
            _, first_rev = np.unique(acc["slot"][::-1], return_index=True)
            for a in R.account_rows(acc[len(acc) - 1 - first_rev], self.instruments):
                self.last_accounts[int(a["slot"])] = a

    def running(self) -> bool:
        return self._state == "running" and not self._strategy_done.is_set()

    def wait(self, timeout: Optional[float] = None) -> bool:
        """Wait for the replay to end and everything to be written; True if it did."""
        deadline = None if timeout is None else time.perf_counter() + timeout
        for name in ("feed", "strategy", "persistence"):
            t = self._threads.get(name)
            if t is None:
                continue
            t.join(None if deadline is None else max(0.0, deadline - time.perf_counter()))
            if t.is_alive():
                return False
        self._finish()
        return True

    def stop(self, timeout: float = 1.0) -> Dict[str, Any]:
        """Graceful stop: the feed stops at the next message boundary, the strategy drains the
        market ring, the persistence thread drains the out ring and commits; then the run's
        end and performance metrics are written, the database closed (its writer lock
        released) and the metrics endpoint shut. Returns summary().

        Raises
        ------
        TimeoutError
            If that took longer than `timeout` s (a stalled disk). The threads go on: every
            record is still written and the run marked 'stopped' when they are done (call
            ``wait()``), at the latest when the interpreter exits.
        """
        if self._state == "new":
            raise RuntimeError("the engine was not started")
        t0 = time.perf_counter()
        self._stopping = True
        self._stop_feed()
        if not self.wait(timeout):
            pending = len(self.out) // 2 if self._state == "running" else 0
            raise TimeoutError(f"the engine did not stop within {timeout} s; it goes on writing "
                               f"({pending:,} records still in the out ring): wait() for it, or "
                               "let the interpreter exit, which waits")
        if self.stop_seconds is None:
            self.stop_seconds = time.perf_counter() - t0
        return self.summary()

    def _finish(self) -> None:
        if self._state != "running":
            return
        self._state = "stopped"
        atexit.unregister(self._at_exit)
        self._close_metrics()
        if self.error is not None:
            raise self.error

    def _at_exit(self) -> None:
        if self._state == "running":
            self._stopping = True
            self._stop_feed()
            try:
                self.wait()
            except BaseException:          # exiting anyway; the database says 'failed'
                pass

    def _stop_feed(self) -> None:
        self.core.stop_feed()
        if self.live is not None:
            self.live.stop()

    def _close_metrics(self) -> None:
        if self.metrics is not None:
            self.metrics.close()
            self.metrics = None

    def close(self) -> None:
        """Stop (if running); the metrics endpoint is shut when the run ends."""
        try:
            if self._state == "running":
                self.stop(timeout=5.0)
        finally:
            self._close_metrics()

    def __enter__(self) -> "Engine":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- control (any thread)
    def kill(self) -> None:
        """Kill switch: every new order is rejected (RISK_KILL_SWITCH) from the next check on."""
        for sim, *_ in self._parts:
            sim.risk.kill()

    def reset_kill(self) -> None:
        for sim, *_ in self._parts:
            sim.risk.reset_kill()

    def models(self) -> Dict[str, Dict[str, str]]:
        """symbol -> the ONNX model generator's path, evaluator ("native" or "onnxruntime"),
        why that evaluator, and the output it reads (empty without a model)."""
        return model_descriptions(self.symbols, self._parts)

    def breaker_trips(self) -> List[Any]:
        """Circuit breaker trips so far (records.BreakerTrip: ts, symbol, breaker, value, limit,
        why, position), as the out ring delivered them (any thread)."""
        return list(self._trips)

    def risk_rejections(self) -> Dict[str, int]:
        """Orders the risk gate refused, by reason name, all symbols (any thread: as the loop
        last published them; final once the run ended)."""
        from orpflow.backtest import risk_rejections
        return risk_rejections([self.core.slot_stats(i) for i in range(len(self._parts))])

    def snapshot(self, symbol: str) -> Dict[str, Any]:
        """The latest published book snapshot of `symbol` (seqlock read, never blocks the loop)."""
        try:
            slot = self.symbols.index(symbol)
        except ValueError:
            raise KeyError(f"no instrument {symbol!r}; trading {self.symbols}") from None
        return self._parts[slot][1].read()

    def latency(self) -> Dict[str, Dict[str, Any]]:
        """In-core tick-to-trade, ingress (feed push -> order record), feature-calculation time
        and the ring hand-off (feed push -> popped by the strategy), as percentiles in ns.
        A live feed has "wire" (frame received -> order record) and "decode" (frame received
        -> its records pushed) instead of ingress, and its hand-off starts at the receive."""
        names = ("incore", "wire", "decode", "feature", "handoff") if self.live is not None else \
            ("incore", "ingress", "feature", "handoff")
        return {name: latency_percentiles(self.core, name) for name in names}

    def stats(self) -> Dict[str, Any]:
        """Counters, ring utilisation (0..1), positions and PnL from the last account records."""
        c = self.core.counters()
        out: Dict[str, Any] = dict(c)
        if self._state != "new":
            out["market_ring_utilisation"] = len(self.market) / self.market.capacity
            out["out_ring_utilisation"] = len(self.out) / self.out.capacity
        out["records_persisted"] = self.writer.records if self.writer is not None else 0
        accounts = dict(self.last_accounts)     # one C-level copy: the persistence thread adds keys
        out["positions"] = {self.symbols[s]: float(a["position"]) for s, a in accounts.items()}
        out["equity"] = {self.symbols[s]: float(a["equity"]) for s, a in accounts.items()}
        if self.live is not None:
            out["feed"] = self.live.stats()
        out["elapsed_s"] = ((self._t_end or time.perf_counter()) - self._t_start) if self._t_start else 0.0
        return out

    # -- results (after the run)
    def _after(self) -> None:
        if self._state == "running" and not self._strategy_done.is_set():
            raise RuntimeError("the run is still going: stop() or wait() first")

    def records(self) -> np.ndarray:
        """Every OutRecord the run wrote (needs keep_records=True)."""
        self._after()
        if not self.keep_records:
            raise RuntimeError("Engine(..., keep_records=True) keeps the records")
        from orpflow._core.engine import OUT_DTYPE
        return np.concatenate(self._kept) if self._kept else np.zeros(0, OUT_DTYPE)

    def orders(self, symbol: Optional[str] = None) -> np.ndarray:
        self._after()
        return self._parts[self._slot(symbol)][0].orders()

    def fills(self, symbol: Optional[str] = None) -> np.ndarray:
        self._after()
        return self._parts[self._slot(symbol)][0].fills()

    def account(self, symbol: Optional[str] = None) -> Dict[str, Any]:
        self._after()
        return self._parts[self._slot(symbol)][0].account()

    def frames(self) -> Dict[str, Any]:
        """Decoded pandas DataFrames as ``BacktestResult.frames()`` (docs/research.md): orders
        and fills, and with keep_records=True also order_events, equity, signals, breakers."""
        self._after()
        from orpflow import records as R
        from orpflow.results import decoded_frames
        tables, recs = {}, None
        if self.keep_records:
            recs, insts = self.records(), self.instruments
            tables = {"order_events": R.order_rows(recs, insts), "equity": R.account_rows(recs, insts),
                      "signals": R.signal_rows(recs), "breakers": R.breaker_rows(recs, insts)}
        return decoded_frames(self.instruments, {s: self.orders(s) for s in self.symbols},
                              {s: self.fills(s) for s in self.symbols}, tables, recs)

    def _slot(self, symbol: Optional[str]) -> int:
        if symbol is None:
            if len(self.symbols) != 1:
                raise ValueError(f"name the symbol: trading {self.symbols}")
            return 0
        return self.symbols.index(symbol)

    def performance(self) -> Dict[str, Dict[str, Any]]:
        from orpflow.backtest import statistics
        # the fill count from the records (building the fill arrays costs ~10 us a fill: far
        # too slow for the end of a long run, which stop() must write within its budget)
        return {sym: statistics(int(self._fill_counts[i]), self._parts[i][0].account(), None)
                for i, sym in enumerate(self.symbols)}

    def summary(self) -> Dict[str, Any]:
        """What the CLI prints: trades, PnL, latency percentiles, throughput, database path."""
        s = self.stats()
        return {"stats": s, "latency": self.latency(),
                "accounts": {sym: self._parts[i][0].account() for i, sym in enumerate(self.symbols)}
                if not self.running() else {},
                "fills": {sym: int(self._fill_counts[i]) for i, sym in enumerate(self.symbols)}
                if not self.running() else {},
                "risk_rejections": self.risk_rejections(), "breaker_trips": self.breaker_trips(),
                "database": self.config.persistence.path, "run_id": getattr(self.writer, "run_id", None),
                "stop_seconds": self.stop_seconds, "restored": bool(self.restored.get("symbols"))}
