"""Compiled book == pure-Python twin on random snapshot/diff streams (Hypothesis).

Streams mix contiguous diffs with gaps, duplicates and stale ones, snapshots (fresh and old),
deletes of absent levels, zero sizes, repeated prices, CLEARs, trades, BBOs and bad records,
split into random apply() chunks. After every chunk both books must agree on every level,
every counter, the sync state and the metrics.
"""
import math

import numpy as np
from hypothesis import HealthCheck, given, settings, strategies as st

import orpflow as of
from orpflow.reference.book import OrderBook as RefOrderBook
from helpers import ev, with_last

F = of.flags
INSTRUMENTS = {
    "binance-spot": of.Instrument("BTCUSDT", venue="binance-spot", tick_size="0.01", lot_size="0.00001", id=3),
    "binance-usdm": of.Instrument("BTCUSDT", venue="binance-usdm", tick_size="0.1", lot_size="0.001", id=3),
    "generic": of.Instrument("X", venue="generic", tick_size="0.5", lot_size="1", size_increment="1", id=3),
}


@st.composite
def streams(draw):
    venue = draw(st.sampled_from(sorted(INSTRUMENTS)))
    recs = []
    u = draw(st.integers(1, 50))
    level = st.tuples(st.integers(90, 110), st.sampled_from([0, 0, 1, 2, 5, 10**6]))
    for _ in range(draw(st.integers(1, 25))):
        kind = draw(st.sampled_from(["diff"] * 6 + ["snapshot", "old_snapshot", "clear", "trade", "bbo", "bad"]))
        if kind in ("diff",):
            step = draw(st.sampled_from([1, 1, 1, 1, 2, 0, -3]))        # contiguous, gap, duplicate, stale
            U = u + step if step > 0 else u + step - 1
            n = draw(st.integers(0, 3))
            new_u = max(U, U + n - 1) if step > 0 else u + step
            pu = u if step == 1 else u - draw(st.integers(0, 2))
            lv = draw(st.lists(st.tuples(st.sampled_from([F.BID, F.ASK]), level), max_size=5))
            msg = [ev(F.DEPTH | side, p, q, seq=new_u, seq_first=U, seq_prev=pu, instrument=3) for side, (p, q) in lv]
            msg = msg or [ev(F.DEPTH, seq=new_u, seq_first=U, seq_prev=pu, instrument=3)]
            if step > 0:
                u = new_u
        elif kind in ("snapshot", "old_snapshot"):
            lid = u + draw(st.integers(-2, 2)) if kind == "snapshot" else u - draw(st.integers(3, 10))
            bids = draw(st.lists(level, max_size=6))
            asks = draw(st.lists(level, max_size=6))
            msg = [ev(F.SNAPSHOT | F.BID, p, q, seq=lid, instrument=3) for p, q in bids]
            msg += [ev(F.SNAPSHOT | F.ASK, p, q, seq=lid, instrument=3) for p, q in asks]
            msg = msg or [ev(F.SNAPSHOT, seq=lid, instrument=3)]
            if draw(st.booleans()):
                msg.insert(0, ev(F.CLEAR, instrument=3))
        elif kind == "clear":
            msg = [ev(F.CLEAR, instrument=3)]
        elif kind == "trade":
            msg = [ev(F.TRADE | F.BUY, 100, 1, seq=u, instrument=3)]
        elif kind == "bbo":
            # at the book's own update id: checked against its top (sometimes equal, often not)
            (bp, bq), (ap, aq) = draw(level), draw(level)
            msg = [ev(F.BBO | F.BID, bp, bq, seq=u, instrument=3), ev(F.BBO | F.ASK, ap, aq, seq=u, instrument=3)]
        else:
            bad = draw(st.sampled_from([
                ev(F.DEPTH | F.BID, -1, 1, seq=u + 1, seq_first=u + 1, seq_prev=u, instrument=3),
                ev(F.DEPTH | F.ASK, 100, -7, seq=u + 1, seq_first=u + 1, seq_prev=u, instrument=3),
                ev(F.DEPTH | F.BID | F.ASK, 100, 1, seq=u + 1, seq_first=u + 1, seq_prev=u, instrument=3),
                ev(F.DEPTH | F.SNAPSHOT, 100, 1, seq=u, instrument=3),
                ev(F.DEPTH | F.BID, 100, 1, seq=u + 1, seq_first=u + 1, seq_prev=u, instrument=4),
                ev(0, instrument=3),
            ]))
            msg = [bad]
            if draw(st.booleans()):       # bad record inside an otherwise good message
                msg = [ev(F.DEPTH | F.BID, 100, 3, seq=u + 1, seq_first=u + 1, seq_prev=u, instrument=3), bad]
        if draw(st.integers(0, 20)) > 0:       # rarely: an unterminated message
            msg = with_last(msg)
        recs += msg
    arr = np.array(recs, dtype=of.EVENT_DTYPE)
    cuts = sorted(set(draw(st.lists(st.integers(0, len(arr)), max_size=6))))
    capacity = draw(st.sampled_from([3, 8, 65536]))
    return venue, arr, cuts, capacity


def assert_same(a, b):
    assert a.stats() == b.stats()
    for side in ("bid", "ask"):
        assert a.levels_raw(side).tolist() == b.levels_raw(side).tolist(), side
    assert (a.in_sync, a.state, a.last_update_id, a.crossed, a.depth()) == \
           (b.in_sync, b.state, b.last_update_id, b.crossed, b.depth())
    ma, mb = a.metrics(), b.metrics()
    assert ma.keys() == mb.keys()
    for k in ma:
        x, y = ma[k], mb[k]
        assert (math.isnan(x) and math.isnan(y)) or x == y or math.isclose(x, y, rel_tol=1e-12), (k, x, y)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(streams())
def test_compiled_equals_reference(stream):
    venue, arr, cuts, capacity = stream
    inst = INSTRUMENTS[venue]
    compiled = of.OrderBook(inst, buffer_capacity=capacity)
    reference = RefOrderBook(inst, buffer_capacity=capacity)
    start = 0
    for end in cuts + [len(arr)]:
        chunk = arr[start:end]
        assert compiled.apply(chunk) == reference.apply(chunk)
        assert_same(compiled, reference)
        start = end
