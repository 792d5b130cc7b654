from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray
from typing import final

from typing_extensions import Self

from orpflow._core.convert import EventBuffer
from orpflow.instrument import Instrument

UNSURE: int

@final
class FastBinanceConverter:
    lines: int
    messages: int
    fast: int
    fallback: int
    def __new__(
        cls,
        instruments: Instrument | Sequence[Instrument],
        enveloped_snapshots: bool | None = None,
    ) -> Self: ...
    @property
    def out(self) -> EventBuffer: ...
    def rejected(self) -> dict[int, int]: ...
    def feed_json(
        self, payload: bytes | bytearray | memoryview | str, ts_local: int
    ) -> int: ...
    def try_fast(self, payload: bytes, ts_local: int) -> tuple[int, NDArray[np.void]]: ...
