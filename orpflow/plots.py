"""Plots of a backtest, of the order book over a window and of feature columns (matplotlib).

matplotlib is imported inside each function (``import orpflow`` stays light); without it
they raise ImportError naming the extra to install. Times are UTC on every x axis.
"""
from __future__ import annotations

import datetime as _dt
from typing import Any, Optional, Sequence, Tuple

import numpy as np

__all__ = ["plot_result", "plot_book", "plot_features"]

BUY_COLOR, SELL_COLOR = "tab:green", "tab:red"


def _plt() -> Any:
    try:
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError("plotting needs matplotlib: pip install 'orpflow[plot]'") from None
    return plt


def _utc(ns: np.ndarray) -> np.ndarray:
    """ns since the epoch as datetime64 (matplotlib reads these as UTC)."""
    return np.asarray(ns, dtype=np.int64).astype("datetime64[ns]")


def to_ns(t: Any) -> Optional[int]:
    """A window bound as ns since the epoch: None, int ns, numpy datetime64, datetime (naive
    = UTC) or an ISO string ("2024-08-08 23:55", UTC unless it names its zone)."""
    if t is None:
        return None
    if isinstance(t, (int, np.integer)) and not isinstance(t, bool):
        return int(t)
    if isinstance(t, str):
        try:
            import pandas as pd
            ts = pd.Timestamp(t)
            return int((ts.tz_convert("UTC") if ts.tzinfo else ts.tz_localize("UTC")).value)
        except ImportError:
            return int(np.datetime64(t, "ns").astype(np.int64))
    if isinstance(t, _dt.datetime):
        if t.tzinfo is not None:
            t = t.astimezone(_dt.timezone.utc).replace(tzinfo=None)
        return int(np.datetime64(t, "ns").astype(np.int64))
    if isinstance(t, np.datetime64):
        return int(t.astype("datetime64[ns]").astype(np.int64))
    if hasattr(t, "value") and hasattr(t, "tz_localize"):            # pandas Timestamp
        return int((t.tz_convert("UTC") if t.tzinfo else t.tz_localize("UTC")).value)
    raise TypeError(f"a time bound must be ns, a datetime or an ISO string, got {type(t).__name__}")


def _window(ts: np.ndarray, start: Any, end: Any) -> np.ndarray:
    lo, hi = to_ns(start), to_ns(end)
    m = np.ones(len(ts), bool)
    if lo is not None:
        m &= ts >= lo
    if hi is not None:
        m &= ts <= hi
    return m


def _time_axis(ax: Any) -> None:
    import matplotlib.dates as mdates
    loc = mdates.AutoDateLocator()
    ax.xaxis.set_major_locator(loc)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(loc))
    ax.set_xlabel("time (UTC)")


def plot_result(res: Any, symbol: Optional[str] = None) -> Any:
    """BacktestResult.plot(): price with fills, position, equity and drawdown of one symbol."""
    plt = _plt()
    if symbol is not None and symbol not in res.symbols:
        raise KeyError(f"no instrument {symbol!r}; the backtest traded {res.symbols}")
    slot = 0 if symbol is None else res.symbols.index(symbol)
    sym = res.symbols[slot]
    inst = res.instruments[slot]
    eq = res.equity[res.equity["slot"] == slot]
    fills = res.fills[sym]
    num, den = inst.price_scale
    qn, qd = inst.size_scale
    st = res.stats[sym]
    from orpflow.results import sharpe_text
    fig, ax = plt.subplots(4, 1, sharex=True, figsize=(11, 9),
                           gridspec_kw={"height_ratios": (3, 1.2, 2, 1.2)})
    t = _utc(eq["ts_exch"])
    ax[0].plot(t, eq["mark"], color="0.4", lw=0.9, label="mid")
    for side, marker, color, name in ((1, "^", BUY_COLOR, "buy"), (-1, "v", SELL_COLOR, "sell")):
        f = fills[fills["side"] == side]
        ax[0].scatter(_utc(f["ts_exch"]), f["price"] * num / den, marker=marker, color=color, s=36,
                      zorder=3, label=f"{name} fills ({len(f)})", gid=f"{name}_fills")
    ax[0].set_ylabel("price")
    ax[0].legend(loc="best", fontsize="small")
    # position: each account mark and each fill (the position right after it)
    pt = np.r_[eq["ts_exch"], fills["ts_exch"]]
    pv = np.r_[eq["position_units"], fills["position"]] * qn / qd
    order = np.argsort(pt, kind="stable")
    ax[1].step(_utc(pt[order]), pv[order], where="post", lw=1)
    ax[1].set_ylabel("position")
    ax[2].plot(t, eq["equity"], lw=1)
    ax[2].set_ylabel("equity")
    ax[2].ticklabel_format(axis="y", useOffset=False, style="plain")
    peak = np.fmax.accumulate(eq["equity"]) if len(eq) else eq["equity"]
    dd = np.where(peak > 0, (eq["equity"] / np.where(peak > 0, peak, 1.0) - 1.0) * 100, 0.0)
    ax[3].fill_between(t, dd, 0, color=SELL_COLOR, alpha=0.3, lw=0)
    ax[3].plot(t, dd, color=SELL_COLOR, lw=0.8)
    ax[3].set_ylabel("drawdown (%)")
    _time_axis(ax[3])
    fig.suptitle(f"{sym}: PnL {st['pnl']:.4f} (fees {st['fees']:.4f}), {st['trade_count']} fills, "
                 f"{st['round_trips']} round trips, max drawdown {st['max_drawdown'] * 100:.3f}%, "
                 f"Sharpe {sharpe_text(st)}", fontsize="medium")
    fig.align_ylabels(ax)
    fig.subplots_adjust(top=0.94, hspace=0.12)
    return fig


def plot_book(events: np.ndarray, instrument: Any, start: Any = None, end: Any = None, *,
              trades: bool = True, ax: Any = None) -> Any:
    """Top of book over a time window: best bid and ask after each complete book message
    (the compiled book: the same state the features and the strategy see) and the trades,
    buy aggressors ^ green, sell v red, sized by quantity.

    Parameters
    ----------
    events
        EVENT_DTYPE records in arrival order (the whole recording: the book is built from its
        start; only the window is drawn); other instruments' records are left out.
    instrument
        Its Instrument.
    start, end
        The window (exchange time): ns, datetime, numpy datetime64 or ISO string (UTC);
        None: from the start / to the end.
    trades
        Draw the trades.
    ax
        An Axes to draw into; default a new Figure.

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    ImportError
        Without matplotlib.
    """
    plt = _plt()
    from orpflow.events import Flags
    from orpflow.features import compute_features
    mine = events["instrument"] == instrument.id
    if not mine.all():                  # a multi-instrument array: this instrument's records
        events = np.ascontiguousarray(events[mine])
    rows = compute_features(events, instrument)
    book = rows[(rows["kind"] == 0) & (rows["book_ok"] != 0)]
    book = book[_window(book["ts_exch"], start, end)]
    half = book["mid"] * book["spread_bps"] / 2e4
    if ax is None:
        fig, ax = plt.subplots(figsize=(11, 5))
    else:
        fig = ax.figure
    t = _utc(book["ts_exch"])
    ax.step(t, book["mid"] - half, where="post", color=BUY_COLOR, lw=0.9, label="best bid")
    ax.step(t, book["mid"] + half, where="post", color=SELL_COLOR, lw=0.9, label="best ask")
    if trades:
        tr = events[(events["flags"] & int(Flags.TRADE)) != 0]
        tr = tr[_window(tr["ts_exch"], start, end)]
        num, den = instrument.price_scale
        qn, qd = instrument.size_scale
        qty = tr["qty"] * qn / qd
        size = 8 + 60 * np.sqrt(qty / qty.max()) if len(qty) and qty.max() > 0 else 10
        for flag, marker, color, name in ((Flags.BUY, "^", BUY_COLOR, "buy"), (Flags.SELL, "v", SELL_COLOR, "sell")):
            m = (tr["flags"] & int(flag)) != 0
            ax.scatter(_utc(tr["ts_exch"][m]), tr["price"][m] * num / den, marker=marker, color=color,
                       s=size[m] if isinstance(size, np.ndarray) else size, alpha=0.6, lw=0,
                       label=f"{name} trades ({int(m.sum())})", gid=f"{name}_trades")
    ax.set_ylabel("price")
    ax.set_title(f"{instrument.symbol} top of book")
    ax.legend(loc="best", fontsize="small")
    _time_axis(ax)
    return fig


def _columns(features: Any) -> Tuple[Any, Sequence[str]]:
    if isinstance(features, np.ndarray):
        return features, list(features.dtype.names or ())
    return features, list(features.columns)


def plot_features(features: Any, names: Sequence[str] = ("mid", "imbalance", "ofi_window", "volatility"),
                  start: Any = None, end: Any = None) -> Any:
    """One panel per feature column over UTC exchange time.

    Parameters
    ----------
    features
        ``compute_features`` rows (numpy) or a DataFrame of them (with a ``ts_exch`` column).
    names
        The columns to draw, top to bottom.
    start, end
        The window, as for ``plot_book``.

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    KeyError
        A name that is not a column. ImportError: without matplotlib.
    """
    plt = _plt()
    data, cols = _columns(features)
    if isinstance(names, str):
        names = [names]
    missing = [n for n in list(names) + ["ts_exch"] if n not in cols]
    if missing:
        raise KeyError(f"no feature column {missing[0]!r}; the columns are {cols}")
    if not names:
        raise ValueError("name at least one feature column")
    ts = np.asarray(data["ts_exch"], dtype=np.int64)
    m = _window(ts, start, end)
    fig, axes = plt.subplots(len(names), 1, sharex=True, figsize=(11, 1.8 + 1.6 * len(names)), squeeze=False)
    t = _utc(ts[m])
    for ax, name in zip(axes[:, 0], names):
        ax.plot(t, np.asarray(data[name], dtype=np.float64)[m], lw=0.8)
        ax.set_ylabel(name)
    _time_axis(axes[-1, 0])
    fig.align_ylabels(axes[:, 0])
    return fig
