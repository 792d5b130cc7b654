"""Tardis.dev CSV (``incremental_book_L2`` and ``trades``) -> Event arrays.

Book rows with the same ``local_timestamp`` form one message; a run of ``is_snapshot=true``
rows is one snapshot message led by CLEAR (Tardis resets the book whenever a new snapshot
starts). Tardis has no sequence numbers, so a book message this reader must refuse is
replaced by a CLEAR record: the book leaves sync until the next snapshot instead of
silently missing an update.
"""
from __future__ import annotations

import csv
import io
from typing import Dict, List, Optional

import numpy as np

from orpflow._core.convert import units_reason
from orpflow._core.types import FLAGS, REASONS
from orpflow.events import EVENT_DTYPE, Reason
from orpflow.feeds._io import PathLike, as_paths, check_exists, read_lines
from orpflow.feeds.binance import _warn_rejects
from orpflow.feeds.report import FeedReport
from orpflow.instrument import Instrument

_BOOK_COLUMNS = {"exchange", "symbol", "timestamp", "local_timestamp", "is_snapshot", "side", "price", "amount"}
_TRADE_COLUMNS = {"exchange", "symbol", "timestamp", "local_timestamp", "id", "side", "price", "amount"}


class _Rejected(Exception):
    def __init__(self, reason: str):
        self.reason = reason


class _Writer:
    def __init__(self, instrument: Instrument, report: FeedReport, source: str):
        self.inst = instrument
        self.report = report
        self.source = source
        self.rows: List[tuple] = []

    def reject(self, line_no: int, reason: str) -> None:
        self.report.rejected[reason] = self.report.rejected.get(reason, 0) + 1
        if len(self.report.examples) < 20:
            self.report.examples.append((self.source, line_no, reason))

    def units(self, text: str, grid, off_grid: str, positive: bool) -> int:
        rc, v = units_reason(text, grid[0], grid[1], REASONS[off_grid])
        if rc:
            raise _Rejected(Reason(rc).name)
        if positive and v == 0:
            raise _Rejected("BAD_NUMBER")
        return v

    def us_to_ns(self, text: str) -> int:
        if not text.isdigit():
            raise _Rejected("MALFORMED")
        return int(text) * 1000

    def emit(self, ts_exch, ts_local, seq, price, qty, flags) -> None:
        self.rows.append((ts_exch, ts_local, seq, 0, 0, price, qty, flags, self.inst.id))

    def array(self) -> np.ndarray:
        return np.array(self.rows, dtype=EVENT_DTYPE) if self.rows else np.zeros(0, EVENT_DTYPE)


def _book(rows: List[Dict[str, str]], w: _Writer, line_of: List[int]) -> None:
    """Group rows into messages and convert each message whole or not at all."""
    side_flag = {"bid": FLAGS["BID"], "ask": FLAGS["ASK"]}
    i = 0
    while i < len(rows):
        is_snap = rows[i]["is_snapshot"] == "true"
        j = i + 1
        while j < len(rows) and (rows[j]["is_snapshot"] == "true") == is_snap and (
                is_snap or rows[j]["local_timestamp"] == rows[i]["local_timestamp"]):
            j += 1
        start = len(w.rows)
        try:
            for k in range(i, j):
                r = rows[k]
                if r["side"] not in side_flag or r["is_snapshot"] not in ("true", "false"):
                    raise _Rejected("MALFORMED")
                kind = FLAGS["SNAPSHOT"] if is_snap else FLAGS["DEPTH"]
                if is_snap and k == i:
                    kind |= FLAGS["CLEAR"]
                w.emit(w.us_to_ns(r["timestamp"]), w.us_to_ns(r["local_timestamp"]), 0,
                       w.units(r["price"], w.inst.tick, "OFF_TICK", True),
                       w.units(r["amount"], w.inst.size_unit, "OFF_SIZE_INCREMENT", False),
                       kind | side_flag[r["side"]])
            w.rows[-1] = w.rows[-1][:7] + (w.rows[-1][7] | FLAGS["LAST"],) + w.rows[-1][8:]
            w.report.messages += 1
        except _Rejected as exc:
            del w.rows[start:]
            w.reject(2 + line_of[i], exc.reason)
            # the book cannot know it missed this message: make it wait for a snapshot
            w.emit(0, 0, 0, 0, 0, FLAGS["CLEAR"] | FLAGS["LAST"])
        i = j


def _trades(rows: List[Dict[str, str]], w: _Writer, line_of: List[int]) -> None:
    aggressor = {"buy": FLAGS["BUY"], "sell": FLAGS["SELL"], "unknown": 0}
    for k, r in enumerate(rows):
        try:
            if r["side"] not in aggressor:
                raise _Rejected("MALFORMED")
            seq = int(r["id"]) if r["id"].isdigit() else 0
            w.emit(w.us_to_ns(r["timestamp"]), w.us_to_ns(r["local_timestamp"]), seq,
                   w.units(r["price"], w.inst.tick, "OFF_TICK", True),
                   w.units(r["amount"], w.inst.size_unit, "OFF_SIZE_INCREMENT", True),
                   FLAGS["TRADE"] | FLAGS["LAST"] | aggressor[r["side"]])
            w.report.messages += 1
        except _Rejected as exc:
            w.reject(2 + line_of[k], exc.reason)


def read_tardis(path: PathLike, instrument: Instrument,
                report: Optional[FeedReport] = None) -> np.ndarray:
    """Convert a Tardis ``incremental_book_L2`` or ``trades`` CSV (plain or .gz) to events.

    The kind is recognised from the header. Use an Instrument with ``venue="generic"`` for
    book data (absolute sizes, no sequence numbers).

    Raises
    ------
    ValueError
        The header is neither an incremental_book_L2 nor a trades file.
    FileNotFoundError
        The path does not exist.
    """
    (file,) = as_paths(path)
    check_exists([file])
    report = report if report is not None else FeedReport()
    text = b"\n".join(read_lines(file, report)).decode("utf-8", errors="replace")
    reader = csv.DictReader(io.StringIO(text))
    columns = set(reader.fieldnames or ())
    rows = list(reader)
    report.lines += len(rows)
    w = _Writer(instrument, report, str(file))
    # another instrument's rows are not this book's messages: set them aside before grouping
    symbol = instrument.symbol.upper()
    others = [i for i, r in enumerate(rows) if (r.get("symbol") or "").upper() != symbol]
    for i in others:
        w.reject(2 + i, "WRONG_SYMBOL")
    line_of = [i for i, r in enumerate(rows) if (r.get("symbol") or "").upper() == symbol]
    if others and not line_of:
        found = sorted({(rows[i].get("symbol") or "") for i in others})
        raise ValueError(f"{file}: no rows for {instrument.symbol}; the file has {', '.join(found[:5])}")
    rows = [rows[i] for i in line_of]
    if _BOOK_COLUMNS <= columns:
        _book(rows, w, line_of)
    elif _TRADE_COLUMNS <= columns:
        _trades(rows, w, line_of)
    else:
        raise ValueError(f"{file}: not a Tardis incremental_book_L2 or trades CSV (columns {sorted(columns)})")
    events = w.array()
    report.records += len(events)
    _warn_rejects(report)
    return events
