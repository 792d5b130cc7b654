"""benchmarks/bench_hftbacktest.py: orpflow and hftbacktest 2.4.4 must place identical orders and
get identical fills for the same rule on real data (the bundled sample). Skipped where hftbacktest
(the optional `bench` extra) is not installed; nothing here looks at a timing."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "bench_hftbacktest.py"
SAMPLE = REPO / "examples" / "data" / "binance_spot_btcusdt_sample.gz"


def test_hftbacktest_side_by_side_identical_orders(tmp_path):
    pytest.importorskip("hftbacktest", reason="hftbacktest is not installed (pip install 'orpflow[bench]')")
    pytest.importorskip("numba", reason="numba is not installed (hftbacktest needs it)")
    if not SAMPLE.is_file():
        pytest.skip(f"bundled sample {SAMPLE} missing")
    out = tmp_path / "hbt.json"
    p = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--reps", "1", "--show", "0",
                        "--data", str(SAMPLE), "--json", str(out)],
                       capture_output=True, text=True, timeout=600, cwd=str(tmp_path))
    assert out.is_file(), p.stdout[-2000:] + p.stderr[-2000:]
    res = json.loads(out.read_text())
    assert "skipped" not in res, res.get("skipped")
    cmp = res["compare"]["ROIVectorMarketDepthBacktest"]
    # the rule trades on the sample: an empty comparison would prove nothing
    assert cmp["orpflow_orders"] > 10 and cmp["orpflow_fills"] > 10, cmp
    assert cmp["identical"], (cmp, p.stdout[-3000:])
    assert cmp["orpflow_orders"] == cmp["hftbacktest_orders"] and cmp["orpflow_fills"] == cmp["hftbacktest_fills"]
    assert res["identical"] and p.returncode == 0, p.stdout[-3000:]
    loop = res["loop"]
    assert loop["orpflow backtest (Cython)"]["rows"] > 0 and loop["ROIVectorMarketDepthBacktest"]["rows"] > 0


def test_hftbacktest_script_skips_with_reason_without_data(tmp_path):
    """A missing recording is a skip with the reason (exit 0), never a traceback."""
    out = tmp_path / "hbt.json"
    p = subprocess.run([sys.executable, str(SCRIPT), "--data", str(tmp_path / "missing.gz"), "--json", str(out)],
                       capture_output=True, text=True, timeout=120, cwd=str(tmp_path))
    assert p.returncode == 0, p.stderr[-2000:]
    assert "SKIP" in p.stdout and "Traceback" not in p.stderr
    assert "skipped" in json.loads(out.read_text())


MM_SCRIPT = REPO / "benchmarks" / "bench_mm_hftbacktest.py"


def test_mm_hftbacktest_side_by_side(tmp_path):
    """The market maker in both engines on the sample: both quote, both get maker fills on
    both sides, and the figures are reported (fills differ by model definitions: no equality
    asserted, see the script's docstring)."""
    pytest.importorskip("hftbacktest", reason="hftbacktest is not installed (pip install 'orpflow[bench]')")
    pytest.importorskip("numba", reason="numba is not installed (hftbacktest needs it)")
    pytest.importorskip("Cython", reason="building the Cython strategy needs Cython")
    import orpflow as of
    if not hasattr(of, "Strategy"):
        pytest.skip("needs the Strategy API (of.Strategy)")
    if not SAMPLE.is_file():
        pytest.skip(f"bundled sample {SAMPLE} missing")
    out = tmp_path / "mm.json"
    p = subprocess.run([sys.executable, str(MM_SCRIPT), "--quick", "--reps", "1", "--data", str(SAMPLE),
                        "--json", str(out)], capture_output=True, text=True, timeout=900, cwd=str(tmp_path))
    assert p.returncode == 0 and out.is_file(), p.stdout[-2000:] + p.stderr[-2000:]
    res = json.loads(out.read_text())
    assert "skipped" not in res, res.get("skipped")
    for eng in ("orpflow", "hftbacktest"):
        r = res[eng]
        assert r["orders"] > 20 and r["fills"] > 0, (eng, r)
        assert r["buy_volume"] > 0 and r["sell_volume"] > 0, (eng, r)
    assert res["orpflow"]["maker_fills"] == res["orpflow"]["fills"]      # post-only: no taker fill
    assert res["python_identical"]                  # mm.py and mm_cython.pyx: the same orders and fills
    assert res["loop"]["orpflow"]["messages_per_s"] > 0 and res["loop"]["hftbacktest"]["messages_per_s"] > 0


def test_mm_hftbacktest_script_rejects_bad_arguments(tmp_path):
    """A user's mistake is one line and exit 2, never a traceback (or a skip where hftbacktest
    is missing)."""
    p = subprocess.run([sys.executable, str(MM_SCRIPT), "--max-orders", "0", "--data", str(SAMPLE)],
                       capture_output=True, text=True, timeout=120, cwd=str(tmp_path))
    assert "Traceback" not in p.stderr
    assert (p.returncode == 2 and "--max-orders" in p.stderr) or (p.returncode == 0 and "SKIP" in p.stdout)
    p = subprocess.run([sys.executable, str(MM_SCRIPT), "--data", str(tmp_path / "missing.gz")],
                       capture_output=True, text=True, timeout=120, cwd=str(tmp_path))
    assert p.returncode == 0 and "SKIP" in p.stdout and "Traceback" not in p.stderr


SWEEP_SCRIPT = REPO / "benchmarks" / "bench_sweep.py"


def test_sweep_bench_script_smoke(tmp_path):
    """bench_sweep.py with a tiny N: both sweeps run and give the same rows (no timing looked at)."""
    pytest.importorskip("distributed", reason="dask.distributed is not installed (pip install 'orpflow[sweep]')")
    pytest.importorskip("pandas")
    if not SAMPLE.is_file():
        pytest.skip(f"bundled sample {SAMPLE} missing")
    out = tmp_path / "sweep.json"
    p = subprocess.run([sys.executable, str(SWEEP_SCRIPT), "--tasks", "4", "--reps", "1", "--workers", "1",
                        "--json", str(out)], capture_output=True, text=True, timeout=300, cwd=str(tmp_path))
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    res = json.loads(out.read_text())
    assert res["identical_rows"] and res["errors"] == 0 and res["tasks"] == 4
    assert "speed-up" in p.stdout and "tasks/s" in p.stdout
