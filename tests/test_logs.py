"""Logging: JSON/text lines from the CLI, structured fields, and nothing logged per event."""
import datetime
import io
import json
import logging
from collections import Counter

import numpy as np
import pytest

import orpflow as of
from orpflow import records as R
from orpflow.cli import main
from orpflow.logs import JsonFormatter, TextFormatter, configure, fields, is_cli_handler
from helpers import REPO, SAMPLE

PAPER = REPO / "examples" / "paper.toml"


def _paper(tmp_path, repeat=1, db=True):
    """examples/paper.toml with its data path absolute and its database in tmp_path."""
    text = PAPER.read_text().replace('"data/binance_spot_btcusdt_sample.gz"', repr(str(SAMPLE)))
    text = text.replace('path = "orpflow-paper.db"', f"path = {str(tmp_path / 'paper.db')!r}" if db else "")
    assert repr(str(SAMPLE)) in text
    path = tmp_path / f"paper{repeat}.toml"
    path.write_text(text + f"repeat = {repeat}\n")        # [feed] is the file's last section
    return path


def _json_lines(err):
    lines = err.splitlines()
    assert lines
    recs = [json.loads(line) for line in lines]              # every line is one JSON object
    for r in recs:
        assert {"ts", "level", "logger", "message"} <= set(r) and r["logger"].startswith("orpflow.")
        ts = datetime.datetime.fromisoformat(r["ts"].replace("Z", "+00:00"))
        assert r["ts"].endswith("Z") and ts.utcoffset() == datetime.timedelta(0)
    return recs


def test_run_with_json_logs(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["run", str(_paper(tmp_path)), "--log-format", "json"]) == 0
    out, err = capsys.readouterr()
    recs = _json_lines(err)
    by_msg = {r["message"].split(":")[0]: r for r in recs}
    start, end = by_msg["engine started"], by_msg["engine finished"]
    assert start["logger"] == end["logger"] == "orpflow.engine"
    assert start["symbols"] == ["BTCUSDT"] and start["events"] > 100_000 and start["run_id"] == end["run_id"]
    assert end["status"] == "finished" and end["events"] == start["events"] and end["fills"] > 0
    trips = [r for r in recs if r["logger"] == "orpflow.risk"]
    assert trips and trips[0]["level"] == "WARNING" and trips[0]["symbol"] == "BTCUSDT"
    assert trips[0]["breaker"] == "consecutive_losses" and trips[0]["value"] >= trips[0]["limit"] == 10
    assert end["breaker_trips"] == len(trips) and trips[0]["run_id"] == start["run_id"]
    assert by_msg["database opened"]["run_id"] == start["run_id"]
    assert by_msg["database closed"]["status"] == "finished"
    # the database opens first; then the start precedes every record of the run, the end ends it
    first = next(r for r in recs if r["logger"] != "orpflow.persistence")
    assert first is start and recs[-1] is end
    sync = [r for r in recs if r["logger"] == "orpflow.feed"]
    assert sync and sync[-1]["in_sync"] is True and sync[-1]["state"] == "IN_SYNC"
    # the report on stdout is unchanged: still the user's summary, not log lines
    assert "breaker      BTCUSDT consecutive_losses tripped" in out and "engine       " in out


def test_backtest_text_and_json_logs(tmp_path, capsys):
    cfg = str(_paper(tmp_path, db=False))
    assert main(["backtest", cfg, "--log-format", "json", "--log-level", "WARNING"]) == 0
    recs = _json_lines(capsys.readouterr().err)
    assert [r["logger"] for r in recs] == ["orpflow.risk"]           # INFO filtered out
    assert main(["backtest", cfg]) == 0
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("orpflow: info: backtest started: BTCUSDT  symbols=") and "events=135485" in err[0]
    assert any(line.startswith("orpflow: warning: circuit breaker consecutive_losses tripped on BTCUSDT")
               and "breaker=consecutive_losses" in line for line in err)
    assert err[-1].startswith("orpflow: info: backtest finished")
    # and main() in-process leaves no handler behind
    assert not [h for h in logging.getLogger("orpflow").handlers if not isinstance(h, logging.NullHandler)]


def test_library_records_carry_fields_and_configures_nothing(tmp_path, caplog):
    handlers = logging.getLogger("orpflow").handlers
    assert any(isinstance(h, logging.NullHandler) for h in handlers)
    assert all(isinstance(h, logging.NullHandler) for h in handlers)
    caplog.set_level(logging.INFO, logger="orpflow")
    cfg = of.load_config(str(_paper(tmp_path, db=False)))
    events, _ = of.load_engine_events(cfg, cfg.make_instruments())
    res = of.backtest(events, cfg)
    recs = [r for r in caplog.records if r.name.startswith("orpflow.")]
    trip = [r for r in recs if r.name == "orpflow.risk"]
    assert len(trip) == len(res.breaker_trips) >= 1
    t = res.breaker_trips[0]
    assert (trip[0].symbol, trip[0].breaker, trip[0].value, trip[0].limit, trip[0].ts_exch) == \
        (t.symbol, t.breaker, t.value, t.limit, t.ts)
    assert trip[0].levelno == logging.WARNING
    end = [r for r in recs if r.getMessage() == "backtest finished"]
    assert len(end) == 1 and end[0].events == len(events) and end[0].fills == res.counters["fills"]
    assert set(fields(end[0])) >= {"symbols", "status", "events", "orders", "fills", "elapsed_s"}


def _engine_log(tmp_path, caplog, repeat):
    caplog.clear()
    caplog.set_level(logging.DEBUG, logger="orpflow")
    sub = tmp_path / f"x{repeat}"
    sub.mkdir()
    e = of.Engine(str(_paper(sub, repeat)), keep_records=True)
    e.start()
    e.wait()
    recs = [r for r in caplog.records if r.name.startswith("orpflow.")]
    n_sync = int((e.records()["kind"] == R.OUT_SYNC).sum())
    return e, recs, n_sync


def test_log_records_do_not_grow_with_events(tmp_path, caplog):
    e1, logs1, sync1 = _engine_log(tmp_path, caplog, 1)
    e3, logs3, sync3 = _engine_log(tmp_path, caplog, 3)
    ev1, ev3 = e1.stats()["events"], e3.stats()["events"]
    assert ev3 == 3 * ev1 > 300_000

    def kinds(logs):
        return Counter((r.name, r.msg) for r in logs
                       if r.msg != "commit" and not r.msg.startswith("book of"))

    # lifecycle, database, risk: the same records whatever the number of events
    assert kinds(logs1) == kinds(logs3)
    assert kinds(logs1)[("orpflow.risk", "circuit breaker %s tripped on %s: %s")] == 1
    # book sync changes: one record per change the data makes (each repeated copy resyncs on
    # its snapshot), never per event
    for logs, n_sync in ((logs1, sync1), (logs3, sync3)):
        assert sum(r.msg.startswith("book of") for r in logs) == n_sync
    fl = of.read_binance(SAMPLE, e1.instruments[0])["flags"]
    snapshots = 3 * int(np.count_nonzero((fl & of.Flags.SNAPSHOT != 0) & (fl & of.Flags.LAST != 0)))
    assert sync1 < sync3 <= 3 * snapshots + 1
    # DEBUG: one record per database commit (a batch of records), never per event
    for e, logs in ((e1, logs1), (e3, logs3)):
        commits = [r for r in logs if r.msg == "commit"]
        assert len(commits) == e.writer.commits and sum(r.records for r in commits) == e.writer.records
    assert len(logs3) < 100


def test_formatters():
    rec = logging.LogRecord("orpflow.risk", logging.WARNING, __file__, 1, "tripped %s", ("x",), None)
    rec.__dict__.update({"symbol": "BTCUSDT", "value": float("nan"), "n": np.int64(3), "why": "a b",
                         "run_id": None, "symbols": ["A"]})
    obj = json.loads(JsonFormatter().format(rec))
    assert obj["message"] == "tripped x" and obj["level"] == "WARNING" and obj["logger"] == "orpflow.risk"
    assert obj["value"] == "nan" and obj["n"] == 3 and obj["run_id"] is None and obj["symbols"] == ["A"]
    text = TextFormatter().format(rec)
    assert text == 'orpflow: warning: tripped x  symbol=BTCUSDT value=nan n=3 why="a b" symbols=["A"]'
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        import sys
        rec.exc_info = sys.exc_info()
    assert "RuntimeError: boom" in json.loads(JsonFormatter().format(rec))["exc"]


def test_configure_replaces_its_own_handler_only():
    root = logging.getLogger("orpflow")
    level, other = root.level, logging.StreamHandler(io.StringIO())
    root.addHandler(other)
    buf = io.StringIO()
    try:
        configure("info", "json", io.StringIO())
        h = configure("debug", "json", buf)
        assert root.handlers.count(other) == 1 and sum(map(is_cli_handler, root.handlers)) == 1
        logging.getLogger("orpflow.test").debug("hello", extra={"k": 1})
        assert json.loads(buf.getvalue())["k"] == 1
        with pytest.raises(ValueError, match="log level"):
            configure("loud")
        with pytest.raises(ValueError, match="log format"):
            configure("info", "xml")
    finally:
        root.removeHandler(h)
        root.removeHandler(other)
        root.setLevel(level)


def test_bad_log_flag_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["backtest", str(PAPER), "--log-format", "xml"])
    assert exc.value.code == 2 and "--log-format" in capsys.readouterr().err


def test_live_feed_logs_connections_and_snapshots(tmp_path, caplog):
    pytest.importorskip("picows")
    from helpers import loopback
    from test_live import live_config, run_until_sent
    caplog.set_level(logging.INFO, logger="orpflow")
    with loopback([SAMPLE], speed=0, close_after=(3000,)) as srv:
        cfg = live_config(srv, tmp_path, record=False)
        with of.Engine(cfg) as e:
            run_until_sent(e, srv)
            e.stop()
        feed = e.stats()["feed"]
    live = [r for r in caplog.records if r.name == "orpflow.live"]
    connects = [r for r in live if r.msg == "%s %s"]
    assert len(connects) == feed["connects"] == 2 and connects[-1].reconnects == feed["reconnects"] == 1
    assert all(r.url == e.live.ws_url and r.url.startswith(srv.ws_url) for r in connects)
    assert [r.levelname for r in live if r.msg.startswith("disconnected")] == ["WARNING"]
    snaps = [r for r in live if r.msg.startswith("snapshot of")]
    assert len(snaps) == feed["snapshots"] >= 2 and all(r.symbol == "BTCUSDT" and r.bytes > 0 for r in snaps)
    names = [r.getMessage() for r in caplog.records if r.name == "orpflow.engine"]
    assert names[0] == "engine started: BTCUSDT" and names[-1] == "engine stopped"
    start = next(r for r in caplog.records if r.name == "orpflow.engine")
    assert start.source == "live" and start.strategy_id == "live-test"


class _Boom(of.Strategy):
    def on_trade(self, ctx, trade):
        raise RuntimeError("boom in on_trade")


def test_failure_crash_recovery_and_restore_are_logged(tmp_path, caplog):
    from orpflow.persistence import connect
    caplog.set_level(logging.INFO, logger="orpflow")
    cfg = str(_paper(tmp_path))
    e = of.Engine(cfg, strategy=_Boom())
    e.start()
    with pytest.raises(RuntimeError, match="boom"):
        e.wait()
    fail = [r for r in caplog.records if r.name == "orpflow.engine" and r.levelno == logging.ERROR]
    assert len(fail) == 1 and fail[0].status == "failed"
    # the traceback travels as text: a record holding the exception would keep its frames, and
    # with them the engine's C memory, alive as long as a handler keeps the record (the debug
    # build's allocation check caught that under pytest's log capture)
    assert fail[0].exc_info is None
    assert "RuntimeError: boom in on_trade" in fail[0].exc_text and "in on_trade" in fail[0].exc_text
    assert "Traceback" in logging.Formatter().format(fail[0])
    assert "boom in on_trade" in json.loads(JsonFormatter().format(fail[0]))["exc"]
    closed = [r for r in caplog.records if r.getMessage().startswith("database closed")]
    assert closed[-1].status == "failed"
    # a run left 'running' (the process was killed) is marked crashed by the next start, which
    # logs it and then what it restored
    with of.Engine(cfg) as e1:
        e1.wait()
    fills = len(e1.fills())          # the failed run stopped at its first trade, before any order
    conn = connect(str(tmp_path / "paper.db"))
    conn.execute("UPDATE runs SET status='running' WHERE run_id=?", (e1.writer.run_id,))
    conn.close()
    caplog.clear()
    with of.Engine(cfg) as e2:
        e2.wait()
    crashed = [r for r in caplog.records if r.name == "orpflow.persistence" and r.levelno == logging.WARNING]
    assert len(crashed) == 1 and crashed[0].crashed_runs == [e1.writer.run_id]
    restored = [r for r in caplog.records if r.getMessage().startswith("restored BTCUSDT")]
    assert len(restored) == 1 and restored[0].fills == fills > 0 and restored[0].run_id == e2.writer.run_id


def test_a_mistake_is_one_line_in_either_format(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text("[[instruments]]\nsymbol = 'BTCUSDT'\ntick_size = true\n")
    assert main(["backtest", str(bad)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("orpflow: config error: [instruments[0]] tick_size")
    assert main(["backtest", str(bad), "--log-format", "json"]) == 2
    (rec,) = _json_lines(capsys.readouterr().err)
    assert rec["level"] == "ERROR" and rec["error"] == "config error" and "tick_size" in rec["message"]
    assert main(["run", str(tmp_path / "missing.toml"), "--log-format", "json"]) == 2
    (rec,) = _json_lines(capsys.readouterr().err)
    assert rec["error"] == "error" and "missing.toml" in rec["message"]
