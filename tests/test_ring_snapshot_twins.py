"""Compiled ring and snapshot == their pure-Python twins (Hypothesis)."""
import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import orpflow as of
from orpflow.reference.book import OrderBook as RefOrderBook
from orpflow.reference.ring import EventRing as RefRing
from orpflow.reference.snapshot import MarketSnapshot as RefSnapshot
from test_book_differential import INSTRUMENTS, assert_same, streams


ops = st.lists(st.tuples(st.sampled_from(["push", "pop", "pop_into"]), st.integers(0, 40)), max_size=60)


@settings(max_examples=300, deadline=None)
@given(st.integers(2, 40), ops)
def test_ring_equals_reference(capacity, script):
    a, b = of.EventRing(capacity), RefRing(capacity)
    assert a.capacity == b.capacity
    counter = 0
    for op, n in script:
        if op == "push":
            batch = of.empty_events(n)
            batch["seq"] = np.arange(counter, counter + n)
            batch["price"] = batch["seq"] * 3
            assert a.push(batch) == b.push(batch)
            counter += n
        elif op == "pop":
            assert a.pop(n).tobytes() == b.pop(n).tobytes()
        else:
            oa, ob = of.empty_events(n), of.empty_events(n)
            assert a.pop_into(oa) == b.pop_into(ob)
            assert oa.tobytes() == ob.tobytes()
        assert len(a) == len(b)


def test_reference_ring_validates_like_compiled():
    for cls in (of.EventRing, RefRing):
        with pytest.raises(ValueError):
            cls(1)
        with pytest.raises(TypeError):
            cls(4).push(np.zeros(3))


def _same_read(x, y):
    assert {k: v for k, v in x.items() if k not in ("bids", "asks", "metrics")} == \
           {k: v for k, v in y.items() if k not in ("bids", "asks", "metrics")}
    assert x["bids"].tolist() == y["bids"].tolist() and x["asks"].tolist() == y["asks"].tolist()
    assert x["metrics"].keys() == y["metrics"].keys()
    for k, v in x["metrics"].items():
        w = y["metrics"][k]
        assert (math.isnan(v) and math.isnan(w)) or math.isclose(v, w, rel_tol=1e-12), (k, v, w)


@settings(max_examples=200, deadline=None)
@given(streams())
def test_snapshot_equals_reference(stream):
    venue, arr, cuts, capacity = stream
    inst = INSTRUMENTS[venue]
    book, ref_book = of.OrderBook(inst, buffer_capacity=capacity), RefOrderBook(inst, buffer_capacity=capacity)
    snap, ref_snap = of.MarketSnapshot(), RefSnapshot()
    start = 0
    for end in cuts + [len(arr)]:
        book.apply(arr[start:end])
        ref_book.apply(arr[start:end])
        snap.publish(book)
        ref_snap.publish(ref_book)
        _same_read(snap.read(), ref_snap.read())
        assert_same(book, ref_book)          # metrics included, NaN-aware
        start = end
