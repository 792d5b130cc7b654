"""Deep books: thousands of levels, so the blocked side structure splits, merges and empties
blocks. Compiled book vs the reference twin (Hypothesis) and vs a plain dict (seeded walks)."""
import numpy as np
from hypothesis import given, settings, strategies as st

import orpflow as of
from orpflow.reference.book import OrderBook as RefOrderBook
from helpers import SPOT, ev, with_last
from test_book_differential import assert_same

F = of.flags


def _message(kind, seq, levels, U=0):
    recs = [ev(kind | (F.BID if side == 0 else F.ASK), p, q, seq=seq, seq_first=U) for side, p, q in levels]
    recs = recs or [ev(kind, seq=seq, seq_first=U)]
    return with_last(recs)


@st.composite
def deep_streams(draw):
    price = st.integers(1, 3000)
    snap = draw(st.lists(st.tuples(st.integers(0, 1), price, st.integers(0, 5)), max_size=600))
    recs = _message(F.SNAPSHOT, 100, snap)
    u = 100
    for _ in range(draw(st.integers(0, 120))):
        if draw(st.integers(0, 9)) == 0:      # clear a price range: drains blocks, forces merges
            side, lo, width = draw(st.integers(0, 1)), draw(price), draw(st.integers(20, 400))
            lv = [(side, p, 0) for p in range(lo, lo + width)]
        else:
            lv = draw(st.lists(st.tuples(st.integers(0, 1), price, st.sampled_from([0, 0, 0, 1, 2, 3])), max_size=40))
        recs += _message(F.DEPTH, u + 1, lv, U=u + 1)
        u += 1
    return np.array(recs, dtype=of.EVENT_DTYPE)


@settings(max_examples=150, deadline=None)
@given(deep_streams())
def test_deep_book_equals_reference(arr):
    a, b = of.OrderBook(SPOT), RefOrderBook(SPOT)
    for chunk in np.array_split(arr, 4):
        assert a.apply(chunk) == b.apply(chunk)
        for side in ("bid", "ask"):
            assert a.levels_raw(side).tolist() == b.levels_raw(side).tolist()
        assert_same(a, b)


def _walk(book, ops, side_flag, start_u, truth):
    """Apply (price, qty) ops one per message to one side; mirror them in the dict `truth`."""
    u = start_u
    for p, q in ops:
        u += 1
        book.apply(np.array([ev(F.DEPTH | side_flag | F.LAST, p, q, seq=u, seq_first=u)], dtype=of.EVENT_DTYPE))
        if q:
            truth[p] = q
        else:
            truth.pop(p, None)
    return u


def test_seeded_walks_through_splits_merges_and_empties():
    rng = np.random.default_rng(7)
    book = of.OrderBook(SPOT)
    book.apply(np.array(_message(F.SNAPSHOT, 1, []), dtype=of.EVENT_DTYPE))
    u = 1
    bids = {}
    patterns = [
        [(p, 1) for p in range(1, 5001)],                    # ascending inserts: splits at the top
        [(p, 2) for p in range(10000, 5000, -1)],            # descending inserts: splits at the bottom
        [(p, 0) for p in range(1, 10001, 2)],                # delete every other level: merges
        [(int(p), int(q)) for p, q in zip(rng.integers(1, 10001, 20000), rng.choice([0, 0, 1, 5], 20000))],
        [(p, 0) for p in range(1, 10001)],                   # delete everything: empty blocks released
        [(int(p), 3) for p in rng.permutation(np.arange(1, 3001))],   # rebuild in random order
    ]
    for ops in patterns:
        u = _walk(book, ops, F.BID, u, bids)
        expected = sorted(bids.items(), reverse=True)
        assert [tuple(x) for x in book.levels_raw("bid").tolist()] == expected
        assert book.depth() == (len(expected), 0)
        assert book.in_sync and book.stats()["gaps"] == 0
