"""The Event record as numpy sees it, plus flag and reason-code enums from the C definitions."""
from __future__ import annotations

import enum
from pathlib import Path
from typing import Any, Union

import numpy as np

from orpflow._core import types as _types

#: numpy mirror of the C ``Event`` record (orp_event.h): one 64-byte cache line.
EVENT_DTYPE = np.dtype(
    [
        ("ts_exch", "<i8"),
        ("ts_local", "<i8"),
        ("seq", "<i8"),
        ("seq_first", "<i8"),
        ("seq_prev", "<i8"),
        ("price", "<i8"),
        ("qty", "<i8"),
        ("flags", "<u4"),
        ("instrument", "<u4"),
    ],
    align=True,
)


def _check_layout() -> None:
    """The numpy and C layouts must agree byte for byte, or every zero-copy loop is wrong."""
    c_layout = _types.event_layout()
    fields: Any = EVENT_DTYPE.fields or {}
    np_layout = [(name, fields[name][1], fields[name][0].itemsize) for name in EVENT_DTYPE.names or ()]
    if c_layout != np_layout or _types.event_size() != EVENT_DTYPE.itemsize:
        raise ImportError(f"EVENT_DTYPE {np_layout} does not match the C Event {c_layout}")


_check_layout()

# Members come from the compiled definitions (one source of truth), so mypy cannot list them.
Flags = enum.IntFlag("Flags", _types.FLAGS)  # type: ignore[misc]
Flags.__doc__ = "Event flag bits: kind (DEPTH TRADE BBO SNAPSHOT CLEAR), side (BID ASK / BUY SELL), LAST."
flags = Flags

Reason = enum.IntEnum("Reason", _types.REASONS)  # type: ignore[misc]
Reason.__doc__ = "Why a record, message or order was rejected (stable numeric codes)."
# print(reason) names it (Reason.RISK_POSITION), never a bare number an order id could be.
Reason.__str__ = enum.Enum.__str__  # type: ignore[method-assign]


def check_event_array(arr: object, writable: bool = False) -> None:
    """Raise unless ``arr`` is a 1-D C-contiguous array of EVENT_DTYPE (writable if asked)."""
    if not isinstance(arr, np.ndarray):
        raise TypeError(f"expected a numpy array of EVENT_DTYPE, got {type(arr).__name__}")
    if arr.dtype != EVENT_DTYPE:
        raise TypeError(f"expected dtype EVENT_DTYPE, got {arr.dtype}")
    if arr.ndim != 1:
        raise ValueError(f"expected a 1-D event array, got {arr.ndim} dimensions")
    if not arr.flags.c_contiguous:
        raise ValueError("event array must be C-contiguous (use np.ascontiguousarray)")
    if writable and not arr.flags.writeable:
        raise ValueError("event array must be writable")


def empty_events(n: int = 0) -> np.ndarray:
    """A zeroed event array of n records."""
    return np.zeros(n, dtype=EVENT_DTYPE)


def save_events(path: Union[str, Path], events: np.ndarray) -> None:
    """Save an event array as .npy (reload with ``load_events``; memory-mappable)."""
    check_event_array(events)
    np.save(path, events, allow_pickle=False)


def load_events(path: Union[str, Path], mmap: bool = False) -> np.ndarray:
    """Load an event array saved by ``save_events``.

    Raises
    ------
    ValueError
        If the file does not hold a 1-D array of EVENT_DTYPE.
    """
    arr = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    if arr.dtype != EVENT_DTYPE or arr.ndim != 1:
        raise ValueError(f"{path}: not an orpflow event array (dtype {arr.dtype}, ndim {arr.ndim})")
    return arr
