"""events_from_frame / merge_events: your own tables -> Event arrays, refused rows by reason."""
import warnings
from collections import Counter
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import orpflow as of
from helpers import SAMPLE, SPOT

F = of.Flags
GEN = of.Instrument("XYZ", venue="generic", tick_size="0.5", lot_size="1", size_increment="1", id=7)


@pytest.fixture(autouse=True)
def _quiet():
    # refused rows warn like the file readers do; the tests check the report instead
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        yield


def _kind(ev, flag):
    return ev[(ev["flags"] & int(flag)) != 0]


def _sample_frames():
    """The sample as read_binance converts it, decoded back to one table per kind, with the
    numbers in different Python types (floats from arithmetic, Decimal, text)."""
    ev = of.read_binance(SAMPLE, SPOT)
    depth = _kind(ev, F.DEPTH)
    snap = _kind(ev, F.SNAPSHOT)
    trades = _kind(ev, F.TRADE)
    bbo = _kind(ev, F.BBO)
    bid, ask = bbo[0::2], bbo[1::2]
    assert (bid["flags"] & F.BID).all() and (ask["flags"] & F.ASK).all()
    frames = {
        "depth": pd.DataFrame({
            "ts_local": depth["ts_local"], "ts_exch": depth["ts_exch"], "seq": depth["seq"],
            "seq_first": depth["seq_first"], "seq_prev": depth["seq_prev"],
            "side": np.where(depth["flags"] & F.BID, "bid", "ask"),
            "price": depth["price"] * 0.01, "size": depth["qty"] * 1e-8}),        # floats
        "snapshot": pd.DataFrame({
            "ts_local": pd.to_datetime(snap["ts_local"]), "ts_exch": snap["ts_exch"],
            "seq": snap["seq"], "side": np.where(snap["flags"] & F.BID, 1, -1),
            "price": [SPOT.ticks_to_price(int(t)) for t in snap["price"]],       # Decimal
            "size": [SPOT.units_to_size(int(u)) for u in snap["qty"]]}),
        "trade": pd.DataFrame({
            "ts_local": trades["ts_local"], "ts_exch": trades["ts_exch"], "seq": trades["seq"],
            "side": np.where(trades["flags"] & F.BUY, "buy", "sell"), "symbol": "btcusdt",
            "price": [str(SPOT.ticks_to_price(int(t))) for t in trades["price"]],  # text
            "size": [str(SPOT.units_to_size(int(u))) for u in trades["qty"]]}),
        "bbo": {
            "ts_local": bid["ts_local"].astype("datetime64[ns]"), "ts_exch": bid["ts_exch"],
            "seq": bid["seq"], "bid_price": bid["price"] / 100, "ask_price": ask["price"] / 100,
            "bid_size": bid["qty"] / 1e8, "ask_size": ask["qty"] / 1e8},
    }
    return ev, frames


def test_sample_round_trip_gives_the_same_events_and_book():
    ev, frames = _sample_frames()
    report = of.FeedReport()
    parts = [of.events_from_frame(frames[k], SPOT, k, report=report) for k in of.feeds.frame.KINDS]
    assert report.rejected == {} and report.records == len(ev)
    merged = of.merge_events(*parts)
    assert merged.dtype == of.EVENT_DTYPE and len(merged) == len(ev)
    assert (merged == ev).all()
    # and the book replayed from each is the same, message by message at the top
    books = [of.OrderBook(SPOT), of.OrderBook(SPOT)]
    ends = np.flatnonzero(ev["flags"] & F.LAST) + 1
    start, tops = 0, [[], []]
    for end in ends[:: max(1, len(ends) // 2000)]:
        for b, arr, top in zip(books, (ev, merged), tops):
            b.apply(arr[start:end])
            top.append((b.in_sync, b.best_bid(), b.best_ask()))
        start = end
    assert tops[0] == tops[1] and sum(t[0] for t in tops[0]) > len(tops[0]) // 2
    for b, arr in zip(books, (ev, merged)):
        b.apply(arr[start:])
    assert books[0].stats() == books[1].stats() and books[0].stats()["gaps"] == 0
    for side in ("bid", "ask"):
        assert np.array_equal(books[0].levels_raw(side), books[1].levels_raw(side))


def test_generic_book_from_snapshots_and_absolute_updates():
    snap = pd.DataFrame({"ts_local": [10, 10, 10, 40, 40], "side": ["bid", "bid", "ask", "BID", "ask"],
                         "price": [100, 99.5, 101, 90, 91], "size": [1, 2, 3, 4, 5]})
    depth = pd.DataFrame({"ts_local": [20, 20, 30, 30, 50], "side": ["bid", "ask", "bid", "bid", "ask"],
                          "price": ["100", "101.5", "99.5", "98.7", "91"], "size": [0, 7, 9, 1, 0]})
    report = of.FeedReport()
    ev = of.merge_events(of.events_from_frame(snap, GEN, "snapshot", report=report),
                         of.events_from_frame(depth, GEN, "depth", report=report))
    assert report.rejected == {"OFF_TICK": 1} and report.examples == [("frame", 3, "OFF_TICK")]
    assert report.lines == 10 and report.messages == 4
    assert (ev["instrument"] == 7).all()
    assert list(ev["ts_local"]) == [10, 10, 10, 20, 20, 30, 40, 40, 50]
    # snapshots without ids lead with CLEAR; the refused message (ts 30) is one CLEAR
    assert ev["flags"][0] & F.CLEAR and ev["flags"][6] & F.CLEAR
    assert ev["flags"][5] == F.CLEAR | F.LAST
    book = of.OrderBook(GEN)
    book.apply(ev[:5])
    assert book.in_sync and book.best_bid() == (99.5, 2.0) and book.best_ask() == (101.0, 3.0)
    book.apply(ev[5:6])
    assert not book.in_sync          # it missed an update: it waits for the next snapshot
    book.apply(ev[6:])
    assert book.in_sync and book.best_bid() == (90.0, 4.0) and book.best_ask() is None


def test_float_tolerance_snaps_arithmetic_but_not_off_grid_values():
    inst = of.Instrument("XYZ", venue="generic", tick_size="0.01", lot_size="0.01", size_increment="0.01")
    # 1e-6 steps off: a float's arithmetic noise or a grid 10**6 finer than the instrument's
    prices = [0.1 + 0.2, 0.305, 1e-05 * 1000, 65432.1, 0.2999, 0.29999999]
    frame = {"ts_local": np.arange(1, 7), "side": ["buy"] * 6, "price": prices, "size": [1.0] * 6}
    report = of.FeedReport()
    ev = of.events_from_frame(frame, inst, "trade", report=report)
    assert list(ev["price"]) == [30, 1, 6543210, 30] and report.rejected == {"OFF_TICK": 2}
    report = of.FeedReport()
    ev = of.events_from_frame(frame, inst, "trade", report=report, float_tolerance=1e-7)
    assert list(ev["price"]) == [30, 1, 6543210] and report.rejected == {"OFF_TICK": 3}
    report = of.FeedReport()
    ev = of.events_from_frame(frame, inst, "trade", report=report, float_tolerance=0)
    assert list(ev["price"]) == [1, 6543210] and report.rejected == {"OFF_TICK": 4}
    # the same values as text are exact or refused: no tolerance applies to text
    report = of.FeedReport()
    text = dict(frame, price=[repr(p) for p in prices[:2]] + ["0.01", "65432.1", "0.2999", "0.29999999"])
    ev = of.events_from_frame(text, inst, "trade", report=report)
    assert list(ev["price"]) == [1, 6543210] and report.rejected == {"OFF_TICK": 4}
    with pytest.raises(ValueError, match="float_tolerance"):
        of.events_from_frame(frame, inst, "trade", float_tolerance=0.5)


def test_times_as_datetimes_and_timestamps_in_utc():
    t = pd.Timestamp("2024-03-01 12:00:00.000000123", tz="Europe/Paris")
    ns = t.value
    rows = {"ts_local": pd.Series([t, t + pd.Timedelta(1, "ns")]),
            "ts_exch": [pd.Timestamp(ns, unit="ns"), np.datetime64(ns + 5, "ns")],
            "side": ["sell", -1], "price": ["1", "1.5"], "size": [1, 2]}
    ev = of.events_from_frame(rows, GEN, "trade")
    assert list(ev["ts_local"]) == [ns, ns + 1] and list(ev["ts_exch"]) == [ns, ns + 5]
    assert list(ev["flags"]) == [F.TRADE | F.LAST | F.SELL] * 2


def test_structure_mistakes_raise_with_the_column_name():
    good = {"ts_local": [1], "side": ["buy"], "price": ["1"], "size": ["1"]}
    with pytest.raises(ValueError, match="kind"):
        of.events_from_frame(good, GEN, "quotes")
    with pytest.raises(ValueError, match="'size'"):
        of.events_from_frame({k: v for k, v in good.items() if k != "size"}, GEN, "trade")
    with pytest.raises(ValueError, match="'qty'"):
        of.events_from_frame(dict(good, qty=[1]), GEN, "trade")
    with pytest.raises(ValueError, match="lengths"):
        of.events_from_frame(dict(good, price=["1", "2"]), GEN, "trade")
    with pytest.raises(ValueError, match="DataFrame"):
        of.events_from_frame([1, 2], GEN, "trade")
    assert len(of.events_from_frame({k: [] for k in good}, GEN, "trade")) == 0


def test_merge_keeps_messages_whole_and_ties_in_argument_order():
    a = of.events_from_frame({"ts_local": [5, 5, 9], "side": ["bid", "ask", "bid"],
                              "price": [1, 2, 1], "size": [1, 1, 0]}, GEN, "depth")
    b = of.events_from_frame({"ts_local": [5, 7], "side": ["buy", "sell"], "price": [1, 2],
                              "size": [3, 4]}, GEN, "trade")
    m = of.merge_events(b, a)
    assert list(m["ts_local"]) == [5, 5, 5, 7, 9] and list(m["qty"]) == [3, 1, 1, 4, 0]
    m = of.merge_events(a, b)
    assert list(m["qty"]) == [1, 1, 3, 4, 0]
    assert len(of.merge_events()) == 0
    with pytest.raises(TypeError):
        of.merge_events(np.zeros(3))


# ---- refused rows: each reason counted, every good row untouched ---------------------------

# (column, value, reason): one fault per bad row
FAULTS = [
    ("price", "1.25", "OFF_TICK"), ("price", 0.7, "OFF_TICK"), ("price", "-1", "NEGATIVE"),
    ("price", -2.0, "NEGATIVE"), ("price", "abc", "BAD_NUMBER"), ("price", float("nan"), "BAD_NUMBER"),
    ("price", None, "BAD_NUMBER"), ("price", "0", "BAD_NUMBER"), ("price", True, "BAD_NUMBER"),
    ("price", Decimal("NaN"), "BAD_NUMBER"), ("price", "1" + "0" * 25, "OVERFLOW"),
    ("size", "0.5", "OFF_SIZE_INCREMENT"), ("size", Decimal("2.25"), "OFF_SIZE_INCREMENT"),
    ("size", "-3", "NEGATIVE"), ("size", "1e3", "BAD_NUMBER"),
    ("side", "up", "MALFORMED"), ("side", 2, "MALFORMED"), ("side", None, "MALFORMED"),
    ("ts_local", -5, "MALFORMED"), ("ts_local", "soon", "MALFORMED"), ("ts_local", pd.NaT, "MALFORMED"),
    ("ts_exch", 1.5, "MALFORMED"), ("seq", -1, "MALFORMED"), ("symbol", "OTHER", "WRONG_SYMBOL"),
    ("symbol", None, "WRONG_SYMBOL"),
]

good_price = st.integers(1, 10 ** 6).flatmap(lambda t: st.sampled_from(
    [str(Decimal(t) / 2), Decimal(t) / 2, t / 2] + ([t // 2] if t % 2 == 0 else [])).map(lambda v: (t, v)))
good_size = st.integers(0, 10 ** 9).flatmap(
    lambda u: st.sampled_from([str(u), u, float(u), Decimal(u)]).map(lambda v: (u, v)))
row = st.tuples(good_price, good_size, st.booleans(), st.integers(0, 10 ** 6),
                st.one_of(st.none(), st.sampled_from(FAULTS)))


def _table(rows, book):
    cols = {"ts_local": [], "ts_exch": [], "seq": [], "symbol": [], "side": [], "price": [], "size": []}
    for i, ((_, p), (_, s), side, seq, fault) in enumerate(rows):
        side_v = ("bid" if side else "ask") if book else ("buy" if side else "sell")
        vals = {"ts_local": 1000 + 10 * i, "ts_exch": 500 + i, "seq": seq, "symbol": "xyz",
                "side": side_v, "price": p, "size": s}
        if fault:
            vals[fault[0]] = fault[1]
        for k, v in vals.items():
            cols[k].append(v)
    return {k: np.array(v, dtype=object) for k, v in cols.items()}


def _expected_rejects(rows, trade):
    got = Counter(f[2] for *_, f in rows if f)
    # a zero size is a delete in a book but no trade
    got.update("BAD_NUMBER" for _, (u, _), _, _, f in rows if trade and u == 0 and not f)
    return dict(got)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(row, max_size=30))
def test_trade_rows_refused_by_reason_good_rows_exact(rows):
    report = of.FeedReport()
    ev = of.events_from_frame(_table(rows, book=False), GEN, "trade", report=report)
    assert report.rejected == _expected_rejects(rows, trade=True)
    want = [(1000 + 10 * i, 500 + i, seq, t, u, F.TRADE | F.LAST | (F.BUY if side else F.SELL))
            for i, ((t, _), (u, _), side, seq, f) in enumerate(rows) if not f and u > 0]
    got = [tuple(int(x) for x in r) for r in ev[["ts_local", "ts_exch", "seq", "price", "qty", "flags"]]]
    assert got == want and (ev["instrument"] == 7).all()
    assert report.lines == len(rows) and report.messages == len(want) == report.records


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(row, max_size=30))
def test_depth_rows_refused_by_reason_become_clears_in_place(rows):
    # one row per message (distinct receive times): a refused message is a CLEAR in its place
    report = of.FeedReport()
    ev = of.events_from_frame(_table(rows, book=True), GEN, "depth", report=report)
    assert report.rejected == _expected_rejects(rows, trade=False)
    want = []
    for i, ((t, _), (u, _), side, seq, f) in enumerate(rows):
        if not f:
            want.append((1000 + 10 * i, t, u, F.DEPTH | F.LAST | (F.BID if side else F.ASK)))
        elif f[2] != "WRONG_SYMBOL":
            # a CLEAR keeps the message's receive time, or the latest before an unreadable one
            ts = 1000 + 10 * i if f[0] != "ts_local" else max(
                [0] + [1000 + 10 * j for j, r in enumerate(rows[:i])
                       if not r[4] or r[4][0] not in ("ts_local", "symbol")])
            want.append((ts, 0, 0, F.CLEAR | F.LAST))
    got = [tuple(int(x) for x in r) for r in ev[["ts_local", "price", "qty", "flags"]]]
    assert got == want


@settings(max_examples=40, deadline=None)
@given(st.lists(row, max_size=20))
def test_bbo_rows(rows):
    cols = _table(rows, book=False)
    # the bid gets the row's values, the ask one tick and size unit more (as text)
    cols["bid_price"], cols["bid_size"] = cols.pop("price"), cols.pop("size")
    cols["ask_price"] = np.array([str(Decimal(t) / 2 + Decimal("0.5")) for (t, _), *_ in rows], object)
    cols["ask_size"] = np.array([u + 1 for _, (u, _), *_ in rows], object)
    del cols["side"]
    report = of.FeedReport()
    ev = of.events_from_frame(cols, GEN, "bbo", report=report)
    bad = [f for *_, f in rows if f and f[0] != "side"]
    assert report.rejected_total == len(bad)
    assert report.rejected == dict(Counter(f[2] for f in bad))
    good = [(t, u) for (t, _), (u, _), _, _, f in rows if not f or f[0] == "side"]
    assert list(ev["price"]) == [x for t, _ in good for x in (t, t + 1)]
    assert list(ev["qty"]) == [x for _, u in good for x in (u, u + 1)]
    assert list(ev["flags"]) == [F.BBO | F.BID, F.BBO | F.ASK | F.LAST] * len(good)


def test_docs_example_runs_and_prints_what_it_says(capsys):
    from helpers import REPO
    text = (REPO / "docs" / "data.md").read_text()
    code = text.split("```python\n", 1)[1].split("```", 1)[0]
    exec(compile(code, "docs/data.md", "exec"), {})
    printed = capsys.readouterr().out.splitlines()
    claimed = [line.split("# ", 1)[1].strip() for line in code.splitlines() if line.startswith("print(")]
    assert printed == claimed


# the vectorised float path decides only where it is certain: it must agree with the exact
# per-value path (shortest text, else the nearest step within the tolerance) on every float
steps = st.sampled_from([("0.01", 1), ("0.5", 1), ("0.00000001", 1), ("0.1", 3), ("25", 1)])
floats_near = st.tuples(st.integers(0, 10 ** 13), st.floats(-0.6, 0.6), st.sampled_from([0, 1e-12, 1e-6, 1e-4, 3e-4]))


@settings(max_examples=200, deadline=None)
@given(steps, st.lists(st.one_of(floats_near, st.floats(allow_nan=True, allow_infinity=True)), max_size=40),
       st.sampled_from([1e-4, 1e-9, 0.3]))
def test_float_fast_path_agrees_with_the_exact_path(step, values, tol):
    from orpflow.feeds.frame import _Converter
    inst = of.Instrument("XYZ", venue="generic", tick_size=step[0], lot_size=step[0], size_increment=step[0])
    xs = []
    for v in values:
        if isinstance(v, tuple):              # a step count, maybe nudged off the grid
            k, frac, scale = v
            xs.append((k + frac * scale / 0.6) * float(Decimal(step[0])))
        else:
            xs.append(v)
    col = np.array(xs, dtype=np.float64)
    conv = _Converter(inst, tol)
    units, reason = conv.units(col, inst.tick, REASONS_OFF_TICK)
    want = [conv._one(float(x), inst.tick, REASONS_OFF_TICK) for x in col]
    assert list(zip(reason.tolist(), units.tolist())) == [tuple(w) for w in want]


REASONS_OFF_TICK = int(of.Reason.OFF_TICK)
