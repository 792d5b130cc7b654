from __future__ import annotations

from typing import Any, Dict, Tuple

import numpy as np
from numpy.typing import NDArray
from typing_extensions import disjoint_base

from orpflow._core.broker import ExecutionSim
from orpflow._core.convert import EventBuffer
from orpflow._core.features import FeatureEngine
from orpflow._core.ring import EventRing
from orpflow._core.signals import SignalGenerator
from orpflow._core.snapshot import MarketSnapshot

OUT_DTYPE: np.dtype[Any]
COUNTER_NAMES: Tuple[str, ...]

@disjoint_base
class EngineCore:
    @property
    def n_slots(self) -> int: ...
    measure: bool
    spin_ns: int
    wire_stamps: bool
    def __new__(cls) -> EngineCore: ...
    def add(
        self,
        sim: ExecutionSim,
        features: FeatureEngine,
        generator: SignalGenerator,
        snapshot: MarketSnapshot,
        position_params: Dict[str, Any],
        exec_params: Dict[str, Any],
    ) -> int: ...
    def restore(
        self,
        slot: int,
        *,
        cash: int,
        cost: int,
        realised: int,
        fees: int,
        position: int,
        round_trips: int = 0,
        losing_round_trips: int = 0,
    ) -> None: ...
    def add_restored_order(
        self,
        slot: int,
        side: int,
        type: str,
        tif: str,
        price_ticks: int,
        qty_units: int,
        client_id: int,
        expire_at: int = 0,
    ) -> None: ...
    def run_array(self, events: NDArray[Any], final: bool = True) -> None: ...
    def final_accounts(self) -> None: ...
    def take_records(self) -> NDArray[Any]: ...
    def run_ring(self, market: EventRing, out: EventRing) -> None: ...
    def feed(
        self,
        market: EventRing,
        events: NDArray[Any],
        speed: float = 0.0,
        repeat: int = 1,
        span_t: int = 0,
        span_s: int = 0,
    ) -> int: ...
    def push_received(self, market: EventRing, buf: EventBuffer, stamp: int) -> int: ...
    def pop_out(self, out: EventRing, max_records: int = 4096) -> NDArray[Any]: ...
    def reset_control(self) -> None: ...
    def stop_feed(self) -> None: ...
    def mark_feed_done(self) -> None: ...
    def abort_out(self) -> None: ...
    def slot_stats(self, slot: int) -> Dict[str, Any]: ...
    def counters(self) -> Dict[str, int]: ...
    def histogram(self, name: str) -> Tuple[NDArray[np.int64], int, int, int]: ...
    def _slot(self, slot: int) -> None: ...
    def _enter(self) -> None: ...
    def _exit(self) -> None: ...
    def _raise_failure(self) -> None: ...

def hist_bucket_bounds() -> Tuple[NDArray[np.float64], NDArray[np.float64]]: ...
def _hist_index(v: int) -> int: ...
