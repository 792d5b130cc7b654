"""Several instruments on one combined stream, and REST snapshots as orpflow records them
(``{"stream":"<sym>@depthSnapshot","data":<REST body>}``): the compiled router and its twin
agree record for record and reason for reason, on real lines and on mutated ones."""
import gzip
import re

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import orpflow as of
from orpflow._core.convert import BinanceConverter, BinanceStreamConverter
from orpflow.reference.convert import BinanceConverter as RefConverter
from orpflow.reference.convert import BinanceStreamConverter as RefStream
from helpers import SAMPLE, SPOT

ETH = of.Instrument("ETHUSDT", venue="binance-spot", tick_size="0.01", lot_size="0.00001", id=7)
RAW = [ln.split(b" ", 1) for ln in gzip.open(SAMPLE, "rb").read().splitlines()]


def envelope(payload: bytes, sym: str = "btcusdt") -> bytes:
    """A raw REST snapshot line's JSON as the live feed records it."""
    return b'{"stream":"%s@depthSnapshot","data":%s}' % (sym.encode(), payload)


def as_eth(payload: bytes) -> bytes:
    return re.sub(rb"btcusdt", b"ethusdt", payload).replace(b'"s":"BTCUSDT"', b'"s":"ETHUSDT"')


def two_symbol_stream():
    """The sample, and the sample renamed to ETHUSDT, interleaved; snapshots enveloped."""
    out = []
    for ts, payload in RAW[:3000]:
        snap = not payload.startswith(b'{"stream"')
        btc = envelope(payload) if snap else payload
        eth = envelope(payload, "ethusdt") if snap else as_eth(payload)
        out += [(int(ts), btc), (int(ts) + 1, eth)]
    return out


def test_enveloped_snapshot_gives_the_raw_snapshots_records():
    for ts, payload in RAW:
        if not payload.startswith(b'{"stream"'):
            break
    a, b = BinanceConverter(SPOT), BinanceConverter(SPOT)
    assert a.feed_json(payload, int(ts)) == 0 and b.feed_json(envelope(payload), int(ts)) == 0
    ra, rb = a.out.take(), b.out.take()
    assert len(ra) > 1000 and np.array_equal(ra, rb)
    ref = RefConverter(SPOT)
    assert ref.feed_json(envelope(payload), int(ts)) == 0 and np.array_equal(ref.take(), ra)
    # another symbol's snapshot is not this instrument's
    for conv in (BinanceConverter(SPOT), RefConverter(SPOT)):
        assert conv.feed_json(envelope(payload, "ethusdt"), 1) == int(of.Reason.WRONG_SYMBOL)
        assert conv.feed_json(envelope(payload, "btc@usdt"), 1) == int(of.Reason.MALFORMED)


def test_two_symbols_routed_into_one_buffer_in_arrival_order():
    stream = two_symbol_stream()
    router, ref = BinanceStreamConverter([SPOT, ETH]), RefStream([SPOT, ETH])
    for ts, payload in stream:
        assert router.feed_json(payload, ts) == ref.feed_json(payload, ts) == 0
    got = router.out.take()
    assert np.array_equal(got, ref.take())
    # each instrument's records are exactly what its own converter makes of its own lines
    for inst, pick in ((SPOT, 0), (ETH, 1)):
        own = BinanceConverter(inst)
        for ts, payload in stream[pick::2]:
            own.feed_json(payload, ts)
        assert np.array_equal(got[got["instrument"] == inst.id], own.out.take())
    assert router.messages == len(stream) and router.rejected() == {}


def test_router_refusals_named():
    router, ref = BinanceStreamConverter([SPOT, ETH]), RefStream([SPOT, ETH])
    cases = {
        b'{"stream":"solusdt@trade","data":{"e":"trade","s":"SOLUSDT"}}': "WRONG_SYMBOL",
        b'{"lastUpdateId":1,"bids":[],"asks":[]}': "UNSUPPORTED",      # raw snapshot: whose?
        b'{"data":{"e":"trade"}}': "MALFORMED",
        b'{"e":"trade","s":5}': "MALFORMED",
        b'[1,2]': "MALFORMED",
        b'{"stream":': "MALFORMED",
    }
    for payload, reason in cases.items():
        assert router.feed_json(payload, 1) == ref.feed_json(payload, 1) == int(of.Reason[reason]), payload
    assert len(router.out) == 0 and router.rejected() == ref.rejected()


TOKENS = [b'"', b',', b'}', b']', b'@', b'"stream"', b'"data"', b'"lastUpdateId"', b'"ETHUSDT"',
          b'"depthSnapshot"', b'null', b'{}', b'\xff', b'"s":"ETHUSDT",']
LINES = [p for _, p in two_symbol_stream()[:400]] + [envelope(p) for _, p in RAW if not p.startswith(b'{"s')][:1]


@st.composite
def mutated(draw):
    line = bytearray(draw(st.sampled_from(LINES)))
    for _ in range(draw(st.integers(0, 3))):
        op = draw(st.sampled_from(["flip", "truncate", "token"]))
        if op == "flip" and line:
            line[draw(st.integers(0, len(line) - 1))] = draw(st.integers(0, 255))
        elif op == "truncate":
            line = line[: draw(st.integers(0, len(line)))]
        else:
            i = draw(st.integers(0, len(line)))
            line = line[:i] + draw(st.sampled_from(TOKENS)) + line[i + draw(st.integers(0, 12)):]
    return bytes(line)


@settings(max_examples=600, deadline=None)
@given(st.lists(mutated(), min_size=1, max_size=6), st.booleans())
def test_mutated_stream_same_in_both_twins(lines, two):
    insts = [SPOT, ETH] if two else [SPOT]
    router, ref = BinanceStreamConverter(insts), RefStream(insts)
    for i, line in enumerate(lines):
        assert router.feed_json(line, i + 1) == ref.feed_json(line, i + 1)
    assert np.array_equal(router.out.take(), ref.take())
    assert router.rejected() == ref.rejected() and router.messages == ref.messages


def test_duplicate_instrument_refused():
    for cls in (BinanceStreamConverter, RefStream):
        with pytest.raises(ValueError, match="twice"):
            cls([SPOT, SPOT])


def test_numbers_orjson_refuses_are_malformed_in_both_twins():
    """A number infinite as a double is not JSON to orjson (the compiled path's reader): the
    message is MALFORMED before its symbol is looked at, in the twin too (Hypothesis found
    "u":5E093239212 in a message for an instrument not configured)."""
    line = next(p for p in LINES if b'"u":' in p and b"ethusdt" in p)
    i = line.index(b'"u":') + 4
    j = line.index(b",", i)
    for v in (b"5E093239212", b"1e400", b"-1.8e308", b"1" + b"0" * 400, b"1e-400", b"99999999999999999999999",
              b"18446744073709551616", b"-9223372036854775809"):
        m = line[:i] + v + line[j:]
        for insts in ([SPOT], [SPOT, ETH]):
            router, ref = BinanceStreamConverter(insts), RefStream(insts)
            assert router.feed_json(m, 1) == ref.feed_json(m, 1), (v, len(insts))
