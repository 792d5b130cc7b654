"""Results people can read: decoded frames (and their exact round trip to the records), the
Sharpe rule, the text report, the plots, and `import orpflow` staying light."""
from __future__ import annotations

import io
import math
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import orpflow as of
from orpflow import records as R
from orpflow.config import MoneyScale
from orpflow.frames import INDEX, KINDS, decode
from orpflow.results import SHARPE_MIN_RETURNS, SHARPE_MIN_SPAN_S, statistics, to_records

from helpers import REPO, SAMPLE

pd = pytest.importorskip("pandas")
PAPER = REPO / "examples" / "paper.toml"


@pytest.fixture(scope="module")
def sample():
    """The bundled sample backtest: (result, events, config)."""
    from orpflow.engine import load_engine_events
    cfg = of.load_config(str(PAPER))
    events, report = load_engine_events(cfg, cfg.make_instruments(), [str(SAMPLE)])
    res = of.backtest(events, cfg)
    res.feed_report = report
    return res, events, cfg


def source(res, kind):
    return {"orders": res.orders, "fills": res.fills, "order_events": res.order_events,
            "equity": res.equity, "signals": res.signals, "breakers": res.breakers}[kind]


def same_records(got, want) -> None:
    """Byte-identical, field by field (NaN payloads included)."""
    assert got.dtype == want.dtype and len(got) == len(want)
    for name in want.dtype.names:
        assert got[name].tobytes() == want[name].tobytes(), name


# ------------------------------------------------------------------ frames

def test_frames_are_decoded(sample) -> None:
    res, _, _ = sample
    fr = res.frames()
    assert set(fr) == set(KINDS)
    inst = res.instruments[0]
    tick, unit = Decimal(inst.tick_size), Decimal(inst.size_increment)
    fills = fr["fills"]
    raw = res.fills["BTCUSDT"]
    assert len(fills) == len(raw) > 0
    assert list(fills["side"]) == ["buy" if s > 0 else "sell" for s in raw["side"]]
    assert list(fills["liquidity"]) == [("maker", "taker")[q] for q in raw["liquidity"]]
    # floats in instrument units: the nearest float to ticks x tick_size
    assert list(fills["price"]) == [float(Decimal(int(p)) * tick) for p in raw["price"]]
    assert list(fills["qty"]) == [float(Decimal(int(q)) * unit) for q in raw["qty"]]
    assert np.array_equal(fills["price_raw"], raw["price"]) and np.array_equal(fills["qty_raw"], raw["qty"])
    assert isinstance(fills.index, pd.DatetimeIndex) and str(fills.index.tz) == "UTC"
    assert fills.index.name == "ts_exch"
    assert np.array_equal(fills.index.asi8, raw["ts_exch"])
    assert np.array_equal(pd.DatetimeIndex(fills["ts_local"]).asi8, raw["ts_local"])
    orders = fr["orders"]
    names = np.array(R.ORDER_STATUS, dtype=object)
    assert list(orders["status"]) == list(names[res.orders["BTCUSDT"]["status"]])
    assert list(orders["reason"]) == [of.Reason(r).name for r in res.orders["BTCUSDT"]["reason"]]
    assert isinstance(orders["type"].dtype, pd.CategoricalDtype)
    assert orders.index.name == INDEX["orders"] == "ts_request"
    eq = fr["equity"]
    assert eq["symbol"].iloc[0] == "BTCUSDT"
    assert np.array_equal(eq["position_raw"], res.equity["position_units"])
    sig = fr["signals"]
    assert set(sig["no_order"]) <= set(R.NO_ORDER_WHY) and set(sig["side"]) <= {"buy", "sell", "none"}
    assert list(fr["breakers"]["breaker"]) == [t.breaker for t in res.breaker_trips]
    # exact money beside the floats: the fills' fees add up to the account's, to the last digit
    scale = MoneyScale(inst)
    fees = [scale.to_decimal(x) for x in fills["fee_raw"]]
    assert sum(fees, Decimal(0)) == res.accounts["BTCUSDT"]["fees"] > 0
    assert np.allclose([float(f) for f in fees], fills["fee"], rtol=1e-12, atol=0)
    assert scale.to_decimal(eq["cash_raw"].iloc[-1]) == res.accounts["BTCUSDT"]["cash"]
    # every order state change carries the venue time it happened at
    assert (fr["order_events"].index.asi8 > 0).all()


@pytest.mark.parametrize("kind", KINDS)
def test_frames_round_trip_exactly(sample, kind) -> None:
    res, _, _ = sample
    frame = res.frames()[kind]
    want = source(res, kind)
    got = to_records(frame, kind)
    if isinstance(want, dict):
        assert set(got) == {s for s, a in want.items() if len(a)}
        for s in got:
            same_records(got[s], want[s])
    else:
        same_records(got, want)


@pytest.mark.parametrize("kind", KINDS)
def test_frames_reencode_without_raw_columns(sample, kind) -> None:
    """Dropping every <name>_raw column, the decoded values still encode back (the sample's
    ticks and units are far below 2**48)."""
    res, _, _ = sample
    frame = res.frames()[kind]
    bare = frame.drop(columns=[c for c in frame.columns if c.endswith("_raw")])
    got = to_records(bare, kind, res.instruments)
    want = source(res, kind)
    if isinstance(want, dict):
        for s in got:
            same_records(got[s], want[s])
    else:
        same_records(got, want)


def test_to_records_explains_what_it_needs(sample) -> None:
    res, _, _ = sample
    frame = res.frames()["fills"]
    bare = frame.drop(columns=["price_raw"])
    with pytest.raises(ValueError, match="needs the instruments"):
        to_records(bare, "fills")
    with pytest.raises(ValueError, match="unknown kind"):
        to_records(frame, "trades")
    wrong = frame.drop(columns=["side_raw"]).astype({"side": object})
    wrong.iloc[0, wrong.columns.get_loc("side")] = "sideways"
    with pytest.raises(ValueError, match="'side'"):
        to_records(wrong, "fills", res.instruments)


BIG = st.integers(-2 ** 63, 2 ** 63 - 1)
NEAR_53 = st.integers(2 ** 53 - 5, 2 ** 53 + 5) | st.integers(2 ** 62, 2 ** 63 - 1)
INST = of.Instrument("X", tick_size="0.01", lot_size="0.00001")
ODD = of.Instrument("Y", venue="generic", tick_size="0.5", lot_size="3", size_increment="0.001", id=1)


@st.composite
def fill_records(draw, values=BIG):
    n = draw(st.integers(0, 6))
    a = np.zeros(n, of.FILL_DTYPE)
    for name in a.dtype.names:
        for i in range(n):
            if name in ("side", "liquidity"):
                a[name][i] = draw(st.integers(-128, 127))         # unknown codes too
            elif name in ("fee", "realised"):
                a[name][i] = draw(st.floats(allow_nan=True, allow_infinity=True))
            else:
                a[name][i] = draw(values)
    return a


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fill_records(BIG | NEAR_53), st.sampled_from([INST, ODD]))
def test_round_trip_exact_for_any_integers(rows, inst) -> None:
    """Beyond 2**53 the float columns are approximations (display only); the raw columns
    carry the exact integers, so the round trip is exact for any int64."""
    frame = decode(rows, "fills", [inst], inst.symbol)
    same_records(to_records(frame, "fills")[inst.symbol] if len(rows) else np.zeros(0, of.FILL_DTYPE), rows)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(KINDS), st.data())
def test_any_record_bytes_round_trip(kind, data) -> None:
    """Any bytes at all as records of any kind (unknown codes, NaN payloads, int64 extremes,
    slots of no instrument) come back byte for byte."""
    from orpflow.frames import _SPECS
    dtype = _SPECS[kind][0]
    n = data.draw(st.integers(0, 5))
    rows = np.frombuffer(data.draw(st.binary(min_size=n * dtype.itemsize, max_size=n * dtype.itemsize)),
                         dtype).copy()
    insts = [INST, ODD]
    frame = decode(rows, kind, insts, "X")
    got = to_records(frame, kind)
    if isinstance(got, dict):
        got = got.get("X", np.zeros(0, dtype))
    assert got.tobytes() == rows.tobytes()


@st.composite
def order_event_rows(draw):
    n = draw(st.integers(1, 6))
    a = np.zeros(n, R.ORDER_ROW)
    small = st.integers(-2 ** 48, 2 ** 48)
    for i in range(n):
        a["slot"][i] = draw(st.integers(0, 1))
        a["order_id"][i] = draw(BIG)
        a["side"][i] = draw(st.sampled_from([1, -1]))
        a["type"][i] = draw(st.integers(0, len(R.ORDER_TYPE) - 1))
        a["tif"][i] = draw(st.integers(0, len(R.TIF) - 1))
        a["status"][i] = draw(st.integers(0, len(R.ORDER_STATUS) - 1))
        a["reason"][i] = draw(st.sampled_from([int(r) for r in of.Reason]))
        for t in ("ts_request", "ts_arrival", "ts_done", "expire_at", "ts_exch", "ts_local"):
            a[t][i] = draw(st.just(0) | st.integers(1, 2 ** 63 - 1))
        for col, units in (("price", "price_ticks"), ("qty", "qty_units"), ("filled", "filled_units")):
            a[units][i] = draw(small)
    insts = [INST, ODD]
    for col, units, kind in (("price", "price_ticks", "px"), ("qty", "qty_units", "qty"),
                             ("filled", "filled_units", "qty")):
        R._scale_cols(a, a["slot"], insts, {col: (a[units], kind)})
    return a


@settings(max_examples=60, deadline=None)
@given(order_event_rows())
def test_reencoded_from_floats_below_2_48(rows) -> None:
    """Without raw columns, names, datetimes and floats encode back exactly for values below
    2**48 units (what the to_records docstring promises)."""
    insts = [INST, ODD]
    frame = decode(rows, "order_events", insts)
    same_records(to_records(frame, "order_events"), rows)
    bare = frame.drop(columns=[c for c in frame.columns if c.endswith("_raw")])
    same_records(to_records(bare, "order_events", insts), rows)


# ------------------------------------------------------------------ Sharpe

def account(**kw):
    base = {"realised_pnl": 0, "fees": 0, "unrealised_pnl": 0, "round_trips": 0, "losing_round_trips": 0,
            "max_drawdown": 0.0, "position": 0, "equity": 100}
    return {**base, **kw}


def equity_rows(seconds: np.ndarray, equity: np.ndarray) -> np.ndarray:
    a = np.zeros(len(seconds), R.ACCOUNT_ROW)
    a["ts_exch"] = 1_700_000_000_000_000_000 + seconds.astype(np.int64) * 1_000_000_000
    a["equity"] = equity
    return a


def test_sharpe_needs_a_long_enough_span_and_enough_changes() -> None:
    rng = np.random.default_rng(5)
    short = np.arange(240)
    st_ = statistics(0, account(), equity_rows(short, 100 + np.cumsum(rng.normal(0, 1, 240))))
    assert math.isnan(st_["sharpe"]) and st_["sharpe_reason"] == f"span 239 s < {SHARPE_MIN_SPAN_S} s minimum"
    flat = np.arange(2 * SHARPE_MIN_SPAN_S)
    st_ = statistics(0, account(), equity_rows(flat, np.full(len(flat), 100.0)))
    assert math.isnan(st_["sharpe"]) and st_["sharpe_reason"] == "equity never changed"
    few = np.full(len(flat), 100.0)
    few[-3:] = 101.0
    few[-1] = 99.0
    st_ = statistics(0, account(), equity_rows(flat, few))
    assert math.isnan(st_["sharpe"]) and st_["sharpe_reason"] == f"2 non-zero 1-s returns < {SHARPE_MIN_RETURNS} minimum"
    walk = 100 + np.cumsum(rng.normal(0.01, 1, len(flat)))
    st_ = statistics(0, account(), equity_rows(flat, walk))
    r = np.diff(walk)
    want = r.mean() / r.std(ddof=1) * math.sqrt(365 * 24 * 3600 * len(r) / (len(flat) - 1))
    assert st_["sharpe_reason"] is None and st_["sharpe"] == pytest.approx(want, rel=1e-12)
    assert statistics(3, account(), None)["sharpe_reason"] == "no equity series"


def test_sample_sharpe_is_not_annualised_from_minutes(sample) -> None:
    res, _, _ = sample
    st_ = res.stats["BTCUSDT"]
    assert math.isnan(st_["sharpe"]) and st_["sharpe_reason"].startswith("span ")
    assert st_["span_s"] < SHARPE_MIN_SPAN_S


# ------------------------------------------------------------------ report

def test_report_names_everything(sample) -> None:
    res, events, _ = sample
    text = res.report()
    sym = "BTCUSDT"
    st_ = res.stats[sym]
    assert f"PnL            {st_['pnl']:.6f}" in text
    assert f"n/a ({st_['sharpe_reason']})" in text
    orders = res.orders[sym]
    assert f"orders         {len(orders):,}: " in text
    for code, name in enumerate(R.ORDER_STATUS):
        n = int((orders["status"] == code).sum())
        assert (f"{name} {n:,}" in text) == (n > 0)
    for reason, n in res.risk_rejections.items():
        assert f"{reason} {n:,}" in text
    for t in res.breaker_trips:
        assert t.breaker in text and t.why in text
    b = res.book[sym]
    assert f"{b['gaps']:,} gaps, {b['resyncs']:,} resyncs" in text
    for reason, n in b["rejected_by_reason"].items():
        assert f"{reason} {n:,}" in text
    assert f"{res.feed_report.lines:,} lines" in text
    res.feed_report, saved = None, res.feed_report
    try:
        assert "no feed report" in res.report()
    finally:
        res.feed_report = saved


def test_cli_backtest_report_and_plot(capsys, tmp_path) -> None:
    pytest.importorskip("matplotlib")
    from orpflow.cli import main
    png_path = tmp_path / "bt.png"
    assert main(["backtest", str(PAPER), str(SAMPLE), "--report", "--plot", str(png_path)]) == 0
    out = capsys.readouterr().out
    assert "Sharpe n/a (span" in out              # the stats line
    assert "  risk refused   " in out and "  book           " in out and "\nfeed           " in out
    assert png_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["backtest", str(PAPER), str(SAMPLE)]) == 0
    assert "risk refused" not in capsys.readouterr().out      # the report only when asked


# ------------------------------------------------------------------ plots

def png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=50)
    return buf.getvalue()


@pytest.fixture
def agg():
    mpl = pytest.importorskip("matplotlib")
    mpl.use("Agg")
    import matplotlib.pyplot as plt
    yield plt
    plt.close("all")


def markers(ax, gid):
    found = [c for c in ax.collections if c.get_gid() == gid]
    assert len(found) == 1, gid
    return found[0].get_offsets()


def test_result_plot(sample, agg) -> None:
    res, _, _ = sample
    fig = res.plot()
    assert png(fig)[:8] == b"\x89PNG\r\n\x1a\n"
    axes = fig.axes
    assert [a.get_ylabel() for a in axes] == ["price", "position", "equity", "drawdown (%)"]
    fills = res.fills["BTCUSDT"]
    buy, sell = markers(axes[0], "buy_fills"), markers(axes[0], "sell_fills")
    assert len(buy) == int((fills["side"] == 1).sum()) > 0
    assert len(sell) == int((fills["side"] == -1).sum()) > 0
    num, den = res.instruments[0].price_scale
    assert np.allclose(np.sort(buy[:, 1]), np.sort(fills["price"][fills["side"] == 1] * num / den))
    assert axes[0].lines and axes[3].get_xlabel() == "time (UTC)"
    assert "BTCUSDT" in fig._suptitle.get_text()
    with pytest.raises(KeyError, match="ETHUSDT"):
        res.plot("ETHUSDT")


def test_plot_book_and_features(sample, agg) -> None:
    res, events, cfg = sample
    inst = res.instruments[0]
    t0 = int(events["ts_exch"][events["ts_exch"] > 0].min())
    start, end = t0 + 30 * 10 ** 9, t0 + 60 * 10 ** 9
    fig = of.plot_book(events, inst, start, end)
    assert png(fig)[:4] == b"\x89PNG"
    ax = fig.axes[0]
    assert [ln.get_label() for ln in ax.lines] == ["best bid", "best ask"]
    tr = events[((events["flags"] & int(of.Flags.TRADE)) != 0) & (events["ts_exch"] >= start)
                & (events["ts_exch"] <= end)]
    assert len(markers(ax, "buy_trades")) == int(((tr["flags"] & int(of.Flags.BUY)) != 0).sum()) > 0
    assert len(markers(ax, "sell_trades")) == int(((tr["flags"] & int(of.Flags.SELL)) != 0).sum()) > 0
    bid, ask = (ln.get_ydata() for ln in ax.lines)
    assert (np.asarray(bid) < np.asarray(ask)).all()
    # ISO strings and datetimes name the same window
    same = of.plot_book(events, inst, str(np.datetime64(start, "ns")), np.datetime64(end, "ns"))
    assert len(same.axes[0].lines[0].get_xdata()) == len(ax.lines[0].get_xdata())
    rows = of.compute_features(events, inst)
    fig = of.plot_features(rows, ["mid", "imbalance"], start, end)
    assert [a.get_ylabel() for a in fig.axes] == ["mid", "imbalance"]
    m = (rows["ts_exch"] >= start) & (rows["ts_exch"] <= end)
    assert len(fig.axes[0].lines[0].get_xdata()) == int(m.sum())
    fig = of.plot_features(pd.DataFrame(rows), "ofi_window")
    assert png(fig)[:4] == b"\x89PNG"
    with pytest.raises(KeyError, match="no feature column 'nope'"):
        of.plot_features(rows, ["nope"])


def test_plots_without_matplotlib(sample, monkeypatch) -> None:
    res, events, _ = sample
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    for call in (res.plot, lambda: of.plot_book(events, res.instruments[0]),
                 lambda: of.plot_features(np.zeros(0, of.FEATURE_DTYPE))):
        with pytest.raises(ImportError, match=r"pip install 'orpflow\[plot\]'"):
            call()


def test_import_orpflow_stays_light() -> None:
    code = "import sys, orpflow; print(sorted(m for m in ('matplotlib', 'pandas') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-P", "-c", code], capture_output=True, text=True, cwd="/",
                         check=True).stdout
    assert out.strip() == "[]"


def test_engine_frames_match_the_backtest(sample, tmp_path) -> None:
    """The threaded Engine decodes the same way: its frames equal the backtest's (same
    events, config and seed give the same records). Its performance has no equity series:
    Sharpe NaN with the reason, stored as NULL."""
    import dataclasses
    from orpflow.config import PersistenceConfig
    res, events, cfg = sample
    db = tmp_path / "run.db"
    cfg = dataclasses.replace(cfg, persistence=PersistenceConfig(path=str(db)))
    eng = of.Engine(cfg, events=events, keep_records=True).start()
    assert eng.wait(60)
    eng.close()
    perf = eng.performance()["BTCUSDT"]
    assert math.isnan(perf["sharpe"]) and perf["sharpe_reason"] == "no equity series"
    with of.Store(str(db)) as store:
        row = store.performance(run_id=1)
        assert row["sharpe"][0] is None and row["pnl"][0] == pytest.approx(res.stats["BTCUSDT"]["pnl"])
    got, want = eng.frames(), res.frames()
    assert set(got) == set(want)
    for kind in got:
        pd.testing.assert_frame_equal(got[kind], want[kind])
