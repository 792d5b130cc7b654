"""What a reader converted and what it refused, by reason."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Tuple


@dataclass
class FeedReport:
    """Filled in by the ``read_*`` functions when passed as ``report=``.

    ``rejected`` maps reason names (see ``orpflow.Reason``) to the number of messages refused;
    ``examples`` holds the first few refusals as (file, line number, reason name).
    ``truncated`` lists damaged .gz files as (file, first line not read, why): every complete
    line before the damage was read.
    """

    lines: int = 0
    messages: int = 0
    records: int = 0
    rejected: Dict[str, int] = field(default_factory=dict)
    examples: List[Tuple[str, int, str]] = field(default_factory=list)
    truncated: List[Tuple[str, int, str]] = field(default_factory=list)

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())

    def add_rejects(self, by_code: Dict[int, int], examples, source: str) -> None:
        from orpflow.events import Reason
        for code, n in by_code.items():
            name = Reason(code).name
            self.rejected[name] = self.rejected.get(name, 0) + n
        for line_no, code in examples:
            if len(self.examples) < 20:
                self.examples.append((source, line_no, Reason(code).name))

    def note_truncated(self, source: str, line_no: int, why: str) -> None:
        self.truncated.append((source, line_no, why))

    def warnings(self) -> List[str]:
        """One line per damaged file, for the CLI."""
        return [f"{src}: truncated at line {n} ({why}); the {n - 1:,} lines before it were read"
                for src, n, why in self.truncated]

    def summary(self) -> str:
        rej = ", ".join(f"{k}={v}" for k, v in sorted(self.rejected.items())) or "none"
        cut = "".join(f"; {src} truncated at line {n}" for src, n, _ in self.truncated)
        return (f"{self.lines} lines, {self.messages} messages -> {self.records} records; "
                f"rejected: {rej}{cut}")
