"""What a backtest returns: BacktestResult, its statistics, decoded frames and text report.

``orpflow.backtest`` re-exports these names; plots are in ``orpflow.plots`` and the decoding
of the record tables in ``orpflow.frames``.
"""
from __future__ import annotations

import math
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np

from orpflow.frames import decode, to_records
from orpflow.instrument import Instrument

__all__ = ["BacktestResult", "statistics", "risk_rejections", "to_records", "SECONDS_PER_YEAR",
           "SHARPE_MIN_SPAN_S", "SHARPE_MIN_RETURNS"]

SECONDS_PER_YEAR = 365 * 24 * 3600          # crypto trades around the clock
#: An annualised Sharpe ratio is reported only over at least this much equity history (s) ...
SHARPE_MIN_SPAN_S = 3600
#: ... with at least this many non-zero 1-second equity changes; else NaN and the reason why
#: (scaling a few minutes' or a handful of changes' mean/std to a year says nothing).
SHARPE_MIN_RETURNS = 30


def _sharpe(equity: Optional[np.ndarray]) -> "tuple[float, Optional[str], float]":
    """(annualised Sharpe of 1-second equity changes, why it is NaN or None, span in s)."""
    if equity is None:
        return float("nan"), "no equity series", float("nan")
    if len(equity) < 3:
        return float("nan"), f"{len(equity)} equity marks < 3", float("nan")
    sec = equity["ts_exch"] // 1_000_000_000
    last = np.r_[sec[1:] != sec[:-1], True]              # last snapshot of each second
    eq = equity["equity"][last]
    span = float(sec[last][-1] - sec[last][0])
    r = np.diff(eq)
    nonzero = int(np.count_nonzero(r))
    if nonzero == 0:
        return float("nan"), "equity never changed", span
    if span < SHARPE_MIN_SPAN_S:
        return float("nan"), f"span {span:.0f} s < {SHARPE_MIN_SPAN_S} s minimum", span
    if nonzero < SHARPE_MIN_RETURNS:
        return float("nan"), f"{nonzero} non-zero 1-s returns < {SHARPE_MIN_RETURNS} minimum", span
    sd = r.std(ddof=1)
    return float(r.mean() / sd * math.sqrt(SECONDS_PER_YEAR * len(r) / max(1.0, span))), None, span


def statistics(fills: Union[np.ndarray, int], account: Dict[str, Any], equity: Optional[np.ndarray]) -> Dict[str, Any]:
    """Performance of one instrument: PnL (realised - fees + unrealised at the last mark),
    Sharpe of 1-second equity changes (annualised, 24/7: only over at least
    ``SHARPE_MIN_SPAN_S`` of equity history with ``SHARPE_MIN_RETURNS`` non-zero changes, else
    NaN and ``sharpe_reason`` says why), max drawdown (fraction of peak, every mark), win rate
    and average net PnL per round trip, fill count (`fills`: the fills, or just their
    number), ``span_s``: seconds of equity history (NaN without one)."""
    realised = float(account["realised_pnl"])
    fees = float(account["fees"])
    pnl = realised - fees + float(account["unrealised_pnl"])
    rt = int(account["round_trips"])
    sharpe, why, span = _sharpe(equity)
    return {
        "pnl": pnl, "realised": realised, "fees": fees, "sharpe": sharpe, "sharpe_reason": why,
        "max_drawdown": float(account["max_drawdown"]),
        "win_rate": (rt - int(account["losing_round_trips"])) / rt if rt else float("nan"),
        "avg_trade": (realised - fees) / rt if rt else float("nan"),
        "trade_count": fills if isinstance(fills, int) else int(len(fills)), "round_trips": rt,
        "final_position": float(account["position"]), "final_equity": float(account["equity"]),
        "span_s": span,
    }


def sharpe_text(st: Dict[str, Any]) -> str:
    """stats' Sharpe for people: the number, or "n/a (why)"."""
    if st.get("sharpe_reason") or not math.isfinite(st["sharpe"]):
        return f"n/a ({st.get('sharpe_reason') or 'undefined'})"
    return f"{st['sharpe']:.2f}"


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


# money the engine's records carry as exact 128-bit integers: frame -> (record kind, {column: v[k]})
_MONEY = {"order_events": ("OUT_ORDER", {"fees": 8}), "equity": ("OUT_ACCOUNT", {"cash": 0, "realised": 4, "fees": 6}),
          "fills": ("OUT_FILL", {"fee": 6, "realised": 8})}


def decoded_frames(instruments: Sequence[Instrument], orders: Dict[str, np.ndarray],
                   fills: Dict[str, np.ndarray], tables: Dict[str, np.ndarray],
                   records: Optional[np.ndarray] = None) -> Dict[str, Any]:
    """Decoded DataFrames of per-symbol orders and fills and of the record tables (shared by
    BacktestResult.frames and Engine.frames). With the engine's `records`, the exact money
    beside each float money column as ``<name>_raw`` (Python ints in the money unit)."""
    import pandas as pd
    from orpflow import records as R

    def per_symbol(kind: str, d: Dict[str, np.ndarray]) -> Any:
        return pd.concat([decode(a, kind, instruments, s) for s, a in d.items()])
    out = {"orders": per_symbol("orders", orders), "fills": per_symbol("fills", fills)}
    out.update({kind: decode(rows, kind, instruments) for kind, rows in tables.items()})
    if records is None:
        return out
    for kind, (rec_kind, cols) in _MONEY.items():
        if kind not in out:
            continue
        r = R.select(records, records["kind"] == getattr(R, rec_kind))
        if kind == "fills":             # the frame is symbol by symbol; the records in time order
            parts = [R.select(r, r["slot"] == i) for i in range(len(instruments))]
            if [len(p) for p in parts] != [len(fills[i.symbol]) for i in instruments]:
                continue                # fills freed as they were written (keep_history = false)
            r = np.concatenate(parts) if parts else r
        if len(r) != len(out[kind]):
            continue
        for name, k in cols.items():
            out[kind][name + "_raw"] = pd.array(R.money_ints(r["v"], k), dtype=object) if len(r) else \
                pd.array([], dtype=object)
    return out


class BacktestResult:
    """What a backtest returns: numpy record tables, ``frames()`` (decoded pandas DataFrames),
    ``report()`` (a text summary) and ``plot()`` (a matplotlib Figure).

    Attributes
    ----------
    orders, fills : dict symbol -> ORDER_DTYPE / FILL_DTYPE (the broker's own records)
    order_events : every order state change, in order (records.ORDER_ROW, all symbols)
    equity : account snapshots (records.ACCOUNT_ROW: cash, position, mark, equity, ...)
    signals : emitted signals and the order each led to (records.SIGNAL_ROW)
    breakers : circuit breaker trips (records.BREAKER_ROW); breaker_trips: the same as
        records.BreakerTrip (ts, symbol, breaker, value, limit, why, position)
    stats : dict symbol -> statistics(); accounts : dict symbol -> exact account
    counters, latency : the engine's counters and latency percentiles (ns)
    book : dict symbol -> the order book's counters (messages, gaps, resyncs, rejected records
        by reason, ...)
    feed_report : the reader's FeedReport when the caller sets it (``backtest()`` is given
        events, not files; ``orpflow backtest`` sets it), else None
    risk : dict symbol -> the risk gate's stats (decisions by reason code, breakers, trips)
    risk_rejections : dict reason name -> orders the risk gate refused (all symbols)
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
        self.breakers = R.breaker_rows(records, instruments)
        self.risk = {s: sim.risk_stats() for s, sim in zip(self.symbols, sims)}
        self.book = {s: sim.book.stats() for s, sim in zip(self.symbols, sims)}
        self.risk_rejections = risk_rejections(list(self.risk.values()))
        self.breaker_trips: List[R.BreakerTrip] = R.trips_of_rows(self.breakers, instruments)
        self.counters = counters
        self.latency = latency
        self.seconds = seconds
        self.models = dict(models or {})
        self.feed_report: Any = None
        self.stats = {s: statistics(self.fills[s], self.accounts[s], self.equity[self.equity["slot"] == i])
                      for i, s in enumerate(self.symbols)}

    @property
    def events_per_second(self) -> float:
        return self.counters["events"] / self.seconds if self.seconds > 0 else float("nan")

    def frames(self) -> Dict[str, Any]:
        """Decoded pandas DataFrames (pandas must be installed): "orders", "fills",
        "order_events", "equity", "signals", "breakers" (orpflow.frames.KINDS).

        Codes are names (pandas Categorical: side "buy"/"sell", type, tif, status, reason,
        liquidity, breaker, ...), prices and sizes floats in instrument units (price = ticks x
        tick_size, size = units x size_increment), times UTC datetimes; each such column's
        record integer is kept as ``<name>_raw`` (``price_raw``, ``side_raw``, ``ts_exch_raw``).
        The index is a UTC DatetimeIndex of the venue's event time (``ts_exch``; the local
        receive time is the ``ts_local`` column), except "orders": when the strategy sent the
        order (``ts_request``, local clock). Money (cash, fee(s), realised, equity) is float
        quote currency, with the engine's exact integer beside it as ``fees_raw``, ``cash_raw``,
        ... (Python ints in the money unit: ``orpflow.config.MoneyScale(instrument).to_decimal``
        gives the exact Decimal; orders' fees: see order_events). The floats are for reading:
        ``orpflow.results.to_records(frame, kind)`` rebuilds the records exactly from the raw
        columns.
        """
        return decoded_frames(self.instruments, self.orders, self.fills, {
            "order_events": self.order_events, "equity": self.equity, "signals": self.signals,
            "breakers": self.breakers}, self.records)

    def report(self) -> str:
        """A text summary: per instrument its statistics, orders by status, risk refusals by
        reason, circuit breaker trips and data quality (book counters; the feed's file-level
        refusals when ``feed_report`` is set)."""
        from orpflow.report import result_report
        return result_report(self)

    def plot(self, symbol: Optional[str] = None) -> Any:
        """A matplotlib Figure of one instrument (default: the first): price (mid at each
        account mark) with buy (^) and sell (v) fills, position, equity and drawdown panels
        over UTC event time, the summary in the title. Needs matplotlib
        (``pip install 'orpflow[plot]'``)."""
        from orpflow.plots import plot_result
        return plot_result(self, symbol)

    def __repr__(self) -> str:
        parts = [f"{s}: {st['trade_count']} fills, PnL {st['pnl']:.6g}" for s, st in self.stats.items()]
        return f"BacktestResult({self.counters['events']:,} events; " + "; ".join(parts) + ")"
