"""Checks every config value goes through: type, range, finiteness, with the key's name in
the message (config.py and feed_config.py raise them; the loader adds the section)."""
from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

INT64_MAX = 2 ** 63 - 1
#: Longest time setting in ms (one year): its nanoseconds stay far inside int64.
MAX_MS = 365 * 86_400_000.0


def _check_int(name: str, value: Any, lo: int, hi: int = INT64_MAX) -> None:
    """An int (never a bool: True is an int in Python) in [lo, hi]; every int the core reads
    has an upper bound, so nothing overflows the C integer it lands in."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < lo or value > hi:
        bound = f">= {lo}" if hi == INT64_MAX else f"in [{lo}, {hi}]"
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


def _check_cpu(name: str, value: Any) -> None:
    if value is not None:
        _check_int(name, value, 0, 4095)
