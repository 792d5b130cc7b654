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
