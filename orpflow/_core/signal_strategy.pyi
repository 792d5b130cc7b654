from __future__ import annotations

from typing import Any, Dict

from typing_extensions import disjoint_base

from orpflow._core.signals import SignalGenerator
from orpflow._core.strategy import CStrategy

@disjoint_base
class SignalStrategy(CStrategy):
    def __init__(
        self,
        generator: SignalGenerator,
        position_params: Dict[str, Any],
        exec_params: Dict[str, Any],
    ) -> None: ...
    @property
    def signal_generator(self) -> SignalGenerator: ...
