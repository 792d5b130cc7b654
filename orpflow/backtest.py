"""backtest(): the engine's loop in the caller's thread over an event array (docs/engine.md).

The same compiled ``core_step`` as the threaded Engine, with no rings and no threads: its
output records go to a buffer instead of the `out` ring. Decisions read event time only, so
the same events, config and seed give the same orders and fills as an Engine run.
"""
from __future__ import annotations

import math
import sys
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

import numpy as np

from orpflow.config import EngineConfig, load_config
from orpflow.instrument import Instrument

__all__ = ["backtest", "BacktestResult", "statistics", "risk_rejections"]

SECONDS_PER_YEAR = 365 * 24 * 3600          # crypto trades around the clock
PROGRESS_CHUNK = 1 << 20                    # events per nogil call when reporting progress


def statistics(fills: Union[np.ndarray, int], account: Dict[str, Any], equity: Optional[np.ndarray]) -> Dict[str, Any]:
    """Performance of one instrument: PnL (realised - fees + unrealised at the last mark),
    Sharpe of 1-second equity changes (annualised, 24/7), max drawdown (fraction of peak,
    every mark), win rate and average net PnL per round trip, fill count (`fills`: the
    fills, or just their number)."""
    realised = float(account["realised_pnl"])
    fees = float(account["fees"])
    pnl = realised - fees + float(account["unrealised_pnl"])
    rt = int(account["round_trips"])
    sharpe = float("nan")
    if equity is not None and len(equity) > 2:
        sec = equity["ts_exch"] // 1_000_000_000
        last = np.r_[sec[1:] != sec[:-1], True]              # last snapshot of each second
        eq = equity["equity"][last]
        if len(eq) > 2:
            r = np.diff(eq)
            sd = r.std(ddof=1)
            if sd > 0:
                span = max(1, int(sec[last][-1] - sec[last][0]))
                sharpe = float(r.mean() / sd * math.sqrt(SECONDS_PER_YEAR * len(r) / span))
    return {
        "pnl": pnl, "realised": realised, "fees": fees, "sharpe": sharpe,
        "max_drawdown": float(account["max_drawdown"]),
        "win_rate": (rt - int(account["losing_round_trips"])) / rt if rt else float("nan"),
        "avg_trade": (realised - fees) / rt if rt else float("nan"),
        "trade_count": fills if isinstance(fills, int) else int(len(fills)), "round_trips": rt,
        "final_position": float(account["position"]), "final_equity": float(account["equity"]),
    }


def risk_rejections(risk_stats: Sequence[Dict[str, Any]]) -> Dict[str, int]:
    """Orders the risk gate refused, by reason name, summed over instruments (most first)."""
    from orpflow.events import Reason
    out: Dict[str, int] = {}
    for st in risk_stats:
        for code, n in st["decisions"].items():
            if code not in (0, Reason.RISK_CLIPPED) and n:
                name = Reason(code).name
                out[name] = out.get(name, 0) + int(n)
    return dict(sorted(out.items(), key=lambda kv: (-kv[1], kv[0])))


class BacktestResult:
    """What a backtest returns (numpy arrays; ``frames()`` gives pandas DataFrames).

    Attributes
    ----------
    orders, fills : dict symbol -> ORDER_DTYPE / FILL_DTYPE (the broker's own records)
    order_events : every order state change, in order (records.ORDER_ROW, all symbols)
    equity : account snapshots (records.ACCOUNT_ROW: cash, position, mark, equity, ...)
    signals : emitted signals and the order each led to (records.SIGNAL_ROW)
    stats : dict symbol -> statistics(); accounts : dict symbol -> exact account
    counters, latency : the engine's counters and latency percentiles (ns)
    risk : dict symbol -> the risk gate's stats (decisions by reason code, breakers, trips)
    risk_rejections : dict reason name -> orders the risk gate refused (all symbols)
    breaker_trips : list of records.BreakerTrip (ts, symbol, breaker, value, limit, why, position)
    models : dict symbol -> the ONNX generator's path, evaluator, why that one, and its output
    records : the raw OUT_DTYPE records
    """

    def __init__(self, instruments: Sequence[Instrument], sims: Sequence[Any], records: np.ndarray,
                 counters: Dict[str, int], latency: Dict[str, Any], seconds: float,
                 models: Optional[Dict[str, Dict[str, str]]] = None) -> None:
        from orpflow import records as R
        self.instruments = list(instruments)
        self.symbols = [i.symbol for i in instruments]
        self.records = records
        self.orders = {s: sim.orders() for s, sim in zip(self.symbols, sims)}
        self.fills = {s: sim.fills() for s, sim in zip(self.symbols, sims)}
        self.accounts = {s: sim.account() for s, sim in zip(self.symbols, sims)}
        self.order_events = R.order_rows(records, instruments)
        self.equity = R.account_rows(records, instruments)
        self.signals = R.signal_rows(records)
        self.risk = {s: sim.risk_stats() for s, sim in zip(self.symbols, sims)}
        self.risk_rejections = risk_rejections(list(self.risk.values()))
        self.breaker_trips: List[R.BreakerTrip] = R.breaker_trips(records, instruments)
        self.counters = counters
        self.latency = latency
        self.seconds = seconds
        self.models = dict(models or {})
        self.stats = {s: statistics(self.fills[s], self.accounts[s], self.equity[self.equity["slot"] == i])
                      for i, s in enumerate(self.symbols)}

    @property
    def events_per_second(self) -> float:
        return self.counters["events"] / self.seconds if self.seconds > 0 else float("nan")

    def frames(self) -> Dict[str, Any]:
        """pandas DataFrames: orders, fills (with a symbol column), equity, signals."""
        import pandas as pd
        from orpflow import records as R

        def cat(d: Dict[str, np.ndarray]) -> Any:
            parts = []
            for s, a in d.items():
                df = pd.DataFrame(a)
                df.insert(0, "symbol", s)
                parts.append(df)
            return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
        return {"orders": cat(self.orders), "fills": cat(self.fills),
                "equity": R.as_frame(self.equity, self.instruments),
                "signals": R.as_frame(self.signals, self.instruments)}

    def plot(self, symbol: Optional[str] = None, ax: Any = None) -> Any:
        """Equity and position over event time, fills marked (needs matplotlib)."""
        try:
            import matplotlib.pyplot as plt
        except ImportError:
            raise ImportError("plot() needs matplotlib: pip install 'orpflow[plot]'") from None
        slot = 0 if symbol is None else self.symbols.index(symbol)
        sym = self.symbols[slot]
        eq = self.equity[self.equity["slot"] == slot]
        if ax is None:
            _, ax = plt.subplots(2, 1, sharex=True, figsize=(10, 6))
        t = (eq["ts_exch"] - eq["ts_exch"][0]) / 1e9 if len(eq) else eq["ts_exch"]
        ax[0].plot(t, eq["equity"], lw=1)
        ax[0].set_ylabel("equity")
        ax[0].set_title(f"{sym}: PnL {self.stats[sym]['pnl']:.4f}, {self.stats[sym]['trade_count']} fills")
        ax[1].step(t, eq["position"], where="post", lw=1)
        ax[1].set_ylabel("position")
        ax[1].set_xlabel("seconds")
        return ax

    def __repr__(self) -> str:
        parts = [f"{s}: {st['trade_count']} fills, PnL {st['pnl']:.6g}" for s, st in self.stats.items()]
        return f"BacktestResult({self.counters['events']:,} events; " + "; ".join(parts) + ")"


def backtest(events: np.ndarray, config: Union[EngineConfig, str], *,
             progress: Union[bool, Callable[[int, int], None], None] = None,
             measure: bool = True, strategy: Any = None) -> BacktestResult:
    """Run the engine's loop over `events` in this thread; returns a BacktestResult.

    Parameters
    ----------
    events
        EVENT_DTYPE records of the config's instruments (Instrument.id in ``instrument``), in
        arrival order. Records of other instruments are counted and skipped.
    config
        An EngineConfig or the path of its TOML file (persistence, metrics and feed are not used).
    progress
        True: a progress line on stderr for runs of more than 2**20 events; or a callable
        ``f(done, total)``. Progress is reported between nogil chunks of 2**20 events, so it
        costs nothing per event.
    measure
        Keep the latency histograms (two clock reads per feature row).
    strategy
        Your own strategy instead of the config's signal strategy: an ``orpflow.Strategy`` or a
        compiled ``CStrategy`` (single-instrument config), a dict {symbol: strategy}, or a
        callable ``f(instrument) -> strategy``. An exception in one of its callbacks stops the
        run and is re-raised here.
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
    report: Optional[Callable[[int, int], None]] = None
    if callable(progress):
        report = progress
    elif progress and n > PROGRESS_CHUNK:
        report = _stderr_progress
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
    return BacktestResult(insts, [p[0] for p in parts], core.take_records(), core.counters(), lat, seconds,
                          model_descriptions([i.symbol for i in insts], parts))


def _stderr_progress(done: int, total: int) -> None:
    sys.stderr.write(f"\rbacktest {done:,} / {total:,} events ({100.0 * done / total:.0f}%)")
    if done >= total:
        sys.stderr.write("\n")
    sys.stderr.flush()
