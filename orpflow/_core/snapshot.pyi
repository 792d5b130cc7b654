from __future__ import annotations

from typing import TypedDict, type_check_only

import numpy as np
from numpy.typing import NDArray
from typing_extensions import Self, disjoint_base

from orpflow._core.book import OrderBook, _BookMetrics

@type_check_only
class _SnapshotRead(TypedDict):
    version: int
    book_seq: int
    ts_exch: int
    ts_local: int
    in_sync: bool
    crossed: bool
    bids: NDArray[np.int64]  # shape (n, 2): (ticks, size units), best first
    asks: NDArray[np.int64]
    metrics: _BookMetrics

@disjoint_base
class MarketSnapshot:
    def __new__(cls) -> Self: ...
    def publish(self, book: OrderBook) -> None: ...
    def read(self) -> _SnapshotRead: ...

# stress / benchmark drivers for tests and benchmarks (loops run without the GIL)
def _stress_write(
    snap: MarketSnapshot,
    n: int,
    gap_pauses: int = 0,
    stop: NDArray[np.int64] | None = None,
    burst: int = 0,
    burst_sleep_ns: int = 0,
) -> int: ...
def _stress_read(
    snap: MarketSnapshot,
    n: int,
    until_version: int = -1,
    min_distinct: int = 0,
    timeout_s: float = 0.0,
    stop: NDArray[np.int64] | None = None,
) -> tuple[int, int, int, int, int]: ...
def _bench_read(snap: MarketSnapshot, n: int) -> int: ...
def _tear_for_test(snap: MarketSnapshot) -> None: ...
def _stress_read_unprotected(
    snap: MarketSnapshot, n: int, timeout_s: float, stop: NDArray[np.int64] | None = None
) -> int: ...
