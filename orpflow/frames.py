"""Result tables as readable pandas DataFrames, and back (``decode`` / ``to_records``).

A decoded frame names every code (side "buy", status "Filled", reason "RISK_POSITION", ...)
as a pandas Categorical, gives prices and sizes as floats in the instrument's units (price =
ticks x tick_size, size = units x size_increment) and times as UTC datetimes, with a UTC
``DatetimeIndex``. The floats are for reading and plotting: beyond 2**53 units (or after
arithmetic) a float no longer holds the exact integer, so every integer field the record
carries is kept beside its decoded column as ``<name>_raw`` (``price_raw``, ``side_raw``,
``ts_exch_raw``, ...), and ``to_records`` rebuilds the records from those, byte for byte.

pandas is imported inside the functions: ``import orpflow`` stays light.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from orpflow import records as R
from orpflow.instrument import Instrument
from orpflow.orders import FILL_DTYPE, ORDER_DTYPE

__all__ = ["KINDS", "decode", "to_records", "SIDE", "SIGNAL_SIDE", "LIQUIDITY"]

#: code -> name of each coded column (the record's integer is kept as <name>_raw)
SIDE = {1: "buy", -1: "sell"}
SIGNAL_SIDE = {1: "buy", -1: "sell", 0: "none"}
LIQUIDITY = {0: "maker", 1: "taker"}


def _names(seq: Sequence[str]) -> Dict[int, str]:
    return dict(enumerate(seq))


def _reasons() -> Dict[int, str]:
    from orpflow._core.types import REASONS
    return {code: name for name, code in REASONS.items()}


def _on_breaker() -> Dict[int, str]:
    from orpflow.config import ON_BREAKER
    return _names(ON_BREAKER)


# How each field of a record table reads (field -> how; fields not listed are kept as they are):
#   ("enum", table)  name via table (code -> name; a callable builds it), raw int as <field>_raw
#   "px" / "qty"     ticks / size units -> float price / size, raw int as <field>_raw
#   ("px"|"qty", name)  the same, shown under another name (position_units -> position)
#   ("raw", name, "px"|"qty")  an int twin of the float column `name`: kept as <name>_raw only
#   "ns"             int ns -> UTC datetime (0, "none", -> NaT), raw int as <field>_raw
_ORDER = {"side": ("enum", SIDE), "type": ("enum", _names(R.ORDER_TYPE)), "tif": ("enum", _names(R.TIF)),
          "status": ("enum", _names(R.ORDER_STATUS)), "reason": ("enum", _reasons)}
_TIMES = {name: "ns" for name in ("ts_exch", "ts_local", "ts_request", "ts_arrival", "ts_ack", "ts_done",
                                  "expire_at")}
_SPECS: Dict[str, Tuple[np.dtype, str, Dict[str, Any]]] = {
    # kind: (record dtype, the field that becomes the index, how each field reads)
    "orders": (ORDER_DTYPE, "ts_request", {**_ORDER, **_TIMES, "price": "px", "qty": "qty", "filled": "qty",
                                           "queue_ahead": "qty"}),
    "fills": (FILL_DTYPE, "ts_exch", {**_TIMES, "side": ("enum", SIDE), "liquidity": ("enum", LIQUIDITY),
                                      "price": "px", "qty": "qty", "position": "qty"}),
    "order_events": (R.ORDER_ROW, "ts_exch", {**_ORDER, **_TIMES, "price_ticks": ("raw", "price", "px"),
                                              "qty_units": ("raw", "qty", "qty"),
                                              "filled_units": ("raw", "filled", "qty")}),
    "equity": (R.ACCOUNT_ROW, "ts_exch", {**_TIMES, "position_units": ("raw", "position", "qty")}),
    "signals": (R.SIGNAL_ROW, "ts_exch", {**_TIMES, "side": ("enum", SIGNAL_SIDE), "reason": ("enum", _reasons),
                                          "size_units": ("qty", "size"), "position_units": ("qty", "position"),
                                          "no_order": ("enum", _names(R.NO_ORDER_WHY))}),
    "breakers": (R.BREAKER_ROW, "ts_exch", {**_TIMES, "breaker": ("enum", _names(R.BREAKER_NAMES)),
                                            "position_units": ("raw", "position", "qty"),
                                            "on_breaker": ("enum", _on_breaker)}),
}
#: The kinds of table ``decode`` and ``to_records`` know.
KINDS = tuple(_SPECS)
#: The index of each kind: the venue's (exchange) time of the event, except orders, whose
#: row is the order as a whole, indexed by when the strategy sent it (ts_request, local clock).
INDEX = {kind: spec[1] for kind, spec in _SPECS.items()}


def _table(t: Any) -> Dict[int, str]:
    return t() if callable(t) else t


def _category(codes: np.ndarray, table: Dict[int, str]) -> Any:
    import pandas as pd
    keys = np.array(sorted(table), dtype=np.int64)
    names = [table[k] for k in keys]
    pos = np.searchsorted(keys, codes)
    pos = np.minimum(pos, len(keys) - 1)
    found = keys[pos] == codes
    # an unknown code reads as NaN (its integer is still in <name>_raw)
    return pd.Categorical.from_codes(np.where(found, pos, -1), categories=names)


def _scales(kind: str, slots: np.ndarray, insts: Sequence[Instrument]) -> Tuple[np.ndarray, np.ndarray]:
    """Per-row (num, den) of the price ('px') or size ('qty') grid."""
    nums = np.array([(i.price_scale if kind == "px" else i.size_scale)[0] for i in insts] or [1.0])
    dens = np.array([(i.price_scale if kind == "px" else i.size_scale)[1] for i in insts] or [1.0])
    s = np.clip(slots, 0, max(0, len(insts) - 1))
    return nums[s], dens[s]


def _times(ns: np.ndarray) -> Any:
    import pandas as pd
    t = ns.astype("datetime64[ns]")
    t[ns == 0] = np.datetime64("NaT")
    return pd.DatetimeIndex(t).tz_localize("UTC")


def decode(rows: np.ndarray, kind: str, instruments: Sequence[Instrument],
           symbol: Optional[str] = None) -> Any:
    """The record table `rows` (a ``KINDS`` kind) as a decoded DataFrame.

    Columns: ``symbol`` first (`symbol` for the per-symbol orders/fills arrays, else from each
    row's slot), then the record's fields in order, coded ones by name, prices and sizes as
    floats, times as UTC datetimes, then the raw integers as ``<name>_raw``. The index
    (``INDEX[kind]``, a UTC DatetimeIndex) is the venue's time of the event (``ts_exch``;
    the local receive time is the ``ts_local`` column), except for ``orders``: when the
    strategy sent the order (``ts_request``, local clock; ``ts_arrival`` and ``ts_done``
    are the venue's). Rows stay in record order.
    """
    import pandas as pd
    dtype, index, how = _spec(kind)
    if rows.dtype != dtype:
        raise TypeError(f"{kind}: expected {dtype}, got {rows.dtype}")
    names = list(dtype.names or ())
    n = len(rows)
    if "slot" in names:
        slots = rows["slot"].astype(np.intp)
        syms = np.array([i.symbol for i in instruments], dtype=object)
        known = (slots >= 0) & (slots < len(syms))
        symcol: Any = np.full(n, None, object)
        symcol[known] = syms[slots[known]]          # a slot of no instrument: NaN (slot keeps it)
    else:
        slot = [i.symbol for i in instruments].index(symbol) if symbol is not None else 0
        slots = np.full(n, slot, np.intp)
        symcol = np.full(n, symbol, dtype=object)
    cols: Dict[str, Any] = {"symbol": pd.Categorical(symcol, categories=[i.symbol for i in instruments])}
    raw: Dict[str, Any] = {}
    idx = None
    for f in names:
        h = how.get(f)
        v = rows[f]
        if h is None:
            cols[f] = v
        elif h == "ns":
            t = _times(v)
            if f == index:
                idx = t.rename(f)
            else:
                cols[f] = t
            raw[f + "_raw"] = v
        elif h[0] == "enum":
            cols[f] = _category(v.astype(np.int64), _table(h[1]))
            raw[f + "_raw"] = v
        elif h[0] == "raw":
            raw[h[1] + "_raw"] = v
        else:                                   # "px" / "qty", or (grid, name)
            grid, name = (h, f) if isinstance(h, str) else h
            num, den = _scales(grid, slots, instruments)
            cols[name] = v * num / den          # one correctly rounded division below 2**53
            raw[name + "_raw"] = v
    df = pd.DataFrame({**cols, **raw}, index=idx)
    return df


def _spec(kind: str) -> Tuple[np.dtype, str, Dict[str, Any]]:
    if kind not in _SPECS:
        raise ValueError(f"unknown kind {kind!r}; expected one of {KINDS}")
    return _SPECS[kind]


def _codes(values: Any, table: Dict[int, str], col: str) -> np.ndarray:
    inv = {name: code for code, name in table.items()}
    out = np.empty(len(values), np.int64)
    for i, v in enumerate(values):
        if v not in inv:
            raise ValueError(f"column {col!r}: {v!r} is not one of {sorted(inv)} (keep {col}_raw for other codes)")
        out[i] = inv[v]
    return out


def to_records(frame: Any, kind: str, instruments: Optional[Sequence[Instrument]] = None
               ) -> Union[np.ndarray, Dict[str, np.ndarray]]:
    """The records a decoded frame came from: for "orders" and "fills" a dict symbol ->
    ORDER_DTYPE / FILL_DTYPE array (as ``BacktestResult.orders`` / ``.fills``), else one array
    of the kind's row dtype (``records.ORDER_ROW``, ``ACCOUNT_ROW``, ...).

    Every integer comes from its ``<name>_raw`` column when the frame has it: the round trip
    ``to_records(decode(rows, kind, insts), kind)`` is exact, byte for byte. Without the raw
    column it is re-encoded from the decoded one (names -> codes; floats -> the nearest whole
    number of ticks / size units, exact below about 2**48 units; NaT -> 0), which needs
    `instruments` for prices and sizes.
    """
    dtype, index, how = _spec(kind)
    names = list(dtype.names or ())
    n = len(frame)
    out = np.zeros(n, dtype)
    cols = set(frame.columns)
    syms = [i.symbol for i in instruments] if instruments is not None else None

    def column(name: str) -> np.ndarray:
        if name in cols:
            return frame[name].to_numpy()
        if name == frame.index.name:
            return np.asarray(frame.index)
        raise KeyError(f"{kind}: the frame has no column {name!r}")

    def slots() -> np.ndarray:
        if "slot" in cols:
            return frame["slot"].to_numpy().astype(np.intp)
        if syms is None:
            raise ValueError(f"{kind}: re-encoding prices or sizes needs the instruments")
        return np.array([syms.index(s) for s in frame["symbol"]], dtype=np.intp)

    def grid_units(name: str, grid: str) -> np.ndarray:
        if instruments is None:
            raise ValueError(f"{kind}: column {name}_raw is missing; re-encoding {name!r} needs the instruments")
        num, den = _scales(grid, slots(), instruments)
        return np.rint(column(name).astype(np.float64) * den / num).astype(np.int64)

    for f in names:
        h = how.get(f)
        if h is None:
            out[f] = column(f)
            continue
        key = _raw_name(f, h)
        if key + "_raw" in cols:
            out[f] = frame[key + "_raw"].to_numpy()
        elif h == "ns":
            t = _naive(column(f))
            ns = t.view(np.int64).copy()
            ns[np.isnat(t)] = 0
            out[f] = ns
        elif h[0] == "enum":
            out[f] = _codes(column(f), _table(h[1]), f)
        elif h[0] == "raw":
            out[f] = grid_units(h[1], h[2])
        else:
            grid, name = (h, f) if isinstance(h, str) else h
            out[f] = grid_units(name, grid)
    if kind not in ("orders", "fills"):
        return out
    sym = frame["symbol"].to_numpy()
    order: List[str] = list(dict.fromkeys(sym.tolist())) if syms is None else syms
    return {s: out[sym == s] for s in order}


def _raw_name(field: str, how: Any) -> str:
    """The name the raw integer of `field` is kept under, less "_raw"."""
    return how[1] if isinstance(how, tuple) and how[0] in ("raw", "px", "qty") else field


def _naive(t: Any) -> Any:
    """A column or index of UTC datetimes as naive datetime64[ns] values."""
    import pandas as pd
    s = pd.DatetimeIndex(t)
    return (s.tz_convert("UTC").tz_localize(None) if s.tz is not None else s).to_numpy("datetime64[ns]")
