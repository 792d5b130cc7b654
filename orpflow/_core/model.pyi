from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray
from typing_extensions import Self, disjoint_base

OPS_WIDTH: int
KINDS: dict[str, int]
MAX_ELEMENTS: int

@disjoint_base
class NativeModel:
    def __new__(
        cls,
        n_inputs: int,
        n_outputs: int,
        input_offset: int,
        output_offset: int,
        arena_size: int,
        consts: ArrayLike,
        ints: ArrayLike,
        ops: ArrayLike,
        op_floats: ArrayLike,
    ) -> Self: ...
    @property
    def n_inputs(self) -> int: ...
    @property
    def n_outputs(self) -> int: ...
    def evaluate(self, x: ArrayLike) -> NDArray[np.float32]: ...
    def bench_ns(self, x: ArrayLike, repeats: int) -> int: ...
