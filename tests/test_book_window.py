"""The price window: each side holds the levels near its best in a dense array indexed by tick,
the rest in an exact sorted structure, and the window follows the best. It must change speed
only, never contents. Windows here are small (64-256 ticks) so that every stream crosses them:
prices that jump far outside, books far deeper than the window, the best walking up and down
while it is deleted under it, prices at the ends of int64. Compared with the pure-Python twin
(Hypothesis) and with a plain dict (seeded walks), with every structural invariant checked."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import orpflow as of
from orpflow.reference.book import OrderBook as RefOrderBook
from helpers import SAMPLE, SPOT, USDM, ev, shared_file, stress, with_last
from test_book_differential import assert_same

F = of.flags
TOP = 2**63 - 1


def _msg(kind, seq, levels):
    recs = [ev(kind | side, p, q, seq=seq, seq_first=seq) for side, p, q in levels]
    return with_last(recs or [ev(kind, seq=seq, seq_first=seq)])


def _arr(recs):
    return np.array(recs, dtype=of.EVENT_DTYPE)


@st.composite
def window_streams(draw):
    """A snapshot then diffs around a mid that walks and jumps; deletes aimed at the current
    best; sometimes a new snapshot or a CLEAR. Prices stay in [1, 2**63 - 1]."""
    window = draw(st.sampled_from([64, 128, 256]))
    mid = draw(st.sampled_from([5_000, 1_000_000, 10**12, TOP - 10**6]))
    book = {F.BID: {}, F.ASK: {}}
    dist = st.one_of(st.integers(0, 40), st.integers(0, 3 * window), st.integers(window, 20 * window),
                     st.integers(10**5, 10**9))
    qty = st.sampled_from([0, 1, 2, 7, 10**6])

    def price(side, d):
        return max(1, min(TOP, mid - d if side == F.BID else mid + 1 + d))

    def levels(n):
        out = []
        for _ in range(n):
            side = draw(st.sampled_from([F.BID, F.ASK]))
            out.append((side, price(side, draw(dist)), draw(qty)))
        return out

    u = 10
    snap = levels(draw(st.integers(0, 60)))
    recs = _msg(F.SNAPSHOT, u, snap)
    for side, p, q in snap:
        book[side][p] = q
    for _ in range(draw(st.integers(1, 50))):
        kind = draw(st.sampled_from(["diff"] * 5 + ["walk", "jump", "kill_best", "snapshot", "clear"]))
        if kind == "walk":
            mid = max(10, min(TOP - 10, mid + draw(st.integers(-2 * window, 2 * window))))
            kind = "diff"
        elif kind == "jump":
            mid = draw(st.sampled_from([50, 10**9, mid + 10**7, max(50, mid - 10**7), TOP - 5]))
            kind = "diff"
        if kind == "diff":
            lv = levels(draw(st.integers(0, 8)))
        elif kind == "kill_best":      # delete the best levels one after another: the window moves down
            side = draw(st.sampled_from([F.BID, F.ASK]))
            live = sorted((p for p, q in book[side].items() if q), reverse=side == F.BID)
            lv = [(side, p, 0) for p in live[:draw(st.integers(1, 20))]]
        elif kind == "snapshot":
            u += 1
            lv = levels(draw(st.integers(0, 40)))
            recs += _msg(F.SNAPSHOT, u, lv)
            book = {F.BID: {}, F.ASK: {}}
            for side, p, q in lv:
                book[side][p] = q
            continue
        else:   # a CLEAR, then a snapshot so the stream goes on
            recs += with_last([ev(F.CLEAR)])
            u += 1
            recs += _msg(F.SNAPSHOT, u, [])
            book = {F.BID: {}, F.ASK: {}}
            continue
        u += 1
        recs += _msg(F.DEPTH, u, lv)
        for side, p, q in lv:
            book[side][p] = q
    arr = _arr(recs)
    cuts = sorted(set(draw(st.lists(st.integers(0, len(arr)), max_size=5))))
    return window, arr, cuts


@settings(max_examples=stress(400), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(window_streams())
def test_small_windows_equal_the_twin(stream):
    window, arr, cuts = stream
    a, b = of.OrderBook(SPOT, window_ticks=window), RefOrderBook(SPOT, window_ticks=window)
    for chunk in np.split(arr, cuts):
        assert a.apply(chunk) == b.apply(chunk)
        a._check()
        assert_same(a, b)      # metrics(): the top levels are tracked from here on


def _walk(book, ops, start_u):
    u = start_u
    for i in range(0, len(ops), 50):        # 50 level updates per message
        u += 1
        book.apply(_arr(_msg(F.DEPTH, u, ops[i:i + 50])))
    return u


def _truth_apply(truth, ops):
    for side, p, q in ops:
        if q:
            truth[side][p] = q
        else:
            truth[side].pop(p, None)


def _assert_truth(book, truth):
    book._check()           # includes the tracked top levels, once metrics() started them
    book.metrics()
    for side, name in ((F.BID, "bid"), (F.ASK, "ask")):
        expected = sorted(truth[side].items(), reverse=side == F.BID)
        assert [tuple(x) for x in book.levels_raw(name).tolist()] == expected, name


def test_recentring_under_fire_against_a_dict():
    """A market that trends up, crashes and recovers, with the best deleted under the window
    again and again and deep levels all the way down; window 64 ticks."""
    rng = np.random.default_rng(11)
    book = of.OrderBook(SPOT, window_ticks=64)
    book.apply(_arr(_msg(F.SNAPSHOT, 1, [])))
    truth = {F.BID: {}, F.ASK: {}}
    u, mid = 1, 1_000_000
    path = list(np.linspace(0, 5_000, 40)) + list(np.linspace(5_000, -20_000, 40)) + list(np.linspace(-20_000, 0, 40))
    for step in path:
        m = mid + int(step)
        ops = []
        for _ in range(stress(300)):
            side = F.BID if rng.random() < 0.5 else F.ASK
            d = int(rng.choice([rng.integers(0, 30), rng.integers(0, 500), rng.integers(0, 100_000)]))
            p = m - d if side == F.BID else m + 1 + d
            ops.append((side, p, int(rng.choice([0, 0, 1, 3, 8]))))
        for side in (F.BID, F.ASK):      # knock out the top levels of each side
            live = sorted(truth[side], reverse=side == F.BID)[:int(rng.integers(0, 15))]
            ops += [(side, p, 0) for p in live]
        u = _walk(book, ops, u)
        _truth_apply(truth, ops)
        _assert_truth(book, truth)
    lay = book.layout()
    assert lay["bid"]["recentres"] > 10 and lay["ask"]["recentres"] > 10, lay
    assert lay["bid"]["far_levels"] > 0 and lay["ask"]["far_levels"] > 0, lay


def test_huge_book_with_a_small_window():
    """200,000 levels a side in the snapshot, 64 in the window; then the whole book is eaten
    from the top, one best level at a time, so every level passes through the window."""
    n = stress(200_000)
    bids = [(F.BID, p, 1 + p % 7) for p in range(10**6, 10**6 - n, -1)]
    asks = [(F.ASK, p, 1 + p % 5) for p in range(10**6 + 1, 10**6 + 1 + n)]
    book = of.OrderBook(SPOT, window_ticks=64)
    book.apply(_arr(_msg(F.SNAPSHOT, 1, bids + asks)))
    truth = {F.BID: {p: q for _, p, q in bids}, F.ASK: {p: q for _, p, q in asks}}
    _assert_truth(book, truth)
    assert book.layout()["bid"]["window_levels"] <= 64
    eat = [(F.BID, p, 0) for _, p, _ in bids[:n // 2]] + [(F.ASK, p, 0) for _, p, _ in asks[:n // 3]]
    _walk(book, eat, 1)
    _truth_apply(truth, eat)
    _assert_truth(book, truth)
    assert book.best_bid()[0] == pytest.approx((10**6 - n // 2) * 0.01)


@pytest.mark.parametrize("window", [64, 32768])
def test_prices_at_the_ends_of_int64(window):
    book = of.OrderBook(SPOT, window_ticks=window)
    book.apply(_arr(_msg(F.SNAPSHOT, 1, [(F.BID, TOP, 1), (F.BID, TOP - 1, 2), (F.ASK, TOP, 3), (F.ASK, 1, 4)])))
    truth = {F.BID: {TOP: 1, TOP - 1: 2}, F.ASK: {TOP: 3, 1: 4}}
    _assert_truth(book, truth)
    ops = [(F.BID, 1, 5), (F.BID, 2, 6), (F.ASK, TOP - 1, 7), (F.BID, TOP, 0), (F.BID, TOP - 1, 0),
           (F.ASK, 1, 0), (F.BID, TOP - 70, 8), (F.ASK, 2, 9), (F.ASK, 2, 0), (F.BID, 2, 0), (F.BID, 1, 0)]
    u = 1
    for op in ops:      # one message each: the state is checked after every move of the window
        u = _walk(book, [op], u)
        _truth_apply(truth, [op])
        _assert_truth(book, truth)


@pytest.mark.parametrize("name,inst", [("binance/spot_btcusdt_20240808.gz", SPOT),
                                       ("binance/usdm_btcusdt_20240808.gz", USDM)])
def test_real_recordings_same_book_whatever_the_window(name, inst):
    """Real diffs land thousands of ticks below the best: with a 64-tick window most of them
    go to the far levels and the window moves all the time. Every window gives the same book
    at every chunk boundary, the venue's best bid/ask check passes, and the window moved."""
    events = of.read_binance(shared_file(*name.split("/")), inst)
    books = {w: of.OrderBook(inst, window_ticks=w) for w in (64, 1024, 32768)}
    for chunk in np.array_split(events, 40):
        for bk in books.values():
            bk.apply(chunk)
        ref = books[32768]
        ref._check()
        for w, bk in books.items():
            bk._check()
            assert bk.stats() == ref.stats(), w
            for side in ("bid", "ask"):
                assert np.array_equal(bk.levels_raw(side), ref.levels_raw(side)), (w, side)
    st_ = books[64].stats()
    assert st_["bbo_checked"] > 100 and st_["bbo_mismatched"] == 0 and st_["gaps"] == 0
    assert books[64].layout()["bid"]["recentres"] > 0


def test_bundled_sample_same_book_whatever_the_window():
    events = of.read_binance(SAMPLE, SPOT)
    a, b = of.OrderBook(SPOT, window_ticks=64), RefOrderBook(SPOT)
    for chunk in np.array_split(events, 25):
        assert a.apply(chunk) == b.apply(chunk)
        a._check()
        assert_same(a, b)
    assert a.stats()["bbo_checked"] > 0 and a.stats()["bbo_mismatched"] == 0
    assert a.layout()["bid"]["recentres"] > 0
