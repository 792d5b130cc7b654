"""Binance JSON -> Event records per message kind: the nogil fast path (FastBinanceConverter)
beside the orjson path (BinanceConverter) and orjson.loads alone, on the bundled sample.

    python benchmarks/bench_json.py [--runs 7] [FILE] [--usdm]

Prints ns per message (median of the runs; each run converts every message of the kind once,
through the Python-level feed_json, whose call overhead both converters carry), the fast path
alone in a nogil C loop (what a Cython caller such as the live feed pays), and the share of
messages the fast path decided itself.
"""
from __future__ import annotations

import argparse
import gzip
import statistics
import time
from pathlib import Path

import orjson

import orpflow as of
from orpflow._core.binance_json import FastBinanceConverter, _bench_fast
from orpflow._core.convert import BinanceConverter

SAMPLE = Path(__file__).resolve().parents[1] / "examples" / "data" / "binance_spot_btcusdt_sample.gz"


def kind_of(payload: bytes) -> str:
    if payload.startswith(b'{"lastUpdateId"'):
        return "snapshot"
    stream = orjson.loads(payload).get("stream", "")
    return {"depth": "depth diff", "trade": "trade", "aggTrade": "aggTrade",
            "bookTicker": "bookTicker"}.get(stream.split("@")[1] if "@" in stream else "", "other")


def run_once(conv, payloads, stamps) -> float:
    feed = conv.feed_json
    t0 = time.perf_counter_ns()
    for payload, ts in zip(payloads, stamps):
        feed(payload, ts)
    dt = time.perf_counter_ns() - t0
    conv.out.take()
    return dt / len(payloads)


def loads_once(payloads) -> float:
    loads = orjson.loads
    t0 = time.perf_counter_ns()
    for payload in payloads:
        loads(payload)
    return (time.perf_counter_ns() - t0) / len(payloads)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("file", nargs="?", default=str(SAMPLE))
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--usdm", action="store_true", help="USD-M BTCUSDT grids (tick 0.1)")
    args = ap.parse_args()
    inst = (of.Instrument("BTCUSDT", venue="binance-usdm", tick_size="0.1", lot_size="0.001") if args.usdm
            else of.Instrument("BTCUSDT", venue="binance-spot", tick_size="0.01", lot_size="0.00001"))
    by_kind: dict[str, tuple[list[bytes], list[int]]] = {}
    with gzip.open(args.file, "rb") as f:
        for line in f:
            sp = line.find(b" ")
            payload = line[sp + 1:].rstrip(b"\r\n")
            p, t = by_kind.setdefault(kind_of(payload), ([], []))
            p.append(payload)
            t.append(int(line[:sp]))
    print(f"{Path(args.file).name}: median of {args.runs} runs, ns per message")
    print(f"{'kind':<12}{'messages':>9}{'bytes':>8}{'fast':>9}{'nogil loop':>12}{'orjson path':>13}"
          f"{'loads only':>12}{'speed-up':>10}{'fast share':>12}")
    for kind, (payloads, stamps) in sorted(by_kind.items()):
        fast, slow = FastBinanceConverter(inst), BinanceConverter(inst)
        tf, ts, tl, tc = [], [], [], []
        reps = max(1, 3000 // len(payloads))
        for _ in range(args.runs):
            tf.append(run_once(fast, payloads, stamps))
            ts.append(run_once(slow, payloads, stamps))
            tl.append(loads_once(payloads))
            tc.append(_bench_fast(fast, payloads, reps))
        f_ns, s_ns, l_ns, c_ns = (statistics.median(x) for x in (tf, ts, tl, tc))
        share = fast.fast / max(1, fast.fast + fast.fallback)
        size = sum(map(len, payloads)) // len(payloads)
        print(f"{kind:<12}{len(payloads):>9}{size:>8}{f_ns:>9.0f}{c_ns:>12.0f}{s_ns:>13.0f}{l_ns:>12.0f}"
              f"{s_ns / f_ns:>9.1f}x{share:>11.1%}")


if __name__ == "__main__":
    main()
