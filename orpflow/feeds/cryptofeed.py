"""cryptofeed raw recordings (``*.ws.*.gz`` + ``*.http.*.gz``) -> Event arrays.

The websocket file interleaves several symbols' streams; the http file holds the REST depth
snapshots. Both carry receive times, so the snapshot is placed among the stream messages at
the moment it arrived — the book then buffers the diffs before it and drops the stale ones.
"""
from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import List, Optional, Tuple

import numpy as np

from orpflow._core.convert import BinanceConverter
from orpflow.feeds._io import PathLike, as_paths, check_exists, read_lines
from orpflow.feeds.binance import _warn_rejects
from orpflow.feeds.report import FeedReport
from orpflow.instrument import Instrument


def _seconds_to_ns(text: bytes) -> Optional[int]:
    try:
        return int(Decimal(text.decode()) * 1_000_000_000)
    except (InvalidOperation, UnicodeDecodeError, ValueError):
        return None


def _ws_messages(lines: List[bytes], symbol: str) -> Tuple[List[Tuple[int, bytes]], int]:
    """(recv_ns, json) of the symbol's stream messages, and how many lines were malformed."""
    want = b'"stream":"' + symbol.lower().encode() + b"@"
    out, malformed = [], 0
    for line in lines:
        ts, sep, payload = line.partition(b": ")
        if not sep or not payload.startswith(b"{"):
            continue          # connection header ("<url> <-> ts") and sent subscriptions
        if want not in payload[:64]:
            continue          # another symbol's stream
        ns = _seconds_to_ns(ts)
        if ns is None:
            malformed += 1
            continue
        out.append((ns, payload))
    return out, malformed


def _http_snapshots(lines: List[bytes], symbol: str) -> List[Tuple[int, bytes]]:
    want = b"symbol=" + symbol.upper().encode() + b"&"
    out = []
    for line in lines:
        head, sep, payload = line.partition(b": ")
        if not sep or b"/depth?" not in head or want not in head:
            continue
        ns = _seconds_to_ns(head.rpartition(b" -> ")[2])
        if ns is not None:
            out.append((ns, payload))
    return out


def read_cryptofeed(ws_path: PathLike, http_path: PathLike, instrument: Instrument,
                    report: Optional[FeedReport] = None) -> np.ndarray:
    """Convert one symbol of a cryptofeed recording (stream + REST snapshots) to events.

    Raises
    ------
    FileNotFoundError
        A path does not exist.
    """
    files = as_paths([ws_path, http_path])
    check_exists(files)
    report = report if report is not None else FeedReport()
    ws, malformed = _ws_messages(read_lines(files[0], report), instrument.symbol)
    snaps = _http_snapshots(read_lines(files[1], report), instrument.symbol)
    # stable merge by receive time: a snapshot goes after stream messages received before it
    merged = sorted([(ns, 0, p) for ns, p in ws] + [(ns, 1, p) for ns, p in snaps],
                    key=lambda t: (t[0], t[1]))
    conv = BinanceConverter(instrument)
    for ns, _, payload in merged:
        conv.feed_json(payload, ns)
    events = conv.out.take()
    report.lines += conv.lines + malformed
    report.messages += conv.messages
    report.records += len(events)
    if malformed:
        report.rejected["MALFORMED"] = report.rejected.get("MALFORMED", 0) + malformed
    report.add_rejects(conv.rejected(), conv.examples, str(files[0]))
    _warn_rejects(report)
    return events
