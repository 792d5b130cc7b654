from decimal import Decimal

import pytest

import orpflow as of


def test_grids_and_conversions():
    inst = of.Instrument("BTCUSDT", venue="binance-spot", tick_size="0.01", lot_size="0.00001")
    assert inst.tick == (1, 2) and inst.size_unit == (1, 8) and inst.lot_units == 1000
    assert inst.price_to_ticks("61737.63000000") == 6173763
    assert inst.size_to_units("25.42618900") == 2542618900       # finer than the lot: valid data
    assert inst.ticks_to_price(6173763) == Decimal("61737.63")
    assert inst.units_to_size(2542618900) == Decimal("25.426189")
    with pytest.raises(ValueError, match="OFF_TICK"):
        inst.price_to_ticks("61737.635")


def test_odd_tick_size():
    inst = of.Instrument("X", venue="generic", tick_size="0.5", lot_size="1", size_increment="1")
    assert inst.price_to_ticks("6421.5") == 12843
    with pytest.raises(ValueError):
        inst.price_to_ticks("6421.25")


@pytest.mark.parametrize("kwargs, match", [
    (dict(venue="nasdaq"), "unknown venue"),
    (dict(tick_size="0"), "positive"),
    (dict(tick_size="-0.01"), "positive"),
    (dict(tick_size="abc"), "not a decimal"),
    (dict(tick_size="NaN"), "positive finite"),
    (dict(lot_size="0.000000001"), "multiple of size_increment"),
    (dict(id=-1), "id must be"),
    (dict(tick_size="1e-19"), "supported range"),
    (dict(size_increment="x"), "not a decimal"),
    (dict(id=2 ** 32), "id must be"),
])
def test_bad_instruments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        of.Instrument("BTCUSDT", **kwargs)


def test_unknown_venue_in_book():
    class Fake:
        venue = "nyse"
    with pytest.raises(ValueError, match="unknown venue"):
        of.OrderBook(Fake())
