"""Shared fixtures: the [reference, compiled] parametrisation."""
from __future__ import annotations

import pytest

import orpflow as of
from orpflow.reference.book import OrderBook as RefOrderBook


@pytest.fixture(params=["reference", "compiled"])
def book_cls(request):
    """Behavioural tests run on both the pure-Python twin and the compiled book."""
    return RefOrderBook if request.param == "reference" else of.OrderBook
