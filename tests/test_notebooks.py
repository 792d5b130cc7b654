"""Every notebook in the repository runs end to end against the installed orpflow.

Notebooks are found by a glob from the repository root, so a new one is picked up without a
change here. Each runs in a temporary folder outside the repository (a copy of its own folder:
the modules beside it, and nothing else), so the source tree can never shadow the installed
package, with one time budget for the whole notebook. Some notebooks have checks of what they
leave behind (CHECKS); the rest must simply run without an error.
"""
from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from helpers import REPO

SKIP_DIRS = {"build", "dist", "orpflow", "node_modules", "__pycache__"}
BUDGET_S = float(os.environ.get("ORPFLOW_NOTEBOOK_TIMEOUT", "600"))     # per notebook
NEEDS = ("nbformat", "nbclient", "ipykernel", "matplotlib")
# small models in the ML notebook; no plot windows. Data: each notebook's default, the sample
# that comes with orpflow (orpflow.sample_path()).
ENV = {"ORPFLOW_ML_QUICK": "1", "MPLBACKEND": "Agg"}


def _notebooks():
    """*.ipynb under the repository, not in build output, virtualenvs or hidden folders."""
    found = []
    for root, dirs, files in os.walk(REPO):
        dirs[:] = [d for d in dirs if d not in SKIP_DIRS and not d.startswith(".") and "venv" not in d]
        found += [Path(root) / f for f in files if f.endswith(".ipynb")]
    return sorted(found)


NOTEBOOKS = _notebooks()


def _printed(nb) -> str:
    return "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)


def _check_market_making(nb, cwd: Path) -> None:
    assert (cwd / "mm-out" / "market_making.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    printed = _printed(nb)
    fills_line = next(ln for ln in printed.splitlines() if ln.startswith("orders "))
    assert int(fills_line.split("fills ")[1].split()[0]) > 0, printed


def _check_ml(nb, cwd: Path) -> None:
    out = cwd / "ml-out"
    for name in ("mlp", "lightgbm"):
        assert (out / f"{name}.onnx").stat().st_size > 0
    assert (out / "backtest.png").is_file()
    printed = _printed(nb)
    for name in ("mlp", "lightgbm"):
        assert any(ln.split()[:1] == [name] for ln in printed.splitlines()), printed


def _check_quickstart(nb, cwd: Path) -> None:
    import orpflow as of
    printed = _printed(nb)
    assert f"sample  {of.sample_path()} " in printed, printed
    engine = next(ln for ln in printed.splitlines() if ln.startswith("orders "))
    assert int(engine.split()[1].rstrip(",")) > 0, printed


def _check_sweep(nb, cwd: Path) -> None:
    assert (cwd / "sweep-out" / "sweep.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "32 backtests, 0 failed" in _printed(nb), _printed(nb)


def _check_research(nb, cwd: Path) -> None:
    printed = _printed(nb)
    assert "binance_spot_btcusdt_sample.gz" in printed and "Sharpe" in printed, printed


CHECKS = {
    "examples/market_making/market_making.ipynb": _check_market_making,
    "examples/ml/train.ipynb": _check_ml,
    "examples/notebooks/quickstart.ipynb": _check_quickstart,
    "examples/notebooks/research.ipynb": _check_research,
    "examples/notebooks/sweep.ipynb": _check_sweep,
}


def test_the_known_notebooks_are_found():
    found = {p.relative_to(REPO).as_posix() for p in NOTEBOOKS}
    assert set(CHECKS) <= found, sorted(found)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.relative_to(REPO).as_posix() for p in NOTEBOOKS])
def test_notebook_runs(path: Path, tmp_path: Path, monkeypatch) -> None:
    for m in NEEDS:
        pytest.importorskip(m, reason=f"notebooks need {m} (pip install 'orpflow[test]')")
    import nbformat
    from nbclient import NotebookClient

    cwd = tmp_path / path.parent.name
    if path.parent == REPO:
        cwd.mkdir()
        shutil.copy(path, cwd / path.name)
    else:
        shutil.copytree(path.parent, cwd, ignore=shutil.ignore_patterns(
            "*.ipynb", "build", "*.so", "*.pyd", "*.c", "*-out", ".ipynb_checkpoints", "__pycache__"))
    for k, v in ENV.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("PYTHONPATH", raising=False)
    nb = nbformat.read(path, as_version=4)
    deadline = time.monotonic() + BUDGET_S
    client = NotebookClient(nb, kernel_name="python3", resources={"metadata": {"path": str(cwd)}},
                            timeout_func=lambda cell: max(1, int(deadline - time.monotonic())))
    client.execute()
    check = CHECKS.get(path.relative_to(REPO).as_posix())
    if check is not None:
        check(nb, cwd)
