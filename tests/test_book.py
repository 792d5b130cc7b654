"""Order book rules, run on both the reference twin and the compiled book (fixture book_cls)."""
import math

import numpy as np
import pytest

import orpflow as of
from helpers import SPOT, USDM, ev, events, with_last

F = of.flags
GENERIC = of.Instrument("BTC-PERPETUAL", venue="generic", tick_size="0.5", lot_size="10", size_increment="1")


def snapshot(lid, bids, asks, inst_id=0):
    """REST-style snapshot message: bids then asks, LAST on the final record."""
    recs = [ev(F.SNAPSHOT | F.BID, p, q, seq=lid, instrument=inst_id) for p, q in bids]
    recs += [ev(F.SNAPSHOT | F.ASK, p, q, seq=lid, instrument=inst_id) for p, q in asks]
    if not recs:
        recs = [ev(F.SNAPSHOT, seq=lid, instrument=inst_id)]
    return with_last(recs)


def diff(U, u, bids=(), asks=(), pu=0, inst_id=0):
    recs = [ev(F.DEPTH | F.BID, p, q, seq=u, seq_first=U, seq_prev=pu, instrument=inst_id) for p, q in bids]
    recs += [ev(F.DEPTH | F.ASK, p, q, seq=u, seq_first=U, seq_prev=pu, instrument=inst_id) for p, q in asks]
    if not recs:
        recs = [ev(F.DEPTH, seq=u, seq_first=U, seq_prev=pu, instrument=inst_id)]
    return with_last(recs)


def top(book, side, n=None):
    return [tuple(x) for x in book.levels_raw(side, n).tolist()]


# ------------------------------------------------------------------ spot sequencing


def test_snapshot_then_contiguous_diffs(book_cls):
    b = book_cls(SPOT)
    assert not b.in_sync and b.state == "WAIT_SNAPSHOT"
    n = b.apply(events(*snapshot(100, [(1000, 5), (999, 7)], [(1001, 3), (1003, 4)])))
    assert n == 4 and b.in_sync and b.last_update_id == 100
    b.apply(events(*diff(101, 105, bids=[(1000, 0), (998, 2)], asks=[(1002, 9)])))
    assert top(b, "bid") == [(999, 7), (998, 2)]
    assert top(b, "ask") == [(1001, 3), (1002, 9), (1003, 4)]
    b.apply(events(*diff(106, 106, asks=[(1001, 0)])))
    assert top(b, "ask", 1) == [(1002, 9)]
    assert b.last_update_id == 106 and b.state == "IN_SYNC"
    s = b.stats()
    assert (s["gaps"], s["snapshots"], s["stale"], s["rejected"]) == (0, 1, 0, 0)


def test_diffs_before_snapshot_are_buffered_stale_dropped(book_cls):
    b = book_cls(SPOT)
    stream = (diff(90, 95, bids=[(1, 1)])            # entirely before the snapshot: stale
              + diff(96, 102, bids=[(1000, 8)])     # straddles lastUpdateId+1 = 101: first applied
              + diff(103, 104, asks=[(1001, 1)])
              + snapshot(100, [(1000, 5)], [(1001, 3)]))
    b.apply(events(*stream))
    assert b.in_sync and b.last_update_id == 104
    assert top(b, "bid") == [(1000, 8)] and top(b, "ask") == [(1001, 1)]
    s = b.stats()
    assert s["stale"] == 1 and s["rejected_by_reason"] == {"STALE": 1} and s["buffered"] == 3
    assert s["buffer_pending"] == 0


def test_first_diff_must_straddle_snapshot(book_cls):
    b = book_cls(SPOT)
    b.apply(events(*snapshot(100, [(1000, 5)], [(1001, 3)])))
    b.apply(events(*diff(103, 110, bids=[(999, 1)])))      # 101, 102 missing
    assert not b.in_sync and b.state == "OUT_OF_SYNC" and b.stats()["gaps"] == 1
    assert top(b, "bid") == [(1000, 5)]                       # the gapped diff was not applied


def test_gap_then_resync_on_next_snapshot(book_cls):
    b = book_cls(SPOT)
    b.apply(events(*snapshot(100, [(1000, 5)], [(1001, 3)]), *diff(101, 101, bids=[(1000, 6)])))
    b.apply(events(*diff(103, 104, bids=[(1000, 7)])))       # 102 lost
    assert b.state == "OUT_OF_SYNC"
    applied = b.apply(events(*diff(105, 106, bids=[(1000, 9)])))
    assert applied == 0 and top(b, "bid") == [(1000, 6)]     # nothing applied while out of sync
    b.apply(events(*snapshot(104, [(1000, 7), (990, 1)], [(1001, 3)])))
    # buffered 103-104 is stale against snapshot 104; 105-106 follows it and is replayed
    assert b.in_sync and b.last_update_id == 106
    assert top(b, "bid") == [(1000, 9), (990, 1)]
    s = b.stats()
    assert (s["gaps"], s["resyncs"], s["snapshots"], s["stale"]) == (1, 1, 2, 1)


def test_duplicate_diff_after_sync_is_a_gap(book_cls):
    """Once a diff is applied, ids that go backwards break the sequence like a jump forward
    does (a replayed message or a corrupted id): out of sync, never skipped as stale."""
    b = book_cls(SPOT)
    d = diff(101, 102, bids=[(1000, 6)])
    b.apply(events(*snapshot(100, [(1000, 5)], [(1001, 3)]), *d, *d))
    assert not b.in_sync and b.state == "OUT_OF_SYNC"
    assert b.stats()["gaps"] == 1 and b.stats()["stale"] == 0


def test_empty_diff_advances_sequence(book_cls):
    b = book_cls(SPOT)
    b.apply(events(*snapshot(100, [(1000, 5)], [(1001, 3)]), *diff(101, 103), *diff(104, 104, bids=[(1000, 1)])))
    assert b.in_sync and b.last_update_id == 104 and b.stats()["gaps"] == 0


def test_stale_snapshot_ignored_when_in_sync(book_cls):
    b = book_cls(SPOT)
    b.apply(events(*snapshot(100, [(1000, 5)], [(1001, 3)]), *diff(101, 110, bids=[(1000, 6)])))
    b.apply(events(*snapshot(105, [(5, 5)], [(6, 6)])))
    assert top(b, "bid") == [(1000, 6)] and b.last_update_id == 110
    assert b.stats()["rejected_by_reason"] == {"STALE_SNAPSHOT": 2}


def test_snapshot_repeated_price_last_wins_zero_dropped(book_cls):
    b = book_cls(SPOT)
    b.apply(events(*snapshot(7, [(10, 1), (12, 2), (10, 3), (11, 0)], [(20, 4), (15, 0)])))
    assert top(b, "bid") == [(12, 2), (10, 3)] and top(b, "ask") == [(20, 4)]


def test_message_split_across_apply_calls(book_cls):
    b = book_cls(SPOT)
    recs = events(*snapshot(100, [(1000, 5), (999, 1)], [(1001, 3)]), *diff(101, 102, bids=[(998, 1)], asks=[(1002, 2)]))
    for i in range(len(recs)):
        b.apply(recs[i:i + 1])
        if i == 1:
            assert not b.in_sync          # inside the snapshot message
    assert b.in_sync and top(b, "bid") == [(1000, 5), (999, 1), (998, 1)]


# ------------------------------------------------------------------ futures sequencing


def test_futures_rules(book_cls):
    b = book_cls(USDM)
    stream = (diff(80, 99, pu=79, bids=[(1, 1)])           # u < lastUpdateId: stale
              + diff(95, 100, pu=99, bids=[(500, 1)])      # U <= 100 <= u: first applied (u == lid allowed)
              + diff(101, 120, pu=100, asks=[(600, 2)])    # pu == previous u
              + snapshot(100, [(500, 3)], [(600, 1)]))
    b.apply(events(*stream))
    assert b.in_sync and b.last_update_id == 120 and top(b, "ask") == [(600, 2)]
    b.apply(events(*diff(130, 140, pu=125, bids=[(500, 9)])))   # pu != 120
    assert b.state == "OUT_OF_SYNC" and b.stats()["gaps"] == 1 and top(b, "bid") == [(500, 1)]


def test_spot_rule_is_not_futures_rule(book_cls):
    """Futures continuity is pu == prev u; U is not contiguous there."""
    b = book_cls(USDM)
    b.apply(events(*snapshot(100, [(500, 3)], [(600, 1)]), *diff(90, 110, pu=95, bids=[(500, 4)]),
                   *diff(150, 160, pu=110, bids=[(500, 5)])))
    assert b.in_sync and top(b, "bid") == [(500, 5)] and b.stats()["gaps"] == 0


# ------------------------------------------------------------------ generic venue


def test_generic_absolute_updates_and_clear(book_cls):
    b = book_cls(GENERIC)
    b.apply(events(*diff(0, 0, bids=[(10, 1)])))
    assert b.stats()["rejected_by_reason"] == {"NO_SNAPSHOT": 1} and not b.in_sync
    clear_snap = [ev(F.CLEAR)] + snapshot(0, [(10, 5)], [(12, 5)])
    b.apply(events(*clear_snap, *diff(0, 0, bids=[(11, 2)]), *diff(0, 0, asks=[(12, 0)])))
    assert b.in_sync and top(b, "bid") == [(11, 2), (10, 5)] and top(b, "ask") == []
    b.apply(events(ev(F.CLEAR | F.LAST)))
    assert not b.in_sync and top(b, "bid") == [] and b.state == "WAIT_SNAPSHOT"
    b.apply(events(*diff(0, 0, bids=[(11, 2)])))
    assert top(b, "bid") == []


def test_snapshot_with_clear_flag_on_first_record(book_cls):
    b = book_cls(GENERIC)
    recs = snapshot(0, [(10, 5)], [(12, 5)])
    recs[0] = recs[0][:7] + (recs[0][7] | int(F.CLEAR),) + recs[0][8:]
    b.apply(events(*recs))
    assert b.in_sync and top(b, "bid") == [(10, 5)]


# ------------------------------------------------------------------ crossed / locked


def test_crossed_and_locked_counted(book_cls):
    b = book_cls(SPOT)
    b.apply(events(*snapshot(100, [(1000, 5)], [(1001, 3)])))
    b.apply(events(*diff(101, 101, bids=[(1001, 1)])))
    assert b.crossed and b.stats()["locked"] == 1
    b.apply(events(*diff(102, 102, bids=[(1002, 1)])))
    assert b.crossed and b.stats()["crossed"] == 1
    b.apply(events(*diff(103, 103, bids=[(1002, 0), (1001, 0)])))
    assert not b.crossed


# ------------------------------------------------------------------ bad input


def test_wrong_instrument_rejected(book_cls):
    b = book_cls(SPOT)
    b.apply(events(*snapshot(100, [(1000, 5)], [(1001, 3)], inst_id=7)))
    assert not b.in_sync and b.stats()["rejected_by_reason"] == {"WRONG_INSTRUMENT": 2}


@pytest.mark.parametrize("bad, reason", [
    (ev(F.DEPTH | F.BID | F.LAST, -5, 1, seq=101, seq_first=101), "BAD_PRICE"),
    (ev(F.DEPTH | F.BID | F.LAST, 0, 1, seq=101, seq_first=101), "BAD_PRICE"),
    (ev(F.DEPTH | F.BID | F.LAST, 1000, -1, seq=101, seq_first=101), "NEGATIVE"),
    (ev(F.DEPTH | F.BID | F.ASK | F.LAST, 1000, 1, seq=101, seq_first=101), "BAD_FLAGS"),
    (ev(F.DEPTH | F.SNAPSHOT | F.BID | F.LAST, 1000, 1, seq=101, seq_first=101), "BAD_FLAGS"),
    (ev(F.DEPTH | F.CLEAR | F.LAST, seq=101, seq_first=101), "BAD_FLAGS"),
])
def test_bad_level_in_applied_message_desyncs(book_cls, bad, reason):
    b = book_cls(SPOT)
    b.apply(events(*snapshot(100, [(1000, 5)], [(1001, 3)])))
    good = ev(F.DEPTH | F.ASK, 1005, 1, seq=101, seq_first=101)
    b.apply(events(good, bad))
    s = b.stats()
    assert s["rejected_by_reason"].get(reason) == 1
    assert not b.in_sync and s["desyncs"] == 1
    # recovery: a fresh snapshot re-syncs
    b.apply(events(*snapshot(200, [(1000, 1)], [(1001, 1)])))
    assert b.in_sync and b.stats()["resyncs"] == 1


def test_bad_record_in_buffered_message_is_dropped_whole(book_cls):
    b = book_cls(SPOT)
    b.apply(events(ev(F.DEPTH | F.BID, 1000, 9, seq=102, seq_first=101),
                   ev(F.DEPTH | F.ASK | F.LAST, 1001, -1, seq=102, seq_first=101)))
    assert b.stats()["buffer_pending"] == 0
    b.apply(events(*snapshot(100, [(1000, 5)], [(1001, 3)]), *diff(103, 103, bids=[(1000, 1)])))
    # the dropped 101-102 shows up as the gap it is; nothing of it reached the book
    assert b.stats()["gaps"] == 1 and top(b, "bid") == [(1000, 5)]


def test_trades_and_bbo_pass_through(book_cls):
    b = book_cls(SPOT)
    b.apply(events(ev(F.TRADE | F.BUY | F.LAST, 1000, 1), ev(F.BBO | F.BID, 1000, 1), ev(F.BBO | F.ASK | F.LAST, 1001, 1),
                   ev(F.TRADE | F.BBO | F.LAST, 1, 1), ev(0)))
    s = b.stats()
    assert (s["trades"], s["bbo"]) == (1, 2) and s["rejected_by_reason"] == {"BAD_FLAGS": 2}
    assert top(b, "bid") == []


def test_buffer_overflow_drops_oldest_whole_messages(book_cls):
    b = book_cls(SPOT, buffer_capacity=5)
    stream = diff(91, 92, bids=[(1, 1), (2, 1)]) + diff(93, 94, bids=[(3, 1), (4, 1)]) + diff(95, 96, bids=[(5, 1), (6, 1)])
    b.apply(events(*stream))
    s = b.stats()
    assert s["rejected_by_reason"] == {"BUFFER_OVERFLOW": 2} and s["buffer_pending"] == 4
    b.apply(events(*diff(97, 97, bids=[(7, 1)] * 6)))      # one message larger than the buffer
    # older messages are evicted first (2 + 2 more), then the 6-record message itself is refused
    assert b.stats()["rejected_by_reason"]["BUFFER_OVERFLOW"] == 2 + 2 + 2 + 6
    assert b.stats()["buffer_pending"] == 0


def test_out_of_range_values_never_crash(book_cls):
    b = book_cls(SPOT)
    big = 2 ** 63 - 1
    b.apply(events(*snapshot(100, [(big, big)], [(1, 1)]), *diff(101, 101, bids=[(big - 1, big)])))
    assert b.crossed and b.stats()["crossed"] >= 1
    b.apply(events(*diff(102, 102, bids=[(big, 0), (big - 1, 0)])))
    assert not b.crossed and top(b, "bid") == []


# ------------------------------------------------------------------ views and metrics


def test_float_views(book_cls):
    b = book_cls(SPOT)
    b.apply(events(*snapshot(1, [(6173763, 378826000)], [(6173764, 154698000)])))
    assert b.best_bid() == (61737.63, 3.78826) and b.best_ask() == (61737.64, 1.54698)
    assert b.levels("bid").dtype == np.float64 and b.levels("ask", 0).shape == (0, 2)
    with pytest.raises(ValueError):
        b.levels("buy")
    with pytest.raises(ValueError):
        b.levels("bid", -1)
    assert book_cls(SPOT).best_bid() is None


def test_metrics_by_hand(book_cls):
    inst = of.Instrument("X", venue="binance-spot", tick_size="1", lot_size="1", size_increment="1")
    b = book_cls(inst, imbalance_levels=2, weighted_levels=3, weighted_decay=0.5, depth_levels=2)
    b.apply(events(*snapshot(1, [(100, 4), (99, 2), (98, 8)], [(102, 1), (103, 3), (104, 5)])))
    m = b.metrics()
    assert (m["best_bid"], m["best_ask"], m["bid_qty"], m["ask_qty"]) == (100, 102, 4, 1)
    assert m["mid"] == 101 and m["spread_bps"] == pytest.approx(2 / 101 * 1e4, rel=1e-15)
    assert m["imbalance"] == pytest.approx((6 - 4) / 10)
    assert m["weighted_imbalance"] == pytest.approx(((4 + 1 + 2) - (1 + 1.5 + 1.25)) / ((4 + 1 + 2) + (1 + 1.5 + 1.25)))
    assert (m["depth_bid"], m["depth_ask"]) == (6, 4)
    assert m["stoikov_imbalance"] == pytest.approx(0.8)
    assert m["weighted_mid"] == pytest.approx(100 * 0.2 + 102 * 0.8)


def test_metrics_one_sided(book_cls):
    b = book_cls(SPOT)
    b.apply(events(*snapshot(1, [(100, 4)], [])))
    m = b.metrics()
    assert m["best_bid"] == 1.0 and math.isnan(m["best_ask"]) and math.isnan(m["mid"]) and math.isnan(m["imbalance"])


@pytest.mark.parametrize("kwargs", [dict(buffer_capacity=0), dict(imbalance_levels=0), dict(weighted_decay=0.0),
                                    dict(weighted_decay=1.5), dict(depth_levels=0), dict(window_ticks=0),
                                    dict(window_ticks=32), dict(window_ticks=100), dict(window_ticks=-64),
                                    dict(window_ticks=1 << 25)])
def test_bad_book_parameters(book_cls, kwargs):
    with pytest.raises(ValueError):
        book_cls(SPOT, **kwargs)
