"""Bad input never crashes and the twins agree on it: real Binance lines, mutated by Hypothesis,
through the compiled converter and the pure-Python reference."""
import gzip

import numpy as np
from hypothesis import given, settings, strategies as st

from orpflow._core.convert import BinanceConverter
from orpflow.reference.convert import BinanceConverter as RefConverter
from helpers import SAMPLE, SPOT, USDM

LINES = gzip.open(SAMPLE, "rb").read().splitlines()[:400]
TOKENS = [b'"NaN"', b'"-1"', b'"1e5"', b'null', b'true', b'[]', b'{}', b'"0.000000001"', b'99999999999999999999',
          b'"61737.635"', b'"ETHUSDT"', b'-5', b'"', b',', b']', b'}', b'\\u0000', b'\xff']


@st.composite
def mutated_lines(draw):
    out = []
    for _ in range(draw(st.integers(1, 8))):
        line = bytearray(draw(st.sampled_from(LINES)))
        op = draw(st.sampled_from(["flip", "truncate", "splice", "token", "keep"]))
        if op == "flip" and line:
            i = draw(st.integers(0, len(line) - 1))
            line[i] = draw(st.integers(0, 255))
        elif op == "truncate":
            line = line[: draw(st.integers(0, len(line)))]
        elif op == "splice":
            other = draw(st.sampled_from(LINES))
            line = line[: draw(st.integers(0, len(line)))] + other[draw(st.integers(0, len(other))):]
        elif op == "token":
            i = draw(st.integers(0, len(line)))
            j = min(len(line), i + draw(st.integers(0, 20)))
            line = line[:i] + draw(st.sampled_from(TOKENS)) + line[j:]
        out.append(bytes(line))
    return out


@settings(max_examples=1500, deadline=None)
@given(mutated_lines(), st.sampled_from([SPOT, USDM]))
def test_mutated_lines_same_in_both_twins(lines, inst):
    compiled, reference = BinanceConverter(inst), RefConverter(inst)
    compiled.feed_lines(lines)
    reference.feed_lines(lines)
    a, b = compiled.out.take(), reference.take()
    assert np.array_equal(a, b)
    assert compiled.rejected() == reference.rejected()
    assert compiled.messages == reference.messages
    assert compiled.messages + sum(compiled.rejected().values()) <= len(lines)   # every line accounted once
