"""The book must never trade frozen. Once a diff has been applied after a snapshot, a diff
whose ids do not continue the venue's sequence (spot ``U != prev_u + 1``, futures
``pu != prev_u``, a backwards ``u`` included) is a gap: OUT_OF_SYNC, no order reaches the
venue, and the next snapshot re-syncs the book even if its id is below a corrupted one.

The reproduction from real recordings: ``u`` of the 1,000th depthUpdate raised by 1,000,000,
read back through the reader, applied to both book twins and backtested with busy rules."""
from __future__ import annotations

import gzip
import json
import re
from pathlib import Path
from typing import List, Tuple

import numpy as np
import pytest

import orpflow as of
from orpflow import records as R
from orpflow._core.convert import BinanceConverter
from orpflow.backtest import backtest
from orpflow.bench import BENCH_RULES
from orpflow.config import config_from_dict
from orpflow.engine import load_engine_events
from orpflow.feeds.replay import replay_book
from orpflow.reference.book import OrderBook as RefOrderBook
from helpers import SAMPLE, SPOT, USDM, events, shared_file
from test_book import diff, snapshot, top

F = of.flags
JUMP, NTH = 1_000_000, 1000
OUT_OF_SYNC = 3                                      # SYNC record v[0]: the book state
REJECTED = R.ORDER_STATUS.index("Rejected")
NOT_SYNCED = int(of.Reason.RISK_BOOK_NOT_SYNCED)

# name: (file, instrument, instrument keys for a config)
STREAMS = {
    "sample": (lambda: SAMPLE, SPOT, {"venue": "binance-spot", "tick_size": "0.01", "lot_size": "0.00001"}),
    "spot": (lambda: shared_file("binance", "spot_btcusdt_20240808.gz"), SPOT,
             {"venue": "binance-spot", "tick_size": "0.01", "lot_size": "0.00001"}),
    "usdm": (lambda: shared_file("binance", "usdm_btcusdt_20240808.gz"), USDM,
             {"venue": "binance-usdm", "tick_size": "0.1", "lot_size": "0.001"}),
}


# ------------------------------------------------------------------ helpers


def _jump(lines: List[bytes], nth: int = NTH, delta: int = JUMP) -> Tuple[List[bytes], int]:
    """The lines with ``u`` of the nth depthUpdate raised by delta; (lines, the new u)."""
    depth = [i for i, line in enumerate(lines) if b'"e":"depthUpdate"' in line]
    i = depth[nth - 1]
    m = re.search(rb'"u":(\d+)', lines[i])
    new_u = int(m.group(1)) + delta
    out = list(lines)
    out[i] = lines[i][:m.start(1)] + str(new_u).encode() + lines[i][m.end(1):]
    return out, new_u


def _backtest(lines: List[bytes], path: Path, keys: dict):
    """Write the lines as a (plain text) recording, read it back as the engine does, backtest it."""
    path.write_bytes(b"\n".join(lines))
    data = {"instruments": [{"symbol": "BTCUSDT", "paths": [str(path)], **keys}], "persistence": {"path": None}}
    data.update({k: dict(v) for k, v in BENCH_RULES.items()})
    cfg = config_from_dict(data)
    ev, report = load_engine_events(cfg, cfg.make_instruments())
    assert report.rejected == {}
    return ev, backtest(ev, cfg, measure=False)


def _depth_ends(ev: np.ndarray) -> np.ndarray:
    """Index of the LAST record of every depth diff message."""
    f = ev["flags"]
    return np.flatnonzero(((f & F.DEPTH) != 0) & ((f & F.LAST) != 0))


def _sync(res) -> np.ndarray:
    return res.records[res.records["kind"] == R.OUT_SYNC]


def _check_no_order_sent(res, lo: int, hi: int) -> None:
    """Engine event numbers [lo, hi): any order the strategy tried was stopped by the risk gate
    for the book, and nothing filled."""
    o = res.orders["BTCUSDT"]
    tried = o[(o["client_id"] >= lo) & (o["client_id"] < hi)]
    assert (tried["status"] == REJECTED).all() and (tried["reason"] == NOT_SYNCED).all(), tried
    fills = res.records[(res.records["kind"] == R.OUT_FILL)]
    assert not ((fills["event_no"] >= lo) & (fills["event_no"] < hi)).any()


def _before(recs: np.ndarray, event_no: int) -> np.ndarray:
    out = recs[recs["event_no"] < event_no].copy()
    out["v"][out["kind"] == R.OUT_SIGNAL, 0] = 0          # the update id the row was built at
    return out


def _sent(res, lo: int, hi: int) -> int:
    o = res.orders["BTCUSDT"]
    return int(((o["client_id"] >= lo) & (o["client_id"] < hi) & (o["status"] != REJECTED)).sum())


def _snapshot_line(book, inst, recv_ns: int) -> bytes:
    """A REST depth snapshot line of the book's levels at its last update id."""
    def side(name):
        return [[format(inst.ticks_to_price(p), "f"), format(inst.units_to_size(q), "f")]
                for p, q in book.levels_raw(name).tolist()]
    body = {"lastUpdateId": book.last_update_id, "bids": side("bid"), "asks": side("ask")}
    return b"%d " % recv_ns + json.dumps(body, separators=(",", ":")).encode()


# ------------------------------------------------------------------ the reproduction


@pytest.mark.parametrize("name", list(STREAMS))
def test_forward_jumped_id_goes_out_of_sync_with_no_orders(name, tmp_path):
    file, inst, keys = STREAMS[name]
    lines = gzip.open(file(), "rb").read().splitlines()
    jumped, new_u = _jump(lines)
    clean_ev, clean = _backtest(lines, tmp_path / "clean.txt", keys)
    ev, res = _backtest(jumped, tmp_path / "jumped.txt", keys)
    assert len(ev) == len(clean_ev)

    ends = _depth_ends(ev)
    k = int(np.flatnonzero(ev["seq"][ends] == new_u)[0])
    nxt = int(ends[k]) + 1 + int(np.flatnonzero(ev["flags"][ends[k] + 1:] & F.DEPTH)[0])
    gap_at = nxt + 1          # engine event number of the first record of the diff after the jump
    # the jumped diff continues the sequence by its first id (U / pu) and its levels are real:
    # up to the next diff the run is the clean run, record for record (but the jumped u that
    # signal records carry)
    assert np.array_equal(_before(res.records, gap_at), _before(clean.records, gap_at))
    # that next diff does not continue u: a gap, out of sync from there
    sync, clean_sync = _sync(res), _sync(clean)
    assert (clean_sync["v"][:, 1] == 0).all() and (clean_sync["v"][:, 0] != OUT_OF_SYNC).all()
    lost = sync[sync["v"][:, 0] == OUT_OF_SYNC]
    assert len(lost) == 1 and lost["event_no"][0] == gap_at and lost["v"][0, 1] == 1
    # these recordings have no later snapshot: out of sync to the end, and no order sent
    assert not sync["v"][:, 4][sync["event_no"] >= gap_at].any()
    _check_no_order_sent(res, gap_at, len(ev) + 1)
    assert _sent(clean, gap_at, len(clean_ev) + 1) > 0, "the clean run must trade there"

    # the book itself: one gap, no diff dropped as stale after it, frozen at the gap
    books = [of.OrderBook(inst)] + ([RefOrderBook(inst)] if name == "sample" else [])
    clean_book = of.OrderBook(inst)
    clean_book.apply(clean_ev)
    for book in books:
        book.apply(ev[:nxt])
        assert book.in_sync and book.last_update_id == new_u
        bid, ask = book.levels_raw("bid"), book.levels_raw("ask")
        assert book.apply(ev[nxt:]) == 0
        s = book.stats()
        assert book.state == "OUT_OF_SYNC" and not book.in_sync
        assert s["gaps"] == 1 and s["stale"] == clean_book.stats()["stale"]
        assert np.array_equal(book.levels_raw("bid"), bid) and np.array_equal(book.levels_raw("ask"), ask)
    assert all(b.stats() == books[0].stats() for b in books)


def test_snapshot_after_the_gap_resyncs_below_the_corrupted_id(tmp_path):
    """A later snapshot (built from the undisturbed stream's book, which the bookTicker ground
    truth shows is the venue's) has an id far below the jumped one: it is taken all the same,
    the book re-syncs and matches every bookTicker again, and trading resumes."""
    _, inst, keys = STREAMS["sample"]
    lines = gzip.open(SAMPLE, "rb").read().splitlines()
    jumped, new_u = _jump(lines)
    at = [i for i, line in enumerate(lines) if b'"e":"depthUpdate"' in line][NTH + 300]
    conv = BinanceConverter(inst)
    conv.feed_lines(lines[:at + 1])
    truth = of.OrderBook(inst)
    truth.apply(conv.out.take())
    assert truth.in_sync and truth.last_update_id < new_u
    snap = _snapshot_line(truth, inst, int(lines[at].split(b" ", 1)[0]) + 1)
    stream = jumped[:at + 1] + [snap] + jumped[at + 1:]

    ev, res = _backtest(stream, tmp_path / "resync.txt", keys)
    sync = _sync(res)
    lost = sync[sync["v"][:, 0] == OUT_OF_SYNC]["event_no"]
    back = sync[(sync["v"][:, 2] == 1) & (sync["v"][:, 4] == 1)]["event_no"]    # resyncs == 1, in sync
    assert len(lost) == 1 and len(back) >= 1 and lost[0] < back[0]
    snap_end = int(np.flatnonzero((ev["flags"] & (F.SNAPSHOT | F.LAST)) == (F.SNAPSHOT | F.LAST))[-1])
    assert back[0] == snap_end + 1
    _check_no_order_sent(res, int(lost[0]), int(back[0]))
    assert _sent(res, int(back[0]), len(ev) + 1) > 0, "trading resumes after the resync"

    full = of.OrderBook(inst)
    full.apply(of.read_binance(SAMPLE, inst))
    books = []
    for cls in (of.OrderBook, RefOrderBook):
        book = cls(inst)
        replay = replay_book(ev[:snap_end + 1], book)
        assert book.stats()["gaps"] == 1 and book.in_sync and book.stats()["resyncs"] == 1
        assert book.last_update_id == truth.last_update_id
        replay = replay_book(ev[snap_end + 1:], book)
        assert replay.bbo_pairs > 100 and replay.bbo_matched == replay.bbo_pairs, replay.mismatches[:3]
        assert book.in_sync and book.stats()["gaps"] == 1
        for side in ("bid", "ask"):
            assert np.array_equal(book.levels_raw(side), full.levels_raw(side))
        books.append(book)
    assert books[0].stats() == books[1].stats()


# ------------------------------------------------------------------ the rules, both twins


def test_spot_jumped_u_then_gap_then_lower_snapshot_resyncs(book_cls):
    b = book_cls(SPOT)
    b.apply(events(*snapshot(100, [(1000, 5)], [(1001, 3)]), *diff(101, 102, bids=[(1000, 6)])))
    b.apply(events(*diff(103, 1_000_104, bids=[(1000, 7)])))     # U continues, u corrupted
    assert b.in_sync and b.last_update_id == 1_000_104
    for d in (diff(105, 106, bids=[(1000, 8)]), diff(107, 107, asks=[(1001, 1)])):
        b.apply(events(*d))                                      # u <= lid, but U does not continue
        assert b.state == "OUT_OF_SYNC" and not b.in_sync
    s = b.stats()
    assert (s["gaps"], s["stale"]) == (1, 0) and top(b, "bid") == [(1000, 7)]
    b.apply(events(*snapshot(106, [(1000, 8)], [(1001, 3)])))       # far below the corrupted id
    assert b.in_sync and b.last_update_id == 107 and top(b, "ask") == [(1001, 1)]
    s = b.stats()
    assert (s["gaps"], s["resyncs"], s["stale"]) == (1, 1, 1)      # 105-106: in the snapshot


def test_futures_jumped_u_is_a_gap(book_cls):
    b = book_cls(USDM)
    b.apply(events(*snapshot(100, [(500, 3)], [(600, 1)]), *diff(95, 110, pu=90, bids=[(500, 4)])))
    b.apply(events(*diff(111, 1_000_120, pu=110, bids=[(500, 5)])))   # pu continues, u corrupted
    assert b.in_sync
    b.apply(events(*diff(121, 130, pu=120, bids=[(500, 6)])))         # pu != lid (u <= lid)
    assert b.state == "OUT_OF_SYNC" and b.stats()["gaps"] == 1 and b.stats()["stale"] == 0
    b.apply(events(*diff(131, 140, pu=130, bids=[(500, 7)]), *snapshot(130, [(500, 6)], [(600, 1)])))
    assert b.in_sync and b.last_update_id == 140 and top(b, "bid") == [(500, 7)]
    assert b.stats()["resyncs"] == 1


def test_stale_between_snapshot_and_bridging_diff_is_still_silent(book_cls):
    """Diffs the snapshot already holds, arriving after it and before the bridging diff."""
    for inst, stale, bridge, nxt in (
            (SPOT, diff(95, 100), diff(99, 102, bids=[(1000, 1)]), diff(103, 103)),
            (USDM, diff(90, 99, pu=89), diff(99, 105, pu=99, bids=[(1000, 1)]), diff(106, 107, pu=105))):
        b = book_cls(inst)
        b.apply(events(*snapshot(100, [(1000, 5)], [(1001, 3)]), *stale, *stale, *bridge, *nxt))
        s = b.stats()
        assert b.state == "IN_SYNC" and (s["gaps"], s["stale"]) == (0, 2), inst.venue
        assert top(b, "bid") == [(1000, 1)]


def test_snapshot_with_a_corrupted_id_is_replaced_by_the_next_one(book_cls):
    """A snapshot whose id is too high makes every diff look stale. Until a diff bridges it,
    the next snapshot replaces it even though its id is lower; once a diff is applied, an
    older snapshot is ignored again."""
    b = book_cls(SPOT)
    b.apply(events(*snapshot(1_000_100, [(1000, 5)], [(1001, 3)]), *diff(101, 102), *diff(103, 105)))
    assert b.state == "AWAIT_FIRST_DIFF" and b.stats()["stale"] == 2
    b.apply(events(*snapshot(105, [(1000, 6)], [(1001, 3)]), *diff(106, 107, bids=[(999, 1)])))
    assert b.state == "IN_SYNC" and b.last_update_id == 107
    assert top(b, "bid") == [(1000, 6), (999, 1)]
    b.apply(events(*snapshot(106, [(5, 5)], [(6, 6)])))
    assert b.last_update_id == 107 and b.stats()["rejected_by_reason"] == {"STALE": 2, "STALE_SNAPSHOT": 2}


def _at(recs, ts_local):
    """The same records received at ts_local (ns)."""
    return [r[:1] + (ts_local,) + r[2:] for r in recs]


def test_old_diffs_long_after_a_snapshot_are_a_gap(book_cls):
    """With a snapshot whose id is corrupted high and no later snapshot, every diff looks
    stale while the book counts as in sync: trading on a frozen book. Diffs older than the
    snapshot are dropped silently only while they arrive within 5 s of it; later, the
    snapshot cannot be right and the book goes OUT_OF_SYNC (a gap) until the next snapshot."""
    s = 1_000_000_000
    for inst, old in ((SPOT, lambda t: diff(101, 102, bids=[(1000, 6)])),
                      (USDM, lambda t: diff(95, 101, pu=94, bids=[(1000, 6)]))):
        b = book_cls(inst)
        b.apply(events(*_at(snapshot(1_000_100, [(1000, 5)], [(1001, 3)]), s)))
        b.apply(events(*_at(old(0), s + 2 * s), *_at(old(0), 6 * s)))     # 2 s and 5 s later: stale
        assert b.state == "AWAIT_FIRST_DIFF" and b.in_sync, inst.venue
        assert (b.stats()["stale"], b.stats()["gaps"]) == (2, 0)
        b.apply(events(*_at(old(0), 6 * s + 1)))                           # 5 s + 1 ns: a gap
        assert b.state == "OUT_OF_SYNC" and not b.in_sync, inst.venue
        assert (b.stats()["stale"], b.stats()["gaps"]) == (2, 1)
        b.apply(events(*_at(snapshot(100, [(1000, 7)], [(1001, 3)]), 7 * s)))
        assert b.in_sync and b.stats()["resyncs"] == 1 and top(b, "bid") == [(1000, 6)]   # + the buffered diff


# ------------------------------------------------------------------ the venue's BBO, in-stream


def bbo(u, bid, ask):
    from helpers import ev, with_last
    F = of.flags
    return with_last([ev(F.BBO | F.BID, bid[0], bid[1], seq=u), ev(F.BBO | F.ASK, ask[0], ask[1], seq=u)])


@pytest.mark.parametrize("book_cls", [of.OrderBook, RefOrderBook])
def test_venue_bbo_checked_when_its_diff_arrives(book_cls):
    """A bookTicker ahead of the book (u > the book's id) is held until the diff with that u is
    applied, then compared with the book's top; one at the book's own id is compared at once."""
    b = book_cls(SPOT)
    b.apply(events(*snapshot(10, [(100, 5)], [(101, 5)])))
    b.apply(events(*diff(11, 11, bids=[(100, 4)])))
    b.apply(events(*bbo(13, (100, 3), (101, 5))))          # ahead: held
    b.apply(events(*bbo(11, (100, 4), (101, 5))))          # at the book's id: checked now
    assert (b.stats()["bbo_checked"], b.stats()["bbo_mismatched"]) == (2, 0)
    b.apply(events(*diff(12, 13, bids=[(100, 3)])))         # reaches 13: the held pair checked
    s = b.stats()
    assert (s["bbo_checked"], s["bbo_mismatched"], b.in_sync) == (4, 0, True)


@pytest.mark.parametrize("book_cls", [of.OrderBook, RefOrderBook])
def test_venue_bbo_disagreeing_takes_the_book_out_of_sync(book_cls):
    """The book at u must show exactly the venue's BBO at u: if not, the book is wrong (here a
    diff was corrupted in a way sequencing cannot see) and must not be traded on."""
    b = book_cls(SPOT)
    b.apply(events(*snapshot(10, [(100, 5)], [(101, 5)])))
    b.apply(events(*bbo(11, (100, 4), (101, 5))))
    b.apply(events(*diff(11, 11, bids=[(100, 7)])))         # the venue says 4
    s = b.stats()
    assert (s["bbo_checked"], s["bbo_mismatched"], s["desyncs"]) == (1, 1, 1)   # the ask is not looked at
    assert not b.in_sync and b.state == "OUT_OF_SYNC"
    b.apply(events(*snapshot(11, [(100, 4)], [(101, 5)])))  # a snapshot re-syncs it
    b.apply(events(*diff(12, 12, asks=[(102, 1)])))
    assert b.in_sync and b.stats()["resyncs"] == 1
