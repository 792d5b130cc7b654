"""The engine's output records (``OUT_DTYPE``, 128 bytes each) decoded into tables.

The compiled loop writes one OutRecord per order state change, fill, emitted signal, book
sync change, circuit breaker trip and account snapshot (orpflow/_core/loop.pyx says which ``v[]`` field holds
what). Money travels as exact 128-bit integers in the instrument's money unit (MoneyScale):
``v[k]`` is the low and ``v[k+1]`` the high 64 bits.
"""
from __future__ import annotations

from typing import Any, Dict, List, NamedTuple, Sequence

import numpy as np

from orpflow._core.engine import OUT_DTYPE
from orpflow._core.risk import BREAKERS
from orpflow.config import MoneyScale
from orpflow.instrument import Instrument

OUT_ORDER, OUT_FILL, OUT_SIGNAL, OUT_ACCOUNT, OUT_SYNC, OUT_BREAKER = 1, 2, 3, 4, 5, 6
BREAKER_NAMES = tuple(BREAKERS)          # by bit index: the risk gate's own order
NO_ORDER_WHY = ("placed", "warmup", "at_target", "no_price")

ORDER_STATUS = ("Pending", "Accepted", "PartiallyFilled", "Filled", "Cancelled", "Rejected", "Expired")
ORDER_TYPE = ("market", "limit", "post_only")
TIF = ("GTC", "IOC", "FOK", "GTD")

__all__ = ["OUT_DTYPE", "money_ints", "money_floats", "select", "order_rows", "fill_rows", "account_rows",
           "signal_rows", "breaker_rows", "breaker_trips", "BreakerTrip"]


def money_ints(v: np.ndarray, k: int) -> List[int]:
    """Exact Python ints of the 128-bit money in columns k (low) and k+1 (high)."""
    lo = v[:, k].view(np.uint64).tolist()
    return [(h << 64) | l for l, h in zip(lo, v[:, k + 1].tolist())]


def money_floats(v: np.ndarray, k: int, scale: MoneyScale) -> np.ndarray:
    """The same money as float quote currency (display and statistics)."""
    lo = v[:, k].view(np.uint64).astype(np.float64)
    hi = v[:, k + 1].astype(np.float64)
    return (hi * 18446744073709551616.0 + lo) * (scale.num * 10.0 ** -scale.exp)


ORDER_ROW = np.dtype([
    ("slot", "<i4"), ("order_id", "<i8"), ("client_id", "<i8"), ("side", "<i1"), ("type", "<i1"),
    ("tif", "<i1"), ("status", "<i1"), ("reason", "<i4"), ("price", "<f8"), ("qty", "<f8"),
    ("filled", "<f8"), ("price_ticks", "<i8"), ("qty_units", "<i8"), ("filled_units", "<i8"),
    ("ts_request", "<i8"), ("ts_arrival", "<i8"), ("ts_done", "<i8"), ("expire_at", "<i8"),
    ("fees", "<f8"), ("event_no", "<i8"), ("ts_exch", "<i8"), ("ts_local", "<i8"),
])
FILL_ROW = np.dtype([
    ("slot", "<i4"), ("fill_id", "<i8"), ("order_id", "<i8"), ("client_id", "<i8"), ("side", "<i1"),
    ("liquidity", "<i1"), ("price", "<f8"), ("qty", "<f8"), ("price_ticks", "<i8"), ("qty_units", "<i8"),
    ("fee", "<f8"), ("realised", "<f8"), ("position_units", "<i8"), ("ts_exch", "<i8"),
    ("ts_local", "<i8"), ("event_no", "<i8"),
])
ACCOUNT_ROW = np.dtype([
    ("slot", "<i4"), ("ts_exch", "<i8"), ("ts_local", "<i8"), ("event_no", "<i8"),
    ("position_units", "<i8"), ("position", "<f8"), ("cash", "<f8"), ("realised", "<f8"),
    ("fees", "<f8"), ("mark", "<f8"), ("equity", "<f8"), ("round_trips", "<i8"),
    ("losing_round_trips", "<i8"),
])
SIGNAL_ROW = np.dtype([
    ("slot", "<i4"), ("ts_exch", "<i8"), ("seq", "<i8"), ("side", "<i1"), ("reason", "<i4"),
    ("size_units", "<i8"), ("position_units", "<i8"), ("strength", "<f8"), ("confidence", "<f8"),
    ("holding_ms", "<f8"), ("order", "<i8"), ("no_order", "<i1"), ("event_no", "<i8"),
])


_RAW = np.dtype((np.void, OUT_DTYPE.itemsize))


def select(recs: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """recs[mask], copied as raw bytes (numpy copies a structured dtype with a subarray
    field by field: ~12x slower)."""
    if recs.dtype != OUT_DTYPE:
        return recs[mask]
    return recs.view(_RAW)[mask].view(OUT_DTYPE)


def _of(recs: np.ndarray, kind: int) -> np.ndarray:
    kinds = recs["kind"]
    if len(kinds) and kinds.min() == kind == kinds.max():      # already one kind (the writer)
        return recs
    return select(recs, kinds == kind)


def _fill(out: np.ndarray, r: np.ndarray, head: Sequence[str], cols: Sequence[str]) -> None:
    """Copy record header fields `head`, and v[0], v[1], ... into `cols` (None skips one)."""
    for name in head:
        out[name] = r[name]
    for i, name in enumerate(cols):
        if name is not None:
            out[name] = r["v"][:, i]


def _scale_cols(out: np.ndarray, slots: np.ndarray, insts: Sequence[Instrument],
                cols: Dict[str, tuple]) -> None:
    """Float columns from integer ones, per instrument: cols = {float: (int col, 'px'|'qty')}."""
    for s, inst in enumerate(insts):
        m = slots == s
        if not m.any():
            continue
        for name, (src, kind) in cols.items():
            num, den = inst.price_scale if kind == "px" else inst.size_scale
            out[name][m] = src[m] * num / den      # one correctly rounded division


def _money_cols(out: np.ndarray, r: np.ndarray, insts: Sequence[Instrument], cols: Dict[str, int]) -> None:
    """Float quote-currency columns from the 128-bit money at v[k], v[k+1]: cols = {name: k}."""
    for s, inst in enumerate(insts):
        m = r["slot"] == s
        if m.any():
            scale = MoneyScale(inst)
            for name, k in cols.items():
                out[name][m] = money_floats(r["v"][m], k, scale)


def order_rows(recs: np.ndarray, insts: Sequence[Instrument]) -> np.ndarray:
    """One row per OUT_ORDER record (every state change, in order); ts_exch / ts_local: the
    venue's and the local clock when the change happened."""
    r = _of(recs, OUT_ORDER)
    v = r["v"]
    out = np.zeros(len(r), ORDER_ROW)
    _fill(out, r, ("slot", "event_no", "ts_exch", "ts_local"),
          ("order_id", "client_id", "price_ticks", "qty_units", "filled_units", "ts_request", "ts_arrival",
           "ts_done"))
    out["expire_at"] = v[:, 11]
    packed = v[:, 10]
    out["side"] = (packed & 0xFF) - 1
    out["type"] = (packed >> 8) & 0xFF
    out["tif"] = (packed >> 16) & 0xFF
    out["status"] = (packed >> 24) & 0xFF
    out["reason"] = (packed >> 32) & 0xFFFF
    _scale_cols(out, r["slot"], insts, {"price": (v[:, 2], "px"), "qty": (v[:, 3], "qty"),
                                         "filled": (v[:, 4], "qty")})
    _money_cols(out, r, insts, {"fees": 8})
    return out


def fill_rows(recs: np.ndarray, insts: Sequence[Instrument]) -> np.ndarray:
    r = _of(recs, OUT_FILL)
    v = r["v"]
    out = np.zeros(len(r), FILL_ROW)
    _fill(out, r, ("slot", "event_no", "ts_exch", "ts_local"),
          ("order_id", "client_id", "price_ticks", "qty_units", "position_units", "fill_id"))
    out["side"] = (v[:, 10] & 0xFF) - 1
    out["liquidity"] = (v[:, 10] >> 8) & 0xFF
    _scale_cols(out, r["slot"], insts, {"price": (v[:, 2], "px"), "qty": (v[:, 3], "qty")})
    _money_cols(out, r, insts, {"fee": 6, "realised": 8})
    return out


def account_rows(recs: np.ndarray, insts: Sequence[Instrument]) -> np.ndarray:
    """Account snapshots with equity = cash + position x mid at the last mark."""
    r = _of(recs, OUT_ACCOUNT)
    v = r["v"]
    out = np.zeros(len(r), ACCOUNT_ROW)
    _fill(out, r, ("slot", "ts_exch", "ts_local", "event_no"),
          (None,) * 8 + ("position_units", None, "round_trips", "losing_round_trips"))
    _money_cols(out, r, insts, {"cash": 0, "realised": 4, "fees": 6})
    half_mid2 = np.where(v[:, 9] > 0, v[:, 9] / 2, np.nan)          # mid in ticks
    _scale_cols(out, r["slot"], insts, {"mark": (half_mid2, "px"), "position": (v[:, 8], "qty")})
    out["equity"] = out["cash"] + np.where(v[:, 8] != 0, out["position"] * np.nan_to_num(out["mark"]), 0.0)
    return out


def signal_rows(recs: np.ndarray) -> np.ndarray:
    r = _of(recs, OUT_SIGNAL)
    v = r["v"]
    out = np.zeros(len(r), SIGNAL_ROW)
    _fill(out, r, ("slot", "ts_exch", "event_no"),
          ("seq", "side", "reason", "size_units", "position_units"))
    out["strength"] = v[:, 5].view(np.float64)
    out["confidence"] = v[:, 6].view(np.float64)
    out["holding_ms"] = v[:, 7].view(np.float64)
    out["order"] = v[:, 8]
    out["no_order"] = v[:, 9]
    return out


BREAKER_ROW = np.dtype([
    ("slot", "<i4"), ("ts_exch", "<i8"), ("ts_local", "<i8"), ("event_no", "<i8"), ("breaker", "<i1"),
    ("value", "<f8"), ("limit", "<f8"), ("span_ns", "<i8"), ("window_ns", "<i8"), ("trips", "<i8"),
    ("position_units", "<i8"), ("position", "<f8"), ("on_breaker", "<i1"), ("breakers", "<i8"),
])


def breaker_rows(recs: np.ndarray, insts: Sequence[Instrument]) -> np.ndarray:
    """One row per circuit breaker trip. breaker: index into BREAKER_NAMES; value and limit in
    the breaker's own terms (drawdown: fraction of peak equity; daily_loss: quote currency;
    the others: counts); span_ns / window_ns: reject_storm's rejections and its window."""
    r = _of(recs, OUT_BREAKER)
    v = r["v"]
    out = np.zeros(len(r), BREAKER_ROW)
    _fill(out, r, ("slot", "ts_exch", "ts_local", "event_no"),
          (None, "breakers", None, None, None, None, "span_ns", "trips", "position_units", "on_breaker",
           None, "window_ns"))
    bit = v[:, 0]
    out["breaker"] = np.where(bit > 0, np.log2(np.maximum(bit, 1)).astype(np.int64), -1)
    value = np.array(money_ints(v, 2), dtype=np.float64)
    limit = np.array(money_ints(v, 4), dtype=np.float64)
    dd = out["breaker"] == BREAKER_NAMES.index("drawdown")
    value[dd] /= 1e9
    limit[dd] /= 1e9
    out["value"] = value
    out["limit"] = limit
    dl = out["breaker"] == BREAKER_NAMES.index("daily_loss")
    if dl.any():
        for s, inst in enumerate(insts):
            m = dl & (r["slot"] == s)
            if m.any():
                scale = MoneyScale(inst)
                out["value"][m] = money_floats(v[m], 2, scale)
                out["limit"][m] = money_floats(v[m], 4, scale)
    _scale_cols(out, r["slot"], insts, {"position": (v[:, 8], "qty")})
    return out


class BreakerTrip(NamedTuple):
    """One circuit breaker trip: event time (venue ns), instrument, breaker, the value that
    tripped it and the limit (see breaker_rows for the units), why in words, and the position
    (base quantity) at that moment."""
    ts: int
    symbol: str
    breaker: str
    value: float
    limit: float
    why: str
    position: float = 0.0


def _why(name: str, row: Any) -> str:
    value, limit = float(row["value"]), float(row["limit"])
    if name == "drawdown":
        return f"drawdown {value * 100:.3f}% of peak equity >= max_drawdown {limit * 100:g}%"
    if name == "daily_loss":
        return f"loss today {value:.6g} >= max_daily_loss {limit:g}"
    if name == "consecutive_losses":
        return f"{value:.0f} losing round trips in a row >= max_consecutive_losses {limit:.0f}"
    if name == "reject_storm":
        return (f"{value:.0f} rejected orders within {int(row['span_ns']) / 1e9:.3f} s "
                f"(reject_storm {limit:.0f} within {int(row['window_ns']) / 1e9:g} s)")
    if name == "book_desync":
        return f"the book lost sync {value:.0f} times >= max_book_desyncs {limit:.0f}"
    return "tripped by hand"


def breaker_trips(recs: np.ndarray, insts: Sequence[Instrument]) -> List[BreakerTrip]:
    """The trips in `recs` as BreakerTrip tuples, in the order they happened."""
    return trips_of_rows(breaker_rows(recs, insts), insts)


def trips_of_rows(rows: np.ndarray, insts: Sequence[Instrument]) -> List[BreakerTrip]:
    """BreakerTrip tuples of breaker_rows() already decoded."""
    out = []
    for row in rows:
        name = BREAKER_NAMES[int(row["breaker"])] if 0 <= row["breaker"] < len(BREAKER_NAMES) else "unknown"
        out.append(BreakerTrip(int(row["ts_exch"]), insts[int(row["slot"])].symbol, name,
                               float(row["value"]), float(row["limit"]), _why(name, row),
                               float(row["position"])))
    return out


def final_state(orders: np.ndarray) -> np.ndarray:
    """The last state of each (slot, order id) from a stream of order rows."""
    if len(orders) == 0:
        return orders
    key = orders["slot"].astype(np.int64) << 48 | orders["order_id"]
    # last occurrence of each key, in order id order
    _, idx = np.unique(key[::-1], return_index=True)
    return orders[len(orders) - 1 - idx]


def as_frame(rows: np.ndarray, insts: Sequence[Instrument]) -> Any:
    """A pandas DataFrame with a symbol column (pandas must be installed)."""
    import pandas as pd
    df = pd.DataFrame(rows)
    if "slot" in df.columns:
        syms = np.array([i.symbol for i in insts], dtype=object)
        df.insert(0, "symbol", syms[rows["slot"]] if len(rows) else [])
    return df
