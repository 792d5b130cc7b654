import importlib.machinery

import numpy as np
import pytest

import orpflow as of
from orpflow._core import types as ctypes


def test_compiled_modules_really_loaded():
    # The suite must exercise the extension modules, not a pure-Python fallback.
    for mod in ("types", "ring", "snapshot", "book", "convert"):
        m = __import__(f"orpflow._core.{mod}", fromlist=["x"])
        assert m.__file__.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES)), m.__file__
    assert type(of.OrderBook).__name__ == "type" and of.OrderBook.__module__ == "orpflow._core.book"


def test_event_dtype_matches_c_layout():
    assert of.EVENT_DTYPE.itemsize == 64 == ctypes.event_size()
    layout = [(n, of.EVENT_DTYPE.fields[n][1], of.EVENT_DTYPE.fields[n][0].itemsize) for n in of.EVENT_DTYPE.names]
    assert layout == ctypes.event_layout()
    assert of.EVENT_DTYPE.names == ("ts_exch", "ts_local", "seq", "seq_first", "seq_prev", "price", "qty",
                                    "flags", "instrument")


def test_flags_are_distinct_bits():
    names = ["DEPTH", "TRADE", "BBO", "SNAPSHOT", "CLEAR", "BID", "ASK", "BUY", "SELL", "LAST"]
    values = [int(getattr(of.flags, n)) for n in names]
    assert all(v and v & (v - 1) == 0 for v in values)
    assert len(set(values)) == len(values)


def test_reason_codes_stable_and_unique():
    assert of.Reason.OK == 0
    assert len({int(r) for r in of.Reason}) == len(of.Reason)
    assert max(int(r) for r in of.Reason) < ctypes.REASON_COUNT


def test_save_load_roundtrip(tmp_path):
    arr = of.empty_events(3)
    arr["price"] = [1, 2, 3]
    arr["flags"] = of.flags.DEPTH | of.flags.BID
    path = tmp_path / "ev.npy"
    of.save_events(path, arr)
    back = of.load_events(path)
    assert back.dtype == of.EVENT_DTYPE and (back == arr).all()
    mm = of.load_events(path, mmap=True)
    assert (mm == arr).all()


def test_load_rejects_foreign_arrays(tmp_path):
    path = tmp_path / "x.npy"
    np.save(path, np.zeros(3))
    with pytest.raises(ValueError, match="not an orpflow event array"):
        of.load_events(path)


@pytest.mark.parametrize("bad, exc", [
    ([1, 2], TypeError),
    (np.zeros(3), TypeError),
    (np.zeros((2, 2), dtype=of.EVENT_DTYPE), ValueError),
    (np.zeros(6, dtype=of.EVENT_DTYPE)[::2], ValueError),
])
def test_event_array_validation(bad, exc):
    with pytest.raises(exc):
        of.check_event_array(bad)
    book = of.OrderBook(of.Instrument("X", venue="generic", tick_size="1", lot_size="1"))
    with pytest.raises(exc):
        book.apply(bad)


def test_debug_counters_compile_away_or_count():
    from orpflow._core.types import debug_live_allocations
    live = debug_live_allocations()
    if live == -1:
        return            # release build: nothing counted (the CI debug step covers the other case)
    objs = [of.OrderBook(of.Instrument("X")), of.EventRing(4), of.MarketSnapshot()]
    assert debug_live_allocations() == live + 3
    del objs
    import gc
    gc.collect()
    assert debug_live_allocations() == live
