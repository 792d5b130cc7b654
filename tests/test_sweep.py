"""of.sweep / `orpflow sweep`: parameter and data sweeps on dask.distributed, and orpflow.progress.

The acceptance test runs more than 100 backtests over slices of the bundled sample on a
LocalCluster of 2 worker processes and asks for exactly the rows of the same backtests run
in this process (timing columns aside). Nothing here looks at a duration."""
from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import orpflow as of
from orpflow.config import ConfigError
from orpflow.sweep import TIMING_COLUMNS, apply_overrides, run_task

pd = pytest.importorskip("pandas")
pytest.importorskip("distributed", reason="dask.distributed is not installed (pip install 'orpflow[sweep]')")

REPO = Path(__file__).resolve().parents[1]
PAPER = REPO / "examples" / "paper.toml"
SAMPLE = REPO / "examples" / "data" / "binance_spot_btcusdt_sample.gz"

# values that change what the sample trades (threshold matters above min_confidence's gate)
THRESHOLDS = [0.5, 0.6, 0.7, 0.8, 0.9, 0.95]
SIZES = [0.02, 0.05, 0.1, 0.2, 0.3, 0.5]          # signal.base_position_pct


@pytest.fixture(scope="module")
def cfg():
    if not SAMPLE.is_file():
        pytest.skip(f"bundled sample {SAMPLE} missing")
    return of.load_config(str(PAPER))


@pytest.fixture(scope="module")
def slices(cfg, tmp_path_factory):
    """Three windows of the bundled sample as .npy files: its first third, two thirds and all
    of it (each starts at the recording's book snapshot, as a day's file would)."""
    events, _ = of.load_engine_events(cfg, cfg.make_instruments())
    d = tmp_path_factory.mktemp("slices")
    out = []
    for i in range(3):
        p = d / f"part{i}.npy"
        of.save_events(str(p), events[:len(events) * (i + 1) // 3])
        out.append(str(p))
    return out


@pytest.fixture(scope="module")
def client():
    from distributed import Client, LocalCluster
    import logging
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address="127.0.0.1:0",
                           silence_logs=logging.ERROR)
    c = Client(cluster)
    yield c
    c.close()
    cluster.close()


def _no_timing(df):
    return df.drop(columns=list(TIMING_COLUMNS))


# ------------------------------------------------------------------ acceptance

def test_cluster_sweep_equals_serial_backtests(cfg, slices, client, tmp_path):
    grid = {"signal.threshold": THRESHOLDS, "signal.base_position_pct": SIZES}
    df = of.sweep(cfg, grid, slices, client, progress=False)
    assert len(df) == len(THRESHOLDS) * len(SIZES) * len(slices) >= 100
    assert (df["error"] == "").all(), df["error"].unique()
    # rows in grid order then data order, whatever order the tasks finished in
    expect = [(t, m, s) for t in THRESHOLDS for m in SIZES for s in slices]
    assert list(zip(df["signal.threshold"], df["signal.base_position_pct"], df["data"])) == expect
    # the grid changes the outcome: equal rows everywhere would prove nothing
    assert df["pnl"].nunique() > 10 and df["trade_count"].nunique() > 3

    serial = of.sweep(cfg, grid, slices, "serial", progress=False)
    pd.testing.assert_frame_equal(_no_timing(df), _no_timing(serial), check_exact=True)

    # and each row is what a direct backtest() with that config and slice gives
    for (t, m, s), (_, row) in zip(expect, df.iterrows()):
        c = dataclasses.replace(cfg, signal=dataclasses.replace(cfg.signal, threshold=t, base_position_pct=m))
        res = of.backtest(of.load_events(s), c)
        st = res.stats["BTCUSDT"]
        assert row["pnl"] == st["pnl"] and row["trade_count"] == st["trade_count"]
        assert row["fills"] == len(res.fills["BTCUSDT"]) and row["events"] == res.counters["events"]
        assert row["risk_rejections"] == sum(res.risk_rejections.values())


def test_workers_receive_paths_never_arrays(cfg, slices, client, monkeypatch):
    sent = []
    real = client.submit

    def spy(fn, *args, **kwargs):
        sent.append(args)
        return real(fn, *args, **kwargs)
    monkeypatch.setattr(client, "submit", spy)
    df = of.sweep(cfg, {"signal.threshold": [0.6, 0.9]}, [slices[0], slices[1:]], client, progress=False,
                  batch=3)
    assert len(df) == 4 and (df["error"] == "").all()
    assert df["data"].tolist() == [slices[0], ",".join(slices[1:])] * 2
    assert [len(args[0]) for args in sent] == [3, 1]            # batches of 3 backtests
    items = [item for args in sent for item in args[0]]
    for args in sent:
        assert not any(isinstance(a, np.ndarray) for a in args)
    for config, path in items:
        assert isinstance(config, of.EngineConfig)
        assert isinstance(path, str) and path.endswith(".npy")
        assert not Path(path).exists()          # the temporary work folder is gone afterwards
    assert len({p for _, p in items}) == 2 and not {p for _, p in items} & set(slices)  # converted copies


def test_work_dir_keeps_one_npy_per_slice(cfg, slices, tmp_path):
    work = tmp_path / "work"
    df = of.sweep(cfg, {"signal.threshold": [0.6, 0.8, 0.9]}, slices[:2], "serial", work_dir=str(work),
                  progress=False)
    kept = sorted(work.glob("*.npy"))
    assert len(kept) == 2 and len(df) == 6                       # converted once, used 3 times each
    assert np.array_equal(np.load(kept[0]), of.load_events(slices[0]))


# ------------------------------------------------------------------ failures are rows

BOOM = '''
import orpflow as of

class Boom(of.Strategy):
    """Raises in on_book when asked to: a user's strategy that fails for some parameters."""
    def __init__(self, mode="ok"):
        self.mode = mode

    def on_book(self, ctx):
        if self.mode == "raise":
            raise RuntimeError("boom: mode raise")
'''


def test_a_failing_task_is_an_error_row_and_the_rest_complete(slices, client, tmp_path):
    (tmp_path / "boom.py").write_text(BOOM)
    toml = tmp_path / "boom.toml"
    toml.write_text(f'[strategy]\nclass = "boom.py:Boom"\n[[instruments]]\nsymbol = "BTCUSDT"\n'
                    f'paths = [{str(SAMPLE)!r}]\n')
    df = of.sweep(str(toml), {"strategy.params.mode": ["ok", "raise", "ok"]}, slices[:2], client,
                  progress=False, batch=1)
    assert df["strategy.params.mode"].tolist() == ["ok", "ok", "raise", "raise", "ok", "ok"]
    failed = df[df["strategy.params.mode"] == "raise"]
    assert failed["error"].str.startswith("RuntimeError: boom: mode raise").all()
    assert failed["pnl"].isna().all()
    ok = df[df["strategy.params.mode"] == "ok"]
    assert (ok["error"] == "").all() and (ok["events"] > 0).all()


def test_a_missing_slice_file_on_a_worker_is_an_error_row(cfg, tmp_path):
    rows = run_task(cfg, str(tmp_path / "gone.npy"))
    assert len(rows) == 1 and rows[0]["error"].startswith("FileNotFoundError")
    bad = tmp_path / "bad.npy"
    np.save(bad, np.zeros(10))                                   # not event records
    rows = run_task(cfg, str(bad))
    assert rows[0]["error"] and np.isnan(rows[0]["pnl"])


# ------------------------------------------------------------------ mistakes, before any task

@pytest.mark.parametrize("grid, words", [
    ({"signal.nope": [1]}, ["signal.nope", "'nope'"]),
    ({"nosection.x": [1]}, ["nosection.x", "[nosection]"]),
    ({"feed.speed": [1]}, ["feed.speed", "[feed]"]),
    ({"threshold": [1]}, ["'threshold'", "section.key"]),
    ({"signal.threshold": [0.5, "abc"]}, ["signal.threshold", "'abc'"]),
    ({"signal.persistence": [-3]}, ["signal.persistence"]),
    ({"risk.max_position": ["1e30"]}, ["risk.max_position", "size range"]),  # fails only to resolve
    ({"execution.order_type": ["market", "limitx"]}, ["execution.order_type", "limitx"]),
    ({"signal.threshold": []}, ["signal.threshold", "non-empty"]),
    ({"signal.threshold": 0.5}, ["signal.threshold", "non-empty"]),
    ({"signal.threshold": "0.5"}, ["signal.threshold", "non-empty"]),
    ({"strategy.params.x": [1]}, ["strategy.params.x", "class"]),
])
def test_bad_grid_is_a_config_error_naming_the_key_before_any_task(cfg, monkeypatch, grid, words):
    sw = sys.modules["orpflow.sweep"]          # (orpflow.sweep, the attribute, is the function)
    monkeypatch.setattr(sw, "_convert", lambda *a: pytest.fail("data converted before the grid was checked"))
    with pytest.raises(ConfigError) as e:
        of.sweep(cfg, grid, client="serial", progress=False)
    for w in words:
        assert w in str(e.value)


def test_bad_data_errors(cfg, tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.gz"):
        of.sweep(cfg, {"signal.threshold": [0.5]}, [str(SAMPLE), [str(SAMPLE), str(tmp_path / "nope.gz")]],
                 client="serial", progress=False)
    with pytest.raises(ConfigError, match="list of slices"):
        of.sweep(cfg, None, str(SAMPLE), client="serial", progress=False)
    with pytest.raises(ConfigError, match="empty slice"):
        of.sweep(cfg, None, [[]], client="serial", progress=False)
    with pytest.raises(ValueError, match="n_workers"):
        of.sweep(cfg, None, n_workers=0, progress=False)
    with pytest.raises(ValueError, match="batch"):
        of.sweep(cfg, None, batch=0, progress=False)


def test_numpy_grid_values_are_plain_values(cfg, slices):
    df = of.sweep(cfg, {"signal.threshold": np.linspace(0.6, 0.9, 2), "signal.persistence": np.arange(2, 4)},
                  slices[:1], "serial", progress=False)
    assert len(df) == 4 and (df["error"] == "").all()
    assert df["signal.persistence"].tolist() == [2, 3, 2, 3] and type(df["signal.persistence"][0].item()) is int


def test_apply_overrides_matches_the_toml_loader(tmp_path):
    """A grid point gives the config a file with those values would give."""
    text = PAPER.read_text()
    changed = text.replace("threshold = 0.3", "threshold = 0.7").replace('max_position = "0.05"',
                                                                         'max_position = "0.02"')
    changed = changed.replace("window_ms = 1000", "window_ms = 250")
    assert changed != text
    (tmp_path / "data").symlink_to(SAMPLE.parent)
    p = tmp_path / "c.toml"
    p.write_text(changed)
    want = of.load_config(str(p))
    got = apply_overrides(of.load_config(str(PAPER)), {"signal.threshold": 0.7, "risk.max_position": "0.02",
                                                       "features.window_ms": 250})
    assert got.signal == want.signal and got.risk == want.risk and got.broker == want.broker


# ------------------------------------------------------------------ the command line

def test_cli_sweep_serial_table_and_csv(slices, tmp_path, capsys):
    from orpflow.cli import main
    out = tmp_path / "r.csv"
    rc = main(["sweep", str(PAPER), "--grid", "signal.threshold=0.6,0.9", "--grid", "risk.max_position=0.01,0.05",
               "--data", slices[0], f"{slices[1]},{slices[2]}", "--serial", "--no-progress", "--out", str(out)])
    text = capsys.readouterr().out
    assert rc == 0
    assert "8 backtests (4 parameter sets x 2 data slices)" in text and "0 failed" in text
    assert "best 8 by PnL" in text
    df = pd.read_csv(out, keep_default_na=False)
    assert len(df) == 8 and set(df["data"]) == {slices[0], f"{slices[1]},{slices[2]}"}
    ok = df.sort_values("pnl", ascending=False)
    assert f"{ok['pnl'].iloc[0]:.6g}" in text


def test_cli_sweep_on_workers(slices, tmp_path, capsys):
    from orpflow.cli import main
    rc = main(["sweep", str(PAPER), "--grid", "signal.threshold=0.6,0.9", "--data", slices[0], "--workers", "1",
               "--no-progress"])
    assert rc == 0 and "2 backtests" in capsys.readouterr().out


@pytest.mark.parametrize("args, words", [
    (["--grid", "signal.threshold"], ["--grid", "signal.threshold"]),
    (["--grid", "signal.threshold=0.5,,0.7"], ["signal.threshold=0.5,,0.7"]),
    (["--grid", "signal.nope=1"], ["signal.nope"]),
    (["--grid", "signal.threshold=abc"], ["signal.threshold", "'abc'"]),
    (["--grid", "signal.threshold=0.5", "--grid", "signal.threshold=0.7"], ["signal.threshold", "twice"]),
    (["--data", "missing-day.gz"], ["missing-day.gz"]),
    (["--workers", "0"], ["--workers"]),
    (["--batch", "0"], ["--batch"]),
    (["--out", "r.txt"], ["r.txt"]),
])
def test_cli_mistakes_are_one_line_exit_2(args, words, tmp_path, capsys, monkeypatch):
    from orpflow.cli import main
    monkeypatch.chdir(tmp_path)
    rc = main(["sweep", str(PAPER), "--serial", "--no-progress", *args])
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    for w in words:
        assert w in err


def test_cli_parquet_without_pyarrow_fails_before_the_sweep(tmp_path, capsys, monkeypatch):
    import importlib.util
    from orpflow.cli import main
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name in ("pyarrow", "fastparquet") else real(name, *a))
    monkeypatch.setattr(sys.modules["orpflow.sweep"], "sweep", lambda *a, **k: pytest.fail("sweep ran"))
    assert main(["sweep", str(PAPER), "--serial", "--out", str(tmp_path / "r.parquet")]) == 2
    err = capsys.readouterr().err
    assert "r.parquet" in err and "pyarrow" in err and len(err.strip().splitlines()) == 1


def test_cli_missing_config_and_missing_dask(tmp_path, capsys, monkeypatch):
    from orpflow.cli import main
    assert main(["sweep", str(tmp_path / "none.toml"), "--serial"]) == 2
    assert "none.toml" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "distributed", None)       # as if dask were not installed
    assert main(["sweep", str(PAPER), "--grid", "signal.threshold=0.5"]) == 2
    err = capsys.readouterr().err
    assert "pip install 'orpflow[sweep]'" in err and len(err.strip().splitlines()) == 1


# ------------------------------------------------------------------ progress

def test_import_orpflow_loads_no_tqdm_dask_or_pandas(tmp_path):
    code = "import sys, orpflow; print(sorted(m for m in ('tqdm', 'dask', 'distributed', 'pandas') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=str(tmp_path)).stdout
    assert out.strip() == "[]"


def test_progress_falls_back_to_the_stderr_line_without_tqdm(cfg, slices, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)          # import fails: tqdm absent
    of.sweep(cfg, {"signal.threshold": [0.6, 0.9]}, slices[:1], "serial")
    err = capsys.readouterr().err
    assert "\rsweep 1 / 2 backtests (50%)" in err and "\rsweep 2 / 2 backtests (100%)\n" in err
    events = of.repeat_events(of.load_events(slices[0]), 25)    # > 2**20 events: progress shown
    from orpflow.backtest import PROGRESS_CHUNK
    assert len(events) > PROGRESS_CHUNK
    of.backtest(events, cfg, progress=True)
    err = capsys.readouterr().err
    assert f"\rbacktest {len(events):,} / {len(events):,} events (100%)\n" in err
    of.sweep(cfg, {"signal.threshold": [0.6]}, slices[:1], "serial", progress=False)
    of.backtest(events, cfg, progress=False)
    assert capsys.readouterr().err == ""


def test_progress_uses_tqdm_when_installed(cfg, slices, capsys):
    pytest.importorskip("tqdm")
    from orpflow.progress import Progress
    bar = Progress(3, "sweep", "backtests")
    assert bar._bar is not None
    bar.close()
    of.sweep(cfg, {"signal.threshold": [0.6, 0.9]}, slices[:1], "serial")
    err = capsys.readouterr().err
    assert "2/2" in err and "sweep" in err and "(100%)" not in err       # tqdm's bar, not the fallback line


def test_loading_several_files_shows_progress_per_file(cfg, slices, monkeypatch, capsys):
    seen = []
    events, _ = of.load_engine_events(cfg, cfg.make_instruments(), slices[:2],
                                      progress=lambda done, total: seen.append((done, total)))
    assert seen == [(1, 2), (2, 2)] and len(events) > 0
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    of.load_engine_events(cfg, cfg.make_instruments(), slices[:2], progress=True)
    assert capsys.readouterr().err.endswith("\rload 2 / 2 files (100%)\n")
    of.load_engine_events(cfg, cfg.make_instruments(), slices[:1], progress=True)   # one file: no bar
    of.load_engine_events(cfg, cfg.make_instruments(), slices[:2], progress=False)
    assert capsys.readouterr().err == ""
    from orpflow.cli import main
    assert main(["backtest", str(PAPER), *slices[:2]]) == 0
    assert "\rload 2 / 2 files (100%)\n" in capsys.readouterr().err


def test_strategy_argument_reaches_every_backtest(cfg, slices):
    """strategy= replaces the config's signal strategy in each backtest (here the compiled base,
    which sends nothing: no orders where the signal strategy trades)."""
    grid = {"signal.threshold": [0.6, 0.9]}
    own = of.sweep(cfg, grid, slices[2:], "serial", progress=False)
    base = of.sweep(cfg, grid, slices[2:], "serial", progress=False, strategy=of.CStrategy())
    assert (own["orders"] > 0).all() and (base["orders"] == 0).all() and (base["error"] == "").all()


def test_a_sweep_logs_nothing_per_backtest(cfg, slices, caplog):
    """A backtest logs its start, end, trips and sync changes; a sweep's thousands of backtests
    do not (their trips are counted in the rows), while a lone backtest still does."""
    import logging
    with caplog.at_level(logging.DEBUG, logger="orpflow"):
        df = of.sweep(cfg, {"signal.threshold": [0.3, 0.5]}, slices[-1:], "serial", progress=False)
    assert (df["breaker_trips"] > 0).any()                     # trips happened, and were not logged
    assert not [r for r in caplog.records if r.name in ("orpflow.engine", "orpflow.risk", "orpflow.feed")]
    events = np.load(slices[-1])
    with caplog.at_level(logging.DEBUG, logger="orpflow"):
        of.backtest(events, cfg)
    names = {r.name for r in caplog.records}
    assert {"orpflow.engine", "orpflow.risk", "orpflow.feed"} <= names, names
