"""Feature formulas on hand-built streams, for the compiled core and the twin alike.

Each expectation is computed by hand from the formula in docs/features.md; OFI uses the
golden vectors of Cont, Kukanov & Stoikov (2014) from the issue.
"""
import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import orpflow as of
from orpflow.reference import features as ref_features
from orpflow.reference.features import ofi_contribution
from helpers import ev, events, with_last
from test_features_differential import assert_same_rows

F = of.flags
MS = 1_000_000
# tick 0.01, sizes in whole units: a size of 5 is 5.0
GEN = of.Instrument("X", venue="generic", tick_size="0.01", lot_size="1", size_increment="1")


@pytest.fixture(params=["reference", "compiled"])
def compute(request):
    return ref_features.compute_features if request.param == "reference" else of.compute_features


def snapshot(bids, asks, t=0, seq=1):
    recs = [ev(F.SNAPSHOT | F.BID, p, q, seq=seq, ts_exch=t) for p, q in bids]
    recs += [ev(F.SNAPSHOT | F.ASK, p, q, seq=seq, ts_exch=t) for p, q in asks]
    return with_last(recs)


def diff(levels, t=0, seq=2):
    """levels: (side, price ticks, size) with size 0 deleting the level."""
    recs = [ev(F.DEPTH | (F.BID if s == "b" else F.ASK), p, q, seq=seq, seq_first=seq, ts_exch=t)
            for s, p, q in levels]
    return with_last(recs)


def trade(price, qty, side, t=0, seq=7):
    return ev(F.TRADE | F.LAST | (F.BUY if side > 0 else F.SELL if side < 0 else 0), price, qty,
              seq=seq, ts_exch=t)


def rows(compute, *messages, config=None):
    recs = []
    for m in messages:
        recs += m if isinstance(m, list) else [m]
    return compute(events(*recs), GEN, config)


BASE = snapshot([(10000, 5)], [(10002, 7)])

OFI_GOLDEN = [
    ("bid size up", [("b", 10000, 8)], 3.0),
    ("bid price up", [("b", 10001, 2)], 2.0),
    ("bid price down", [("b", 10000, 0), ("b", 9999, 4)], -5.0),
    ("ask price down", [("a", 10001, 3)], -3.0),
    ("ask price up", [("a", 10002, 0), ("a", 10003, 9)], 7.0),
    ("ask size down", [("a", 10002, 4)], 3.0),
    ("unchanged best", [("b", 9990, 4)], 0.0),
]


@pytest.mark.parametrize("name,change,expected", OFI_GOLDEN, ids=[g[0] for g in OFI_GOLDEN])
def test_ofi_golden_vectors(compute, name, change, expected):
    f = rows(compute, BASE, diff(change))
    assert math.isnan(f["ofi"][0])              # no previous quote: undefined, not 0
    assert f["ofi"][1] == expected


@given(st.lists(st.integers(1, 4), min_size=4, max_size=4),
       st.lists(st.integers(1, 9), min_size=4, max_size=4))
def test_ofi_is_antisymmetric_under_the_bid_ask_mirror(px, q):
    """Mirroring prices (p -> -p) and swapping sides negates e_n."""
    pb0, pa0 = 100 - px[0], 100 + px[1]
    pb, pa = 100 - px[2], 100 + px[3]
    e = ofi_contribution(pb, q[0], pa, q[1], pb0, q[2], pa0, q[3])
    mirrored = ofi_contribution(-pa, q[1], -pb, q[0], -pa0, q[3], -pb0, q[2])
    assert mirrored == -e


def mirror(arr, centre=20000):
    """The same stream with every book level mirrored around `centre` ticks, sides swapped."""
    out = arr.copy()
    book = (out["flags"] & (F.DEPTH | F.SNAPSHOT)) != 0
    side = out["flags"] & (F.BID | F.ASK)
    out["flags"] = np.where(book, (out["flags"] & ~np.uint32(F.BID | F.ASK))
                            | np.where(side == F.BID, np.uint32(F.ASK), np.uint32(F.BID)), out["flags"])
    out["price"] = np.where(book, 2 * centre - out["price"], out["price"])
    return out


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.tuples(st.sampled_from("ba"), st.integers(19990, 20010), st.integers(0, 6)),
                         min_size=1, max_size=4), min_size=1, max_size=12))
def test_book_features_flip_sign_under_the_mirror(msgs):
    stream = [snapshot([(19995, 3), (19994, 1)], [(20005, 2), (20007, 4)])]
    stream += [diff(m, t=i, seq=i + 2) for i, m in enumerate(msgs)]
    arr = events(*[r for m in stream for r in m])
    a = of.compute_features(arr, GEN)
    b = of.compute_features(mirror(arr), GEN)
    ok = a["book_ok"] == 1
    assert (ok == (b["book_ok"] == 1)).all()
    for name in ("imbalance", "weighted_imbalance", "book_pressure", "ofi"):
        np.testing.assert_allclose(b[name][ok], -a[name][ok], rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(b["depth_ratio"][ok], 1 / a["depth_ratio"][ok], rtol=1e-12)
    np.testing.assert_allclose(b["mid"][ok], 400.0 - a["mid"][ok], rtol=1e-12)


def test_book_state_formulas(compute):
    bids = [(10000 - i, i + 1) for i in range(25)]          # sizes 1..25 down the book
    asks = [(10002 + i, 2 * (i + 1)) for i in range(25)]    # sizes 2..50
    f = rows(compute, snapshot(bids, asks))[0]
    qb = np.arange(1, 26, dtype=float)
    qa = 2 * qb
    assert f["book_ok"] == 1
    assert f["mid"] == pytest.approx(100.01, rel=1e-15)
    assert f["spread_bps"] == pytest.approx(0.02 / 100.01 * 1e4, rel=1e-12)
    assert f["imbalance"] == (15 - 30) / (15 + 30)
    w = 0.9 ** np.arange(10)
    assert f["weighted_imbalance"] == pytest.approx((w @ qb[:10] - w @ qa[:10]) / (w @ qb[:10] + w @ qa[:10]), rel=1e-14)
    assert f["depth_ratio"] == qb[:20].sum() / qa[:20].sum()
    pb = sum(qb[i] / (i + 1) for i in range(5))
    pa = sum(qa[i] / (i + 1) for i in range(5))
    assert f["bid_pressure"] == pytest.approx(pb) and f["ask_pressure"] == pytest.approx(pa)
    assert f["book_pressure"] == pytest.approx((pb - pa) / (pb + pa))
    i1 = 1 / (1 + 2)
    assert f["weighted_mid"] == pytest.approx(100.00 * (1 - i1) + 100.02 * i1, rel=1e-15)


def test_exact_zero_imbalance_is_zero_not_missing(compute):
    f = rows(compute, snapshot([(10000, 4)], [(10001, 4)]))[0]
    assert f["imbalance"] == 0.0 and f["weighted_imbalance"] == 0.0 and f["book_pressure"] == 0.0


def test_empty_side_makes_book_features_nan(compute):
    f = rows(compute, snapshot([(10000, 4)], []), trade(10000, 1, 1, t=5))
    assert f["book_ok"].tolist() == [0, 0]
    for name in of.FEATURE_NAMES[:15]:
        assert np.isnan(f[name]).all(), name
    assert f["vwap"][1] == 100.0              # trades do not need the book


def test_out_of_sync_book_gives_nan_then_recovers():
    """A Binance diff gap: rows continue, book features are NaN until a snapshot re-syncs."""
    inst = of.Instrument("BTCUSDT", venue="binance-spot", tick_size="0.01", lot_size="0.00001")
    snap = [ev(F.SNAPSHOT | F.BID, 100, 5, seq=10), ev(F.SNAPSHOT | F.ASK | F.LAST, 102, 5, seq=10)]
    d1 = [ev(F.DEPTH | F.BID | F.LAST, 100, 6, seq=11, seq_first=11)]
    gap = [ev(F.DEPTH | F.BID | F.LAST, 100, 7, seq=15, seq_first=14)]
    resnap = [ev(F.SNAPSHOT | F.BID, 100, 8, seq=20), ev(F.SNAPSHOT | F.ASK | F.LAST, 102, 5, seq=20)]
    for compute in (of.compute_features, ref_features.compute_features):
        f = compute(events(*snap, *d1, *gap, *resnap), inst)
        assert f["book_ok"].tolist() == [1, 1, 0, 1]
        assert f["seq"].tolist() == [10, 11, 15, 20]
        assert np.isnan(f["imbalance"][2]) and np.isnan(f["ofi"][2])
        assert math.isnan(f["ofi"][3])        # the quote history restarts after a gap


def test_trade_row_carries_book_state_and_zero_ofi(compute):
    f = rows(compute, BASE, diff([("b", 10000, 8)]), trade(10001, 2, 1, t=3))
    assert f["kind"].tolist() == [0, 0, 1]
    assert f["imbalance"][2] == f["imbalance"][1]
    assert f["ofi"][2] == 0.0                 # a trade leaves the quotes unchanged: e_n = 0
    assert f["seq"][2] == 7


def book_at(t, bid_size, seq):
    return diff([("b", 10000, bid_size)], t=t, seq=seq)


def test_count_based_history_windows(compute):
    """Mid walks up one tick per message; imbalance steps; every window by hand."""
    cfg = of.FeatureConfig(volatility_window=4, zscore_window=5, zscore_min_history=3,
                           momentum_window=3, imbalance_momentum_window=3)
    msgs = [snapshot([(10000, 1)], [(10002, 1)])]
    mids, imbs = [100.01], [0.0]
    for i in range(1, 9):
        bid, ask, qb = 10000 + i, 10002 + i, 1 + i % 3
        msgs.append(diff([("b", bid - 1, 0), ("b", bid, qb), ("a", ask - 1, 0), ("a", ask, 1)],
                         t=i, seq=i + 1))
        mids.append((bid + ask) / 200)
        imbs.append((qb - 1) / (qb + 1))
    f = rows(compute, *msgs, config=cfg)
    mid2 = [20002 + 2 * i for i in range(9)]
    rets = [math.log(mid2[i] / mid2[i - 1]) for i in range(1, 9)]
    vols = []
    for k in range(9):
        assert f["mid"][k] == pytest.approx(mids[k], rel=1e-15)
        if k >= 3:
            vol = float(np.std(rets[k - 3:k]))
            vols.append(vol)
            assert f["volatility"][k] == pytest.approx(vol, rel=1e-9)
            if len(vols) >= 3:
                win = vols[-5:]
                z = (vol - np.mean(win)) / max(np.std(win), 1e-4)
                assert f["volatility_z"][k] == pytest.approx(z, rel=1e-6, abs=1e-9)
            else:
                assert np.isnan(f["volatility_z"][k])
        else:
            assert np.isnan(f["volatility"][k])
        if k >= 2:
            assert f["momentum"][k] == pytest.approx((mids[k] - mids[k - 2]) / mids[k - 2], rel=1e-12)
            slope = np.polyfit(np.arange(3), imbs[k - 2:k + 1], 1)[0]
            assert f["imbalance_momentum"][k] == pytest.approx(slope, abs=1e-12)
            win = imbs[max(0, k - 4):k + 1]
            z = (imbs[k] - np.mean(win)) / max(np.std(win), 0.001)
            assert f["imbalance_z"][k] == pytest.approx(z, rel=1e-9, abs=1e-12)
        else:
            assert np.isnan(f["momentum"][k]) and np.isnan(f["imbalance_momentum"][k])
            assert np.isnan(f["imbalance_z"][k])


def test_flat_history_is_exactly_zero(compute):
    cfg = of.FeatureConfig(volatility_window=3, zscore_min_history=1, momentum_window=2,
                           imbalance_momentum_window=4)
    msgs = [snapshot([(10000, 3)], [(10002, 3)])] + [book_at(i, 3, i + 1) for i in range(1, 8)]
    f = rows(compute, *msgs, config=cfg)
    assert f["volatility"][-1] == 0.0 and f["momentum"][-1] == 0.0
    assert f["imbalance_momentum"][-1] == 0.0 and f["imbalance_z"][-1] == 0.0


def test_trade_windows_vwap_flow_and_eviction(compute):
    cfg = of.FeatureConfig(window_ms=1000)
    f = rows(compute, BASE,
             trade(10000, 2, +1, t=0), trade(10010, 1, -1, t=500 * MS),
             trade(10020, 3, +1, t=1000 * MS), trade(10030, 1, 0, t=1600 * MS), config=cfg)
    # rows: snapshot, then four trades; window (t - 1 s, t]
    assert f["vwap"][1] == 100.00 and f["trade_flow"][1] == 1.0
    assert f["vwap"][2] == pytest.approx((10000 * 2 + 10010) / 3 / 100, rel=1e-15)
    assert f["trade_flow"][2] == pytest.approx(1 / 3, rel=1e-15)
    # at 1.0 s the trade at 0 s has left the window (left edge excluded)
    assert f["vwap"][3] == pytest.approx((10010 + 10020 * 3) / 4 / 100, rel=1e-15)
    assert f["trade_flow"][3] == pytest.approx((3 - 1) / 4, rel=1e-15)
    # unknown aggressor counts in volume, in neither side
    assert f["trade_flow"][4] == pytest.approx(3 / 4, rel=1e-15)


def test_volume_surge(compute):
    cfg = of.FeatureConfig(window_ms=1000, volume_surge_windows=4)
    t = [0, 1000 * MS, 2000 * MS, 3500 * MS, 5200 * MS]
    q = [1, 1, 2, 6, 1]
    f = rows(compute, *[trade(10000, qi, 1, t=ti) for qi, ti in zip(q, t)], config=cfg)
    assert np.isnan(f["volume_surge"][0])                  # less than one window observed
    # at 1 s: window (0, 1 s] holds 1; the observed 1 s holds 2 (both) -> mean per W = 2
    assert f["volume_surge"][1] == pytest.approx(1 / 2)
    # at 3.5 s: lookback 3.5 s holds q at 0 .. 3.5 s = 10; window (2.5, 3.5] holds 6
    assert f["volume_surge"][3] == pytest.approx(6 / (10 * 1 / 3.5))
    # at 5.2 s: lookback is capped at 4 W: (1.2, 5.2] holds 2 + 6 + 1 = 9, window holds 1
    assert f["volume_surge"][4] == pytest.approx(1 / (9 / 4))


def test_vpin_splits_trades_exactly_across_buckets(compute):
    cfg = of.FeatureConfig(vpin_bucket_volume=10, vpin_buckets=3)
    f = rows(compute, trade(10000, 15, +1, t=1), trade(10000, 10, -1, t=2),
             trade(10000, 35, -1, t=3), trade(10000, 4, 0, t=4), config=cfg)
    # buckets: [B10] |10|, [B5 S5] 0, then S35 -> [S10] 10, [S10] 10, [S10] 10, +5 open
    assert np.isnan(f["toxicity"][0]) and np.isnan(f["toxicity"][1])
    assert f["toxicity"][2] == pytest.approx((10 + 10 + 10) / 30)   # last 3 buckets
    assert f["toxicity"][3] == f["toxicity"][2]                    # bucket still open


def test_vpin_last_bucket_mixes_sides(compute):
    cfg = of.FeatureConfig(vpin_bucket_volume=10, vpin_buckets=2)
    f = rows(compute, trade(10000, 25, +1, t=1), trade(10000, 5, -1, t=2), config=cfg)
    assert f["toxicity"][0] == 1.0                      # two full buy buckets
    assert f["toxicity"][1] == pytest.approx((10 + 0) / 20)   # [B5 S5] closes: |0|


def test_imbalance_twa_ofi_window_and_acceleration(compute):
    cfg = of.FeatureConfig(window_ms=1000)
    # imbalance: 0 from t=0, then (3-1)/(3+1)=0.5 from 400 ms, then -0.5 from 900 ms
    msgs = [snapshot([(10000, 1)], [(10002, 1)], t=0),
            diff([("b", 10000, 3)], t=400 * MS, seq=2),
            diff([("b", 10000, 1), ("a", 10002, 3)], t=900 * MS, seq=3),
            diff([("b", 10001, 1), ("b", 10000, 0), ("a", 10003, 3), ("a", 10002, 0)], t=1500 * MS, seq=4)]
    f = rows(compute, *msgs, config=cfg)
    assert np.isnan(f["imbalance_twa"][0])                   # no time elapsed yet
    assert f["imbalance_twa"][1] == 0.0                      # 400 ms of 0
    assert f["imbalance_twa"][2] == pytest.approx((0 * 400 + 0.5 * 500) / 900)
    # at 1.5 s the window [0.5, 1.5]: 0.5 for 400 ms, -0.5 for 600 ms
    assert f["imbalance_twa"][3] == pytest.approx((0.5 * 400 - 0.5 * 600) / 1000)
    # OFI: +2 at 400 ms, -2 - 2 = ... computed by the formula; window sums what is inside
    e = [None, 2, ofi_contribution(10000, 1, 10002, 3, 10000, 3, 10002, 1),
         ofi_contribution(10001, 1, 10003, 3, 10000, 1, 10002, 3)]
    assert f["ofi"][1] == e[1] and f["ofi"][2] == e[2] and f["ofi"][3] == e[3]
    assert f["ofi_window"][2] == e[1] + e[2]
    assert f["ofi_window"][3] == e[2] + e[3]                  # the 400 ms row has left
    # acceleration at 1.5 s: mid(t)=100.02, mid(1.0 s)=100.01, mid(0.5 s)=100.01
    assert f["price_acceleration"][3] == pytest.approx(math.log(100.02 / 100.01) - math.log(1.0), rel=1e-12)
    assert np.isnan(f["price_acceleration"][2])              # less than W of history


def test_feature_groups_switch_off(compute):
    msgs = [BASE, diff([("b", 10000, 8)], t=MS), trade(10000, 1, 1, t=2 * MS)]
    full = rows(compute, *msgs, config=of.FeatureConfig(vpin_bucket_volume=1))
    for group in ("book", "history", "trades", "windows", "toxicity"):
        keep = tuple(g for g in of.config.FEATURE_GROUPS if g != group)
        f = rows(compute, *msgs, config=of.FeatureConfig(groups=keep, vpin_bucket_volume=1))
        for name in of.FEATURE_NAMES:
            if of.features.FEATURE_GROUP[name] == group:
                assert np.isnan(f[name]).all(), name
            else:
                np.testing.assert_array_equal(f[name], full[name], err_msg=name)
        assert (f["book_ok"] == full["book_ok"]).all()


def test_bad_trades_are_skipped_and_counted():
    recs = [trade(10000, 0, 1, t=1), trade(-5, 1, 1, t=2),
            ev(F.TRADE | F.BUY | F.SELL | F.LAST, 10000, 1, ts_exch=3),
            ev(F.TRADE | F.BUY | F.LAST, 10000, 1, ts_exch=4, instrument=9),
            trade(10000, 2, 1, t=5)]
    runner = of.FeatureRunner(GEN)
    f = runner.run(events(*recs))
    assert len(f) == 1 and f["vwap"][0] == 100.0
    assert runner.stats()["bad_trades"] == 4
    assert len(ref_features.compute_features(events(*recs), GEN)) == 1


def test_time_going_backwards_does_not_reopen_windows(compute):
    cfg = of.FeatureConfig(window_ms=1000)
    f = rows(compute, trade(10000, 1, 1, t=2000 * MS), trade(10010, 1, 1, t=500 * MS),
             trade(10020, 1, -1, t=2500 * MS), config=cfg)
    # the late trade is stamped with the running clock (2 s): it stays in the window
    assert f["ts_exch"].tolist() == [2000 * MS, 500 * MS, 2500 * MS]
    assert f["vwap"][2] == pytest.approx((10000 + 10010 + 10020) / 3 / 100)


def test_runner_in_pieces_equals_one_run():
    arr = events(*BASE, *diff([("b", 10000, 8)], t=MS), trade(10000, 1, 1, t=2 * MS),
                 *diff([("a", 10001, 2)], t=3 * MS, seq=3), trade(10001, 1, -1, t=4 * MS))
    whole = of.compute_features(arr, GEN)
    runner = of.FeatureRunner(GEN)
    parts = np.concatenate([runner.run(arr[:3]), runner.run(arr[3:5]), runner.run(arr[5:])])
    assert parts.tobytes() == whole.tobytes()


@pytest.mark.parametrize("kwargs,err", [
    ({"window_ms": 0}, ValueError), ({"window_ms": 1e-7}, ValueError),
    ({"volatility_window": 2}, ValueError), ({"zscore_min_history": 200}, ValueError),
    ({"imbalance_levels": 0}, ValueError), ({"depth_ratio_levels": 257}, ValueError),
    ({"weighted_decay": 0}, ValueError), ({"weighted_decay": 1.5}, ValueError),
    ({"groups": ("book", "nope")}, ValueError), ({"momentum_window": 2.5}, TypeError),
    ({"extension": object()}, TypeError),
])
def test_feature_config_rejects_bad_values(kwargs, err):
    with pytest.raises(err):
        of.FeatureConfig(**kwargs)


def test_vpin_bucket_must_be_on_the_size_grid():
    with pytest.raises(ValueError, match="vpin_bucket_volume"):
        of.compute_features(events(), GEN, of.FeatureConfig(vpin_bucket_volume="0.5"))


def test_rejects_non_event_arrays():
    with pytest.raises(TypeError):
        of.compute_features(np.zeros(3), GEN)


def test_feature_dtype_matches_names():
    f = of.compute_features(events(*BASE), GEN)
    assert f.dtype.names == ("ts_exch", "seq", "kind", "book_ok") + of.FEATURE_NAMES
    assert f.dtype == of.FEATURE_DTYPE


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2 ** 10 - 1), st.integers(-2 ** 63, 2 ** 63 - 1),
                          st.integers(-2 ** 63, 2 ** 63 - 1), st.integers(-2 ** 63, 2 ** 63 - 1),
                          st.sampled_from([0, 1, 2])), max_size=30))
def test_garbage_records_never_crash_and_twins_agree(recs):
    """Any flags, any int64 price/size/time: rows still agree with the twin, never crash."""
    arr = events(*[ev(flags, price, qty, seq=i, ts_exch=ts, instrument=inst)
                   for i, (flags, price, qty, ts, inst) in enumerate(recs)])
    cfg = of.FeatureConfig(vpin_bucket_volume=5, vpin_buckets=2, window_ms=1)
    a = of.compute_features(arr, GEN, cfg)
    b = ref_features.compute_features(arr, GEN, cfg)
    assert_same_rows(a, b)
    of.compute_signals(arr, GEN, of.SignalConfig(features=cfg))


@pytest.mark.parametrize("size", [5 * 10 ** 17, 2 ** 62, 2 ** 63 - 1])
def test_huge_sizes_do_not_overflow(compute, size):
    """Low-priced coins at a 1e-8 size increment reach ~1e18 units per level; sums over 20
    levels or a 60 s trade window exceed int64, so they are 128-bit."""
    cfg = of.FeatureConfig(vpin_bucket_volume=str(size), vpin_buckets=2)
    bids = [(10000 - i, size) for i in range(20)]
    asks = [(10001 + i, size // 2) for i in range(20)]
    trades = [trade(10000 + i % 3, size, 1 if i % 4 else -1, t=i * MS) for i in range(12)]
    f = rows(compute, snapshot(bids, asks), diff([("b", 10000, size - 1)], t=MS, seq=2), *trades, config=cfg)
    exp_imb = (5 * size - 5 * (size // 2)) / (5 * size + 5 * (size // 2))
    assert f["imbalance"][0] == pytest.approx(exp_imb, rel=1e-15)
    assert f["depth_ratio"][0] == pytest.approx(size / (size // 2), rel=1e-15)
    assert f["ofi"][1] == pytest.approx(-1.0, abs=2048)    # e_n = (size-1) - size, in a float of 1e18
    assert ((f["trade_flow"][2:] >= -1) & (f["trade_flow"][2:] <= 1)).all()
    assert ((f["vwap"][2:] >= 100.0) & (f["vwap"][2:] <= 100.02)).all()
    assert f["trade_flow"][-1] == pytest.approx((9 - 3) / 12, rel=1e-15)
    tox = f["toxicity"][~np.isnan(f["toxicity"])]
    assert len(tox) and ((tox >= 0) & (tox <= 1)).all()


def test_huge_sizes_compiled_equals_twin():
    size = 2 ** 62
    msgs = [snapshot([(10000 - i, size - i) for i in range(20)], [(10001 + i, size // 3) for i in range(20)])]
    msgs += [diff([("b", 10000, size // 2 + i), ("a", 10001, size - i)], t=i * MS, seq=i + 2) for i in range(1, 30)]
    msgs += [trade(10000, size, 1, t=30 * MS + i) for i in range(20)]
    arr = events(*[r for m in msgs for r in (m if isinstance(m, list) else [m])])
    cfg = of.FeatureConfig(vpin_bucket_volume=str(2 ** 60))
    a, b = of.compute_features(arr, GEN, cfg), ref_features.compute_features(arr, GEN, cfg)
    for name in of.FEATURE_NAMES:
        np.testing.assert_allclose(a[name], b[name], rtol=1e-12, atol=0, err_msg=name)
