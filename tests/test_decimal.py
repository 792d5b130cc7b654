"""Exact decimal -> units: compiled parser vs the pure-Python twin, and hand-checked cases."""
from decimal import Decimal

import pytest
from hypothesis import given, settings, strategies as st

import orpflow as of
from orpflow._core.convert import units_reason as c_units
from orpflow.reference.convert import units_reason as py_units

R = of.Reason


@pytest.mark.parametrize("text, unit, expected", [
    ("61737.63000000", (1, 2), (R.OK, 6173763)),
    ("61737.63", (1, 2), (R.OK, 6173763)),
    ("0.00000000", (1, 8), (R.OK, 0)),
    ("25.42618900", (1, 8), (R.OK, 2542618900)),
    ("6421.5", (5, 1), (R.OK, 12843)),          # tick 0.5
    ("6421", (5, 1), (R.OK, 12842)),
    ("6421.25", (5, 1), (R.OFF_TICK, 0)),
    ("61737.635", (1, 2), (R.OFF_TICK, 0)),
    ("0.000000001", (1, 8), (R.OFF_TICK, 0)),
    ("100", (1, 0), (R.OK, 100)),
    ("007.50", (1, 1), (R.OK, 75)),
    ("-0.1", (1, 2), (R.NEGATIVE, 0)),
    ("-0", (1, 2), (R.OK, 0)),
    ("NaN", (1, 2), (R.BAD_NUMBER, 0)),
    ("nan", (1, 2), (R.BAD_NUMBER, 0)),
    ("inf", (1, 2), (R.BAD_NUMBER, 0)),
    ("Infinity", (1, 2), (R.BAD_NUMBER, 0)),
    ("1e5", (1, 2), (R.BAD_NUMBER, 0)),
    ("", (1, 2), (R.BAD_NUMBER, 0)),
    ("1.", (1, 2), (R.BAD_NUMBER, 0)),
    (".5", (1, 2), (R.BAD_NUMBER, 0)),
    (" 1", (1, 2), (R.BAD_NUMBER, 0)),
    ("1.2.3", (1, 2), (R.BAD_NUMBER, 0)),
    ("+1", (1, 2), (R.BAD_NUMBER, 0)),
    ("１２", (1, 2), (R.BAD_NUMBER, 0)),           # full-width digits are not ASCII decimals
    ("92233720368547758.07", (1, 2), (R.OK, 9223372036854775807)),
    ("92233720368547758.08", (1, 2), (R.OVERFLOW, 0)),
    ("99999999999999999999", (1, 8), (R.OVERFLOW, 0)),
    ("1.00000000000000000000000000001", (1, 8), (R.OFF_TICK, 0)),
    ("99999999999999999999.5", (1, 8), (R.OVERFLOW, 0)),
    ("99999999999999999999.000000001", (1, 8), (R.OFF_TICK, 0)),   # beyond the grid is checked first
    ("-99999999999999999999", (1, 8), (R.NEGATIVE, 0)),
    ("-1.x", (1, 8), (R.BAD_NUMBER, 0)),
    ("7.5", (3, 1), (R.OK, 25)),
    ("7.6", (3, 1), (R.OFF_TICK, 0)),
    ("5.000000000000000000000000000000", (1, 8), (R.OK, 500000000)),
])
def test_known_cases(text, unit, expected):
    assert c_units(text, *unit, R.OFF_TICK) == expected
    assert py_units(text, *unit, R.OFF_TICK) == expected



@st.composite
def decimal_texts(draw):
    """Plain decimal strings the way venues write them, plus near-misses."""
    whole = draw(st.integers(0, 10 ** draw(st.integers(0, 19))))
    frac = draw(st.text("0123456789", max_size=draw(st.integers(0, 30))))
    sign = draw(st.sampled_from(["", "", "", "-"]))
    text = sign + str(whole) + ("." + frac if frac or draw(st.booleans()) else "")
    return text


units = st.tuples(st.sampled_from([1, 5, 25, 3, 1000]), st.integers(0, 12))


@settings(max_examples=2000, deadline=None)
@given(decimal_texts(), units)
def test_compiled_equals_reference_on_decimals(text, unit):
    assert c_units(text, *unit, R.OFF_TICK) == py_units(text, *unit, R.OFF_TICK)


@settings(max_examples=1000, deadline=None)
@given(st.text(max_size=25), units)
def test_compiled_equals_reference_on_any_text(text, unit):
    assert c_units(text, *unit, R.OFF_SIZE_INCREMENT) == py_units(text, *unit, R.OFF_SIZE_INCREMENT)


@settings(max_examples=1000, deadline=None)
@given(st.integers(0, 10 ** 15), st.integers(0, 8), units)
def test_value_is_exact(mant, exp, unit):
    """Whatever the parser accepts equals the exact rational value; what it refuses is off grid."""
    text = str(Decimal(mant).scaleb(-exp)) if exp else str(mant)
    if "E" in text:
        text = format(Decimal(mant).scaleb(-exp), "f")
    rc, v = c_units(text, *unit, R.OFF_TICK)
    exact = Decimal(text) / (Decimal(unit[0]).scaleb(-unit[1]))
    scaled = Decimal(text).scaleb(unit[1])       # value in steps of 10**-exp
    if scaled == scaled.to_integral_value() and scaled > 2 ** 63 - 1:
        assert rc == R.OVERFLOW
    elif exact == exact.to_integral_value():
        assert (rc, v) == (R.OK, int(exact))
    else:
        assert rc == R.OFF_TICK
