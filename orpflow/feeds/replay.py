"""Replay an event array through an order book, checking it against the venue's own BBO.

Binance's bookTicker stream carries the update id `u` of the book state it shows. Whenever a
bookTicker has the same `u` as a depth diff, the book rebuilt through that diff must show
exactly that best bid and ask (price and size): ground truth from the venue itself.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Tuple

import numpy as np

from orpflow.events import Flags, check_event_array


@dataclass
class ReplayResult:
    book: object
    bbo_pairs: int = 0          # bookTickers whose u equals a diff's u
    bbo_matched: int = 0        # ... where the book showed exactly the same best bid and ask
    bbo_unverified: int = 0     # ... where the book was not in sync after that diff
    mismatches: List[Tuple[int, tuple, tuple]] = field(default_factory=list)

    @property
    def bbo_mismatched(self) -> int:
        return self.bbo_pairs - self.bbo_matched - self.bbo_unverified


def _bbo_by_update_id(events: np.ndarray) -> Dict[int, Tuple[int, int, int, int]]:
    """u -> (bid ticks, bid units, ask ticks, ask units) from BBO records (bid then ask)."""
    f = events["flags"]
    bid = events[(f & (Flags.BBO | Flags.BID)) == (Flags.BBO | Flags.BID)]
    ask = events[(f & (Flags.BBO | Flags.ASK)) == (Flags.BBO | Flags.ASK)]
    out = {}
    for b, a in zip(bid[["seq", "price", "qty"]].tolist(), ask[["seq", "price", "qty"]].tolist()):
        if b[0] == a[0]:
            out[b[0]] = (b[1], b[2], a[1], a[2])
    return out


def replay_book(events: np.ndarray, book, check_bbo: bool = True) -> ReplayResult:
    """Apply ``events`` to ``book``; with ``check_bbo``, stop after every diff whose update id
    a BBO record also carries and compare the top of book with it."""
    check_event_array(events)
    result = ReplayResult(book=book)
    if not check_bbo:
        book.apply(events)
        return result
    bbo = _bbo_by_update_id(events)
    f = events["flags"]
    ends = np.flatnonzero(((f & Flags.DEPTH) != 0) & ((f & Flags.LAST) != 0))
    ends = ends[np.isin(events["seq"][ends], np.fromiter(bbo, dtype=np.int64, count=len(bbo)))]
    start = 0
    for end in ends.tolist():
        book.apply(events[start:end + 1])
        start = end + 1
        u = int(events["seq"][end])
        result.bbo_pairs += 1
        if not book.in_sync or book.last_update_id != u:
            result.bbo_unverified += 1
            continue
        b = book.levels_raw("bid", 1)
        a = book.levels_raw("ask", 1)
        got = (tuple(b[0].tolist()) if len(b) else (0, 0)) + (tuple(a[0].tolist()) if len(a) else (0, 0))
        if got == bbo[u]:
            result.bbo_matched += 1
        elif len(result.mismatches) < 20:
            result.mismatches.append((u, got, bbo[u]))
    book.apply(events[start:])
    return result
