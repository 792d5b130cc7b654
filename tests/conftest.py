"""Shared fixtures: the [reference, compiled] parametrisation."""
from __future__ import annotations

import pytest

import orpflow as of
from orpflow.reference.book import OrderBook as RefOrderBook


@pytest.fixture(params=["reference", "compiled"])
def book_cls(request):
    """Behavioural tests run on both the pure-Python twin and the compiled book."""
    return RefOrderBook if request.param == "reference" else of.OrderBook


@pytest.fixture(autouse=True)
def balanced_allocations():
    """In an ORP_DEBUG build (ORPFLOW_CYTHON_DEBUG=1), every test must free every C allocation
    it made. In a release build the counter compiles away and this checks nothing."""
    import gc
    from orpflow._core.types import debug_live_allocations
    if debug_live_allocations() < 0:
        yield
        return
    gc.collect()
    before = debug_live_allocations()
    yield
    gc.collect()
    assert debug_live_allocations() == before, "C allocations leaked by this test"
