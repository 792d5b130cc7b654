"""The hand-written .pyi stubs of the compiled core match the extension modules (mypy stubtest).

stubtest imports each module and compares it with its stub: names present on one side only,
property vs attribute, and (where the runtime exposes a signature) parameter names, kinds and
defaults. The core is built with ``binding=True``, so stubtest also checks the signatures.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

MODULES = [
    "orpflow._core.types",
    "orpflow._core.ring",
    "orpflow._core.snapshot",
    "orpflow._core.levels",
    "orpflow._core.book",
    "orpflow._core.convert",
    "orpflow._core.binance_json",
    "orpflow._core.features",
    "orpflow._core.signals",
    "orpflow._core.strategy",
    "orpflow._core.loop",
    "orpflow._core.signal_strategy",
    "orpflow._core.model",
    "orpflow._core.model_signal",
    "orpflow._core.risk",
    "orpflow._core.latency",
    "orpflow._core.resting",
    "orpflow._core.venue",
    "orpflow._core.broker",
    "orpflow._core.engine",
]
ALLOWLIST = Path(__file__).resolve().with_name("stubtest_allowlist.txt")
# The stubs mark the extension types @disjoint_base (PEP 800); older mypy does not know it.
MIN_MYPY = (1, 18)


def _mypy_version() -> tuple[int, ...]:
    from mypy.version import __version__

    return tuple(int(p) for p in re.findall(r"\d+", __version__)[:2])


def test_stubs_match_compiled_modules(tmp_path: Path) -> None:
    pytest.importorskip("mypy")
    pytest.importorskip("mypy.stubtest")
    if _mypy_version() < MIN_MYPY:
        pytest.skip(f"stubtest needs mypy >= {'.'.join(map(str, MIN_MYPY))} for @disjoint_base")

    import orpflow

    # Check the orpflow this test session imports (installed, editable or on PYTHONPATH), never
    # a source tree that happens to be the working directory: run from an empty directory and
    # put the imported package's parent first on the path, for both the import and mypy's
    # stub search.
    pkg_parent = str(Path(orpflow.__file__).resolve().parents[1])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [pkg_parent] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    )
    proc = subprocess.run(
        [sys.executable, "-m", "mypy.stubtest", *MODULES, "--allowlist", str(ALLOWLIST)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, f"stubtest failed:\n{proc.stdout}\n{proc.stderr}"
