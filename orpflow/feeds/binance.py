"""Binance recordings (``<local_recv_ns> <json>`` per line) -> Event arrays."""
from __future__ import annotations

import re
import warnings
from typing import List, Optional, Sequence, Union

import numpy as np

from orpflow._core.convert import BinanceConverter
from orpflow._core.types import FLAGS, REASONS
from orpflow.feeds._io import PathLike, as_paths, check_exists, read_lines
from orpflow.feeds.report import FeedReport
from orpflow.instrument import Instrument


def read_binance(paths: Union[PathLike, Sequence[PathLike]], instrument: Instrument,
                 report: Optional[FeedReport] = None) -> np.ndarray:
    """Convert recorded Binance files into one event array, in file order.

    Handles combined-stream lines (depthUpdate, trade, aggTrade, bookTicker) and raw REST
    depth snapshot lines. Several files are concatenated in the order given (e.g. a day
    split in two). Each message becomes records with F_LAST on its final record.

    Parameters
    ----------
    paths : path or sequence of paths
        Plain or gzip files.
    instrument : Instrument
        Symbol filter, tick and size grids, instrument id.
    report : FeedReport, optional
        Filled with line/message/record counts and rejections by reason.

    Returns
    -------
    numpy.ndarray
        EVENT_DTYPE records.

    Raises
    ------
    FileNotFoundError
        A path does not exist.
    ValueError
        A file named .gz is not gzip, or none of a file's market messages (depth, trade,
        bookTicker) is for ``instrument.symbol`` (the message names the symbols found).
    """
    files = as_paths(paths)
    check_exists(files)
    report = report if report is not None else FeedReport()
    parts = []
    for path in files:
        conv = BinanceConverter(instrument)
        lines = read_lines(path, report)
        conv.feed_lines(lines)
        events = conv.out.take()
        if conv.rejected().get(REASONS["WRONG_SYMBOL"]) and not np.any(events["flags"] & _STREAM):
            raise ValueError(f"{path}: no market messages for {instrument.symbol}; the file has "
                             f"{', '.join(symbols_in(lines))}")
        parts.append(events)
        report.lines += conv.lines
        report.messages += conv.messages
        report.records += len(events)
        report.add_rejects(conv.rejected(), conv.examples, str(path))
    _warn_rejects(report)
    return np.concatenate(parts) if len(parts) > 1 else parts[0]


_STREAM = FLAGS["DEPTH"] | FLAGS["TRADE"] | FLAGS["BBO"]
_SYMBOL = re.compile(rb'"s"\s*:\s*"([^"]{1,40})"')


def symbols_in(lines: Sequence[bytes], most: int = 5) -> List[str]:
    """The symbols named by stream messages, most frequent first (for error messages)."""
    from collections import Counter
    found: Counter = Counter()
    for line in lines:
        m = _SYMBOL.search(line)
        if m:
            found[m.group(1).decode("utf-8", "replace")] += 1
    return [s for s, _ in found.most_common(most)] or ["no symbol"]


def _warn_rejects(report: FeedReport) -> None:
    bad = {k: v for k, v in report.rejected.items() if k not in ("UNSUPPORTED", "WRONG_SYMBOL")}
    if bad:
        warnings.warn(f"orpflow feed: rejected messages {bad}; first: {report.examples[:3]}",
                      stacklevel=3)
