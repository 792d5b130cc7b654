from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from numpy.typing import NDArray
from typing import final

from typing_extensions import Self, disjoint_base

from orpflow.instrument import Instrument

SNAPSHOT_STREAM: str

def units_reason(
    text: str, unit_mant: int, unit_exp: int, off_grid: int = 4
) -> tuple[int, int]: ...
def decimal_to_units(
    text: str, unit_mant: int, unit_exp: int, what: str = "value"
) -> int: ...

@final
class EventBuffer:
    def __new__(cls, capacity: int = 4096) -> Self: ...
    def __len__(self) -> int: ...
    def take(self) -> NDArray[np.void]: ...

@disjoint_base
class BinanceConverter:
    lines: int
    messages: int
    examples: list[tuple[int, int]]
    def __new__(cls, instrument: Instrument, out: EventBuffer | None = None) -> Self: ...
    @property
    def out(self) -> EventBuffer: ...
    def rejected(self) -> dict[int, int]: ...
    def feed_lines(self, lines: Iterable[bytes]) -> None: ...
    def feed_json(
        self, payload: bytes | bytearray | memoryview | str, ts_local: int
    ) -> int: ...

@disjoint_base
class BinanceStreamConverter:
    lines: int
    messages: int
    def __new__(cls, instruments: Iterable[Instrument]) -> Self: ...
    @property
    def out(self) -> EventBuffer: ...
    def rejected(self) -> dict[int, int]: ...
    def feed_json(
        self, payload: bytes | bytearray | memoryview | str, ts_local: int
    ) -> int: ...
