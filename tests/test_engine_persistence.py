"""The engine's SQLite persistence, graceful stop, recovery (also after SIGKILL), metrics
endpoint and CLI errors."""
from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import orpflow as of
from orpflow import records as R
from orpflow.backtest import backtest
from orpflow.config import MoneyScale
from orpflow.engine import Engine, load_engine_events
from orpflow.persistence import Store, Writer
from helpers import SAMPLE
from test_engine import sample_config

pytest.importorskip("apsw")


@pytest.fixture(scope="module")
def sample_events() -> np.ndarray:
    cfg = sample_config()
    ev, _ = load_engine_events(cfg, cfg.make_instruments())
    return ev


def db_config(path: Path, **sections: Any) -> Any:
    sections.setdefault("persistence", {})
    sections["persistence"] = {"path": str(path), **sections["persistence"]}
    sections.setdefault("strategy", {})
    cfg = sample_config(**{k: v for k, v in sections.items() if k != "strategy"})
    return dataclasses.replace(cfg, strategy_id="test-strategy")


def db_fills(path: Path, run_id: int) -> np.ndarray:
    with Store(str(path)) as s:
        return s.trades(run_id=run_id)


def same_fills(db: np.ndarray, fills: np.ndarray) -> None:
    assert len(db) == len(fills)
    assert np.array_equal(db["order_id"], fills["order_id"])
    assert np.array_equal(db["price_ticks"], fills["price"])
    assert np.array_equal(db["qty_units"], fills["qty"])
    assert np.array_equal(db["side"], fills["side"])
    assert np.array_equal(db["position_units"], fills["position"])
    assert np.allclose(db["fee"], fills["fee"], rtol=0, atol=1e-12)


# ------------------------------------------------------------------ a whole run

def test_run_persists_every_order_and_fill(tmp_path: Path, sample_events: np.ndarray) -> None:
    path = tmp_path / "run.db"
    e = Engine(db_config(path), events=sample_events, keep_records=True).start()
    assert e.wait(60)
    e.close()
    fills, orders = e.fills(), e.orders()
    assert len(fills) > 20
    with Store(str(path)) as s:
        runs = s.runs()
        assert list(runs["status"]) == ["finished"] and runs["events"][0] == len(sample_events)
        same_fills(s.trades(run_id=1), fills)
        db = s.orders(run_id=1)
        assert np.array_equal(db["order_id"], orders["id"])
        names = np.array(R.ORDER_STATUS, dtype=object)
        assert list(db["status"]) == list(names[orders["status"]])
        assert np.array_equal(db["filled_units"], orders["filled"])
        perf = s.performance(run_id=1)
        assert perf["trade_count"][0] == len(fills)
        pos = s.positions()
        acct = e.account()
        scale = MoneyScale(e.instruments[0])
        assert pos["cash_money"][0] == str(scale.to_money("cash", acct["cash"]))
        assert pos["position_units"][0] == acct["position_units"]
        snaps = s.snapshots(run_id=1, kind="account")
        assert len(snaps) > 10
        sig = s.signals(run_id=1)
        assert sig.shape[0] == e.core.counters()["signals"]
        assert set(sig["no_order"]) <= set(R.NO_ORDER_WHY)
        assert (sig["order_id"] != 0).sum() == len(e.orders())     # every order has its signal
        assert ((sig["order_id"] != 0) == (sig["no_order"] == "placed")).all()
        recs = e.records()
        assert np.array_equal(sig["strength"], R.signal_rows(recs)["strength"])
        # money is exact text of the 128-bit ints, also where they exceed 64 bits
        fill_recs = recs[recs["kind"] == R.OUT_FILL]
        db = s.trades(run_id=1)
        assert list(db["fee_money"]) == [str(x) for x in R.money_ints(fill_recs["v"], 6)]
        assert list(db["realised_money"]) == [str(x) for x in R.money_ints(fill_recs["v"], 8)]
        last = R.final_state(R.order_rows(recs, e.instruments))
        order_recs = recs[recs["kind"] == R.OUT_ORDER]
        by_id = {int(o): str(m) for o, m in zip(order_recs["v"][:, 0], R.money_ints(order_recs["v"], 8))}
        assert list(s.orders(run_id=1)["fees_money"]) == [by_id[int(o)] for o in last["order_id"]]
        assert any(abs(int(x)) >= 2 ** 63 for x in by_id.values()), "the sample has >64-bit money"
        assert s.integrity_check() == "ok"


def test_writes_are_idempotent(tmp_path: Path, sample_events: np.ndarray) -> None:
    cfg = db_config(tmp_path / "x.db")
    res = backtest(sample_events, cfg)
    insts = cfg.make_instruments()
    tables = ("orders", "trades", "signals", "strategy_snapshots", "positions")

    def contents() -> dict:
        with Store(str(tmp_path / "x.db")) as s:
            return {t: repr(s.query(f"SELECT * FROM {t} ORDER BY 1, 2, 3, 4").tolist()) for t in tables}  # NaN-safe

    w = Writer(str(tmp_path / "x.db"), cfg.persistence, "s", insts, "{}", [0])
    w.write(res.records)
    w.commit()
    once = contents()
    w.write(res.records)             # a replayed batch changes nothing
    w.commit()
    assert contents() == once
    w.write(res.records[:50])
    w.close("finished", 0)
    with Store(str(tmp_path / "x.db")) as s:
        assert len(s.trades()) == res.counters["fills"]
        assert len(s.orders()) == len(res.orders["BTCUSDT"])
        assert len(s.signals()) == res.counters["signals"]


def test_two_instruments_each_under_its_symbol(tmp_path: Path, sample_events: np.ndarray) -> None:
    cfg = db_config(tmp_path / "two.db")
    two = dataclasses.replace(cfg, instruments=(
        cfg.instruments[0], dataclasses.replace(cfg.instruments[0], symbol="BTC'2", id=7)))
    other = sample_events.copy()
    other["instrument"] = 7
    merged = np.concatenate([sample_events, other[: len(other) // 2]])
    merged = merged[np.argsort(merged["ts_local"], kind="stable")]
    res = backtest(merged, two)
    w = Writer(str(tmp_path / "two.db"), two.persistence, "s", two.make_instruments(), "{}", [0, 0])
    w.write(res.records)
    w.close("finished", 0)
    with Store(str(tmp_path / "two.db")) as s:
        for sym in ("BTCUSDT", "BTC'2"):
            db = s.trades(symbol=sym)
            assert len(db) == len(res.fills[sym]) > 0
            assert np.array_equal(db["qty_units"], res.fills[sym]["qty"])
            assert len(s.orders(symbol=sym)) == len(res.orders[sym])
            assert len(s.signals(symbol=sym)) == (res.signals["slot"] == (0 if sym == "BTCUSDT" else 1)).sum()


def test_store_frames(tmp_path: Path, sample_events: np.ndarray) -> None:
    pd = pytest.importorskip("pandas")
    path = tmp_path / "f.db"
    e = Engine(db_config(path), events=sample_events[:60000]).start()
    e.wait(60)
    e.close()
    with Store(str(path)) as s:
        df = s.trades(frame=True)
        assert isinstance(df, pd.DataFrame) and len(df) == len(e.fills())
    with pytest.raises(FileNotFoundError):
        Store(str(tmp_path / "missing.db"))


# ------------------------------------------------------------------ graceful stop

def test_graceful_stop_mid_replay_loses_nothing(tmp_path: Path, sample_events: np.ndarray) -> None:
    path = tmp_path / "stop.db"
    e = Engine(db_config(path, feed={"speed": 10.0}), events=sample_events).start()
    deadline = time.perf_counter() + 30
    while e.core.counters()["fills"] < 5 and time.perf_counter() < deadline:
        time.sleep(0.01)
    summary = e.stop(timeout=1.0)
    assert summary["stop_seconds"] < 1.0
    c = e.core.counters()
    assert 0 < c["events"] < len(sample_events), "stopped mid-replay"
    assert c["out_lost"] == 0
    e.close()
    same_fills(db_fills(path, 1), e.fills())
    with Store(str(path)) as s:
        assert s.runs()["status"][0] == "stopped"
        db = s.orders(run_id=1)
        assert np.array_equal(db["filled_units"], e.orders()["filled"])


STALL_SCRIPT = """
import sys, time
import orpflow.persistence as P
from orpflow.engine import Engine
write = P.Writer.write
def slow(self, recs):                 # a stalled disk
    time.sleep(0.05)
    write(self, recs)
P.Writer.write = slow
e = Engine(sys.argv[1]).start()
while e.core.counters()["fills"] < 5:
    time.sleep(0.01)
try:
    e.stop(timeout=0.05)
    print("no timeout")
except TimeoutError as exc:
    print("timeout:", exc)
e._strategy_done.wait(30)
c = e.core.counters()
print(c["out_records"], c["fills"], flush=True)
sys.exit(0)                           # leave without wait(): the exit must finish the writing
"""


def test_a_stop_timeout_still_writes_everything_before_exit(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    cfg = write_toml(tmp_path, db)
    script = tmp_path / "stall.py"
    script.write_text(STALL_SCRIPT)
    r = subprocess.run([sys.executable, str(script), str(cfg)], capture_output=True, text=True, timeout=120,
                       cwd=str(tmp_path))
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert lines[0].startswith("timeout:") and "goes on writing" in lines[0]
    out_records, fills = map(int, lines[1].split())
    with Store(str(db)) as s:
        runs = s.runs()
        assert list(runs["status"]) == ["stopped"]
        assert runs["records"][0] == out_records
        assert len(s.trades()) == fills > 0
    assert Path(str(db) + ".lock").exists()
    again = cli("run", str(cfg), "--duration", "0.1", cwd=tmp_path)      # and the lock is free
    assert again.returncode == 0, again.stderr


# ------------------------------------------------------------------ recovery

def test_restart_restores_the_account_and_waits_for_warmup(tmp_path: Path, sample_events: np.ndarray) -> None:
    path = tmp_path / "r.db"
    cfg = db_config(path)
    first = Engine(cfg, events=sample_events).start()
    first.wait(60)
    first.close()
    acct = first.account()
    scale = MoneyScale(first.instruments[0])
    second = Engine(cfg, events=sample_events, keep_records=True).start()
    st = second.restored["symbols"]["BTCUSDT"]
    assert st["position"] == acct["position_units"]
    assert st["cash"] == scale.to_money("cash", acct["cash"])
    assert st["realised"] == scale.to_money("realised", acct["realised_pnl"])
    assert st["fees"] == scale.to_money("fees", acct["fees"])
    assert st["cost"] == scale.to_money("cost", acct["cost_basis"])
    second.wait(60)
    second.close()
    recs = second.records()
    first_acct = R.account_rows(recs, second.instruments)[0]
    assert first_acct["cash"] == pytest.approx(float(acct["cash"]), abs=1e-9)
    sig = recs[recs["kind"] == R.OUT_SIGNAL]
    placed = sig[sig["v"][:, 8] != 0]
    assert len(placed) > 0 and (placed["v"][:, 10] > cfg.execution.warmup_rows).all()
    assert (sig[sig["v"][:, 10] <= cfg.execution.warmup_rows]["v"][:, 9] == 1).all()
    with Store(str(path)) as s:
        assert list(s.runs()["run_id"]) == [1, 2]
        assert len(s.trades(run_id=2)) == len(second.fills()) > 0


def test_restart_resends_open_orders(tmp_path: Path, sample_events: np.ndarray) -> None:
    """Orders still in flight when a run ends are re-sent by the next one after warm-up,
    carrying their old id as client_id."""
    path = tmp_path / "o.db"
    cfg = db_config(path, broker={"latency_entry_ns": 30_000_000_000})     # 30 s to the venue
    first = Engine(cfg, events=sample_events).start()
    first.wait(60)
    first.close()
    pending = first.orders()[first.orders()["status"] == int(of.OrderStatus.PENDING)]
    assert len(pending) > 0
    second = Engine(cfg, events=sample_events).start()
    restored = second.restored["symbols"]["BTCUSDT"]["open_orders"]
    assert [o["order_id"] for o in restored] == list(pending["id"])
    second.wait(60)
    second.close()
    orders = second.orders()
    again = orders[np.isin(orders["client_id"], pending["id"])]
    assert len(again) == len(pending)
    assert np.array_equal(again["side"], pending["side"])


KILL_SCRIPT = """
import sys, orpflow.cli
sys.exit(orpflow.cli.main(["run", sys.argv[1], "--speed", "5"]))
"""


def write_toml(path: Path, db: Path) -> Path:
    cfg = path / "cfg.toml"
    cfg.write_text(f"""
[strategy]
id = "killed"
[[instruments]]
symbol = "BTCUSDT"
paths = [{str(SAMPLE)!r}]
[signal]
threshold = 0.2
min_confidence = 0.3
persistence = 1
momentum_confirmation = false
min_interval_ms = 0
max_spread_bps = 50
[risk]
rate_per_second = 0
rate_per_minute = 0
rate_per_hour = 0
reject_storm = 1000
[execution]
warmup_rows = 20
[persistence]
path = {str(db)!r}
batch_ms = 5
""")
    return cfg


def test_sigkill_then_restart(tmp_path: Path) -> None:
    db = tmp_path / "k.db"
    cfg = write_toml(tmp_path, db)
    script = tmp_path / "run.py"
    script.write_text(KILL_SCRIPT)
    proc = subprocess.Popen([sys.executable, str(script), str(cfg)], cwd=str(tmp_path),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 90
        n = 0
        while time.time() < deadline and proc.poll() is None:
            if db.exists():
                try:
                    with Store(str(db)) as s:
                        n = len(s.trades())
                except Exception:
                    n = 0
                if n >= 5:
                    break
            time.sleep(0.05)
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        assert n >= 5
        # a second writer is refused while the first runs: one line naming it, nothing changed
        second = cli("run", str(cfg), cwd=tmp_path)
        assert second.returncode == 2, second.stderr
        lines = second.stderr.strip().splitlines()
        assert len(lines) == 1 and f"pid {proc.pid}" in lines[0] and "started" in lines[0], second.stderr
        assert "Traceback" not in second.stderr
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    with Store(str(db)) as s:
        assert s.integrity_check() == "ok"
        trades = s.trades()
        assert list(s.runs()["status"]) == ["running"]         # it never ended
        assert trades["position_units"][-1] == int((trades["side"] * trades["qty_units"]).sum())
    eng = Engine(str(cfg), keep_records=True).start()
    st = eng.restored["symbols"]["BTCUSDT"]
    assert st["position"] == int((trades["side"] * trades["qty_units"]).sum())
    assert st["fills"] == len(trades)
    assert eng.wait(60)
    eng.close()
    assert len(eng.fills()) > 0, "trading resumes"
    first = R.account_rows(eng.records(), eng.instruments)[0]
    assert first["position_units"] == st["position"]
    with Store(str(db)) as s:
        assert list(s.runs()["status"]) == ["crashed", "finished"]
        assert s.integrity_check() == "ok"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_cli_stops_gracefully_on_a_signal(tmp_path: Path, sig: int) -> None:
    db = tmp_path / "g.db"
    cfg = write_toml(tmp_path, db)
    proc = subprocess.Popen([sys.executable, "-m", "orpflow", "run", str(cfg), "--speed", "5"], cwd=str(tmp_path),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 60
        while time.time() < deadline and proc.poll() is None:
            if db.exists():
                try:
                    with Store(str(db)) as s:
                        if len(s.trades()) >= 2:
                            break
                except Exception:
                    pass
            time.sleep(0.05)
        t0 = time.time()
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=30)
        took = time.time() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "stopped      gracefully" in out and took < 5
    with Store(str(db)) as s:
        assert list(s.runs()["status"]) == ["stopped"]
        trades = s.trades()
        import re
        n = int(re.search(r"(\d[\d,]*) fills in", out).group(1).replace(",", ""))
        assert len(trades) == n > 0             # every fill the strategy made is in the database
        assert s.integrity_check() == "ok"
    again = cli("run", str(cfg), "--duration", "0.2", cwd=tmp_path)       # the lock went with it
    assert again.returncode == 0, again.stderr
    with Store(str(db)) as s:
        assert len(s.runs()) == 2


# ------------------------------------------------------------------ metrics

def _get(url: str) -> tuple:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def free_port() -> int:
    import socket
    with socket.socket() as sk:
        sk.bind(("127.0.0.1", 0))
        return sk.getsockname()[1]


def test_metrics_endpoint(sample_events: np.ndarray) -> None:
    pytest.importorskip("prometheus_client")
    cfg = dataclasses.replace(sample_config(feed={"speed": 10.0}),
                              metrics=of.config.MetricsConfig(enabled=True, port=0))
    e = Engine(cfg, events=sample_events).start()
    url = e.metrics.url
    code, body = _get(url + "/health")
    assert code == 200 and body.strip() == "ok"
    deadline = time.perf_counter() + 30
    while e.core.counters()["orders"] < 3 and time.perf_counter() < deadline:
        time.sleep(0.01)
    code, text = _get(url + "/metrics")
    e.stop()
    assert code == 200
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, v = line.rpartition(" ")
            values[name] = float(v)
    for name in ("strategy_market_updates_total", "strategy_signals_generated_total",
                 "strategy_orders_submitted_total", "strategy_tick_to_trade_duration_seconds_count",
                 "strategy_feature_calculation_duration_seconds_count"):
        assert values.get(name, 0) > 0, name
    assert 'strategy_tick_to_trade_duration_seconds_bucket{le="1e-06"}' in values
    assert 'strategy_tick_to_trade_duration_seconds_bucket{le="5e-07"}' in values
    assert 'strategy_position_size{symbol="BTCUSDT"}' in values
    assert 'strategy_pnl_total{symbol="BTCUSDT"}' in values
    assert 'strategy_channel_utilization_ratio{channel="market"}' in values
    assert any(k.startswith("strategy_book_events_total") for k in values)
    assert any(k.startswith("strategy_rejections_total") for k in values) or e.core.counters()["rejected"] == 0
    assert e.metrics is None                       # stop() shut the endpoint
    with pytest.raises(urllib.error.URLError):
        _get(url + "/health")
    e.close()


def test_metrics_port_is_released_at_stop(sample_events: np.ndarray) -> None:
    """Two engines on the same fixed port, one after the other, in one process (a notebook);
    a port in use is a config error naming the key."""
    pytest.importorskip("prometheus_client")
    port = free_port()
    cfg = dataclasses.replace(sample_config(feed={"speed": 10.0}),
                              metrics=of.config.MetricsConfig(enabled=True, port=port))
    first = Engine(cfg, events=sample_events[:20000]).start()
    assert first.metrics.port == port
    with pytest.raises(of.config.ConfigError, match=rf"\[metrics\] port {port} is already in use"):
        Engine(cfg, events=sample_events[:20000]).start()
    first.stop()
    second = Engine(cfg, events=sample_events[:20000]).start()      # the port is free again
    assert _get(second.metrics.url + "/health")[0] == 200
    assert second.wait(60)                          # a run that ends by itself frees it too
    third = Engine(cfg, events=sample_events[:2000]).start()
    third.stop()
    for e in (first, second, third):
        e.close()


def test_import_stays_light() -> None:
    out = subprocess.run([sys.executable, "-c", "import sys, orpflow; print(sorted(m for m in "
                          "('apsw', 'prometheus_client', 'pandas', 'matplotlib') if m in sys.modules))"],
                         capture_output=True, text=True, cwd="/")
    assert out.stdout.strip() == "[]", out.stderr


# ------------------------------------------------------------------ CLI

def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "orpflow", *args], capture_output=True, text=True,
                          cwd=str(cwd), timeout=120)


@pytest.mark.parametrize("body, message", [
    ("[risk]\nmax_posn = 1\n", "[risk] unknown key 'max_posn'"),
    ("[broker]\nqueue_power = -1\n", "[broker] queue_power"),
    ("[signal]\nthreshold = 'x'\n", "[signal] threshold"),
    ("[persistence]\nsynchronous = 'OFF'\n", "[persistence] synchronous"),
    ("[nonsense]\na = 1\n", "unknown section [nonsense]"),
    ("[feed\n", "not valid TOML"),
    ("[feed]\nmarket_ring = 1048576\n", "[feed] market_ring must be in [1024, 262144], got 1048576"),
    ("[feed]\nout_ring = 65536\n", "out_ring must be in [1024, 32768], got 65536: the persistence thread"),
])
def test_bad_config_is_a_clear_error(tmp_path: Path, body: str, message: str) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(f"[[instruments]]\nsymbol = 'BTCUSDT'\npaths = [{str(SAMPLE)!r}]\n" + body)
    r = cli("run", str(cfg), "--no-db", cwd=tmp_path)
    assert r.returncode == 2
    assert message in r.stderr
    assert "Traceback" not in r.stderr


def test_bad_data_paths_are_clear_errors(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("[[instruments]]\nsymbol = 'BTCUSDT'\npaths = ['nowhere.gz']\n")
    r = cli("run", str(cfg), "--no-db", cwd=tmp_path)
    assert r.returncode == 2 and "data file not found" in r.stderr and "Traceback" not in r.stderr
    r = cli("run", str(tmp_path / "missing.toml"), cwd=tmp_path)
    assert r.returncode == 2 and "config file not found" in r.stderr
    r = cli("backtest", str(cfg), str(tmp_path / "also-missing.gz"), cwd=tmp_path)
    assert r.returncode == 2 and "not found" in r.stderr and "Traceback" not in r.stderr
    (tmp_path / "junk.npy").write_bytes(b"not numpy")
    r = cli("backtest", str(cfg), str(tmp_path / "junk.npy"), cwd=tmp_path)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    r = cli("run", str(cfg), "--db", str(tmp_path / "no" / "such" / "dir.db"), cwd=tmp_path)
    assert r.returncode == 2 and "Traceback" not in r.stderr


@pytest.mark.parametrize("kind, message", [
    ("directory", "is a directory"), ("text", "not an SQLite database"), ("foreign", "another application"),
])
def test_cli_refuses_what_is_not_its_database(tmp_path: Path, kind: str, message: str) -> None:
    import apsw
    cfg = tmp_path / "c.toml"
    cfg.write_text(f"[[instruments]]\nsymbol = 'BTCUSDT'\npaths = [{str(SAMPLE)!r}]\n")
    db = tmp_path / "target"
    if kind == "directory":
        db.mkdir()
    elif kind == "text":
        db.write_text("notes\n")
    else:
        conn = apsw.Connection(str(db))
        conn.execute("CREATE TABLE t(x)")
        conn.close()
    before = sorted(p.name for p in tmp_path.iterdir())
    r = cli("run", str(cfg), "--db", str(db), cwd=tmp_path)
    assert r.returncode == 2 and message in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_cli_run_and_backtest(tmp_path: Path) -> None:
    example = Path(__file__).resolve().parents[1] / "examples" / "paper.toml"
    r = cli("run", str(example), "--db", str(tmp_path / "p.db"), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    for word in ("engine", "fills", "tick-to-trade in-core", "database", "PnL"):
        assert word in r.stdout
    r = cli("backtest", str(example), str(SAMPLE), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "events/s" in r.stdout and "Sharpe" in r.stdout
