"""Pure-Python twin of ``orpflow._core.snapshot.MarketSnapshot``: what a publish captures.

The compiled snapshot's point is the seqlock (tested by the stress tests); this twin pins
down the *content*: top SNAPSHOT_LEVELS levels per side, metrics, ids, times and flags,
published from the reference book.
"""
from __future__ import annotations

import copy

import numpy as np

SNAPSHOT_LEVELS = 20


class MarketSnapshot:
    def __init__(self):
        self._data = {
            "version": 0, "book_seq": 0, "ts_exch": 0, "ts_local": 0, "in_sync": False,
            "crossed": False, "bids": np.zeros((0, 2), dtype=np.int64),
            "asks": np.zeros((0, 2), dtype=np.int64), "metrics": None,
        }

    def publish(self, book) -> None:
        """Publish a reference ``OrderBook``'s state."""
        if book is None:
            raise TypeError("publish needs an OrderBook")
        self._data = {
            "version": self._data["version"] + 1,
            "book_seq": book.last_update_id,
            "ts_exch": book._ts[0],
            "ts_local": book._ts[1],
            "in_sync": book.in_sync,
            "crossed": book.crossed,
            "bids": book.levels_raw("bid", SNAPSHOT_LEVELS),
            "asks": book.levels_raw("ask", SNAPSHOT_LEVELS),
            "metrics": book.metrics(),
        }

    def read(self) -> dict:
        return copy.deepcopy(self._data)
