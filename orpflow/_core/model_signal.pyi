from __future__ import annotations

from typing import Any, Sequence

from typing_extensions import disjoint_base

from orpflow._core.signals import SignalGenerator

@disjoint_base
class ModelSignal(SignalGenerator):
    error: BaseException | None
    @property
    def loaded(self) -> Any: ...
    @property
    def evaluator(self) -> str: ...
    def __init__(
        self,
        loaded: Any,
        cols: Sequence[int],
        shift: Sequence[float],
        mul: Sequence[float],
        mode: str,
        scale: float,
        entry_threshold: float,
        min_probability: float,
        holding_ms: float,
        size_by_strength: bool,
        class_side: Sequence[int] = (),
    ) -> None: ...
