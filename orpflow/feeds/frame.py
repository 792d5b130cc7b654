"""Your own data: pandas DataFrames (or dicts of numpy columns) -> Event arrays.

One call converts one kind of data: ``"depth"`` (L2 updates with absolute sizes, size 0
deletes the level), ``"snapshot"`` (full books), ``"trade"`` or ``"bbo"``; ``merge_events``
puts several results in receive-time order. Rows are refused with the file readers' reason
codes and counted in a FeedReport; numbers go through the same exact decimal parser as the
readers (``units_reason``), so a value off the instrument's grid is never rounded silently.

This is conversion, done once per data set: vectorised numpy plus one parser call per
distinct value, not the per-event hot path.
"""
from __future__ import annotations

import datetime as _dt
import decimal
from decimal import Decimal
from typing import Any, Dict, List, Mapping, Optional, Tuple

import numpy as np

from orpflow._core.convert import units_reason
from orpflow._core.types import FLAGS, REASONS
from orpflow.events import EVENT_DTYPE, Reason, check_event_array
from orpflow.feeds.binance import _warn_rejects
from orpflow.feeds.report import FeedReport
from orpflow.instrument import Instrument

KINDS = ("depth", "snapshot", "trade", "bbo")

_COMMON = ("ts_local", "ts_exch", "seq", "symbol")
_REQUIRED = {
    "depth": ("ts_local", "side", "price", "size"),
    "snapshot": ("ts_local", "side", "price", "size"),
    "trade": ("ts_local", "side", "price", "size"),
    "bbo": ("ts_local", "bid_price", "bid_size", "ask_price", "ask_size"),
}
_OPTIONAL = {
    "depth": _COMMON + ("seq_first", "seq_prev"),
    "snapshot": _COMMON,
    "trade": _COMMON,
    "bbo": _COMMON,
}

_OK = REASONS["OK"]
_MALFORMED = REASONS["MALFORMED"]
_BAD_NUMBER = REASONS["BAD_NUMBER"]
_NEGATIVE = REASONS["NEGATIVE"]
_OVERFLOW = REASONS["OVERFLOW"]
_OFF_TICK = REASONS["OFF_TICK"]
_OFF_SIZE = REASONS["OFF_SIZE_INCREMENT"]
_WRONG_SYMBOL = REASONS["WRONG_SYMBOL"]
_I64_MAX = 2 ** 63 - 1

# book side / trade aggressor spellings (strings compared lower-case)
_BOOK_SIDES = {"bid": FLAGS["BID"], "ask": FLAGS["ASK"], 1: FLAGS["BID"], -1: FLAGS["ASK"]}
_AGGRESSORS = {"buy": FLAGS["BUY"], "sell": FLAGS["SELL"], "unknown": 0,
               1: FLAGS["BUY"], -1: FLAGS["SELL"], 0: 0}


def events_from_frame(frame: Any, instrument: Instrument, kind: str,
                      report: Optional[FeedReport] = None, *, float_tolerance: float = 1e-4,
                      source: str = "frame") -> np.ndarray:
    """Convert a table of one kind of market data into EVENT_DTYPE records.

    Parameters
    ----------
    frame : pandas.DataFrame or mapping of column name -> 1-D array
        Columns (others raise ValueError, so a misspelt name is not silently ignored):

        - every kind: ``ts_local`` (required; receive time), ``ts_exch`` (optional, 0 if
          absent), ``seq`` (optional venue id: update id, snapshot ``lastUpdateId``, trade id),
          ``symbol`` (optional; other symbols' rows are refused as WRONG_SYMBOL).
          Times are int nanoseconds since the epoch, ``datetime64``, or pandas/datetime
          timestamps (tz-aware ones are converted to UTC, naive ones are taken as UTC).
        - ``"depth"`` and ``"snapshot"``: ``side`` (``"bid"``/``"ask"`` or +1/-1), ``price``,
          ``size`` (ABSOLUTE size at the level; 0 deletes it). Depth also takes
          ``seq_first`` and ``seq_prev`` (Binance ``U`` and ``pu``).
        - ``"trade"``: ``side`` = aggressor (``"buy"``/``"sell"``/``"unknown"`` or +1/-1/0),
          ``price``, ``size``.
        - ``"bbo"``: ``bid_price``, ``bid_size``, ``ask_price``, ``ask_size`` (one row, two
          records).
    instrument : Instrument
        Grids, symbol and id. Book data without venue sequence ids needs ``venue="generic"``.
    kind : {"depth", "snapshot", "trade", "bbo"}
    report : FeedReport, optional
        Filled like the file readers': ``lines`` counts rows, ``messages`` converted
        messages, ``rejected`` refused messages by reason, ``examples`` (source, row, reason).
    float_tolerance : float
        Prices and sizes may be str, Decimal, int or float. Text, Decimal and int convert
        exactly or not at all. A float converts exactly when its shortest text is on the grid
        (how ``Instrument.price_to_ticks`` reads floats); otherwise it is taken as the
        nearest grid step only if its exact binary value lies within ``float_tolerance``
        steps of it (absorbs arithmetic like ``0.1 + 0.2``), else refused (OFF_TICK /
        OFF_SIZE_INCREMENT). 0 turns the snapping off.
    source : str
        Name used in ``report.examples``.

    Returns
    -------
    numpy.ndarray
        EVENT_DTYPE records in row order.

    Notes
    -----
    Book rows are grouped into messages like ``read_tardis`` groups them: consecutive rows
    with the same ``ts_local`` and ids form one message (``LAST`` on its final record). A
    message with any bad row is refused whole and replaced by a ``CLEAR`` record, so the book
    waits for the next snapshot instead of silently missing an update. A snapshot message
    without a ``seq`` starts with ``CLEAR`` (the book takes it whatever came before). Trades
    and BBO rows are one message each; a bad one is skipped. Refusals, in order of checks:
    WRONG_SYMBOL, MALFORMED (time, id or side), then per number BAD_NUMBER (not a number,
    NaN, zero price, zero trade size), NEGATIVE, OFF_TICK / OFF_SIZE_INCREMENT, OVERFLOW.

    Raises
    ------
    ValueError
        Unknown ``kind``, a missing or unknown column, or columns of different lengths.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    cols = _columns(frame)
    missing = [c for c in _REQUIRED[kind] if c not in cols]
    if missing:
        raise ValueError(f"{kind} frame: missing column(s) {missing}; got {sorted(cols)}")
    unknown = sorted(set(cols) - set(_REQUIRED[kind]) - set(_OPTIONAL[kind]))
    if unknown:
        raise ValueError(f"{kind} frame: unknown column(s) {unknown}; expected "
                         f"{list(_REQUIRED[kind]) + list(_OPTIONAL[kind])}")
    lengths = {len(v) for v in cols.values()}
    if len(lengths) > 1:
        raise ValueError(f"{kind} frame: columns have different lengths {sorted(lengths)}")
    n = lengths.pop() if lengths else 0
    mine = FeedReport(lines=n)            # this call's counts: its warning names only them
    conv = _Converter(instrument, float_tolerance)

    reason = np.zeros(n, np.int64)
    if "symbol" in cols:
        reason[:] = np.where(_symbol_ok(cols["symbol"], instrument.symbol), _OK, _WRONG_SYMBOL)
    ts_local, ts_bad = _times(cols["ts_local"])
    _first(reason, ts_bad, _MALFORMED)
    ts_exch = np.zeros(n, np.int64)
    if "ts_exch" in cols:
        ts_exch, bad = _times(cols["ts_exch"])
        _first(reason, bad, _MALFORMED)
    ids = {}
    for name in ("seq", "seq_first", "seq_prev"):
        ids[name] = np.zeros(n, np.int64)
        if name in cols:
            ids[name], bad = _ids(cols[name])
            _first(reason, bad, _MALFORMED)

    base = np.zeros(n, EVENT_DTYPE)
    base["ts_local"] = ts_local
    base["ts_exch"] = ts_exch
    for name, v in ids.items():
        base[name] = v
    base["instrument"] = instrument.id

    if kind == "bbo":
        out, refused, good_msgs = _bbo(cols, conv, base, reason)
    else:
        side_map = _AGGRESSORS if kind == "trade" else _BOOK_SIDES
        side, bad = _sides(cols["side"], side_map)
        _first(reason, bad, _MALFORMED)
        price, rc = conv.units(cols["price"], instrument.tick, _OFF_TICK)
        _first(reason, rc != _OK, rc)
        _first(reason, (rc == _OK) & (price == 0), _BAD_NUMBER)     # a zero price is no level
        size, rc = conv.units(cols["size"], instrument.size_unit, _OFF_SIZE)
        _first(reason, rc != _OK, rc)
        base["price"] = price
        base["qty"] = size
        if kind == "trade":
            _first(reason, (rc == _OK) & (size == 0), _BAD_NUMBER)  # as read_tardis
            base["flags"] = FLAGS["TRADE"] | FLAGS["LAST"] | side
            keep = reason == _OK
            out, good_msgs = base[keep], int(keep.sum())
            refused = (np.flatnonzero(~keep), reason[~keep])
        else:
            out, refused, good_msgs = _book(kind, base, side, reason, ts_bad)

    mine.messages, mine.records = good_msgs, len(out)
    _count(mine, refused, source)
    _warn_rejects(mine)
    if report is not None:
        report.lines += mine.lines
        report.messages += mine.messages
        report.records += mine.records
        for name, k in mine.rejected.items():
            report.rejected[name] = report.rejected.get(name, 0) + k
        report.examples.extend(mine.examples[:max(0, 20 - len(report.examples))])
    return out


def merge_events(*arrays: np.ndarray) -> np.ndarray:
    """Several event arrays as one, ordered by receive time (``ts_local``), messages whole.

    The sort is stable: messages with the same receive time keep the order of the arguments
    (and, within one array, their order there). A trailing run of records without ``LAST``
    counts as one message.
    """
    for a in arrays:
        check_event_array(a)
    if not arrays:
        return np.zeros(0, EVENT_DTYPE)
    ev = np.concatenate(arrays)
    if len(ev) == 0:
        return ev
    last = (ev["flags"] & FLAGS["LAST"]) != 0
    # a message cannot straddle two arguments: an unterminated tail ends where its array ends
    ends = np.cumsum([len(a) for a in arrays])[:-1]
    last[ends[ends > 0] - 1] = True
    msg = np.concatenate(([0], np.cumsum(last[:-1])))
    first_of = np.flatnonzero(np.concatenate(([True], msg[1:] != msg[:-1])))
    key = ev["ts_local"][first_of][msg]
    return ev[np.argsort(key, kind="stable")]


# ---- columns -----------------------------------------------------------------------------


def _columns(frame: Any) -> Dict[str, np.ndarray]:
    if isinstance(frame, Mapping):
        items = list(frame.items())
    elif hasattr(frame, "columns") and hasattr(frame, "__getitem__"):       # a DataFrame
        items = [(c, frame[c]) for c in frame.columns]
    else:
        raise ValueError(f"expected a pandas DataFrame or a dict of columns, got {type(frame).__name__}")
    cols = {}
    for name, col in items:
        if not isinstance(name, str):
            raise ValueError(f"column names must be strings, got {name!r}")
        dt = getattr(col, "dtype", None)
        if getattr(dt, "tz", None) is not None:       # pandas tz-aware: to UTC, then naive
            col = col.dt.tz_convert("UTC").dt.tz_localize(None)
        arr = col.to_numpy() if hasattr(col, "to_numpy") else np.asarray(col)
        if arr.dtype.kind in "US" and not isinstance(col, np.ndarray):
            arr = np.array(col, dtype=object)   # numpy would turn ["sell", -1] into text
        if arr.ndim != 1:
            raise ValueError(f"column {name!r} must be 1-D, got shape {arr.shape}")
        cols[name] = arr
    return cols


def _first(reason: np.ndarray, bad: np.ndarray, code: Any) -> None:
    """Record ``code`` (scalar or per row) where ``bad`` and no earlier check refused the row."""
    where = bad & (reason == _OK)
    reason[where] = code[where] if isinstance(code, np.ndarray) else code


def _symbol_ok(col: np.ndarray, symbol: str) -> np.ndarray:
    want = symbol.upper()
    return np.array([isinstance(s, str) and s.upper() == want for s in col.tolist()], bool)


def _times(col: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """ns since the epoch as int64, and where a value is not a valid time."""
    n = len(col)
    if col.dtype.kind == "M":
        ns = col.astype("datetime64[ns]").view(np.int64)
        return np.where(np.isnat(col), 0, ns), np.isnat(col) | (ns < 0)
    if col.dtype.kind in "iu" or col.dtype.kind == "f":
        return _ids(col)
    if col.dtype.kind != "O":
        return np.zeros(n, np.int64), np.ones(n, bool)
    out = np.zeros(n, np.int64)
    bad = np.zeros(n, bool)
    for i, v in enumerate(col.tolist()):
        t = _time_of(v)
        if t is None:
            bad[i] = True
        else:
            out[i] = t
    return out, bad


def _time_of(v: Any) -> Optional[int]:
    if isinstance(v, (bool, np.bool_)):
        return None
    if isinstance(v, (int, np.integer)):
        t = int(v)
    elif isinstance(v, str) and v.isdigit():            # as read_tardis reads its text
        t = int(v)
    elif isinstance(v, np.datetime64):
        if np.isnat(v):
            return None
        t = int(v.astype("datetime64[ns]").view(np.int64))
    elif isinstance(v, _dt.datetime):
        if hasattr(v, "tz_convert"):        # pandas Timestamp (NaT too): .value is UTC ns
            t = int(getattr(v, "value"))
        else:
            aware = v if v.tzinfo else v.replace(tzinfo=_dt.timezone.utc)
            delta = aware - _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)
            t = (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000
    else:
        return None                                       # None, NaT, NaN, floats, ...
    return t if 0 <= t <= _I64_MAX else None


def _ids(col: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Non-negative int64 (sequence ids, int ns); floats only when whole."""
    n = len(col)
    k = col.dtype.kind
    if k == "i":
        v = col.astype(np.int64)
        return np.where(v < 0, 0, v), v < 0
    if k == "u":
        bad = col > _I64_MAX
        return np.where(bad, 0, col).astype(np.int64), bad
    if k == "f":
        with np.errstate(invalid="ignore"):
            bad = ~np.isfinite(col) | (col < 0) | (col >= 2.0 ** 63) | (np.floor(col) != col)
        return np.where(bad, 0, col).astype(np.int64), bad
    if k == "O":
        out = np.zeros(n, np.int64)
        bad = np.zeros(n, bool)
        for i, v in enumerate(col.tolist()):
            if isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)) \
                    and 0 <= int(v) <= _I64_MAX:
                out[i] = int(v)
            else:
                bad[i] = True
        return out, bad
    return np.zeros(n, np.int64), np.ones(n, bool)


def _distinct(col: np.ndarray) -> Tuple[List[Any], np.ndarray]:
    """(distinct values, index of each row's value among them). Values keep their Python
    type (1, 1.0 and "1" stay apart); text is sorted as numpy strings (C speed)."""
    if col.dtype.kind == "O":
        items = col.tolist()
        if all(type(v) is str for v in items):
            col = np.array(items, dtype=str) if items else np.zeros(0, "U1")
        else:
            index: Dict[Any, int] = {}
            values: List[Any] = []
            inverse = np.empty(len(items), np.int64)
            for i, v in enumerate(items):
                key: Optional[Tuple[type, Any]] = (type(v), v)
                try:
                    j = index.get(key)
                except TypeError:                       # unhashable (e.g. a signalling NaN)
                    j, key = None, None
                if j is None:
                    j = len(values)
                    values.append(v)
                    if key is not None:
                        index[key] = j
                inverse[i] = j
            return values, inverse
    uniq, inverse = np.unique(col, return_inverse=True)
    return uniq.tolist(), np.asarray(inverse).reshape(-1)


def _sides(col: np.ndarray, mapping: Dict[Any, int]) -> Tuple[np.ndarray, np.ndarray]:
    """(flag, bad) per row; each distinct value is looked up once."""
    if col.dtype.kind == "b":
        return np.zeros(len(col), np.uint32), np.ones(len(col), bool)
    values, inverse = _distinct(col)
    flags = np.zeros(len(values), np.uint32)
    bad = np.zeros(len(values), bool)
    for i, v in enumerate(values):
        if isinstance(v, str):
            v = v.lower()
        elif isinstance(v, float) and v.is_integer():
            v = int(v)
        elif isinstance(v, bool) or not isinstance(v, int):
            v = None
        flag = mapping.get(v) if v is not None else None
        if flag is None:
            bad[i] = True
        else:
            flags[i] = flag
    return flags[inverse], bad[inverse]


class _Converter:
    """Prices and sizes -> units through the readers' exact parser, one call per distinct value."""

    def __init__(self, instrument: Instrument, float_tolerance: float):
        if not 0 <= float_tolerance < 0.5:
            raise ValueError(f"float_tolerance must be in [0, 0.5) grid steps, got {float_tolerance!r}")
        self.inst = instrument
        self.tol = Decimal(repr(float(float_tolerance)))

    def units(self, col: np.ndarray, grid: Tuple[int, int], off_grid: int) -> Tuple[np.ndarray, np.ndarray]:
        """(units, reason) per row."""
        k = col.dtype.kind
        if k == "b" or k not in "iufOUS":
            return np.zeros(len(col), np.int64), np.full(len(col), _BAD_NUMBER, np.int64)
        if k == "f" and self.tol > 0:
            return self._floats(col.astype(np.float64), grid, off_grid)
        return self._exact(col, grid, off_grid)

    def _floats(self, x: np.ndarray, grid: Tuple[int, int], off_grid: int) -> Tuple[np.ndarray, np.ndarray]:
        """Float columns, vectorised where the answer is certain: q = x / step computed in
        floats is within (k + 1) * 2**-49 steps of the exact quotient (a few roundings of
        2**-53 relative each), so a nearest step k whose computed distance plus that bound is
        under the tolerance is the step both rules of ``_float`` give (on the grid as written,
        or within the tolerance). Every other value (off the grid, negative, NaN, huge) takes
        the exact path."""
        step = grid[0] / 10.0 ** grid[1]
        with np.errstate(all="ignore"):
            q = x / step
            n = np.rint(q)
            sure = (x >= 0) & (n < 1e12) & (np.abs(q - n) + (n + 1) * 2.0 ** -49 < float(self.tol))
        units = np.where(sure, n, 0).astype(np.int64)
        reason = np.zeros(len(x), np.int64)
        rest = np.flatnonzero(~sure)
        if len(rest):
            units[rest], reason[rest] = self._exact(x[rest], grid, off_grid)
        return units, reason

    def _exact(self, col: np.ndarray, grid: Tuple[int, int], off_grid: int) -> Tuple[np.ndarray, np.ndarray]:
        """Through the readers' parser, once per distinct value."""
        values, inverse = _distinct(col)
        pairs = [self._one(v, grid, off_grid) for v in values]
        if not pairs:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        table = np.array(pairs, dtype=np.int64).reshape(-1, 2)
        return table[inverse, 1], table[inverse, 0]

    def _one(self, v: Any, grid: Tuple[int, int], off_grid: int) -> Tuple[int, int]:
        """(reason, units) of one value."""
        if isinstance(v, (bool, np.bool_)):
            return _BAD_NUMBER, 0
        if isinstance(v, str):
            return units_reason(v, grid[0], grid[1], off_grid)
        if isinstance(v, (int, np.integer)):
            return units_reason(str(int(v)), grid[0], grid[1], off_grid)
        if isinstance(v, Decimal):
            if not v.is_finite():
                return _BAD_NUMBER, 0
            return units_reason(format(v, "f"), grid[0], grid[1], off_grid)
        if isinstance(v, (float, np.floating)):
            return self._float(float(v), grid, off_grid)
        return _BAD_NUMBER, 0

    def _float(self, x: float, grid: Tuple[int, int], off_grid: int) -> Tuple[int, int]:
        if x != x or x in (float("inf"), float("-inf")):
            return _BAD_NUMBER, 0
        # the shortest text that reads back as x, positional (never "1e-05")
        rc, v = units_reason(np.format_float_positional(x, unique=True, trim="-"),
                             grid[0], grid[1], off_grid)
        if rc != off_grid or self.tol == 0:
            return rc, v
        # off the grid as written: accept the nearest step if x's exact value is within tol
        ctx = decimal.Context(prec=80)
        step = Decimal(grid[0]).scaleb(-grid[1])
        exact = Decimal(x)                       # a float's exact binary value
        k = ctx.divide(exact, step).to_integral_value(rounding=decimal.ROUND_HALF_EVEN, context=ctx)
        if abs(ctx.subtract(exact, ctx.multiply(k, step))) > ctx.multiply(self.tol, step):
            return off_grid, 0
        if k > _I64_MAX:
            return _OVERFLOW, 0
        return _OK, int(k)


# ---- kinds -------------------------------------------------------------------------------


def _book(kind: str, base: np.ndarray, side: np.ndarray, reason: np.ndarray, ts_bad: np.ndarray):
    """Group rows into messages; a message with a bad row becomes one CLEAR record."""
    keep_sym = reason != _WRONG_SYMBOL         # other symbols' rows are set aside before grouping
    rows = np.flatnonzero(keep_sym)
    ev, side, why, ts_bad = base[rows], side[rows], reason[rows], ts_bad[rows]
    if len(ev) == 0:
        return np.zeros(0, EVENT_DTYPE), (np.flatnonzero(~keep_sym), reason[~keep_sym]), 0
    new = np.ones(len(ev), bool)
    same = np.ones(len(ev) - 1, bool)
    for f in ("ts_local", "seq", "seq_first", "seq_prev"):
        same &= ev[f][1:] == ev[f][:-1]
    new[1:] = ~same
    # a row without a readable time joins no message
    new |= ts_bad
    new[1:] |= ts_bad[:-1]
    msg = np.cumsum(new) - 1
    starts = np.flatnonzero(new)
    bad_row = why != _OK
    msg_bad = np.zeros(len(starts), bool)
    np.logical_or.at(msg_bad, msg[bad_row], True)
    # the first bad row's reason names the message
    first_bad = np.full(len(starts), len(ev), np.int64)
    bad_idx = np.flatnonzero(bad_row)
    np.minimum.at(first_bad, msg[bad_idx], bad_idx)

    kind_flag = FLAGS["SNAPSHOT"] if kind == "snapshot" else FLAGS["DEPTH"]
    ev["flags"] = kind_flag | side
    ends = np.concatenate((starts[1:], [len(ev)])) - 1
    ev["flags"][ends] |= FLAGS["LAST"]
    if kind == "snapshot":      # no venue id: CLEAR makes the book take it whatever it held
        lead = starts[ev["seq"][starts] == 0]
        ev["flags"][lead] |= FLAGS["CLEAR"]

    good_row = ~msg_bad[msg]
    out_rows = good_row.copy()
    bad_starts = starts[msg_bad]
    out_rows[bad_starts] = True
    # the CLEAR keeps a receive time (an unreadable one is 0 here: take the latest before it)
    # so that merge_events leaves it where the message was
    ts_seen = np.maximum.accumulate(ev["ts_local"])
    clear = np.zeros(len(bad_starts), EVENT_DTYPE)
    ts = ev["ts_local"][bad_starts]
    clear["ts_local"] = np.where(ts > 0, ts, ts_seen[bad_starts])
    clear["flags"] = FLAGS["CLEAR"] | FLAGS["LAST"]
    clear["instrument"] = base["instrument"][0]
    ev[bad_starts] = clear
    out = ev[out_rows]
    refused_rows = np.concatenate((np.flatnonzero(~keep_sym), rows[first_bad[msg_bad]]))
    refused_why = np.concatenate((reason[~keep_sym], why[first_bad[msg_bad]]))
    order = np.argsort(refused_rows, kind="stable")
    return out, (refused_rows[order], refused_why[order]), int((~msg_bad).sum())


def _bbo(cols: Dict[str, np.ndarray], conv: "_Converter", base: np.ndarray, reason: np.ndarray):
    """One row -> a BID record and an ASK|LAST record (a bad row is skipped whole)."""
    tick, size_unit = conv.inst.tick, conv.inst.size_unit
    bp, rc = conv.units(cols["bid_price"], tick, _OFF_TICK)
    _first(reason, rc != _OK, rc)
    bq, rc = conv.units(cols["bid_size"], size_unit, _OFF_SIZE)
    _first(reason, rc != _OK, rc)
    ap, rc = conv.units(cols["ask_price"], tick, _OFF_TICK)
    _first(reason, rc != _OK, rc)
    aq, rc = conv.units(cols["ask_size"], size_unit, _OFF_SIZE)
    _first(reason, rc != _OK, rc)
    _first(reason, (bp == 0) | (ap == 0), _BAD_NUMBER)       # a zero price is no quote
    keep = reason == _OK
    bid, ask = base[keep], base[keep]
    bid["price"], bid["qty"], bid["flags"] = bp[keep], bq[keep], FLAGS["BBO"] | FLAGS["BID"]
    ask["price"], ask["qty"] = ap[keep], aq[keep]
    ask["flags"] = FLAGS["BBO"] | FLAGS["ASK"] | FLAGS["LAST"]
    out = np.empty(2 * len(bid), EVENT_DTYPE)
    out[0::2], out[1::2] = bid, ask
    return out, (np.flatnonzero(~keep), reason[~keep]), int(keep.sum())


def _count(report: FeedReport, refused: Tuple[np.ndarray, np.ndarray], source: str) -> None:
    rows, why = refused
    if len(rows) == 0:
        return
    codes, counts = np.unique(why, return_counts=True)
    report.add_rejects({int(c): int(k) for c, k in zip(codes, counts)},
                       [(int(r), int(w)) for r, w in zip(rows[:20], why[:20])], source)

