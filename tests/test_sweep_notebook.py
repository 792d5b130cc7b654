"""examples/notebooks/sweep.ipynb executes from a temporary folder (so the kernel imports the
installed orpflow, not the source tree) and draws its plot; the sweep itself is tested in
test_sweep.py."""
from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "examples" / "data" / "binance_spot_btcusdt_sample.gz"


def test_sweep_notebook_executes(tmp_path, monkeypatch):
    for m in ("nbformat", "nbclient", "ipykernel", "matplotlib", "pandas", "distributed"):
        pytest.importorskip(m, reason=f"the notebook needs {m} (pip install 'orpflow[test]')")
    if not SAMPLE.is_file():
        pytest.skip(f"bundled sample {SAMPLE} missing")
    import nbformat
    from nbclient import NotebookClient
    out = tmp_path / "out"
    monkeypatch.setenv("ORPFLOW_SWEEP_DATA", str(SAMPLE))
    monkeypatch.setenv("ORPFLOW_SWEEP_OUT", str(out))
    nb = nbformat.read(REPO / "examples" / "notebooks" / "sweep.ipynb", as_version=4)
    # run from tmp_path: the kernel imports the installed orpflow, not the source tree
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    assert (out / "sweep.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    printed = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "32 backtests, 0 failed" in printed, printed
