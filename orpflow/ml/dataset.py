"""Training sets from recordings: feature rows with forward-return labels, and time splits
that keep every training label out of the test period.

Labels (``dataset``): for feature row i, the *label row* is the first row j after i in arrival
order (j > i) that is a book row (``kind == 0``) with ``book_ok`` and a finite ``mid`` and
whose ``ts_exch >= ts_exch[i] + horizon``. Because the horizon is positive, the label row's
timestamp is strictly later than row i's: a row never labels itself, nor any row that shares its
timestamp or arrived before it. Rows that share a timestamp each get their label from their own
``ts_exch`` (so they share the label row too). Exchange timestamps are not always in arrival
order (a trade can be stamped a few ms before the book message that arrived ahead of it); the
label row is still the first qualifying row *after* i in arrival order, found without assuming
order. Everything a label reads (the label row's mid) is known once the label row has arrived:
recomputing the dataset on the events up to that row gives the same label.

pandas is imported inside the functions: ``import orpflow.ml`` stays light.
"""
from __future__ import annotations

import math
from typing import Any, Iterator, Optional, Sequence, Tuple

import numpy as np

__all__ = ["dataset", "purged_split", "purged_kfold", "label_classes"]

#: Row identity and book state, always in the frame (before the feature columns).
META_COLUMNS = ("ts_exch", "seq", "kind", "book_ok")
#: The label columns, appended after the features.
LABEL_COLUMNS = ("label_ts", "label_mid", "fwd_return")


def _horizon_ns(horizon_ms: Any) -> int:
    if isinstance(horizon_ms, bool) or not isinstance(horizon_ms, (int, float, np.integer, np.floating)):
        raise TypeError(f"horizon_ms must be a number of milliseconds, got {type(horizon_ms).__name__}")
    h = float(horizon_ms)
    if not math.isfinite(h) or h <= 0:
        raise ValueError(f"horizon_ms must be > 0 and finite, got {horizon_ms!r}")
    ns = int(round(h * 1e6))
    if ns < 1:
        raise ValueError(f"horizon_ms {horizon_ms!r} is below one nanosecond")
    return ns


def _first_at_least(values: np.ndarray, start: np.ndarray, target: np.ndarray) -> np.ndarray:
    """For each query q: the smallest k >= start[q] with values[k] >= target[q], or -1.

    ``values`` in any order. Non-decreasing values (the usual case): one searchsorted. Otherwise
    a max segment tree searched for all queries at once (O(n log n), 2 * 2**ceil(log2 n) ints)."""
    m = len(values)
    out = np.full(len(start), -1, dtype=np.int64)
    if m == 0 or len(start) == 0:
        return out
    if np.all(values[1:] >= values[:-1]):
        k = np.maximum(np.searchsorted(values, target, side="left"), start)
        ok = k < m
        out[ok] = k[ok]
        return out
    size = 1 << max(0, int(m - 1).bit_length())
    lowest = np.iinfo(np.int64).min
    tree = np.full(2 * size, lowest, dtype=np.int64)
    tree[size:size + m] = values
    n = size
    while n > 1:
        half = n // 2
        tree[half:n] = np.maximum(tree[n:2 * n:2], tree[n + 1:2 * n:2])
        n = half
    live = start < m
    q = np.nonzero(live)[0]
    node = start[q] + size
    tgt = target[q]
    found = np.zeros(len(q), dtype=bool)
    dead = np.zeros(len(q), dtype=bool)
    # Walk right: a node whose max reaches the target holds the answer; else move to the next
    # subtree to its right (up past every right-child step, then one step right).
    for _ in range(2 * (size.bit_length() + 1)):
        act = ~found & ~dead
        if not act.any():
            break
        hit = act & (tree[node] >= tgt)
        found |= hit
        mv = act & ~hit
        nd = node[mv]
        low_zero = (~nd) & (nd + 1)                   # lowest clear bit, as a power of two
        shift = np.log2(low_zero).astype(np.int64)
        nd = (nd >> shift) + 1                        # 1: walked off the right edge
        node[mv] = nd
        dead[np.nonzero(mv)[0][nd == 1]] = True
    # Descend to the leftmost leaf that reaches the target.
    for _ in range(size.bit_length()):
        inner = found & (node < size)
        if not inner.any():
            break
        left = 2 * node[inner]
        go_left = tree[left] >= tgt[inner]
        node[inner] = np.where(go_left, left, left + 1)
    res = np.where(found, node - size, -1)
    out[q] = res
    return out


def label_rows(ts: np.ndarray, eligible: np.ndarray, horizon_ns: int) -> np.ndarray:
    """Index of each row's label row (see the module docstring), or -1 when there is none."""
    ts = np.ascontiguousarray(ts, dtype=np.int64)
    cand = np.nonzero(np.asarray(eligible, dtype=bool))[0]
    n = len(ts)
    if len(cand) == 0:
        return np.full(n, -1, dtype=np.int64)
    start = np.searchsorted(cand, np.arange(n), side="right")    # first candidate after row i
    # ts + horizon past the int64 range: no row can be that late (no label, and no wrap-around).
    limit = np.iinfo(np.int64).max - horizon_ns
    start[ts > limit] = len(cand)
    target = np.minimum(ts, limit) + horizon_ns
    k = _first_at_least(ts[cand], start, target)
    return np.where(k >= 0, cand[np.maximum(k, 0)], -1)


def dataset(events: np.ndarray, inst: Any, horizon_ms: float, features: Any = None,
            columns: Optional[Sequence[str]] = None) -> Any:
    """A pandas DataFrame of feature rows with forward-return labels.

    Parameters
    ----------
    events
        EVENT_DTYPE array of one instrument in arrival order (``orpflow.read_binance`` etc.).
    inst
        Its Instrument.
    horizon_ms
        Label horizon in exchange-time milliseconds (> 0).
    features
        A FeatureConfig (defaults if None): use the one your engine config's signal reads, so
        the model sees in the engine what it was trained on.
    columns
        Feature columns to keep (default: all); an unknown name raises ValueError.

    Returns
    -------
    pandas.DataFrame
        One row per ``orpflow.compute_features`` row: ``ts_exch``, ``seq``, ``kind``,
        ``book_ok``, the feature columns (``mid`` always included), then
        ``label_ts`` (int64 ns; -1 when no label row exists), ``label_mid`` and
        ``fwd_return = label_mid / mid - 1`` (NaN when either mid is undefined).
        The label row of row i is the first later row (arrival order) that is a book row with
        ``book_ok`` and a finite mid, stamped at or after ``ts_exch + horizon``.
    """
    import pandas as pd
    from orpflow.features import compute_features

    h = _horizon_ns(horizon_ms)
    rows = compute_features(events, inst, features)
    names = rows.dtype.names
    feats = [n for n in names if n not in META_COLUMNS]
    if columns is not None:
        if isinstance(columns, str):
            raise TypeError("columns must be a list of column names, not a string")
        chosen = []
        for c in columns:
            if not isinstance(c, str):
                raise TypeError(f"columns: {c!r} is not a column name")
            if c not in names:
                raise ValueError(f"columns: unknown column {c!r}; expected any of {feats}")
            if c not in META_COLUMNS and c not in chosen:
                chosen.append(c)
        if "mid" not in chosen:
            chosen.append("mid")
        feats = chosen
    ts = rows["ts_exch"].astype(np.int64)
    mid = rows["mid"].astype(np.float64)
    eligible = (rows["kind"] == 0) & (rows["book_ok"] != 0) & np.isfinite(mid)
    j = label_rows(ts, eligible, h)
    has = j >= 0
    safe = np.maximum(j, 0)
    label_ts = np.where(has, ts[safe], -1)
    label_mid = np.where(has, mid[safe], np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        fwd = label_mid / mid - 1.0
    fwd[~np.isfinite(fwd)] = np.nan
    data = {c: rows[c] for c in META_COLUMNS}
    data.update({c: rows[c] for c in feats})
    data.update({"label_ts": label_ts, "label_mid": label_mid, "fwd_return": fwd})
    return pd.DataFrame(data)


def _times(df: Any) -> Tuple[np.ndarray, np.ndarray]:
    for c in ("ts_exch", "label_ts"):
        if c not in getattr(df, "columns", ()):
            raise ValueError(f"the frame needs a {c!r} column (a frame from orpflow.ml.dataset)")
    return df["ts_exch"].to_numpy(np.int64), df["label_ts"].to_numpy(np.int64)


def _embargo_ns(embargo_ms: Any) -> int:
    if isinstance(embargo_ms, bool) or not isinstance(embargo_ms, (int, float, np.integer, np.floating)):
        raise TypeError(f"embargo_ms must be a number of milliseconds, got {type(embargo_ms).__name__}")
    e = float(embargo_ms)
    if not math.isfinite(e) or e < 0:
        raise ValueError(f"embargo_ms must be >= 0 and finite, got {embargo_ms!r}")
    return int(round(e * 1e6))


def purged_split(df: Any, test_fraction: float = 0.3, embargo_ms: float = 0) -> Tuple[Any, Any]:
    """A time split with purging: (train, test) DataFrames, rows in their original order.

    The rows are ordered by ``ts_exch`` (stable); the test set is the last ``test_fraction``
    of them. Its start ``t0`` is the first test row's ``ts_exch``. A row before the cut is a
    training row only if its label is known and was fixed before the test period, less the
    embargo: ``0 <= label_ts < t0 - embargo``. Training rows without a label (``label_ts`` -1:
    their horizon runs past the data's end) and those whose label window reaches into
    ``[t0 - embargo, ...)`` are dropped (purged), so no training label overlaps test data.

    Raises ValueError if ``test_fraction`` is not in (0, 1), the embargo is negative, the
    frame lacks ``ts_exch``/``label_ts``, or either side would be empty.
    """
    if isinstance(test_fraction, bool) or not isinstance(test_fraction, (int, float, np.floating)):
        raise TypeError("test_fraction must be a number")
    if not (0.0 < float(test_fraction) < 1.0):
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction!r}")
    emb = _embargo_ns(embargo_ms)
    ts, lts = _times(df)
    n = len(ts)
    order = np.argsort(ts, kind="stable")
    cut = n - int(math.ceil(n * float(test_fraction)))
    if cut <= 0 or cut >= n:
        raise ValueError(f"{n} rows are too few to split with test_fraction={test_fraction}")
    t0 = int(ts[order[cut]])
    is_test = np.zeros(n, dtype=bool)
    is_test[order[cut:]] = True
    train = ~is_test & (lts >= 0) & (lts < t0 - emb)
    if not train.any():
        raise ValueError("no training row is left after purging (a horizon or embargo longer "
                         "than the training period?)")
    return df[train], df[is_test]


def purged_kfold(df: Any, n_splits: int = 5, embargo_ms: float = 0) -> Iterator[Tuple[Any, Any]]:
    """Purged k-fold cross-validation: yields (train, test) DataFrames, one per fold.

    Rows ordered by ``ts_exch`` are cut into ``n_splits`` contiguous test blocks. For the block
    ``[t0, t1]`` (t1: the latest ``label_ts`` or ``ts_exch`` in it), a training row must have a
    label (``label_ts >= 0``) and its window ``[ts_exch, label_ts]`` must end before
    ``t0 - embargo`` or start after ``t1 + embargo``: rows whose labels overlap the test block
    are purged, and rows just after it (whose features could echo the test labels) embargoed.
    """
    if isinstance(n_splits, bool) or not isinstance(n_splits, (int, np.integer)) or n_splits < 2:
        raise ValueError(f"n_splits must be an integer >= 2, got {n_splits!r}")
    emb = _embargo_ns(embargo_ms)
    ts, lts = _times(df)
    n = len(ts)
    if n < n_splits:
        raise ValueError(f"{n} rows are too few for {n_splits} folds")
    order = np.argsort(ts, kind="stable")
    bounds = np.linspace(0, n, n_splits + 1).astype(np.int64)
    for a, b in zip(bounds[:-1], bounds[1:]):
        is_test = np.zeros(n, dtype=bool)
        is_test[order[a:b]] = True
        t0 = int(ts[order[a]])
        t1 = int(max(ts[is_test].max(), lts[is_test].max()))
        train = ~is_test & (lts >= 0) & ((lts < t0 - emb) | (ts > t1 + emb))
        yield df[train], df[is_test]


def label_classes(fwd_return: Any, threshold: float) -> np.ndarray:
    """Classes from forward returns: -1 (sell) below ``-threshold``, +1 (buy) above
    ``threshold``, 0 (flat) in between (both ends included). int64 array.

    NaN returns raise ValueError: a row without a label has no class, so drop those rows
    first (``df.dropna(subset=["fwd_return"])``) rather than let them pass as "flat".
    """
    r = np.asarray(fwd_return, dtype=np.float64)
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float, np.floating)):
        raise TypeError("threshold must be a number")
    th = float(threshold)
    if not math.isfinite(th) or th < 0:
        raise ValueError(f"threshold must be >= 0 and finite, got {threshold!r}")
    bad = ~np.isfinite(r)
    if bad.any():
        raise ValueError(f"fwd_return has {int(bad.sum())} NaN/inf value(s); drop the rows without "
                         "a label first: df.dropna(subset=['fwd_return'])")
    out = np.zeros(r.shape, dtype=np.int64)
    out[r > th] = 1
    out[r < -th] = -1
    return out
