"""The "from notebook to model" example: examples/ml/train.py runs end to end on the bundled
sample (small models) and leaves two ONNX models, a plot and a summary table. train.ipynb runs
(and the same outputs are checked) in tests/test_notebooks.py."""
import subprocess
import sys

import pytest

import orpflow as of
from helpers import REPO, SAMPLE

EXAMPLE = REPO / "examples" / "ml"
MODELS = ("mlp", "lightgbm")

needs_onnx_signal = pytest.mark.skipif(not hasattr(of, "OnnxSignal"), reason="needs of.OnnxSignal")


def need(*modules):
    for m in modules:
        pytest.importorskip(m, reason=f"the ML example needs {m} (pip install 'orpflow[test]')")


@needs_onnx_signal
def test_train_script(tmp_path):
    need("pandas", "sklearn", "lightgbm", "skl2onnx", "onnxmltools", "onnxruntime", "matplotlib")
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, str(EXAMPLE / "train.py"), "--quick", "--out", str(out),
                           "--data", str(SAMPLE)],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for name in MODELS:
        assert (out / f"{name}.onnx").stat().st_size > 0
    assert (out / "backtest.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    lines = proc.stdout.splitlines()
    head = next(i for i, ln in enumerate(lines) if ln.split()[:2] == ["model", "evaluator"])
    rows = {ln.split()[0]: ln.split() for ln in lines[head + 1:head + 1 + len(MODELS) + 1]}
    for name in MODELS:
        assert name in rows, proc.stdout
        evaluator, orders, fills = rows[name][1], int(rows[name][3]), int(rows[name][4])
        assert evaluator in ("native", "onnxruntime")
        assert orders >= 0 and fills >= 0
        float(rows[name][5])                                   # the PnL is a number


def test_train_script_names_a_missing_file(tmp_path):
    proc = subprocess.run([sys.executable, str(EXAMPLE / "train.py"), "--data", str(tmp_path / "nope.gz"),
                           "--out", str(tmp_path / "out")], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2
    assert "nope.gz" in proc.stderr and "Traceback" not in proc.stderr
