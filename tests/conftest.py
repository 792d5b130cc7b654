"""Shared fixtures: the [reference, compiled] parametrisation."""
from __future__ import annotations

import pytest

import orpflow as of
from orpflow.reference.book import OrderBook as RefOrderBook


@pytest.fixture(params=["reference", "compiled"])
def book_cls(request):
    """Behavioural tests run on both the pure-Python twin and the compiled book."""
    return RefOrderBook if request.param == "reference" else of.OrderBook


_ALLOCATORS = ("orpflow._core.ring", "orpflow._core.snapshot", "orpflow._core.book")


def _live_allocations():
    import importlib
    return {m: importlib.import_module(m)._debug_live_allocations() for m in _ALLOCATORS}


@pytest.fixture(autouse=True)
def balanced_allocations():
    """In an ORP_DEBUG build (ORPFLOW_CYTHON_DEBUG=1), every test must free every C allocation
    it made. In a release build the counters compile away and this checks nothing."""
    import gc
    if -1 in _live_allocations().values():
        yield
        return
    gc.collect()
    before = _live_allocations()
    yield
    gc.collect()
    assert _live_allocations() == before, "C allocations leaked by this test"
