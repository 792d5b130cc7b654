"""Feed fuzz: real Binance messages, mutated (ids, prices, sizes, wrong types, truncated JSON,
dropped / duplicated / reordered lines), read as a recording and backtested. Nothing may
crash, every refusal is counted with a reason, and no order reaches the venue on an event at
which the book is not in sync. Seeded: the same mutations on every run.

The base stream is the bundled sample plus a REST snapshot every few hundred diffs, each the
book rebuilt from the undisturbed stream at that diff (the bookTicker ground truth shows it is
the venue's book), so the book can lose sync and re-sync many times in one run."""
from __future__ import annotations

import gzip
import random
import warnings
from typing import Any, Callable, Dict, List, Tuple

import numpy as np
import orjson
import pytest

import orpflow as of
from orpflow import records as R
from orpflow._core.convert import BinanceConverter
from orpflow.backtest import backtest
from orpflow.bench import BENCH_RULES
from orpflow.config import config_from_dict
from orpflow.engine import load_engine_events
from orpflow.reference.book import OrderBook as RefOrderBook
from orpflow.reference.convert import BinanceConverter as RefConverter
from helpers import SAMPLE, SPOT

SEED = 20240808
SNAPSHOT_EVERY = 250                      # diffs between two synthesized REST snapshots
# mutation rate of each round: light rounds trade between gaps, heavy ones are mostly noise
RATES = (0.002, 0.01, 0.05, 0.2, 0.6, 0.95) * 2
REJECTED = R.ORDER_STATUS.index("Rejected")
NOT_SYNCED = int(of.Reason.RISK_BOOK_NOT_SYNCED)
BAD_TEXT = ["0", "0.00000000", "-0", "-1.00", "-61837.63", "61837.635", "NaN", "inf", "1e5", "", " 1",
            "99999999999999999999", "0.000000001", "1.", ".5", "61,837.63"]
BAD_VALUE = [None, [], {}, "x", 1.5, True, -5, 2 ** 63 + 5, 0, "61837.63"]


def _snapshot_line(book, inst, recv_ns: int) -> bytes:
    def side(name):
        return [[format(inst.ticks_to_price(p), "f"), format(inst.units_to_size(q), "f")]
                for p, q in book.levels_raw(name).tolist()]
    body = {"lastUpdateId": book.last_update_id, "bids": side("bid"), "asks": side("ask")}
    return b"%d " % recv_ns + orjson.dumps(body)


@pytest.fixture(scope="module")
def base_lines() -> List[bytes]:
    return make_base_lines()


def make_base_lines() -> List[bytes]:
    lines = gzip.open(SAMPLE, "rb").read().splitlines()
    conv, book = BinanceConverter(SPOT), of.OrderBook(SPOT)
    out: List[bytes] = []
    start, diffs = 0, 0
    for i, line in enumerate(lines):
        if b'"e":"depthUpdate"' not in line:
            continue
        diffs += 1
        if diffs % SNAPSHOT_EVERY:
            continue
        conv.feed_lines(lines[start:i + 1])
        book.apply(conv.out.take())
        assert book.in_sync
        out += lines[start:i + 1]
        out.append(_snapshot_line(book, SPOT, int(line.split(b" ", 1)[0]) + 1))
        start = i + 1
    return out + lines[start:]


# ------------------------------------------------------------------ mutations


def _payload(obj: Dict[str, Any]) -> Dict[str, Any]:
    data = obj.get("data")
    return data if isinstance(data, dict) else obj


def _mutate_id(rng: random.Random, d: Dict[str, Any]) -> None:
    keys = [k for k in ("u", "U", "pu", "lastUpdateId", "t") if k in d] or ["u"]
    k = rng.choice(keys)
    v = d.get(k) if isinstance(d.get(k), int) else 0
    d[k] = rng.choice([v + 1, v - 1, v + rng.randint(2, 50), v - rng.randint(2, 50), v + 1_000_000,
                       v - 1_000_000, 0, -1, 2 ** 63 - 1, rng.randint(0, 2 ** 40)])


def _mutate_number(rng: random.Random, d: Dict[str, Any], which: int) -> None:
    """which 0: a price, 1: a size (level lists, trade p/q, bookTicker b/B a/A)."""
    lists = [d[k] for k in ("b", "a", "bids", "asks") if isinstance(d.get(k), list) and d[k]]
    if lists:
        lvl = rng.choice(rng.choice(lists))
        if isinstance(lvl, list) and len(lvl) > which:
            lvl[which] = rng.choice(BAD_TEXT)
            return
    keys = [k for k in (("p", "b", "a") if which == 0 else ("q", "B", "A")) if k in d]
    if keys:
        d[rng.choice(keys)] = rng.choice(BAD_TEXT)


def _mutate_type(rng: random.Random, d: Dict[str, Any]) -> None:
    if d:
        d[rng.choice(sorted(d))] = rng.choice(BAD_VALUE)


def _json_op(fn: Callable[[random.Random, Dict[str, Any]], None]):
    def op(rng: random.Random, line: bytes) -> List[bytes]:
        ts, _, body = line.partition(b" ")
        obj = orjson.loads(body)
        fn(rng, _payload(obj))
        return [ts + b" " + orjson.dumps(obj)]
    return op


def _truncate(rng: random.Random, line: bytes) -> List[bytes]:
    return [line[:rng.randint(1, len(line) - 1)]]


def _flip(rng: random.Random, line: bytes) -> List[bytes]:
    i = rng.randrange(len(line))
    return [line[:i] + bytes([rng.randrange(256)]) + line[i + 1:]]


def _bad_recv_time(rng: random.Random, line: bytes) -> List[bytes]:
    return [rng.choice([b"x", b"-5", b"99999999999999999999", b"1.5"]) + b" " + line.partition(b" ")[2]]


LINE_OPS: Dict[str, Callable[[random.Random, bytes], List[bytes]]] = {
    "id": _json_op(_mutate_id),
    "price": _json_op(lambda rng, d: _mutate_number(rng, d, 0)),
    "size": _json_op(lambda rng, d: _mutate_number(rng, d, 1)),
    "type": _json_op(_mutate_type),
    "symbol": _json_op(lambda rng, d: d.__setitem__("s", rng.choice(["ETHUSDT", "btcusdt", "", 7]))),
    "truncate": _truncate,
    "flip": _flip,
    "recv_time": _bad_recv_time,
    "drop": lambda rng, line: [],
    "duplicate": lambda rng, line: [line, line],
}
OPS = sorted(LINE_OPS) + ["swap"]


def mutate(lines: List[bytes], rate: float, rng: random.Random) -> Tuple[List[bytes], int]:
    """(mutated lines, how many messages were mutated); `swap` exchanges a line with the next."""
    out: List[bytes] = []
    mutated, i = 0, 0
    while i < len(lines):
        line = lines[i]
        if rng.random() >= rate:
            out.append(line)
            i += 1
            continue
        mutated += 1
        op = rng.choice(OPS)
        if op == "swap" and i + 1 < len(lines):
            out += [lines[i + 1], line]
            i += 2
            continue
        out += LINE_OPS[op if op != "swap" else "duplicate"](rng, line)
        i += 1
    return out, mutated


# ------------------------------------------------------------------ checks


def _config(path) -> Any:
    data = {"instruments": [{"symbol": "BTCUSDT", "venue": "binance-spot", "tick_size": "0.01",
                             "lot_size": "0.00001", "paths": [str(path)]}], "persistence": {"path": None}}
    data.update({k: dict(v) for k, v in BENCH_RULES.items()})
    return config_from_dict(data)


def _orders_only_in_sync(ev: np.ndarray, res) -> Dict[str, int]:
    """Every order that passed the risk gate was sent, and every fill matched, on a book in
    sync — by the engine's own SYNC records and by a separate book stepped to that point;
    every order tried while the book was not in sync was stopped by the gate for the book.

    Event number n is the nth record. An order decided at n follows record n; a fill at n comes
    from a venue request that fell due before record n, matched on the book before it."""
    o = res.orders["BTCUSDT"]
    fills = res.records[res.records["kind"] == R.OUT_FILL]
    sync = res.records[res.records["kind"] == R.OUT_SYNC]
    gated = (o["status"] == REJECTED) & (o["reason"] == NOT_SYNCED)
    sent = o["client_id"][~gated]
    # the SYNC record in force after record n: the last one emitted at or before n
    at = np.searchsorted(sync["event_no"], np.concatenate([sent, fills["event_no"] - 1]), side="right") - 1
    assert (at >= 0).all() and (sync["v"][at, 4] == 1).all()
    # a separate book, stepped to each point: (records applied, must be in sync)
    points = [(int(n), not g) for n, g in zip(o["client_id"], gated)]
    points += [(int(n) - 1, True) for n in fills["event_no"]]
    book = of.OrderBook(SPOT)
    done = 0
    for n, in_sync in sorted(points):
        book.apply(ev[done:n])
        done = n
        assert book.in_sync == in_sync, (n, book.state, in_sync)
    book.apply(ev[done:])
    s = book.stats()
    assert s["records"] == len(ev) and s["rejected"] == sum(s["rejected_by_reason"].values())
    return {"sent": len(sent), "gated": int(gated.sum()), "fills": len(fills), "gaps": s["gaps"],
            "resyncs": s["resyncs"], "desyncs": s["desyncs"]}


def test_feed_fuzz_no_crash_every_refusal_counted_no_order_out_of_sync(base_lines, tmp_path):
    rng = random.Random(SEED)
    total = dict.fromkeys(("messages", "mutated", "sent", "gated", "fills", "gaps", "resyncs", "desyncs"), 0)
    reasons: Dict[str, int] = {}
    for r, rate in enumerate(RATES):
        lines, mutated = mutate(base_lines, rate, rng)
        path = tmp_path / f"round{r}.txt"
        text = b"\n".join(lines)
        path.write_bytes(text)
        lines = text.splitlines()                       # a flipped byte may be a line break
        cfg = _config(path)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")             # the reader warns about rejected lines
            ev, report = load_engine_events(cfg, cfg.make_instruments())
        # every non-blank line is one converted message or one refusal with its reason
        assert report.lines == len(lines)
        assert report.messages + report.rejected_total == report.lines - sum(1 for l in lines if not l.strip())
        for k, v in report.rejected.items():
            reasons[k] = reasons.get(k, 0) + v
        res = backtest(ev, cfg, measure=False)
        assert res.counters["events"] == len(ev)
        got = _orders_only_in_sync(ev, res)
        for k, v in got.items():
            total[k] += v
        total["messages"] += len(lines)
        total["mutated"] += mutated
    assert total["mutated"] >= 100_000, total
    # the checks bit: orders were sent, the book lost sync and came back, refusals of many kinds
    assert total["sent"] > 100 and total["gaps"] > 10 and total["resyncs"] > 10, total
    assert {"MALFORMED", "BAD_NUMBER", "NEGATIVE", "OFF_TICK", "WRONG_SYMBOL"} <= set(reasons), reasons


def test_fuzzed_stream_same_in_both_twins(base_lines):
    """Converter and book twins agree on a mutated stream (a slice: the twins are slow)."""
    lines, _ = mutate(base_lines[:6000], 0.05, random.Random(SEED + 1))
    a, b = BinanceConverter(SPOT), RefConverter(SPOT)
    a.feed_lines(lines)
    b.feed_lines(lines)
    ev = a.out.take()
    assert np.array_equal(ev, b.take()) and a.rejected() == b.rejected()
    x, y = of.OrderBook(SPOT), RefOrderBook(SPOT)
    for lo in range(0, len(ev), 5000):
        assert x.apply(ev[lo:lo + 5000]) == y.apply(ev[lo:lo + 5000])
        assert x.stats() == y.stats() and x.state == y.state
        for side in ("bid", "ask"):
            assert np.array_equal(x.levels_raw(side), y.levels_raw(side))
    assert x.stats()["gaps"] > 0


def test_bookticker_zero_or_negative_price_rejected_in_both_twins():
    lines = [l for l in gzip.open(SAMPLE, "rb").read().splitlines()[:200] if b"bookTicker" in l][:4]
    bad = [lines[0].replace(b'"b":"', b'"b":"0', 1).replace(b'"b":"0', b'"b":"0.00000000","x":"', 1),
           lines[1].replace(b'"a":"', b'"a":"-', 1),
           lines[2].replace(b'"a":"', b'"a":"0.00","x":"', 1)]
    for conv in (BinanceConverter(SPOT), RefConverter(SPOT)):
        conv.feed_lines(bad + lines[3:])
        assert conv.rejected() == {int(of.Reason.BAD_NUMBER): 2, int(of.Reason.NEGATIVE): 1}
        assert conv.messages == 1
