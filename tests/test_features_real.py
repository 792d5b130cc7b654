"""Features and signals over real Binance recordings.

Every feature must be defined (not NaN) wherever its definition says it is, derived here from
the data independently of the implementation; values must be finite and in range; and every
row must equal the twin's (features within the tolerance table, signal decisions exactly).
The bundled sample runs everywhere; the full recordings come from ../shared/data.
"""
import functools

import numpy as np
import pytest

import orpflow as of
from orpflow.reference.features import compute_features as twin_features
from orpflow.reference.signals import signals_from_features as twin_signals
from helpers import SAMPLE, SPOT, USDM, shared_file
from test_features_differential import assert_same_rows

W = 1_000_000_000
CONFIGS = {"spot": of.FeatureConfig(vpin_bucket_volume="1"), "usdm": of.FeatureConfig(vpin_bucket_volume="5")}
RECORDINGS = {
    "sample": (SPOT, "spot", lambda: [SAMPLE]),
    "spot-0808+0809": (SPOT, "spot", lambda: [shared_file("binance", "spot_btcusdt_20240808.gz"),
                                               shared_file("binance", "spot_btcusdt_20240809.gz")]),
    "usdm-0808": (USDM, "usdm", lambda: [shared_file("binance", "usdm_btcusdt_20240808.gz")]),
}


@functools.lru_cache(maxsize=None)
def recording(name):
    inst, kind, paths = RECORDINGS[name]
    events = of.read_binance(paths(), inst)
    cfg = CONFIGS[kind]
    return inst, cfg, events, of.compute_features(events, inst, cfg)


@pytest.fixture(params=sorted(RECORDINGS))
def rec(request):
    return recording(request.param)


def defined(f, name):
    return ~np.isnan(f[name])


def test_book_features_defined_whenever_the_book_is_usable(rec):
    inst, cfg, events, f = rec
    ok = f["book_ok"] == 1
    assert ok.mean() > 0.99
    for name in of.FEATURE_NAMES[:9]:
        np.testing.assert_array_equal(defined(f, name), ok, err_msg=name)
    # OFI needs the previous usable quote: undefined only on the first usable row of a run
    first_of_run = ok & ~np.concatenate([[False], ok[:-1]])
    np.testing.assert_array_equal(defined(f, "ofi"), ok & ~first_of_run)


def test_history_defined_after_its_warm_up(rec):
    inst, cfg, events, f = rec
    book = np.flatnonzero((f["kind"] == 0) & (f["book_ok"] == 1))
    k = np.arange(len(book))          # usable book rows so far (the book stays in sync here)
    warm = {"volatility": 19, "volatility_z": 19 + 19, "momentum": 9, "imbalance_momentum": 9,
            "imbalance_z": 19}
    for name, after in warm.items():
        np.testing.assert_array_equal(defined(f, name)[book], k >= after, err_msg=name)


def test_time_windows_defined_when_their_data_exist(rec):
    inst, cfg, events, f = rec
    clock = np.maximum.accumulate(f["ts_exch"])
    trade = f["kind"] == 1
    tclock = clock[trade]
    # a trade in (t - W, t]
    n_in = np.searchsorted(tclock, clock, side="right") - np.searchsorted(tclock, clock - W, side="right")
    for name in ("vwap", "trade_flow"):
        np.testing.assert_array_equal(defined(f, name), n_in > 0, err_msg=name)
    # at least one W observed and some volume in the lookback
    span = 60 * W
    n_long = np.searchsorted(tclock, clock, side="right") - np.searchsorted(tclock, clock - span, side="right")
    np.testing.assert_array_equal(defined(f, "volume_surge"), (clock - clock[0] >= W) & (n_long > 0))
    # toxicity: once 50 whole buckets of volume have traded
    units = events[(events["flags"] & of.flags.TRADE) != 0]["qty"]
    cum = np.zeros(len(f), dtype=np.int64)
    cum[trade] = np.cumsum(units)
    cum = np.maximum.accumulate(cum)
    bucket = cfg.resolve(inst)["vpin_bucket"]
    np.testing.assert_array_equal(defined(f, "toxicity"), cum // bucket >= 50)
    # book windows: defined once a whole W of usable book history lies behind the row
    first_ok = clock[np.flatnonzero(f["book_ok"] == 1)[0]]
    late = (clock >= first_ok + W) & (f["book_ok"] == 1)
    for name in ("ofi_window", "imbalance_twa", "price_acceleration"):
        assert defined(f, name)[late].all(), name


def test_values_finite_and_in_range(rec):
    inst, cfg, events, f = rec
    for name in of.FEATURE_NAMES:
        x = f[name][defined(f, name)]
        assert np.isfinite(x).all(), name
    for name in ("imbalance", "weighted_imbalance", "book_pressure", "trade_flow", "imbalance_twa"):
        x = f[name][defined(f, name)]
        assert ((x >= -1) & (x <= 1)).all(), name
    tox = f["toxicity"][defined(f, "toxicity")]
    assert ((tox >= 0) & (tox <= 1)).all()
    ok = f["book_ok"] == 1
    assert (f["spread_bps"][ok] > 0).all() and (f["depth_ratio"][ok] > 0).all()
    assert (f["volatility"][defined(f, "volatility")] >= 0).all()
    # per-message volatility of BTC log mids: tiny, not annualised
    assert np.nanmedian(f["volatility"]) < 1e-4


def test_features_equal_twin_on_real_data(rec):
    inst, cfg, events, f = rec
    assert_same_rows(f, twin_features(events, inst, cfg))


def test_signals_equal_twin_on_real_data(rec):
    inst, cfg, events, f = rec
    scfg = of.SignalConfig(features=cfg)
    sig = of.compute_signals(events, inst, scfg)
    assert len(sig) == len(f)
    np.testing.assert_array_equal(sig["seq"], f["seq"])
    twin = twin_signals(f, inst, scfg)
    assert sig.tobytes() == twin.tobytes()
    emitted = sig["side"] != 0
    assert emitted.sum() > 0
    # every emitted size is a whole number of lots, and positions add up
    assert (sig["size_units"][emitted] % inst.lot_units == 0).all()
    assert (np.cumsum(sig["side"] * sig["size_units"]) == sig["position_units"]).all()


def test_rows_from_a_rest_snapshot_carry_its_receive_time(rec):
    """A REST snapshot has no exchange time (ts_exch 0): its row is stamped with the receive
    time, so no row sits at 1970 on a time axis."""
    inst, cfg, events, f = rec
    snap = (events["flags"] & (of.flags.SNAPSHOT | of.flags.LAST)) == (of.flags.SNAPSHOT | of.flags.LAST)
    no_time = snap & (events["ts_exch"] == 0)        # spot snapshots; USD-M ones carry E and T
    assert no_time.any() or inst.venue != "binance-spot"
    assert (f["ts_exch"] > 0).all()
    assert np.isin(events["ts_local"][no_time], f["ts_exch"]).all()
