"""One progress display for everything long: tqdm when installed, else a plain stderr line.

``tqdm.auto`` renders as a bar in terminals and as a widget in notebooks; without tqdm (the
``progress`` extra) the same counts are written as one ``\\r``-rewritten line on stderr.
Callers update it between chunks of work (files, 2**20-event slices, finished tasks), never
per event. tqdm is imported here, on first use, so ``import orpflow`` stays light.
"""
from __future__ import annotations

import sys
from typing import Any, Callable, Optional

__all__ = ["Progress", "progress_callback"]


class Progress:
    """A counter from 0 to `total` shown as ``desc done / total unit (pct%)``.

    ``enabled=False`` shows nothing. Use as a context manager or call ``close()``; closing
    ends the line (or the bar) even if the work stopped early.
    """

    def __init__(self, total: int, desc: str, unit: str = "it", enabled: bool = True,
                 file: Any = None) -> None:
        self.total = int(total)
        self.desc = desc
        self.unit = unit
        self.done = 0
        self._file = file
        self._bar: Any = None
        self._open = bool(enabled)
        if not self._open:
            return
        import warnings
        try:
            with warnings.catch_warnings():     # Jupyter without ipywidgets: tqdm warns, then
                warnings.simplefilter("ignore")  # falls back to its text bar (what we want)
                from tqdm.auto import tqdm
        except ImportError:
            tqdm = None
        if tqdm is not None:
            self._bar = tqdm(total=self.total, desc=desc, unit=f" {unit}", unit_scale=unit == "events",
                             file=file, leave=True, dynamic_ncols=True)

    def set(self, done: int) -> None:
        """Move to `done` of `total` (counts only go forward)."""
        if not self._open or done <= self.done:
            return
        step, self.done = int(done) - self.done, int(done)
        if self._bar is not None:
            self._bar.update(step)
        else:
            self._line()
        if self.done >= self.total:
            self.close()

    def update(self, n: int = 1) -> None:
        self.set(self.done + n)

    def _line(self) -> None:
        f = self._file if self._file is not None else sys.stderr
        pct = 100.0 * self.done / self.total if self.total else 100.0
        f.write(f"\r{self.desc} {self.done:,} / {self.total:,} {self.unit} ({pct:.0f}%)")
        f.flush()

    def close(self) -> None:
        if not self._open:
            return
        self._open = False
        if self._bar is not None:
            self._bar.close()
        elif self.done:                     # end the \r line so later output starts clean
            f = self._file if self._file is not None else sys.stderr
            f.write("\n")
            f.flush()

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def progress_callback(desc: str, unit: str, enabled: bool = True) -> Optional[Callable[[int, int], None]]:
    """An ``f(done, total)`` that shows a Progress (created on the first call); None if disabled.
    For APIs whose progress argument is such a callable (backtest, load_engine_events)."""
    if not enabled:
        return None
    state: dict = {}

    def report(done: int, total: int) -> None:
        bar = state.get("bar")
        if bar is None:
            bar = state["bar"] = Progress(total, desc, unit)
        bar.set(done)
    return report
