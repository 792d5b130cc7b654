"""Opening recorded files: plain or gzip, read whole (recordings are converted once)."""
from __future__ import annotations

import gzip
from pathlib import Path
from typing import Iterable, List, Sequence, Union

PathLike = Union[str, Path]


def read_lines(path: PathLike) -> List[bytes]:
    """All lines of a plain or .gz file, without line terminators."""
    path = Path(path)
    with open(path, "rb") as fh:
        magic = fh.read(2)
    opener = gzip.open if magic == b"\x1f\x8b" else open
    with opener(path, "rb") as fh:
        data = fh.read()
    return data.splitlines()


def as_paths(paths: Union[PathLike, Sequence[PathLike]]) -> List[Path]:
    if isinstance(paths, (str, Path)):
        return [Path(paths)]
    out = [Path(p) for p in paths]
    if not out:
        raise ValueError("no input files given")
    return out


def check_exists(paths: Iterable[Path]) -> None:
    for p in paths:
        if not p.is_file():
            raise FileNotFoundError(f"market data file not found: {p}")
