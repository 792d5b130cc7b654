from __future__ import annotations

from typing import Final, Literal, TypedDict, type_check_only

import numpy as np
from numpy.typing import NDArray
from typing_extensions import Self, TypeAlias, disjoint_base

from orpflow.instrument import Instrument

VENUES: Final[dict[str, int]]
STATE_NAMES: Final[tuple[str, str, str, str]]
COUNTER_NAMES: Final[tuple[str, ...]]

_Side: TypeAlias = Literal["bid", "ask"]
_State: TypeAlias = Literal["WAIT_SNAPSHOT", "AWAIT_FIRST_DIFF", "IN_SYNC", "OUT_OF_SYNC"]

@type_check_only
class _BookMetrics(TypedDict):
    best_bid: float
    best_ask: float
    bid_qty: float
    ask_qty: float
    mid: float
    spread_bps: float
    imbalance: float
    weighted_imbalance: float
    depth_bid: float
    depth_ask: float
    stoikov_imbalance: float
    weighted_mid: float

@type_check_only
class _BookStats(TypedDict):
    records: int
    messages: int
    applied: int
    buffered: int
    snapshots: int
    resyncs: int
    gaps: int
    stale: int
    desyncs: int
    crossed: int
    locked: int
    trades: int
    bbo: int
    rejected: int
    buffer_pending: int
    rejected_by_reason: dict[str, int]

@disjoint_base
class OrderBook:
    def __new__(
        cls,
        instrument: Instrument,
        *,
        buffer_capacity: int = 65536,
        imbalance_levels: int = 5,
        weighted_levels: int = 10,
        weighted_decay: float = 0.9,
        depth_levels: int = 10,
        window_ticks: int = 32768,
    ) -> Self: ...
    @property
    def instrument(self) -> Instrument: ...
    def apply(self, events: NDArray[np.void]) -> int: ...
    def best_bid(self) -> tuple[float, float] | None: ...
    def best_ask(self) -> tuple[float, float] | None: ...
    def levels(self, side: _Side, n: int | None = None) -> NDArray[np.float64]: ...
    def levels_raw(self, side: _Side, n: int | None = None) -> NDArray[np.int64]: ...
    def _levels(
        self, side: _Side, n: int | None, raw: bool
    ) -> NDArray[np.float64] | NDArray[np.int64]: ...
    def depth(self) -> tuple[int, int]: ...
    def layout(self) -> dict[str, object]: ...
    def _check(self) -> None: ...
    @property
    def in_sync(self) -> bool: ...
    @property
    def state(self) -> _State: ...
    @property
    def crossed(self) -> bool: ...
    @property
    def last_update_id(self) -> int: ...
    def stats(self) -> _BookStats: ...
    def metrics(self) -> _BookMetrics: ...
