"""The nogil JSON fast path against the orjson path (BinanceConverter): on every recorded line,
on Hypothesis-generated messages of the four shapes and on mutated real lines, the fast path
gives the same reason and the same records byte for byte, or says UNSURE."""
import gzip
import json
import re
from collections import Counter

import numpy as np
import orjson
import pytest
from hypothesis import event, given, settings, strategies as st

import orpflow as of
from orpflow._core.binance_json import UNSURE, FastBinanceConverter
from orpflow._core.convert import BinanceConverter
from helpers import SAMPLE, SPOT, USDM, shared_file

R_OK, R_MALFORMED, R_WRONG_SYMBOL, R_UNSUPPORTED = 0, 1, 7, 8


def recorded(path):
    """(ts_local, payload) of a `<recv_ns> <json>` recording."""
    with gzip.open(path, "rb") as f:
        for line in f:
            sp = line.find(b" ")
            yield int(line[:sp]), line[sp + 1:].rstrip(b"\r\n")


def check_same(fast, ref, payload, ts=1):
    """The fast path's answer is the orjson path's, or UNSURE. Returns the fast reason."""
    rc, recs = fast.try_fast(payload, ts)
    want = ref.feed_json(payload, ts)
    want_recs = ref.out.take()
    if rc != UNSURE:
        assert rc == want, payload
        assert recs.tobytes() == want_recs.tobytes(), payload
    else:
        assert len(recs) == 0
    return rc


def differential_file(path, inst):
    fast, ref = FastBinanceConverter(inst), BinanceConverter(inst)
    kinds = Counter()
    for ts, payload in recorded(path):
        kinds[check_same(fast, ref, payload, ts) != UNSURE] += 1
    return kinds[True], kinds[False]


def test_bundled_sample_identical_and_fast():
    n_fast, n_unsure = differential_file(SAMPLE, SPOT)
    # every line of the sample is canonical Binance: all of them take the fast path
    assert n_fast > 0 and n_unsure == 0, (n_fast, n_unsure)


@pytest.mark.parametrize("name", ["spot_btcusdt_20240808.gz", "spot_btcusdt_20240809.gz", "usdm_btcusdt_20240808.gz"])
def test_shared_recordings_identical_and_fast(name):
    inst = USDM if name.startswith("usdm") else SPOT
    n_fast, n_unsure = differential_file(shared_file("binance", name), inst)
    assert n_fast > 0 and n_unsure == 0, (n_fast, n_unsure)


def test_feed_json_same_stream_as_orjson_path():
    """The integration class: one buffer, fast path and fallback, same records and counters."""
    lines = list(recorded(SAMPLE))[:3000]
    broken = [(1, b'{"stream":'), (2, b'{"u":1,"s":"BTCUSDT","b":"1.001","B":"1","a":"2","A":"1"}'),
              (3, '{"u":5,"s":"BTCUSDT","b":"1.00","B":"1","a":"2","A":"1"}'), (4, b'{"e":"kline","s":"BTCUSDT"}')]
    lines = lines[:10] + broken + lines[10:]
    fast, ref = FastBinanceConverter(SPOT), BinanceConverter(SPOT)
    for ts, payload in lines:
        assert fast.feed_json(payload, ts) == ref.feed_json(payload, ts)
    assert fast.out.take().tobytes() == ref.out.take().tobytes()
    assert fast.rejected() == ref.rejected() == {R_MALFORMED: 1, 4: 1, R_UNSUPPORTED: 1}
    assert (fast.lines, fast.messages) == (ref.lines, ref.messages)
    assert fast.fast + fast.fallback == len(lines)
    assert fast.fallback == 2      # the truncated frame and the str payload


# ---- several instruments on one stream -------------------------------------------------------

def cryptofeed_lines(path):
    with gzip.open(path, "rb") as f:
        for line in f:
            if line.startswith(b"wss://") or b" <- " in line:
                continue
            head, sep, payload = line.partition(b": ")
            if sep:
                yield payload.rstrip(b"\r\n")


def fine_instrument(sym, k):
    return of.Instrument(sym, venue="binance-spot", tick_size="0.00000001", lot_size="0.00000001", id=k)


@pytest.mark.parametrize("venue", ["BINANCE", "BINANCE_FUTURES", "BINANCE_DELIVERY", "BINANCE_US", "BINANCE_TR"])
def test_cryptofeed_recordings_routed(venue):
    """Several symbols on one combined stream (depth, bookTicker, aggTrade, kline) and their
    REST snapshots: the routed fast path against a per-symbol orjson converter."""
    ws = list(cryptofeed_lines(shared_file("cryptofeed", f"{venue}.ws.1.0.gz")))
    http = [p for p in cryptofeed_lines(shared_file("cryptofeed", f"{venue}.http.0.0.gz"))
            if p.startswith(b'{"lastUpdateId"')]
    symbols = sorted({orjson.loads(p)["stream"].split("@")[0].upper() for p in ws if p.startswith(b'{"stream"')})
    insts = [fine_instrument(s, k) for k, s in enumerate(symbols)]
    multi = FastBinanceConverter(insts)
    refs = {i.symbol: BinanceConverter(i) for i in insts}
    n_fast = n_all = 0
    for payload in ws:
        obj = orjson.loads(payload)
        ref = refs[obj["stream"].split("@")[0].upper()]
        n_fast += check_same(multi, ref, payload) != UNSURE
        n_all += 1
    # the snapshots carry no symbol: single-instrument converters, each tried on each
    for payload in http:
        for inst in insts[:3]:
            n_fast += check_same(FastBinanceConverter(inst), refs[inst.symbol], payload) != UNSURE
            n_all += 1
    assert n_fast == n_all, (n_fast, n_all)


def test_routing_shared_buffer_and_unknown_symbol():
    btc, eth = fine_instrument("BTCUSDT", 1), fine_instrument("ETHUSDT", 2)
    conv = FastBinanceConverter([btc, eth])
    bbo = b'{"stream":"%s@bookTicker","data":{"u":7,"s":"%s","b":"1.5","B":"2","a":"1.6","A":"3"}}'
    assert conv.feed_json(bbo % (b"ethusdt", b"ETHUSDT"), 10) == R_OK
    assert conv.feed_json(bbo % (b"btcusdt", b"BTCUSDT"), 11) == R_OK
    assert conv.feed_json(bbo % (b"xrpusdt", b"XRPUSDT"), 12) == R_WRONG_SYMBOL
    # a raw REST snapshot names no symbol: with several instruments, whose? (BinanceStreamConverter)
    assert conv.feed_json(b'{"lastUpdateId":1,"bids":[],"asks":[]}', 13) == R_UNSUPPORTED
    assert conv.feed_json(b'{"stream":"btcusdt@trade","data":', 14) == R_MALFORMED
    recs = conv.out.take()
    assert list(recs["instrument"]) == [2, 2, 1, 1]
    assert list(recs["ts_local"]) == [10, 10, 11, 11]
    assert (conv.fast, conv.fallback, conv.messages) == (2, 3, 2)
    assert conv.rejected() == {R_WRONG_SYMBOL: 1, R_UNSUPPORTED: 1, R_MALFORMED: 1}


def test_enveloped_snapshot_same_records_as_raw():
    """With enveloped snapshots enabled (the orjson path converts them once it knows the
    envelope), {"stream":"<sym>@depthSnapshot","data":<body>} gives the raw body's records."""
    body = next(p for _, p in recorded(SAMPLE) if p.startswith(b'{"lastUpdateId"'))
    raw_rc, raw = FastBinanceConverter(SPOT).try_fast(body, 5)
    assert raw_rc == R_OK and len(raw) > 100
    conv = FastBinanceConverter(SPOT, enveloped_snapshots=True)
    rc, recs = conv.try_fast(b'{"stream":"btcusdt@depthSnapshot","data":%s}' % body, 5)
    assert rc == R_OK and recs.tobytes() == raw.tobytes()
    rc, _ = conv.try_fast(b'{"stream":"ethusdt@depthSnapshot","data":%s}' % body, 5)
    assert rc == UNSURE      # another symbol: the orjson path names the reason


# ---- generated messages of the four shapes ---------------------------------------------------

DECIMALS = st.one_of(
    st.decimals(min_value=0, max_value=10 ** 7, places=8, allow_nan=False).map(lambda d: format(d, "f")),
    st.decimals(min_value=0, max_value=10 ** 5, places=2, allow_nan=False).map(lambda d: format(d, "f")),
    st.sampled_from(["0", "0.00000000", "-0.0", "-1.5", "1e5", "", ".5", "5.", "NaN", "61737.635",
                     "99999999999999999999999", "0.000000001", "1.2.3", "+1", " 1", "00.10"]),
)
GOOD_DECIMALS = st.decimals(min_value=0, max_value=10 ** 5, places=2, allow_nan=False).map(lambda d: format(d, "f"))
EDGE_IDS = st.sampled_from([0, 8_999_999_999_999, 9_000_000_000_000, 10 ** 18 - 1, 10 ** 18, 2 ** 63 - 1, 2 ** 63, 2 ** 64])
GOOD_IDS = st.one_of(st.integers(0, 2 ** 40), EDGE_IDS)
BAD_IDS = st.one_of(EDGE_IDS, st.integers(-10, 10 ** 19), st.sampled_from([None, True, "5", 1.5, []]))
IDS = st.one_of(st.integers(0, 2 ** 40), BAD_IDS)
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-10, 10 ** 20), st.floats(allow_nan=False, allow_infinity=False),
                    st.text(max_size=6), st.lists(st.integers(0, 9), max_size=3))
PRICE_OR_OTHER = st.one_of(GOOD_DECIMALS, DECIMALS, SCALARS)
LEVEL = st.one_of(st.tuples(PRICE_OR_OTHER, PRICE_OR_OTHER).map(list),
                  st.lists(PRICE_OR_OTHER, max_size=4), SCALARS)
LEVELS = st.one_of(st.lists(st.tuples(GOOD_DECIMALS, GOOD_DECIMALS).map(list), max_size=6),
                   st.lists(st.tuples(DECIMALS, DECIMALS).map(list), max_size=6), st.lists(LEVEL, max_size=4), SCALARS)
SYMBOLS = st.sampled_from(["BTCUSDT", "BTCUSDT", "BTCUSDT", "BTCUSDT", "btcusdt", "BtcUsdt", "ETHUSDT", "", "BTCUSDTÉ", 5, None])
KINDS = st.sampled_from(["depthUpdate", "trade", "aggTrade", "bookTicker", None, "kline", 3])


@st.composite
def messages(draw):
    # half of them well-formed in structure (numbers still on or off the grid, negative, huge),
    # so that R_OK and the number reasons are reached, not only the malformed ones
    clean = draw(st.booleans())
    ids = GOOD_IDS if clean else IDS
    px = st.one_of(GOOD_DECIMALS, GOOD_DECIMALS, DECIMALS) if clean else PRICE_OR_OTHER
    lvl = st.one_of(st.tuples(px, px).map(list), st.tuples(px, px).map(list), st.lists(px, max_size=3))
    lvls = st.lists(lvl, max_size=6) if clean else LEVELS
    syms = st.sampled_from(["BTCUSDT", "BTCUSDT", "btcusdt", "ETHUSDT"]) if clean else SYMBOLS
    kind = draw(st.sampled_from(["depth", "trade", "aggTrade", "bbo", "snapshot"]))
    if kind == "depth":
        d = {"e": "depthUpdate", "E": draw(ids), "T": draw(ids), "s": draw(syms), "U": draw(ids), "u": draw(ids),
             "pu": draw(ids), "b": draw(lvls), "a": draw(lvls)}
    elif kind in ("trade", "aggTrade"):
        d = {"e": kind, "E": draw(ids), "s": draw(syms), "t": draw(ids), "a": draw(ids), "f": draw(ids),
             "p": draw(px), "q": draw(px), "T": draw(ids),
             "m": draw(st.booleans() if clean else st.one_of(st.booleans(), SCALARS)), "M": True}
    elif kind == "bbo":
        d = {"e": "bookTicker", "u": draw(ids), "s": draw(syms), "b": draw(px), "B": draw(px),
             "a": draw(px), "A": draw(px), "T": draw(ids), "E": draw(ids)}
    else:
        d = {"lastUpdateId": draw(ids), "E": draw(ids), "T": draw(ids), "bids": draw(lvls), "asks": draw(lvls)}
    if not clean:
        for key in list(d):
            if draw(st.integers(0, 7)) == 0:
                del d[key]
        if "e" in d and draw(st.integers(0, 3)) == 0:
            d["e"] = draw(KINDS)
        for key in draw(st.lists(st.sampled_from(["X", "M", "symbol", "lastUpdateId", "data", "stream", "u", "b", "A",
                                                   "pu", "k", "e", "s"]), max_size=2)):
            d[key] = draw(st.one_of(SCALARS, LEVELS, st.dictionaries(st.sampled_from(["x", "y"]), SCALARS, max_size=2)))
    elif kind == "bbo" and draw(st.booleans()):
        del d["e"], d["T"], d["E"]          # the spot bookTicker: no kind, recognised by its keys
    wrap = draw(st.sampled_from(["raw", "stream"] if clean else
                                ["raw", "stream", "stream-other", "data-only", "data-not-dict"]))
    sym = d.get("s") if isinstance(d.get("s"), str) else "btcusdt"
    name = "depthSnapshot" if kind == "snapshot" else draw(st.sampled_from(["depth@100ms", "trade", "bookTicker"]))
    if wrap == "stream":
        d = {"stream": f"{sym.lower()}@{name}", "data": d}
    elif wrap == "stream-other":
        d = {"stream": draw(st.sampled_from(["ethusdt@trade", "btcusdt", "", 5])), "data": d}
    elif wrap == "data-only":
        d = {"data": d}
    elif wrap == "data-not-dict":
        d = {"stream": "btcusdt@trade", "data": draw(SCALARS)}
    style = draw(st.sampled_from(["compact", "compact", "spaced", "indent", "unicode"]))
    if style == "compact":
        text = json.dumps(d, separators=(",", ":"))
    elif style == "spaced":
        text = json.dumps(d)
    elif style == "indent":
        text = json.dumps(d, indent=draw(st.sampled_from([1, "\t", "\r\n "])))
    else:
        text = json.dumps(d, ensure_ascii=False, separators=(",", ":"))
    return text.encode("utf-8")


@settings(max_examples=1500, deadline=None)
@given(messages(), st.sampled_from([SPOT, USDM]))
def test_generated_messages_same_as_orjson_path(payload, inst):
    rc = check_same(FastBinanceConverter(inst), BinanceConverter(inst), payload)
    event("unsure" if rc == UNSURE else f"fast, reason {rc}")


def test_generated_canonical_messages_take_the_fast_path():
    """Not a vacuous contract: well-formed generated messages of each shape are decided by
    the fast path (OK or a rejection), not all handed to orjson."""
    fast = FastBinanceConverter(USDM)
    canon = [
        {"e": "depthUpdate", "E": 1, "T": 2, "s": "BTCUSDT", "U": 3, "u": 4, "pu": 2, "b": [["1.0", "0.001"]], "a": []},
        {"e": "aggTrade", "E": 1, "s": "BTCUSDT", "a": 9, "p": "2.5", "q": "0.003", "f": 1, "l": 2, "T": 3, "m": False},
        {"e": "trade", "E": 1, "s": "BTCUSDT", "t": 9, "p": "2.55", "q": "0.003", "T": 3, "m": True, "X": "MARKET"},
        {"e": "bookTicker", "u": 1, "s": "BTCUSDT", "b": "1.0", "B": "1", "a": "-2", "A": "1", "T": 1, "E": 1},
        {"lastUpdateId": 5, "E": 1, "T": 1, "bids": [["1.0", "1"]], "asks": [["2.0", "0.000000001"]]},
    ]
    got = [fast.try_fast(orjson.dumps(d), 1)[0] for d in canon]
    assert got == [R_OK, R_OK, 4, 3, 5]


# ---- mutated real lines ----------------------------------------------------------------------

LINES = [p for _, p in recorded(SAMPLE)][:300]
LINES += [next(p for _, p in recorded(SAMPLE) if p.startswith(b'{"lastUpdateId"'))[:3000].rsplit(b"],", 1)[0] + b"]]}"]
TOKENS = [b'"NaN"', b'"-1"', b'"1e5"', b"null", b"true", b"[]", b"{}", b'"0.000000001"', b"99999999999999999999",
          b'"61737.635"', b'"ETHUSDT"', b"-5", b'"', b",", b"]", b"}", b"\\u0000", b"\xff", b" ", b"\t", b"1.5",
          b'"s":"BTCUSDT",', b'"u":1,', b'"e":"trade",', b'"data":{},', b"-0", b"0", b"\x00"]


LEVEL_RE = re.compile(rb'\["([^"]*)","([^"]*)"\]')


@st.composite
def mutated(draw):
    line = bytearray(draw(st.sampled_from(LINES)))
    for _ in range(draw(st.integers(1, 3))):
        op = draw(st.sampled_from(["flip", "truncate", "insert", "delete", "dup-key", "escape", "space", "level"]))
        i = draw(st.integers(0, len(line)))
        if op == "flip" and line:
            line[min(i, len(line) - 1)] = draw(st.integers(0, 255))
        elif op == "truncate":
            line = line[:i]
        elif op == "insert":
            line[i:i] = draw(st.sampled_from(TOKENS))
        elif op == "delete":
            del line[i:i + draw(st.integers(1, 12))]
        elif op == "dup-key":
            # repeat one "key":value member right after itself (the last brace-level member)
            k = line.find(b'"', i)
            if k >= 0:
                end = line.find(b",", k)
                if end > k:
                    line[end + 1:end + 1] = line[k:end + 1]
        elif op == "escape":
            k = line.find(b'"', i)
            if 0 <= k < len(line) - 2 and chr(line[k + 1]).isalnum():
                line[k + 1:k + 2] = b"\\u%04x" % line[k + 1]
        elif op == "level":
            # one [price, size] pair shortened, emptied, lengthened or made a scalar
            m = LEVEL_RE.search(bytes(line), i)
            if m:
                line[m.start():m.end()] = draw(st.sampled_from(
                    [b'["%s"]' % m[1], b"[]", b'["%s","%s","x"]' % (m[1], m[2]), b'"%s"' % m[1], b'[%s,"%s"]' % (m[1], m[2])]))
        elif op == "space":
            k = line.find(draw(st.sampled_from([b",", b":", b"[", b"{"])), i)
            if k >= 0:
                line[k + 1:k + 1] = draw(st.sampled_from([b" ", b"\n", b"\r\t "]))
    return bytes(line)


@settings(max_examples=2000, deadline=None)
@given(mutated(), st.sampled_from([SPOT, USDM]))
def test_mutated_real_lines_same_as_orjson_path(payload, inst):
    rc = check_same(FastBinanceConverter(inst), BinanceConverter(inst), payload)
    event("unsure" if rc == UNSURE else f"fast, reason {rc}")


@settings(max_examples=300, deadline=None)
@given(st.lists(mutated(), min_size=1, max_size=8))
def test_mutated_batches_through_feed_json(batch):
    """Accepted and rejected messages interleaved: the shared buffer holds exactly the orjson
    path's records (a rejected message leaves nothing behind on either path)."""
    fast, ref = FastBinanceConverter(SPOT), BinanceConverter(SPOT)
    for k, payload in enumerate(batch):
        assert fast.feed_json(payload, k) == ref.feed_json(payload, k)
    assert np.array_equal(fast.out.take(), ref.out.take())
    assert fast.rejected() == ref.rejected()
    assert fast.fast + fast.fallback == len(batch)


# ---- the fast decimal reader is parse_units's shortcut, never a different answer ------------

NUMBER_TEXT = st.one_of(
    st.from_regex(r"\A-?[0-9]{0,20}(\.[0-9]{0,20})?\Z"),
    st.decimals(allow_nan=False, allow_infinity=False, places=10).map(lambda d: format(d, "f")),
    st.text(alphabet="0123456789.-e+ ", max_size=22),
)


@settings(max_examples=2000, deadline=None)
@given(NUMBER_TEXT, st.integers(1, 10 ** 6), st.integers(0, 18), st.sampled_from([4, 5]))
def test_quick_units_is_parse_units(text, mant, exp, off_grid):
    from orpflow._core.binance_json import _quick_units
    from orpflow._core.convert import units_reason
    assert _quick_units(text.encode(), mant, exp, off_grid) == units_reason(text, mant, exp, off_grid)
