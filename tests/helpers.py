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


# ------------------------------------------------------------------ the loopback exchange

import contextlib
import json
import select
import subprocess
import sys
import tempfile
import urllib.request

_FAULT_FLAGS = {"drop_diffs": "--drop-diff", "close_after": "--close-after",
                "snapshot_delay_s": "--snapshot-delay", "malformed_every": "--malformed-every",
                "binary_every": "--binary-every", "stall_after": "--stall-after", "stall_s": "--stall-s"}


class LoopbackProcess:
    """A running `orpflow serve-replay` child: its URLs and its status."""

    def __init__(self, proc: subprocess.Popen, ws_url: str, rest_url: str) -> None:
        self.proc, self.ws_url, self.rest_url = proc, ws_url, rest_url

    def get(self, path: str, timeout: float = 10.0):
        """(HTTP status, headers, body bytes) of GET rest_url + path."""
        try:
            with urllib.request.urlopen(self.rest_url + path, timeout=timeout) as r:
                return r.status, dict(r.headers), r.read()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read()

    def status(self) -> dict:
        code, _, body = self.get("/orpflow/status")
        assert code == 200, body
        return json.loads(body)


@contextlib.contextmanager
def loopback(files, *, speed: float = 1.0, extra_args=(), keep_times: bool = False, **faults):
    """`orpflow serve-replay FILES` as a subprocess (never sharing the GIL with the engine under
    test), on ephemeral 127.0.0.1 ports; faults as Faults' fields (drop_diffs=(5,), stall_s=1, ...).
    Yields a LoopbackProcess; terminates the child (SIGTERM, which must exit 0) at exit."""
    argv = [sys.executable, "-m", "orpflow", "serve-replay", *map(str, files), "--speed", str(speed)]
    for key, value in faults.items():
        flag = _FAULT_FLAGS[key]
        for v in (value if isinstance(value, (tuple, list)) else (value,)):
            argv += [flag, str(v)]
    argv += list(extra_args) + (["--keep-times"] if keep_times else [])
    # cwd elsewhere: from the repo root, `-m orpflow` would import the uncompiled source tree
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=tempfile.gettempdir())
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 60.0)
        line = proc.stdout.readline() if ready else ""
        if not line.startswith("serving "):
            proc.kill()
            raise RuntimeError(f"serve-replay did not start: {line!r} {proc.communicate()[1]!r}")
        _, ws_url, _, rest_url = line.split()
        yield LoopbackProcess(proc, ws_url, rest_url)
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
