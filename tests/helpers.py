"""Test helpers: where real data lives, instruments, record builders."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

import orpflow as of

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "examples" / "data" / "binance_spot_btcusdt_sample.gz"


def _shared_data() -> Path:
    env = os.environ.get("ORPFLOW_DATA")
    return Path(env) if env else REPO.parent / "shared" / "data"


SHARED = _shared_data()


def stress(n: int) -> int:
    """A stress test's count, scaled by ORPFLOW_STRESS_SCALE (default 1). Sanitizer builds run
    10-50x slower and set it below 1: fewer iterations, the same checks."""
    return max(1, int(n * float(os.environ.get("ORPFLOW_STRESS_SCALE", "1"))))


def shared_file(*parts: str) -> Path:
    """A file under ../shared/data, or skip (a user's clone has no ../shared)."""
    path = SHARED.joinpath(*parts)
    if not path.is_file():
        pytest.skip(f"real-data file {path} not present (../shared/data is only on the project's machines; "
                    f"set ORPFLOW_DATA to point elsewhere)")
    return path


SPOT = of.Instrument("BTCUSDT", venue="binance-spot", tick_size="0.01", lot_size="0.00001")
USDM = of.Instrument("BTCUSDT", venue="binance-usdm", tick_size="0.1", lot_size="0.001")


def ev(flags, price=0, qty=0, seq=0, seq_first=0, seq_prev=0, ts_exch=0, ts_local=0, instrument=0):
    """One record as a tuple in EVENT_DTYPE field order."""
    return (ts_exch, ts_local, seq, seq_first, seq_prev, price, qty, int(flags), instrument)


def events(*records) -> np.ndarray:
    return np.array(list(records), dtype=of.EVENT_DTYPE)


def with_last(recs):
    """The same records with F_LAST set on the final one (closing the venue message)."""
    *head, last = recs
    return head + [last[:7] + (last[7] | int(of.flags.LAST),) + last[8:]]
