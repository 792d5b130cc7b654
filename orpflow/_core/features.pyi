from __future__ import annotations

from typing import Any, Final

import numpy as np
from numpy.typing import NDArray
from typing_extensions import disjoint_base

from orpflow._core.book import OrderBook

FEATURE_GROUPS: Final[dict[str, int]]
READS_EXTENSION: Final[int]
READS_ALL: Final[int]

def column_groups() -> list[int]: ...

def vector_layout() -> tuple[list[tuple[str | int, int]], int, int]: ...

@disjoint_base
class FeatureExtension:
    def __init__(self, names: Any = ()) -> None: ...
    @property
    def names(self) -> tuple[str, ...]: ...

@disjoint_base
class FeatureEngine:
    def __init__(
        self,
        book: OrderBook,
        params: dict[str, Any],
        dtype: Any,
        extension: FeatureExtension | None = None,
    ) -> None: ...
    @property
    def book(self) -> OrderBook: ...
    @property
    def extension(self) -> FeatureExtension | None: ...
    @property
    def dtype(self) -> np.dtype[Any]: ...
    def run(self, events: NDArray[np.void], first: int = ...) -> NDArray[np.void]: ...
    def stats(self) -> dict[str, int]: ...
