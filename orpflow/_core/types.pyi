from __future__ import annotations

from typing import Final

FLAGS: Final[dict[str, int]]
REASONS: Final[dict[str, int]]
REASON_COUNT: Final[int]

def event_layout() -> list[tuple[str, int, int]]: ...
def event_size() -> int: ...
def debug_live_allocations() -> int: ...
