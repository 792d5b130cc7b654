"""Real Binance data: the book must match the venue's own bookTicker to the last tick.

Full recordings come from ../shared/data (skipped where absent); the bundled sample in
examples/data keeps the same checks running on any clone.
"""
import gzip
import re

import numpy as np
import pytest

import orpflow as of
from orpflow.feeds.replay import replay_book
from orpflow.reference.book import OrderBook as RefOrderBook
from orpflow.reference import convert as ref_convert
from helpers import SAMPLE, SHARED, SPOT, USDM, shared_file

F = of.flags


@pytest.fixture(scope="module")
def sample_events():
    return of.read_binance(SAMPLE, SPOT)


# ------------------------------------------------------------------ ground truth


def test_sample_matches_every_bookticker(sample_events):
    res = replay_book(sample_events, of.OrderBook(SPOT))
    s = res.book.stats()
    assert (res.bbo_pairs, res.bbo_matched) == (423, 423), res.mismatches[:3]
    assert (s["gaps"], s["crossed"], s["locked"], s["snapshots"]) == (0, 0, 0, 1)
    # the book's own in-stream check reaches every pair too (both sides of each)
    assert (s["bbo_checked"], s["bbo_mismatched"]) == (2 * 423, 0)
    assert res.book.in_sync


def test_spot_two_days_match_every_bookticker():
    paths = [shared_file("binance", "spot_btcusdt_20240808.gz"), shared_file("binance", "spot_btcusdt_20240809.gz")]
    report = of.FeedReport()
    events = of.read_binance(paths, SPOT, report=report)
    assert report.rejected == {} and report.messages == 41_249 + 58_325
    res = replay_book(events, of.OrderBook(SPOT))
    s = res.book.stats()
    assert (res.bbo_pairs, res.bbo_matched) == (1072, 1072), res.mismatches[:3]
    assert (s["gaps"], s["crossed"], s["locked"], s["resyncs"]) == (0, 0, 0, 0)
    assert (s["bbo_checked"], s["bbo_mismatched"]) == (2 * 1072, 0)
    assert res.book.in_sync


def test_usdm_matches_every_bookticker():
    events = of.read_binance(shared_file("binance", "usdm_btcusdt_20240808.gz"), USDM)
    res = replay_book(events, of.OrderBook(USDM))
    s = res.book.stats()
    assert (res.bbo_pairs, res.bbo_matched) == (629, 629), res.mismatches[:3]
    assert (s["gaps"], s["crossed"], s["locked"]) == (0, 0, 0)
    assert (s["bbo_checked"], s["bbo_mismatched"]) == (2 * 629, 0)
    assert res.book.in_sync


def _real_streams():
    """(name, instrument, events) for every real Binance stream available here."""
    out = [("sample", SPOT, None)]
    if (SHARED / "binance").is_dir():
        out.append(("usdm", USDM, "usdm_btcusdt_20240808.gz"))
    return out


@pytest.mark.parametrize("name, inst, file", _real_streams())
def test_compiled_book_equals_reference_on_real_data(name, inst, file, sample_events):
    events = sample_events if file is None else of.read_binance(SHARED / "binance" / file, inst)[:300_000]
    a, b = of.OrderBook(inst), RefOrderBook(inst)
    cuts = np.linspace(0, len(events), 7).astype(int)
    for lo, hi in zip(cuts[:-1], cuts[1:]):
        assert a.apply(events[lo:hi]) == b.apply(events[lo:hi])
        assert a.stats() == b.stats()
        for side in ("bid", "ask"):
            assert np.array_equal(a.levels_raw(side), b.levels_raw(side))
        assert a.metrics() == b.metrics()


def test_reference_converter_equals_compiled_on_sample():
    assert np.array_equal(of.read_binance(SAMPLE, SPOT), ref_convert.read_binance(SAMPLE, SPOT))


def test_reference_converter_equals_compiled_on_recordings():
    for name, inst in (("spot_btcusdt_20240809.gz", SPOT), ("usdm_btcusdt_20240808.gz", USDM)):
        path = shared_file("binance", name)
        assert np.array_equal(of.read_binance(path, inst), ref_convert.read_binance(path, inst)), name


# ------------------------------------------------------------------ cryptofeed venues

CRYPTOFEED_VENUES = {
    "BINANCE": "binance-spot", "BINANCE_US": "binance-spot", "BINANCE_TR": "binance-spot",
    "BINANCE_FUTURES": "binance-usdm", "BINANCE_DELIVERY": "binance-coinm",
}


def _cryptofeed_symbols():
    folder = SHARED / "cryptofeed"
    if not folder.is_dir():
        return [pytest.param(None, None, marks=pytest.mark.skip(reason=f"{folder} not present"))]
    out = []
    for exch in sorted(CRYPTOFEED_VENUES):
        with gzip.open(folder / f"{exch}.http.0.0.gz", "rb") as fh:
            for line in fh:
                if b"/depth?symbol=" in line:
                    out.append((exch, line.split(b"symbol=")[1].split(b"&")[0].decode()))
    return out


@pytest.mark.parametrize("exchange, symbol", _cryptofeed_symbols())
def test_cryptofeed_symbol_syncs_without_gaps(exchange, symbol):
    folder = SHARED / "cryptofeed"
    # the files carry no exchangeInfo: 1e-8 is a grid every Binance price string lies on
    inst = of.Instrument(symbol, venue=CRYPTOFEED_VENUES[exchange], tick_size="0.00000001", lot_size="0.00000001")
    report = of.FeedReport()
    events = of.read_cryptofeed(folder / f"{exchange}.ws.1.0.gz", folder / f"{exchange}.http.0.0.gz", inst, report=report)
    assert set(report.rejected) <= {"UNSUPPORTED"}, report.rejected      # kline messages: not converted
    assert report.messages > 0
    res = replay_book(events, of.OrderBook(inst))
    s = res.book.stats()
    assert s["snapshots"] == 1 and s["gaps"] == 0 and s["crossed"] == 0, s
    assert res.book.in_sync
    assert set(s["rejected_by_reason"]) <= {"STALE"}
    assert res.bbo_mismatched == 0, res.mismatches[:3]


# ------------------------------------------------------------------ losing a diff


def _messages(events, kind):
    """(start, end) record ranges of messages whose first record has `kind`."""
    f = events["flags"]
    ends = np.flatnonzero((f & F.LAST) != 0)
    starts = np.concatenate(([0], ends[:-1] + 1))
    keep = (f[starts] & kind) != 0
    return list(zip(starts[keep].tolist(), (ends[keep] + 1).tolist()))


def test_dropped_diff_desyncs_until_a_later_snapshot(sample_events):
    events = sample_events
    diffs = _messages(events, F.DEPTH)
    snap_end = _messages(events, F.SNAPSHOT)[0][1]
    after = [d for d in diffs if d[0] > snap_end]
    drop, resync_at = after[100], after[400]

    truth = of.OrderBook(SPOT)
    truth.apply(events[:resync_at[1]])
    # a later REST snapshot: what the venue's book was at that diff (here: rebuilt from the
    # undisturbed stream, which the bookTicker test above shows is the venue's book)
    lid = truth.last_update_id
    snap = np.concatenate([_snapshot_records(truth.levels_raw("bid"), F.BID, lid),
                           _snapshot_records(truth.levels_raw("ask"), F.ASK, lid)])
    snap["flags"][-1] |= F.LAST

    book = of.OrderBook(SPOT)
    book.apply(events[:drop[0]])
    frozen_bid, frozen_ask = book.levels_raw("bid"), book.levels_raw("ask")
    assert book.in_sync
    applied = book.apply(events[drop[1]:resync_at[1]])           # the stream minus one diff
    s = book.stats()
    assert not book.in_sync and book.state == "OUT_OF_SYNC" and s["gaps"] == 1
    assert applied == 0                                          # nothing applied after the gap
    assert np.array_equal(book.levels_raw("bid"), frozen_bid) and np.array_equal(book.levels_raw("ask"), frozen_ask)

    book.apply(snap)
    assert book.in_sync and book.stats()["resyncs"] == 1
    res = replay_book(events[resync_at[1]:], book)
    truth.apply(events[resync_at[1]:])
    assert np.array_equal(book.levels_raw("bid"), truth.levels_raw("bid"))
    assert np.array_equal(book.levels_raw("ask"), truth.levels_raw("ask"))
    assert book.stats()["gaps"] == 1 and res.bbo_pairs > 50 and res.bbo_matched == res.bbo_pairs


def _snapshot_records(levels, side, lid):
    out = of.empty_events(len(levels))
    out["price"], out["qty"] = levels[:, 0], levels[:, 1]
    out["seq"] = lid
    out["flags"] = F.SNAPSHOT | side
    return out


# ------------------------------------------------------------------ corrupted input


def _corrupt(lines):
    """Real lines with one corruption each at known places: (lines, {reason: count}, bad indexes)."""
    lines = list(lines)
    depth = [i for i, l in enumerate(lines) if b"depthUpdate" in l and i > 10]
    trade = [i for i, l in enumerate(lines) if b'"e":"trade"' in l]
    bbo = [i for i, l in enumerate(lines) if b"bookTicker" in l]
    bad = {}

    def put(i, new, reason):
        lines[i] = new
        bad[i] = reason

    put(depth[5], lines[depth[5]][: len(lines[depth[5]]) // 2], "MALFORMED")                    # truncated JSON
    put(depth[9], lines[depth[9]].replace(b'"b":[["', b'"b":[["NaN","1"],["', 1), "BAD_NUMBER")  # NaN price
    put(trade[3], lines[trade[3]].replace(b'"q":"', b'"q":"-', 1), "NEGATIVE")                 # negative size
    put(trade[4], re.sub(rb'"p":"[^"]*"', b'"p":"61837.635"', lines[trade[4]]), "OFF_TICK")       # off the tick grid
    put(trade[5], re.sub(rb'"q":"[^"]*"', b'"q":"0.000000001"', lines[trade[5]]), "OFF_SIZE_INCREMENT")
    put(bbo[3], lines[bbo[3]].replace(b'"s":"BTCUSDT"', b'"s":"ETHUSDT"'), "WRONG_SYMBOL")
    put(bbo[4], b"not-a-timestamp " + lines[bbo[4]].split(b" ", 1)[1], "MALFORMED")
    put(bbo[5], lines[bbo[5]].replace(b'"B":"', b'"B":Infinity,"x":"', 1), "MALFORMED")        # not JSON
    put(bbo[6], b"\xff\xfe\x00garbage \x00\x01", "MALFORMED")
    put(bbo[7], lines[bbo[7]].split(b" ", 1)[0] + b' {"stream":"btcusdt@bookTicker","data":[1,2]}', "MALFORMED")
    put(trade[6], lines[trade[6]].replace(b'"m":', b'"m":"yes","mm":', 1), "MALFORMED")
    counts = {}
    for r in bad.values():
        counts[r] = counts.get(r, 0) + 1
    return lines, counts, set(bad)


def test_corrupted_lines_counted_with_reasons_and_rest_exact(tmp_path):
    lines = gzip.open(SAMPLE, "rb").read().splitlines()[:3000]
    corrupted, expected, bad_idx = _corrupt(lines)
    path = tmp_path / "corrupt.gz"
    path.write_bytes(gzip.compress(b"\n".join(corrupted)))
    report = of.FeedReport()
    with pytest.warns(UserWarning, match="rejected messages"):
        events = of.read_binance(path, SPOT, report=report)
    assert report.rejected == expected
    assert report.lines == 3000 and report.messages == 3000 - len(bad_idx)
    # every other message converts exactly as it does from the clean file
    clean = tmp_path / "clean.gz"
    clean.write_bytes(gzip.compress(b"\n".join(l for i, l in enumerate(lines) if i not in bad_idx)))
    assert np.array_equal(events, of.read_binance(clean, SPOT))
    # the twin agrees message for message
    ref = ref_convert.BinanceConverter(SPOT)
    ref.feed_lines(corrupted)
    assert np.array_equal(ref.take(), events)
    assert {of.Reason(k).name: v for k, v in ref.rejected().items()} == expected
    # the book sees the two lost diffs as the gap they are, and never crashes
    book = of.OrderBook(SPOT)
    book.apply(events)
    assert book.stats()["gaps"] == 1 and not book.in_sync


def test_reader_errors_are_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        of.read_binance(tmp_path / "missing.gz", SPOT)
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    assert len(of.read_binance(empty, SPOT)) == 0
