"""Circuit breakers in the engine, on real data: once a breaker trips, reduce_only lets the run
trade out of its position, halt keeps it stuck, flatten closes it at once; and every report
(BacktestResult, the threaded Engine, the database, `orpflow backtest` / `orpflow run`) names
the breaker, when it tripped and why. The bundled sample with the example config, and the
longer recordings under ../shared/data."""
from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
from typing import Any, List

import numpy as np
import pytest

from orpflow import records as R
from orpflow.backtest import BacktestResult, backtest
from orpflow.config import EngineConfig, PersistenceConfig, load_config
from orpflow.engine import Engine, load_engine_events
from orpflow.events import Reason
from orpflow.persistence import Store
from helpers import REPO, SAMPLE, shared_file

EXAMPLE = REPO / "examples" / "paper.toml"
# with the example config this drawdown trips about a minute in, while the run is long
TIGHT_DRAWDOWN = "0.0003"


def example_config(**risk: Any) -> EngineConfig:
    cfg = load_config(str(EXAMPLE))
    return dataclasses.replace(cfg, risk=dataclasses.replace(cfg.risk, **risk),
                               persistence=PersistenceConfig(path=None))


@pytest.fixture(scope="module")
def sample_events() -> np.ndarray:
    cfg = example_config()
    ev, _ = load_engine_events(cfg, cfg.make_instruments())
    return ev


def the_trip(res: BacktestResult) -> np.ndarray:
    rows = R.breaker_rows(res.records, res.instruments)
    assert len(rows) == len(res.breaker_trips) == 1
    return rows[0]


def orders_after(res: BacktestResult, event_no: int) -> np.ndarray:
    """Final states of the orders first requested at or after engine event `event_no` (the
    breaker was already tripped when the gate saw them)."""
    ev = res.order_events
    ids, first = np.unique(ev["order_id"], return_index=True)
    late = ids[ev["event_no"][first] >= event_no]
    final = R.final_state(ev)
    return final[np.isin(final["order_id"], late)]


def positions_after(res: BacktestResult, event_no: int, start: int) -> List[int]:
    fills = R.fill_rows(res.records, res.instruments)
    return [start] + fills["position_units"][fills["event_no"] > event_no].tolist()


def only_toward_zero(path: List[int]) -> bool:
    """Each step brings |position| down and never past zero."""
    return all(abs(b) < abs(a) and a * b >= 0 for a, b in zip(path, path[1:]))


# ------------------------------------------------------------------ the bundled sample

@pytest.mark.parametrize("mode", ["reduce_only", "halt", "flatten"])
def test_after_a_trip_on_the_sample(sample_events: np.ndarray, mode: str) -> None:
    cfg = example_config(max_drawdown=TIGHT_DRAWDOWN, on_breaker=mode)
    res = backtest(sample_events, cfg)
    trip = the_trip(res)
    t = res.breaker_trips[0]
    assert (t.symbol, t.breaker, t.ts) == ("BTCUSDT", "drawdown", int(trip["ts_exch"]))
    assert t.position == float(trip["position"])
    assert t.limit == float(TIGHT_DRAWDOWN) and t.value >= t.limit
    assert "max_drawdown" in t.why
    pos = int(trip["position_units"])
    assert pos != 0                                  # tripped while in a position: the case at stake
    late = orders_after(res, int(trip["event_no"]))
    codes = set(late["reason"].tolist())
    path = positions_after(res, int(trip["event_no"]), pos)
    final = int(res.accounts["BTCUSDT"]["position_units"])
    closing = late["side"] == -np.sign(pos)
    if mode == "halt":
        assert closing.any()                         # the strategy tried to get out ...
        assert codes == {Reason.RISK_BREAKER}        # ... and was refused, as everything else
        assert path == [pos] and final == pos        # stuck to the end of the data
        assert set(res.risk_rejections) == {"RISK_BREAKER"}
    else:
        accepted = late[late["status"] != R.ORDER_STATUS.index("Rejected")]
        assert len(accepted) > 0 and (accepted["side"] == -np.sign(pos)).all()
        assert codes <= {Reason.OK, Reason.RISK_BREAKER_REDUCE_ONLY}
        assert only_toward_zero(path) and final == 0
        assert res.risk_rejections.get("RISK_BREAKER_REDUCE_ONLY", 0) > 0
        assert "RISK_BREAKER" not in res.risk_rejections
    if mode == "flatten":
        # the first order after the trip is the engine's closing order, whole position
        first = late[np.argmin(late["order_id"])]
        assert first["side"] == -np.sign(pos) and first["qty_units"] == abs(pos)
    assert sum(res.risk_rejections.values()) == res.counters["rejected"]


def test_flatten_is_out_before_reduce_only(sample_events: np.ndarray) -> None:
    """flatten does not wait for the strategy's next exit signal."""
    def flat_at(mode: str) -> int:
        res = backtest(sample_events, example_config(max_drawdown=TIGHT_DRAWDOWN, on_breaker=mode))
        fills = R.fill_rows(res.records, res.instruments)
        after = fills[fills["event_no"] > int(the_trip(res)["event_no"])]
        return int(after["event_no"][after["position_units"] == 0][0])
    assert flat_at("flatten") < flat_at("reduce_only")


def test_example_config_reports_its_breaker(sample_events: np.ndarray) -> None:
    """The example as shipped: the consecutive-loss breaker trips; the report says so."""
    cfg = example_config()
    res = backtest(sample_events, cfg)
    t = res.breaker_trips[0]
    limit = cfg.risk.max_consecutive_losses
    assert (t.breaker, t.value, t.limit) == ("consecutive_losses", limit, limit)
    assert t.why == f"{limit} losing round trips in a row >= max_consecutive_losses {limit}"
    assert res.risk["BTCUSDT"]["trips"] == {"consecutive_losses": 1}
    assert res.risk_rejections == {"RISK_BREAKER_REDUCE_ONLY": res.counters["rejected"]}


def test_on_breaker_in_a_config_file_is_checked_by_name() -> None:
    from orpflow.config import ConfigError, config_from_dict
    inst = {"symbol": "BTCUSDT", "venue": "binance-spot", "tick_size": "0.01", "lot_size": "0.00001"}
    assert config_from_dict({"instruments": [inst], "risk": {"on_breaker": "flatten"}}).risk.on_breaker == "flatten"
    for bad in ("stop", 1):
        with pytest.raises(ConfigError, match=r"\[risk\] on_breaker must be one of"):
            config_from_dict({"instruments": [inst], "risk": {"on_breaker": bad}})


# ------------------------------------------------------------------ ../shared/data

def test_threaded_engine_and_database_on_shared_data(tmp_path) -> None:
    paths = [str(shared_file("binance", f"spot_btcusdt_2024080{d}.gz")) for d in (8, 9)]
    cfg = example_config(max_drawdown="0.0004")
    ev, _ = load_engine_events(cfg, cfg.make_instruments(), paths)
    res = backtest(ev, cfg)
    trip = the_trip(res)
    pos = int(trip["position_units"])
    assert pos != 0
    path = positions_after(res, int(trip["event_no"]), pos)
    assert len(path) > 1 and only_toward_zero(path)
    assert int(res.accounts["BTCUSDT"]["position_units"]) == 0

    db = tmp_path / "run.db"
    cfg_db = dataclasses.replace(cfg, persistence=PersistenceConfig(path=str(db)))
    eng = Engine(cfg_db, events=ev).start()
    assert eng.wait(60)
    summary = eng.summary()
    eng.close()
    assert eng.breaker_trips() == res.breaker_trips == summary["breaker_trips"]
    assert eng.risk_rejections() == res.risk_rejections == summary["risk_rejections"]
    assert eng.stats()["breaker_trips"] == 1
    with Store(str(db)) as store:
        rows = store.breaker_trips()
    t = res.breaker_trips[0]
    assert len(rows) == 1
    assert (rows["breaker"][0], rows["ts_exch"][0], rows["why"][0]) == (t.breaker, t.ts, t.why)
    assert (rows["position_units"][0], rows["on_breaker"][0]) == (pos, "reduce_only")


# ------------------------------------------------------------------ the command line

def cli(tmp_path, *args: str) -> str:
    # cwd elsewhere: from the repo root, `-m orpflow` would import the uncompiled source tree
    proc = subprocess.run([sys.executable, "-m", "orpflow", *args], capture_output=True, text=True,
                          cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def expected_lines(res: BacktestResult, on_breaker: str) -> List[str]:
    by = ", ".join(f"{k} {v:,}" for k, v in res.risk_rejections.items())
    n = sum(res.risk_rejections.values())
    return [f"risk         {n:,} orders refused: {by}; on a tripped breaker: {on_breaker}"]


@pytest.mark.parametrize("command", ["backtest", "run"])
def test_cli_prints_rejections_and_trips(tmp_path, sample_events: np.ndarray, command: str) -> None:
    text = EXAMPLE.read_text()
    text = re.sub(r'^max_drawdown = .*$', f'max_drawdown = {TIGHT_DRAWDOWN}', text, flags=re.M)
    text = text.replace('paths = ["data/', f'paths = ["{SAMPLE.parent}/')
    cfg_path = tmp_path / "tight.toml"
    cfg_path.write_text(text)
    out = cli(tmp_path, command, str(cfg_path), *(["--no-db"] if command == "run" else []))
    res = backtest(sample_events, example_config(max_drawdown=TIGHT_DRAWDOWN))
    lines = out.splitlines()
    for want in expected_lines(res, "reduce_only"):
        assert want in lines, out
    trips = [ln for ln in lines if ln.startswith("breaker ")]
    t = res.breaker_trips[0]
    assert len(trips) == 1, out
    assert trips[0].startswith(f"breaker      BTCUSDT drawdown tripped at 20")
    assert trips[0].endswith(f": {t.why}; position then {t.position:g}") and t.position != 0


def test_cli_on_the_example_as_shipped(tmp_path) -> None:
    out = cli(tmp_path, "backtest", str(EXAMPLE))
    trips = [ln for ln in out.splitlines() if ln.startswith("breaker ")]
    assert len(trips) == 1 and " consecutive_losses tripped at " in trips[0], out
    assert re.search(r"\(\d+\.\d s into the data\)", trips[0])
    assert "orders refused: RISK_BREAKER_REDUCE_ONLY" in out
