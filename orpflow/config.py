"""Configuration: frozen dataclasses, validated on construction with clear errors.

Each config resolves, for one instrument, into the plain dict of integers and floats the
compiled core and its pure-Python twin both consume (``resolve(inst)``), so the two can never
read a setting differently.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Dict, Mapping, Optional, Tuple

from orpflow._core.features import FEATURE_GROUPS as _GROUP_BITS, FeatureExtension
from orpflow._core.signals import SignalGenerator
from orpflow.instrument import DecimalLike, Instrument

#: Feature group names, in column order; their bits come from the compiled enum.
FEATURE_GROUPS = tuple(_GROUP_BITS)
MAX_LEVELS = 256
SIGNAL_GENERATORS = ("imbalance", "linear")


def _check_int(name: str, value: Any, lo: int, hi: Optional[int] = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < lo or (hi is not None and value > hi):
        bound = f">= {lo}" if hi is None else f"in [{lo}, {hi}]"
        raise ValueError(f"{name} must be {bound}, got {value}")


def _check_float(name: str, value: Any, lo: float = -math.inf, hi: float = math.inf,
                 lo_open: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    v = float(value)
    if not math.isfinite(v) or v < lo or v > hi or (lo_open and v == lo):
        op = ">" if lo_open else ">="
        raise ValueError(f"{name} must be finite, {op} {lo} and <= {hi}, got {value!r}")


def _ms_to_ns(name: str, ms: Any) -> int:
    _check_float(name, ms, 0.0, lo_open=True)
    ns = Decimal(repr(float(ms))) * 1_000_000
    if ns != ns.to_integral_value():
        raise ValueError(f"{name} must be a whole number of nanoseconds, got {ms!r} ms")
    return int(ns)


@dataclass(frozen=True)
class FeatureConfig:
    """Feature windows and switches (docs/features.md has every formula).

    Parameters
    ----------
    window_ms
        Time window W of the time-window features, in exchange-time milliseconds.
    volatility_window
        Mids in the volatility window (its log returns number one fewer).
    zscore_window, zscore_min_history
        Values in the volatility_z and imbalance_z windows, and how many must exist first.
    momentum_window, imbalance_momentum_window
        Mids for ``momentum`` and imbalances for ``imbalance_momentum``.
    imbalance_levels, weighted_levels, weighted_decay, depth_ratio_levels, pressure_levels
        Book levels read by each book-state feature (at most 256).
    volume_surge_windows
        ``volume_surge`` compares the volume in W with the mean per W over this many windows.
    vpin_bucket_volume, vpin_buckets
        VPIN bucket size in the instrument's size units of account (e.g. "0.5" BTC) and the
        number of buckets averaged. ``None`` switches ``toxicity`` off (NaN).
    groups
        Feature groups computed: any of "book", "history", "trades", "windows", "toxicity".
        Columns of a group that is off are NaN.
    extension
        A ``FeatureExtension`` (Cython) adding up to 8 columns, or None.

    Raises
    ------
    TypeError, ValueError
        A value of the wrong type or out of range.
    """

    window_ms: float = 1000.0
    volatility_window: int = 20
    zscore_window: int = 100
    zscore_min_history: int = 20
    momentum_window: int = 10
    imbalance_momentum_window: int = 10
    imbalance_levels: int = 5
    weighted_levels: int = 10
    weighted_decay: float = 0.9
    depth_ratio_levels: int = 20
    pressure_levels: int = 5
    volume_surge_windows: int = 60
    vpin_bucket_volume: Optional[DecimalLike] = None
    vpin_buckets: int = 50
    groups: Tuple[str, ...] = FEATURE_GROUPS
    extension: Any = None

    def __post_init__(self) -> None:
        _ms_to_ns("window_ms", self.window_ms)
        _check_int("volatility_window", self.volatility_window, 3, 100_000)
        _check_int("zscore_window", self.zscore_window, 2, 100_000)
        _check_int("zscore_min_history", self.zscore_min_history, 1, self.zscore_window)
        _check_int("momentum_window", self.momentum_window, 2, 100_000)
        _check_int("imbalance_momentum_window", self.imbalance_momentum_window, 2, 100_000)
        for name in ("imbalance_levels", "weighted_levels", "depth_ratio_levels", "pressure_levels"):
            _check_int(name, getattr(self, name), 1, MAX_LEVELS)
        _check_float("weighted_decay", self.weighted_decay, 0.0, 1.0, lo_open=True)
        _check_int("volume_surge_windows", self.volume_surge_windows, 1, 1_000_000)
        _check_int("vpin_buckets", self.vpin_buckets, 1, 100_000)
        groups = (self.groups,) if isinstance(self.groups, str) else tuple(self.groups)
        unknown = [g for g in groups if g not in FEATURE_GROUPS]
        if unknown:
            raise ValueError(f"unknown feature groups {unknown}; expected some of {FEATURE_GROUPS}")
        object.__setattr__(self, "groups", groups)
        if self.extension is not None:
            if not isinstance(self.extension, FeatureExtension):
                raise TypeError("extension must be a FeatureExtension (a cdef class subclass)")
            if not 1 <= len(self.extension.names) <= 8:
                raise ValueError("a FeatureExtension must name between 1 and 8 columns")

    def resolve(self, inst: Instrument) -> Dict[str, Any]:
        """The integer/float parameters for `inst` (sizes in its units)."""
        bucket = 0
        if self.vpin_bucket_volume is not None:
            try:
                bucket = inst.size_to_units(self.vpin_bucket_volume)
            except ValueError as exc:
                raise ValueError(f"vpin_bucket_volume: {exc}") from None
            if bucket <= 0:
                raise ValueError("vpin_bucket_volume must be positive")
        groups = 0
        for g in self.groups:
            groups |= _GROUP_BITS[g]
        return {
            "window_ns": _ms_to_ns("window_ms", self.window_ms),
            "volatility_window": self.volatility_window,
            "zscore_window": self.zscore_window,
            "zscore_min": self.zscore_min_history,
            "momentum_window": self.momentum_window,
            "imbalance_momentum_window": self.imbalance_momentum_window,
            "imbalance_levels": self.imbalance_levels,
            "weighted_levels": self.weighted_levels,
            "weighted_decay": float(self.weighted_decay),
            "depth_ratio_levels": self.depth_ratio_levels,
            "pressure_levels": self.pressure_levels,
            "surge_windows": self.volume_surge_windows,
            "vpin_bucket": bucket,
            "vpin_buckets": self.vpin_buckets,
            "groups": groups,
        }


@dataclass(frozen=True)
class SignalConfig:
    """Signal generator and position rules (docs/signals.md).

    Parameters
    ----------
    generator
        "imbalance" (ORPFlow's rules), "linear" (tanh of weights . features), a Python callable
        ``f(row) -> strength or None`` (slow: takes the GIL per row), or a ``SignalGenerator``
        instance compiled from your own ``.pyx``.
    max_spread_bps, threshold, persistence, min_confidence, momentum_confirmation,
    momentum_threshold
        The imbalance generator's rules 2, 4, 5, 6 and 7.
    base_position_pct, equity
        Size = equity * base_position_pct / mid (rule 9), rounded down to the lot.
    min_interval_ms
        Minimum time between two entry signals (enter or add); reversals and exits are exempt.
    exit_on_holding
        Close the position when its holding period lapses without a renewing signal.
    weights, bias, entry_threshold, holding_ms
        Linear and callable generators: strength = tanh(sum w_i * feature_i + bias); a signal
        when |strength| >= entry_threshold, held for holding_ms.
    features
        The FeatureConfig the signals read.

    Raises
    ------
    TypeError, ValueError
        A value of the wrong type or out of range, or an unknown feature name in ``weights``.
    """

    generator: Any = "imbalance"
    max_spread_bps: float = 10.0
    threshold: float = 0.3
    persistence: int = 3
    min_confidence: float = 0.6
    momentum_confirmation: bool = True
    momentum_threshold: float = 1e-4
    base_position_pct: float = 0.1
    equity: float = 10_000.0
    min_interval_ms: float = 1000.0
    exit_on_holding: bool = True
    weights: Mapping[str, float] = field(default_factory=dict)
    bias: float = 0.0
    entry_threshold: float = 0.5
    holding_ms: float = 1000.0
    features: FeatureConfig = field(default_factory=FeatureConfig)

    def __post_init__(self) -> None:
        g = self.generator
        if isinstance(g, str):
            if g not in SIGNAL_GENERATORS:
                raise ValueError(f"unknown generator {g!r}; expected one of {SIGNAL_GENERATORS}, "
                                 "a callable or a SignalGenerator")
        elif not callable(g):
            if not isinstance(g, SignalGenerator):
                raise TypeError("generator must be a name, a callable or a SignalGenerator")
        _check_float("max_spread_bps", self.max_spread_bps, 0.0)
        _check_float("threshold", self.threshold, 0.0, lo_open=True)
        _check_int("persistence", self.persistence, 1)
        _check_float("min_confidence", self.min_confidence, 0.0, 1.0)
        if not isinstance(self.momentum_confirmation, bool):
            raise TypeError("momentum_confirmation must be a bool")
        _check_float("momentum_threshold", self.momentum_threshold)
        _check_float("base_position_pct", self.base_position_pct, 0.0, lo_open=True)
        _check_float("equity", self.equity, 0.0, lo_open=True)
        _check_float("min_interval_ms", self.min_interval_ms, 0.0)
        if not isinstance(self.exit_on_holding, bool):
            raise TypeError("exit_on_holding must be a bool")
        _check_float("bias", self.bias)
        _check_float("entry_threshold", self.entry_threshold, 0.0, 1.0)
        _check_float("holding_ms", self.holding_ms, 0.0)
        if not isinstance(self.features, FeatureConfig):
            raise TypeError("features must be a FeatureConfig")
        weights = dict(self.weights)
        names = feature_columns(self.features)
        for k, v in weights.items():
            if k not in names:
                raise ValueError(f"weights: unknown feature {k!r}; expected one of {names}")
            _check_float(f"weights[{k!r}]", v)
        object.__setattr__(self, "weights", weights)

    def resolve(self, inst: Instrument) -> Dict[str, Any]:
        names = feature_columns(self.features)
        return {
            "max_spread_bps": float(self.max_spread_bps),
            "threshold": float(self.threshold),
            "persistence": self.persistence,
            "min_confidence": float(self.min_confidence),
            "momentum_confirmation": int(self.momentum_confirmation),
            "momentum_threshold": float(self.momentum_threshold),
            "base_position_pct": float(self.base_position_pct),
            "equity": float(self.equity),
            "min_interval_ns": _ms_to_ns_or_zero(self.min_interval_ms),
            "exit_on_holding": int(self.exit_on_holding),
            "weights": [float(self.weights.get(n, 0.0)) for n in names],
            "bias": float(self.bias),
            "entry_threshold": float(self.entry_threshold),
            "holding_ms": float(self.holding_ms),
            "lot_units": inst.lot_units,
            "qty_num": inst.size_scale[0],
            "qty_den": inst.size_scale[1],
        }


def _ms_to_ns_or_zero(ms: float) -> int:
    return 0 if ms == 0 else _ms_to_ns("min_interval_ms", ms)


def feature_columns(config: FeatureConfig) -> Tuple[str, ...]:
    """Every feature column for `config`: the built-in ones, then the extension's."""
    from orpflow.features import FEATURE_NAMES
    ext = config.extension
    return FEATURE_NAMES + (tuple(ext.names) if ext is not None else ())

