"""Pure-Python twin of ``orpflow._core.ring.EventRing``: same API and FIFO semantics.

Not lock-free (it leans on the GIL) and not fast: it is the specification the differential
tests hold the compiled ring to — capacity rounding, partial pushes when full, pops in order.
"""
from __future__ import annotations

import numpy as np

from orpflow.events import EVENT_DTYPE, check_event_array


class EventRing:
    def __init__(self, capacity: int = 65536):
        if capacity < 2:
            raise ValueError(f"capacity must be >= 2, got {capacity}")
        if capacity > (1 << 40):
            raise ValueError(f"capacity {capacity} is too large")
        cap = 2
        while cap < capacity:
            cap <<= 1
        self._slots = np.zeros(cap, dtype=EVENT_DTYPE)
        self._head = 0      # records ever pushed
        self._tail = 0      # records ever popped

    @property
    def capacity(self) -> int:
        return len(self._slots)

    def __len__(self) -> int:
        return self._head - self._tail

    def push(self, events: np.ndarray) -> int:
        """Push as many records as fit; returns how many."""
        check_event_array(events)
        n = min(len(events), self.capacity - len(self))
        for i in range(n):
            self._slots[(self._head + i) % self.capacity] = events[i]
        self._head += n
        return n

    def pop(self, max_records: int = 4096) -> np.ndarray:
        if max_records < 0:
            raise ValueError("max_records must be >= 0")
        out = np.empty(min(max_records, len(self)), dtype=EVENT_DTYPE)
        return out[:self.pop_into(out)]

    def pop_into(self, out: np.ndarray) -> int:
        check_event_array(out, writable=True)
        n = min(len(out), len(self))
        for i in range(n):
            out[i] = self._slots[(self._tail + i) % self.capacity]
        self._tail += n
        return n
