from __future__ import annotations

from typing import Any, Callable, Iterable

import numpy as np
from numpy.typing import NDArray
from typing_extensions import disjoint_base

from orpflow._core.features import FeatureEngine

def row_layout() -> tuple[list[tuple[str, int]], int]: ...

@disjoint_base
class SignalGenerator:
    def reset(self) -> None: ...
    def feature_reads(self) -> int: ...

@disjoint_base
class ImbalanceSignal(SignalGenerator):
    def __init__(self, params: dict[str, Any]) -> None: ...

@disjoint_base
class LinearSignal(SignalGenerator):
    def __init__(
        self,
        weights: Iterable[float],
        bias: float = 0.0,
        entry_threshold: float = 0.5,
        holding_ms: float = 1000.0,
    ) -> None: ...

@disjoint_base
class PythonSignal(SignalGenerator):
    error: BaseException | None
    def __init__(
        self,
        fn: Callable[[dict[str, float]], float | None],
        names: Iterable[str],
        entry_threshold: float = 0.5,
        holding_ms: float = 1000.0,
    ) -> None: ...

@disjoint_base
class SignalEngine:
    def __init__(
        self,
        features: FeatureEngine | None,
        generator: SignalGenerator,
        params: dict[str, Any],
        dtype: Any,
    ) -> None: ...
    @property
    def dtype(self) -> np.dtype[Any]: ...
    def run(self, events: NDArray[np.void], with_features: bool = False) -> Any: ...
    def run_rows(self, rows: NDArray[np.void]) -> NDArray[np.void]: ...
    def position(self) -> int: ...
