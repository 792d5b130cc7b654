"""What an installed orpflow carries (the sample, the example configs) and `orpflow init`, which
turns them into a session that runs from any folder."""
from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

import orpflow as of
from orpflow.cli import main
from helpers import REPO, SAMPLE

try:
    import tomllib
except ModuleNotFoundError:          # Python < 3.11
    import tomli as tomllib


def test_the_bundled_files_are_the_repository_s():
    """One copy in the repository: what the package finds is byte for byte examples/."""
    assert of.sample_path().read_bytes() == SAMPLE.read_bytes()
    for name in ("paper", "live"):
        assert of.example_config(name).read_bytes() == (REPO / "examples" / f"{name}.toml").read_bytes()
    assert of.example_config("paper.toml") == of.example_config("paper")
    with pytest.raises(ValueError, match="paper, live"):
        of.example_config("nope")


def test_the_packaged_paper_config_finds_its_data():
    cfg = of.load_config(str(of.example_config("paper")))
    assert [Path(p) for p in cfg.instruments[0].paths] == [of.sample_path()]


def test_init_writes_a_config_that_runs_anywhere(tmp_path, capsys):
    folder = tmp_path / "my session"
    assert main(["init", str(folder)]) == 0
    out = capsys.readouterr().out
    cfg_path = folder / "paper.toml"
    assert f"orpflow run '{cfg_path}'" in out
    text = cfg_path.read_text()
    assert str(cfg_path) in text                          # the header's run command
    data = tomllib.loads(text)
    assert data["instruments"][0]["paths"] == [str(of.sample_path())]
    # everything but the data path and comments is the example's
    example = tomllib.loads(of.example_config("paper").read_text())
    example["instruments"][0].pop("paths")
    data["instruments"][0].pop("paths")
    assert data == example
    # and it runs, moved elsewhere too (the data path is absolute)
    moved = tmp_path / "elsewhere.toml"
    moved.write_text(text)
    cfg = of.load_config(str(moved))
    events, _ = of.load_engine_events(cfg, cfg.make_instruments())
    res = of.backtest(events, cfg)
    assert len(events) > 100_000 and len(res.orders["BTCUSDT"]) > 0


def test_init_keeps_an_existing_file_unless_forced(tmp_path, capsys):
    target = tmp_path / "paper.toml"
    target.write_text("# mine\n")
    assert main(["init", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(target) in err and "--force" in err
    assert target.read_text() == "# mine\n"
    assert main(["init", str(tmp_path), "--force"]) == 0
    assert "[[instruments]]" in target.read_text()


def test_init_on_a_file_is_one_line(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert main(["init", str(blocker)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("orpflow: error:") and err.count("\n") == 1 and "Traceback" not in err


def test_init_then_run_from_an_empty_folder(tmp_path):
    """The README's promise for an installed orpflow: init, then run, in a folder of one's own."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    cli = [sys.executable, "-m", "orpflow"]
    init = subprocess.run(cli + ["init", "session"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120, env=env)
    assert init.returncode == 0, init.stderr
    config = str(Path("session") / "paper.toml")
    assert init.stdout.splitlines()[-1] == f"next: orpflow run {shlex.quote(config)}"
    run = subprocess.run(cli + ["run", config, "--no-db"], cwd=tmp_path, capture_output=True,
                         text=True, timeout=300, env=env)
    assert run.returncode == 0, run.stdout + run.stderr
    engine = next(ln for ln in run.stdout.splitlines() if ln.startswith("engine"))
    assert " orders" in engine and "fills" in engine


def test_version(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"orpflow {of.__version__}"
