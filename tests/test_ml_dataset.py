"""orpflow.ml datasets: forward-return labels without look-ahead, purged time splits, classes.

The labeller is checked against a plain-Python one (random rows and the bundled sample), and
against the engine's own streaming: the dataset of an event prefix must agree with the full
dataset on every label it can see, and the shortest prefix holding a label's row already gives
that label (nothing after the label row is read).
"""
import functools
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import orpflow as of
from orpflow.ml import dataset, label_classes, purged_kfold, purged_split
from orpflow.ml.dataset import label_rows
from helpers import SAMPLE, SPOT

pd = pytest.importorskip("pandas")

FCFG = of.FeatureConfig(window_ms=1000)
MS = 1_000_000


@functools.lru_cache(maxsize=None)
def sample_events():
    return of.read_binance(SAMPLE, SPOT)


@functools.lru_cache(maxsize=None)
def head_events():
    """The first 20,000 events (about 1,400 feature rows): quick to recompute many times."""
    return np.ascontiguousarray(sample_events()[:20_000])


def brute_label_rows(ts, eligible, h):
    """The definition, row by row: the first later row that is eligible and ts >= ts_i + h."""
    out = []
    for i in range(len(ts)):
        found = -1
        for j in range(i + 1, len(ts)):
            if eligible[j] and ts[j] >= ts[i] + h:
                found = j
                break
        out.append(found)
    return np.array(out, dtype=np.int64)


def eligible_rows(rows):
    return (rows["kind"] == 0) & (rows["book_ok"] != 0) & np.isfinite(rows["mid"])


# ------------------------------------------------------------------ the labeller


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(-5, 8), st.booleans()), max_size=60),
       st.integers(1, 12), st.booleans())
def test_label_rows_match_brute_force(steps, h, ordered):
    """Random timestamps, in order (searchsorted path) or not (segment-tree path), with ties."""
    deltas = np.array([abs(d) if ordered else d for d, _ in steps], dtype=np.int64)
    ts = np.cumsum(deltas)
    eligible = np.array([e for _, e in steps], dtype=bool)
    got = label_rows(ts, eligible, h)
    assert got.tolist() == brute_label_rows(ts.tolist(), eligible.tolist(), h).tolist()


def test_label_rows_saturate_at_the_end_of_time():
    big = np.iinfo(np.int64).max
    ts = np.array([big - 5, big - 1, big], dtype=np.int64)
    assert label_rows(ts, np.ones(3, bool), 10).tolist() == [-1, -1, -1]
    assert label_rows(ts, np.ones(3, bool), 4).tolist() == [1, -1, -1]


@pytest.mark.parametrize("horizon_ms", [1, 250, 5000])
def test_sample_labels_match_brute_force(horizon_ms):
    events = sample_events()
    rows = of.compute_features(events, SPOT, FCFG)
    df = dataset(events, SPOT, horizon_ms, FCFG)
    assert len(df) == len(rows)
    assert (df["ts_exch"].to_numpy() == rows["ts_exch"]).all() and (df["seq"].to_numpy() == rows["seq"]).all()
    # the sample's timestamps are not in arrival order: the general path is exercised
    assert (np.diff(rows["ts_exch"]) < 0).any()
    j = brute_label_rows(rows["ts_exch"].tolist(), eligible_rows(rows).tolist(), horizon_ms * MS)
    has = j >= 0
    assert has.sum() > len(rows) // 2
    assert (df["label_ts"].to_numpy()[has] == rows["ts_exch"][j[has]]).all()
    assert (df["label_ts"].to_numpy()[~has] == -1).all()
    assert (df["label_ts"].to_numpy()[has] >= rows["ts_exch"][has] + horizon_ms * MS).all()
    np.testing.assert_array_equal(df["label_mid"].to_numpy()[has], rows["mid"][j[has]])
    assert df["label_mid"].isna().to_numpy()[~has].all()
    expect = np.full(len(rows), np.nan)
    expect[has] = rows["mid"][j[has]] / rows["mid"][has] - 1
    np.testing.assert_allclose(df["fwd_return"].to_numpy(), expect, rtol=0, atol=0)
    # every feature column is the feature runner's
    for name in of.FEATURE_NAMES:
        np.testing.assert_array_equal(df[name].to_numpy(), rows[name])


def test_fwd_return_is_nan_where_a_mid_is_undefined():
    df = dataset(sample_events(), SPOT, 100, FCFG)
    no_mid = ~np.isfinite(df["mid"].to_numpy())
    assert df["fwd_return"].isna().to_numpy()[no_mid].all()
    assert df["fwd_return"].isna().sum() == (no_mid | (df["label_ts"].to_numpy() < 0)).sum()


# ------------------------------------------------------------------ no look-ahead


@functools.lru_cache(maxsize=None)
def head_dataset(horizon_ms):
    return dataset(head_events(), SPOT, horizon_ms, FCFG)


def same_row(a, b):
    """Two frame rows equal (NaN equal to NaN)."""
    return all((x == y) or (x != x and y != y) for x, y in zip(a, b))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(1, 20_000), st.sampled_from([50, 500, 3000]))
def test_a_prefix_sees_the_same_labels(cut, horizon_ms):
    """Labels computed on the events up to `cut` agree with the full run's wherever the prefix
    holds the label row, and are undefined where it does not."""
    full = head_dataset(horizon_ms)
    part = dataset(np.ascontiguousarray(head_events()[:cut]), SPOT, horizon_ms, FCFG)
    n = len(part)
    assert n <= len(full)
    pd.testing.assert_frame_equal(part.drop(columns=["label_ts", "label_mid", "fwd_return"]),
                                  full.drop(columns=["label_ts", "label_mid", "fwd_return"]).iloc[:n])
    rows = full.to_records(index=False)
    j_full = label_rows(rows["ts_exch"], eligible_rows(rows), horizon_ms * MS)[:n]
    inside = (j_full >= 0) & (j_full < n)
    for col in ("label_ts", "label_mid", "fwd_return"):
        pd.testing.assert_series_equal(part[col][inside], full[col].iloc[:n][inside])
    assert (part["label_ts"].to_numpy()[~inside] == -1).all()
    assert part["fwd_return"][~inside].isna().all()


def rows_after(k):
    return len(of.compute_features(np.ascontiguousarray(head_events()[:k]), SPOT, FCFG))


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data(), st.sampled_from([50, 500, 3000]))
def test_the_shortest_prefix_with_the_label_row_gives_the_label(data, horizon_ms):
    """Cut the events right after the label row's last event: the label is already there, so it
    depends on nothing that arrived after the label row."""
    full = head_dataset(horizon_ms)
    labelled = np.nonzero(full["label_ts"].to_numpy() >= 0)[0]
    i = int(data.draw(st.sampled_from(labelled.tolist())))
    rows = full.to_records(index=False)
    j = int(label_rows(rows["ts_exch"], eligible_rows(rows), horizon_ms * MS)[i])
    lo, hi = 0, len(head_events())            # the fewest events that yield j + 1 feature rows
    while lo < hi:
        mid = (lo + hi) // 2
        if rows_after(mid) >= j + 1:
            hi = mid
        else:
            lo = mid + 1
    part = dataset(np.ascontiguousarray(head_events()[:lo]), SPOT, horizon_ms, FCFG)
    assert len(part) == j + 1
    assert same_row(part.iloc[i].tolist(), full.iloc[i].tolist())
    # one event less: the label row is not there yet, and no other row stands in for it
    one_less = dataset(np.ascontiguousarray(head_events()[:lo - 1]), SPOT, horizon_ms, FCFG)
    assert len(one_less) == j and one_less["label_ts"].iloc[i] == -1


# ------------------------------------------------------------------ columns and bad input


def test_columns_select_features_and_keep_mid():
    full = head_dataset(500)
    df = dataset(head_events(), SPOT, 500, FCFG, columns=["imbalance", "ofi", "imbalance"])
    assert list(df.columns) == ["ts_exch", "seq", "kind", "book_ok", "imbalance", "ofi", "mid",
                                "label_ts", "label_mid", "fwd_return"]
    pd.testing.assert_frame_equal(df, full[df.columns])


@pytest.mark.parametrize("horizon", [0, -1, float("nan"), float("inf"), 1e-9])
def test_bad_horizon(horizon):
    with pytest.raises(ValueError, match="horizon_ms"):
        dataset(head_events(), SPOT, horizon)


@pytest.mark.parametrize("horizon", [True, "5", None])
def test_horizon_type(horizon):
    with pytest.raises(TypeError, match="horizon_ms"):
        dataset(head_events(), SPOT, horizon)


def test_unknown_column_is_named():
    with pytest.raises(ValueError, match="'imbalanse'"):
        dataset(head_events(), SPOT, 100, columns=["imbalance", "imbalanse"])
    with pytest.raises(TypeError, match="list"):
        dataset(head_events(), SPOT, 100, columns="imbalance")


def test_bad_events_raise():
    with pytest.raises((TypeError, ValueError)):
        dataset(np.zeros(3), SPOT, 100)


def test_empty_events_give_an_empty_frame():
    df = dataset(head_events()[:0].copy(), SPOT, 100)
    assert len(df) == 0 and "fwd_return" in df.columns


def test_import_stays_light(tmp_path):
    code = ("import sys, orpflow.ml; "
            "heavy = [m for m in ('pandas', 'onnx', 'onnxruntime', 'sklearn') if m in sys.modules]; "
            "print(heavy); sys.exit(1 if heavy else 0)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr


# ------------------------------------------------------------------ purged splits


@st.composite
def frames(draw):
    n = draw(st.integers(4, 80))
    ts = np.cumsum(np.array(draw(st.lists(st.integers(-3, 10), min_size=n, max_size=n)), dtype=np.int64))
    horizon = np.array(draw(st.lists(st.integers(1, 30), min_size=n, max_size=n)), dtype=np.int64)
    missing = np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)), dtype=bool)
    label_ts = np.where(missing & (np.arange(n) > n - 10), -1, ts + horizon)
    return pd.DataFrame({"ts_exch": ts * MS, "label_ts": np.where(label_ts < 0, -1, label_ts * MS),
                         "x": np.arange(n)})


@settings(max_examples=200, deadline=None)
@given(frames(), st.floats(0.05, 0.95), st.integers(0, 20))
def test_purged_split_never_overlaps(df, fraction, embargo_ms):
    try:
        train, test = purged_split(df, fraction, embargo_ms)
    except ValueError as exc:
        assert "purging" in str(exc) or "too few" in str(exc)
        return
    n = len(df)
    assert len(test) == int(np.ceil(n * fraction))
    assert set(train.index).isdisjoint(test.index)
    # the test set is the latest rows by time
    t0 = test["ts_exch"].min()
    assert (df.drop(test.index)["ts_exch"] <= t0).all()
    # no train window [ts_exch, label_ts] reaches the test period (less the embargo)
    assert (train["label_ts"] >= 0).all()
    assert (train["label_ts"] < t0 - embargo_ms * MS).all()
    assert (train["ts_exch"] < t0).all()
    # and only those were dropped
    dropped = df.drop(test.index).drop(train.index)
    assert ((dropped["label_ts"] < 0) | (dropped["label_ts"] >= t0 - embargo_ms * MS)).all()
    # original order kept
    assert list(train.index) == sorted(train.index) and list(test.index) == sorted(test.index)


@settings(max_examples=100, deadline=None)
@given(frames(), st.integers(2, 5), st.integers(0, 20))
def test_purged_kfold_never_overlaps(df, k, embargo_ms):
    emb = embargo_ms * MS
    if len(df) < k:                                   # fewer rows than folds: refused, by name
        with pytest.raises(ValueError, match="too few"):
            list(purged_kfold(df, k, embargo_ms))
        return
    seen = []
    for train, test in purged_kfold(df, k, embargo_ms):
        seen.extend(test.index)
        t0 = test["ts_exch"].min()
        t1 = max(test["ts_exch"].max(), test["label_ts"].max())
        assert set(train.index).isdisjoint(test.index)
        assert (train["label_ts"] >= 0).all()
        # each train window lies wholly before t0 - embargo or after t1 + embargo
        before = train["label_ts"] < t0 - emb
        after = train["ts_exch"] > t1 + emb
        assert (before | after).all()
    assert sorted(seen) == list(df.index)


def test_purged_split_on_the_sample():
    df = dataset(sample_events(), SPOT, 1000, FCFG).dropna(subset=["fwd_return"])
    train, test = purged_split(df, 0.3, embargo_ms=500)
    t0 = test["ts_exch"].min()
    assert (train["label_ts"] < t0 - 500 * MS).all()
    # a 1 s horizon purges the last second or so of the training period, not more
    kept_before = df[(df["ts_exch"] < t0 - 2_000 * MS) & ~df.index.isin(test.index)]
    assert set(kept_before.index) <= set(train.index)
    assert len(train) < len(df) - len(test)


@pytest.mark.parametrize("kwargs,match", [
    ({"test_fraction": 0}, "test_fraction"), ({"test_fraction": 1.0}, "test_fraction"),
    ({"embargo_ms": -1}, "embargo_ms"), ({"embargo_ms": float("nan")}, "embargo_ms"),
])
def test_purged_split_bad_arguments(kwargs, match):
    df = head_dataset(500)
    with pytest.raises(ValueError, match=match):
        purged_split(df, **kwargs)


def test_purged_split_needs_the_label_columns():
    with pytest.raises(ValueError, match="label_ts"):
        purged_split(pd.DataFrame({"ts_exch": [1, 2, 3]}))
    with pytest.raises(ValueError, match="n_splits"):
        next(purged_kfold(head_dataset(500), 1))


# ------------------------------------------------------------------ classes


@given(st.lists(st.floats(-1, 1), max_size=50), st.floats(0, 0.5))
def test_label_classes(returns, threshold):
    got = label_classes(np.array(returns), threshold)
    assert got.dtype == np.int64
    assert got.tolist() == [1 if r > threshold else (-1 if r < -threshold else 0) for r in returns]


def test_label_classes_reject_nan_and_bad_thresholds():
    with pytest.raises(ValueError, match="dropna"):
        label_classes([0.1, float("nan")], 0.01)
    with pytest.raises(ValueError, match="threshold"):
        label_classes([0.1], -0.01)
    with pytest.raises(TypeError, match="threshold"):
        label_classes([0.1], None)
