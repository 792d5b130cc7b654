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


# ------------------------------------------------------------------ user errors: one line, exit 2

import gzip
import shutil

import pytest


@pytest.fixture(scope="module")
def small_gz(tmp_path_factory):
    """The first 1,000 lines of the bundled sample (a snapshot, then the stream)."""
    path = tmp_path_factory.mktemp("data") / "small.gz"
    lines = gzip.decompress(SAMPLE.read_bytes()).splitlines()[:1000]
    path.write_bytes(gzip.compress(b"".join(l + b"\n" for l in lines)))
    return path


def _config(tmp_path, data, instrument="", body=""):
    path = tmp_path / "c.toml"
    path.write_text(f"[[instruments]]\nsymbol = 'BTCUSDT'\npaths = [{str(data)!r}]\n{instrument}{body}")
    return path


def fails(capsys, *argv):
    """main(argv) exits 2 with exactly one stderr line; that line."""
    rc = main(list(argv))
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert rc == 2 and len(lines) == 1 and lines[0].startswith("orpflow: ") and "Traceback" not in err, err
    return lines[0]


@pytest.mark.parametrize("instrument, body, key", [
    ("", "[features]\ngroups = 0\n", "[features] groups"),
    ("", "[signal]\npersistence = 18446744073709551616\n", "[signal] persistence"),
    ("size_increment = true\n", "", "[instruments[0]] size_increment"),
    ("tick_size = true\n", "", "[instruments[0]] tick_size"),        # True was read as tick 1
    ("id = true\n", "", "[instruments[0]] id"),
    ("lot_size = '1e999999999'\n", "", "[instruments[0]] lot_size"),
    ("", "[broker]\ncash = 1e300\n", "[broker] cash"),
    ("", "[risk]\nmin_balance = '1e999999999'\n", "[risk] min_balance"),
    ("", "[risk]\nmax_position = '1e-40'\n", "[risk] max_position"),
    ("", "[features]\nwindow_ms = 1e300\n", "[features] window_ms"),
    ("", "[features]\nvpin_bucket_volume = true\n", "[features] vpin_bucket_volume"),
    ("", "[signal]\nweights = 3\n", "[signal] weights"),
    ("", "[signal]\nholding_ms = 1e300\n", "[signal] holding_ms"),
    ("", "[execution]\nwarmup_rows = true\n", "[execution] warmup_rows"),
    ("paths = 5\n", "", "paths"),
])
@pytest.mark.parametrize("command", ["run", "backtest"])
def test_bad_value_is_one_line_naming_the_key(tmp_path, capsys, small_gz, instrument, body, key, command):
    if instrument.startswith("paths"):
        cfg = tmp_path / "c.toml"
        cfg.write_text("[[instruments]]\nsymbol = 'BTCUSDT'\npaths = 5\n")
    else:
        cfg = _config(tmp_path, small_gz, instrument, body)
    argv = [command, str(cfg)] + (["--no-db"] if command == "run" else [])
    line = fails(capsys, *argv)
    assert line.startswith("orpflow: config error: ") and key in line


def test_repeat_beyond_memory_names_the_key_and_the_bytes(tmp_path, capsys, small_gz):
    cfg = _config(tmp_path, small_gz, body="[feed]\nrepeat = 1000000\n")
    line = fails(capsys, "backtest", str(cfg))
    assert "[feed] repeat = 1000000 would need" in line and "GiB" in line


def test_cli_overrides_name_their_flag(tmp_path, capsys, small_gz):
    cfg = _config(tmp_path, small_gz)
    assert "--speed" in fails(capsys, "run", str(cfg), "--no-db", "--speed", "-1")
    assert "--metrics-port" in fails(capsys, "run", str(cfg), "--no-db", "--metrics-port", "70000")
    assert "--duration" in fails(capsys, "run", str(cfg), "--no-db", "--duration", "nan")


def test_config_path_that_is_a_directory(tmp_path, capsys):
    (tmp_path / "conf.toml").mkdir()
    for command in ("run", "backtest"):
        line = fails(capsys, command, str(tmp_path / "conf.toml"))
        assert "conf.toml" in line and "directory" in line


def test_config_that_is_not_utf8_toml(tmp_path, capsys):
    cfg = tmp_path / "c.toml"
    cfg.write_bytes(b"\xff\xfe[feed]\n")
    assert "not valid TOML" in fails(capsys, "backtest", str(cfg))


def test_data_of_another_symbol_names_the_symbol(tmp_path, capsys, small_gz):
    eth = tmp_path / "eth.gz"
    eth.write_bytes(gzip.compress(gzip.decompress(small_gz.read_bytes())
                                  .replace(b"BTCUSDT", b"ETHUSDT").replace(b"btcusdt", b"ethusdt")))
    cfg = _config(tmp_path, eth)
    for argv in (["run", str(cfg), "--no-db"], ["backtest", str(cfg)], ["replay", str(eth)],
                 ["signals", str(eth)]):
        line = fails(capsys, *argv)
        assert "no market messages for BTCUSDT" in line and "ETHUSDT" in line and str(eth) in line


def test_mixed_symbols_keep_working_and_count_the_others(tmp_path, capsys, small_gz):
    lines = gzip.decompress(small_gz.read_bytes()).splitlines()
    other = [l.replace(b"BTCUSDT", b"ETHUSDT").replace(b"btcusdt", b"ethusdt") for l in lines[1:50]]
    mixed = tmp_path / "mixed.gz"
    mixed.write_bytes(gzip.compress(b"".join(l + b"\n" for l in lines + other)))
    rc = main(["replay", str(mixed), "--no-bbo-check"])
    out = capsys.readouterr().out
    n_other = sum(b"ETHUSDT" in l for l in other)          # the REST snapshot names no symbol
    assert rc == 0 and n_other > 40 and f"WRONG_SYMBOL={n_other}" in out


def test_truncated_data_in_a_session_is_a_warning(tmp_path, capsys, small_gz):
    cut = tmp_path / "cut.gz"
    cut.write_bytes(small_gz.read_bytes()[:20_000])
    cfg = _config(tmp_path, cut)
    for argv in (["run", str(cfg), "--no-db"], ["backtest", str(cfg)]):
        rc = main(argv)
        err = capsys.readouterr().err.splitlines()
        # one warning among the run's info log lines (orpflow.logs)
        warn = [line for line in err if not line.startswith("orpflow: info: ")]
        assert rc == 0 and len(warn) == 1 and warn[0].startswith("orpflow: warning: ") and "truncated at line" in warn[0]


def test_version(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    from importlib.metadata import version
    assert capsys.readouterr().out.strip() == f"orpflow {version('orpflow')}"


def test_data_path_that_is_a_directory(tmp_path, capsys):
    (tmp_path / "day.gz").mkdir()
    cfg = _config(tmp_path, tmp_path / "day.gz")
    for argv in (["run", str(cfg), "--no-db"], ["backtest", str(cfg)], ["replay", str(tmp_path / "day.gz")]):
        line = fails(capsys, *argv)
        assert "day.gz" in line and "directory" in line


def test_bench_events_out_of_range(capsys):
    assert "--events" in fails(capsys, "bench", "--events", "0")


def test_bench_reads_the_market_of_the_recording():
    """A USD-M recording gets the futures grid (a spot grid never gives a usable book)."""
    from orpflow.bench import bench_config, recording_venue
    from helpers import shared_file
    assert recording_venue(str(SAMPLE)) == "binance-spot"
    usdm = shared_file("binance", "usdm_btcusdt_20240808.gz")
    assert recording_venue(str(usdm)) == "binance-usdm"
    inst = bench_config([str(usdm)]).make_instruments()[0]
    assert inst.venue == "binance-usdm"
