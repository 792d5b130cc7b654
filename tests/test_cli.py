"""The README's first command: `orpflow replay` on the bundled sample."""
import subprocess
import sys

from orpflow.cli import main
from helpers import SAMPLE


def test_replay_sample(capsys, tmp_path):
    out_npy = tmp_path / "sample.npy"
    rc = main(["replay", str(SAMPLE), "--save", str(out_npy)])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "423 of 423 bookTickers matched" in out
    assert "gaps 0" in out and "state IN_SYNC" in out and "top of book" in out
    assert out_npy.is_file()
    rc = main(["replay", str(out_npy)])
    assert rc == 0 and "423 of 423" in capsys.readouterr().out


def test_console_script_and_errors(tmp_path):
    # cwd elsewhere: from the repo root, `-m orpflow` would import the uncompiled source tree
    proc = subprocess.run([sys.executable, "-m", "orpflow", "replay", str(tmp_path / "nope.gz")],
                          capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 2 and "not found" in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "orpflow", "replay", str(SAMPLE), "--tick-size", "abc"],
                          capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 2 and "tick_size" in proc.stderr


def test_signals_sample(capsys, tmp_path):
    feats, sigs = tmp_path / "f.npy", tmp_path / "s.npy"
    rc = main(["signals", str(SAMPLE), "--vpin-bucket", "1", "--save-features", str(feats),
               "--save-signals", str(sigs), "--show", "3"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "9,710 rows (2,596 book messages, 7,114 trades)" in out and "gaps 0" in out
    import numpy as np
    import orpflow as of
    f, s = np.load(feats), np.load(sigs)
    assert len(f) == len(s) == 9710
    emitted = int((s["side"] != 0).sum())
    assert f"{emitted:,} emitted of 9,710 rows" in out and emitted > 0
    assert s.dtype == of.SIGNAL_DTYPE and f.dtype == of.FEATURE_DTYPE


def test_signals_linear_and_bad_weight(capsys):
    rc = main(["signals", str(SAMPLE), "--generator", "linear", "--weight", "imbalance=2",
               "--weight", "trade_flow=1", "--show", "0"])
    assert rc == 0 and "emitted" in capsys.readouterr().out
    assert main(["signals", str(SAMPLE), "--generator", "linear", "--weight", "imbalance"]) == 2
    assert main(["signals", str(SAMPLE), "--generator", "linear", "--weight", "nope=1"]) == 2
    assert "unknown feature" in capsys.readouterr().err
