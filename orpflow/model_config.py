"""The ONNX signal generator's settings: plain data and validation, no model loading.

``[signal] generator = "onnx"`` with a ``[signal.onnx]`` table in a config file, or
``SignalConfig(generator=OnnxSignal(...))`` from Python. The model file is opened and checked
against these settings when the engine is built (orpflow.ml.load), not here.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Optional, Sequence, Tuple

MODEL_MODES = ("score", "classes")
NORMALIZERS = ("none", "zscore", "minmax")
EVALUATORS = ("auto", "native", "onnxruntime")
CLASS_SIDES = {"buy": 1, "sell": -1, "flat": 0}
#: Most model inputs one generator reads (the built-in features plus extension columns).
MAX_MODEL_INPUTS = 64
#: Most probability columns a "classes" model may have.
MAX_MODEL_CLASSES = 16


def _floats(name: str, values: Any, n: int) -> Tuple[float, ...]:
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        raise TypeError(f"{name} must be a list of {n} numbers")
    if len(values) != n:
        raise ValueError(f"{name} has {len(values)} values; inputs has {n}")
    out = []
    for i, v in enumerate(values):
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise TypeError(f"{name}[{i}] must be a number, got {type(v).__name__}")
        if not math.isfinite(v):
            raise ValueError(f"{name}[{i}] must be finite, got {v!r}")
        out.append(float(v))
    return tuple(out)


@dataclass(frozen=True)
class OnnxSignal:
    """An ONNX model as the signal generator (docs/ml.md).

    Parameters
    ----------
    path
        The ``.onnx`` file (a protobuf ModelProto; pickles are refused). In a config file a
        relative path is relative to the config file.
    inputs
        The feature columns the model reads, in the model's input order: names from
        ``FEATURE_NAMES`` or the feature extension's columns.
    output
        The graph output to read; default: the first float tensor output (a classifier's
        ``probabilities``, a regressor's ``variable``).
    mode
        ``"score"``: one number; strength = clip(score * scale, -1, 1), a side when
        |strength| >= the signal's entry_threshold. ``"classes"``: class probabilities, one per
        name in ``classes`` (``"buy"``, ``"sell"``, ``"flat"``, in the model's output order);
        the most probable class, if buy or sell with probability >= min_probability, is the side
        (strength = +-probability).
    normalize, mean, std, min, max
        Applied to the features before the model: ``"zscore"`` (x - mean) / std, ``"minmax"``
        (x - min) / (max - min), or ``"none"`` (the default; e.g. a Scaler inside the graph).
    size_by_strength
        Scale the position size by |strength| (else every entry is the full base size).
    evaluator
        ``"auto"`` (native when the graph allows it, else onnxruntime), ``"native"`` (an error
        if the graph is not native) or ``"onnxruntime"``.
    """

    path: str
    inputs: Tuple[str, ...]
    output: Optional[str] = None
    mode: str = "score"
    scale: float = 1.0
    classes: Tuple[str, ...] = ()
    min_probability: float = 0.5
    normalize: str = "none"
    mean: Tuple[float, ...] = ()
    std: Tuple[float, ...] = ()
    min: Tuple[float, ...] = ()
    max: Tuple[float, ...] = ()
    size_by_strength: bool = False
    evaluator: str = "auto"

    def __post_init__(self) -> None:
        import os
        if isinstance(self.path, os.PathLike):
            object.__setattr__(self, "path", os.fspath(self.path))
        if not isinstance(self.path, str) or not self.path:
            raise TypeError("path must be the model file's path")
        inputs = self.inputs
        if isinstance(inputs, (str, bytes)) or not isinstance(inputs, Sequence) or not inputs:
            raise TypeError("inputs must be a non-empty list of feature names")
        for i, name in enumerate(inputs):
            if not isinstance(name, str):
                raise TypeError(f"inputs[{i}] must be a feature name, got {type(name).__name__}")
        dup = sorted({n for n in inputs if list(inputs).count(n) > 1})
        if dup:
            raise ValueError(f"inputs names {dup[0]!r} twice")
        if len(inputs) > MAX_MODEL_INPUTS:
            raise ValueError(f"inputs has {len(inputs)} names; at most {MAX_MODEL_INPUTS}")
        object.__setattr__(self, "inputs", tuple(inputs))
        if self.output is not None and (not isinstance(self.output, str) or not self.output):
            raise TypeError("output must be the name of a graph output")
        if self.mode not in MODEL_MODES:
            raise ValueError(f"mode must be one of {MODEL_MODES}, got {self.mode!r}")
        if isinstance(self.scale, bool) or not isinstance(self.scale, (int, float)) \
                or not math.isfinite(self.scale) or self.scale == 0:
            raise ValueError(f"scale must be a finite non-zero number, got {self.scale!r}")
        classes = self.classes
        if isinstance(classes, (str, bytes)) or not isinstance(classes, Sequence):
            raise TypeError("classes must be a list of 'buy', 'sell' or 'flat'")
        classes = tuple(classes)
        if self.mode == "classes":
            if not 2 <= len(classes) <= MAX_MODEL_CLASSES:
                raise ValueError(f"mode 'classes' needs classes: 2 to {MAX_MODEL_CLASSES} names, one per "
                                 "probability column, each 'buy', 'sell' or 'flat'")
            for i, c in enumerate(classes):
                if c not in CLASS_SIDES:
                    raise ValueError(f"classes[{i}] must be 'buy', 'sell' or 'flat', got {c!r}")
            if "buy" not in classes and "sell" not in classes:
                raise ValueError("classes names neither 'buy' nor 'sell': the model could never trade")
        elif classes:
            raise ValueError("classes is for mode 'classes'; this model's mode is 'score'")
        object.__setattr__(self, "classes", classes)
        p = self.min_probability
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 < p <= 1.0:
            raise ValueError(f"min_probability must be in (0, 1], got {p!r}")
        if self.normalize not in NORMALIZERS:
            raise ValueError(f"normalize must be one of {NORMALIZERS}, got {self.normalize!r}")
        n = len(self.inputs)
        need = {"zscore": ("mean", "std"), "minmax": ("min", "max"), "none": ()}[self.normalize]
        for key in ("mean", "std", "min", "max"):
            values = getattr(self, key)
            if key in need:
                object.__setattr__(self, key, _floats(key, values, n))
            elif values:
                raise ValueError(f"{key} is set but normalize is {self.normalize!r}")
        if self.normalize == "zscore":
            for i, s in enumerate(self.std):
                if not s > 0:
                    raise ValueError(f"std[{i}] must be > 0, got {s!r}")
        if self.normalize == "minmax":
            for i, (lo, hi) in enumerate(zip(self.min, self.max)):
                if not hi > lo:
                    raise ValueError(f"max[{i}] must be > min[{i}], got {hi!r} <= {lo!r}")
        if not isinstance(self.size_by_strength, bool):
            raise TypeError("size_by_strength must be a bool")
        if self.evaluator not in EVALUATORS:
            raise ValueError(f"evaluator must be one of {EVALUATORS}, got {self.evaluator!r}")

    def affine(self) -> Tuple[Tuple[float, ...], Tuple[float, ...]]:
        """(shift, mul): the normalised input i is (x_i - shift_i) * mul_i, in double."""
        n = len(self.inputs)
        if self.normalize == "zscore":
            return self.mean, tuple(1.0 / s for s in self.std)
        if self.normalize == "minmax":
            return self.min, tuple(1.0 / (hi - lo) for lo, hi in zip(self.min, self.max))
        return (0.0,) * n, (1.0,) * n

    @classmethod
    def from_table(cls, table: Mapping[str, Any], base_dir: Optional[str] = None) -> "OnnxSignal":
        """From a ``[signal.onnx]`` table; unknown keys are errors."""
        import dataclasses
        import os
        names = [f.name for f in dataclasses.fields(cls)]
        for key in table:
            if key not in names:
                raise ValueError(f"unknown key {key!r}; expected one of {names}")
        for key in ("path", "inputs"):
            if key not in table:
                raise ValueError(f"missing key {key!r}")
        kwargs = dict(table)
        path = kwargs["path"]
        if isinstance(path, str) and path and base_dir is not None and not os.path.isabs(path):
            kwargs["path"] = os.path.normpath(os.path.join(base_dir, path))
        for key in ("inputs", "classes", "mean", "std", "min", "max"):
            if isinstance(kwargs.get(key), list):
                kwargs[key] = tuple(kwargs[key])
        return cls(**kwargs)
