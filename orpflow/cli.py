"""The ``orpflow`` command."""
from __future__ import annotations

import argparse
import sys
import time
from typing import Any, List, Optional, Tuple

VENUE_DEFAULTS = {
    # venue: (tick_size, lot_size) for BTCUSDT-like instruments; override with flags
    "binance-spot": ("0.01", "0.00001"),
    "binance-usdm": ("0.1", "0.001"),
    "binance-coinm": ("0.1", "1"),
    "generic": ("0.5", "1"),
}


def _add_input_args(r: argparse.ArgumentParser) -> None:
    r.add_argument("paths", nargs="+", help="recorded files (Binance .gz lines, Tardis CSV, or a saved .npy)")
    r.add_argument("--format", choices=("binance", "tardis", "npy"), default=None,
                   help="input format (default: from the file name)")
    r.add_argument("--symbol", default="BTCUSDT")
    r.add_argument("--venue", default="binance-spot", choices=sorted(VENUE_DEFAULTS))
    r.add_argument("--tick-size", default=None, help="price grid (default: by venue)")
    r.add_argument("--lot-size", default=None, help="order size step (default: by venue)")
    r.add_argument("--size-increment", default=None, help="market-data size precision (default 1e-8)")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="orpflow", description="orpflow: low-latency order-flow trading")
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("replay", help="convert market data files and replay them through the order book")
    _add_input_args(r)
    r.add_argument("--levels", type=int, default=5, help="levels of the final book to print")
    r.add_argument("--save", default=None, help="save the converted events as .npy")
    r.add_argument("--no-bbo-check", action="store_true", help="skip the check against bookTicker")
    g = sub.add_parser("signals", help="compute features and signals over market data files")
    _add_input_args(g)
    g.add_argument("--generator", choices=("imbalance", "linear"), default="imbalance")
    g.add_argument("--weight", action="append", default=[], metavar="FEATURE=W",
                   help="linear generator weight (repeatable), e.g. --weight imbalance=2")
    g.add_argument("--window-ms", type=float, default=1000.0, help="time window of the features")
    g.add_argument("--vpin-bucket", default=None, help="VPIN bucket volume (e.g. 1 for 1 BTC); off if unset")
    g.add_argument("--equity", type=float, default=10_000.0, help="equity the signal sizes use")
    g.add_argument("--show", type=int, default=10, help="emitted signals to print")
    g.add_argument("--save-features", default=None, help="save the feature rows as .npy")
    g.add_argument("--save-signals", default=None, help="save the signal rows as .npy")
    return p


def _format_of(path: str, forced: Optional[str]) -> str:
    if forced:
        return forced
    if path.endswith(".npy"):
        return "npy"
    if path.endswith(".csv") or path.endswith(".csv.gz"):
        return "tardis"
    return "binance"


def _load(args: argparse.Namespace) -> Tuple[Any, Any, Any, float]:
    """(instrument, events, feed report, seconds) for the input arguments."""
    import numpy as np
    import orpflow as of

    tick, lot = VENUE_DEFAULTS[args.venue]
    inst = of.Instrument(args.symbol, venue=args.venue, tick_size=args.tick_size or tick,
                         lot_size=args.lot_size or lot, size_increment=args.size_increment)
    report = of.FeedReport()
    t0 = time.perf_counter()
    parts = []
    for path in args.paths:
        fmt = _format_of(path, args.format)
        if fmt == "npy":
            parts.append(of.load_events(path))
        elif fmt == "tardis":
            parts.append(of.read_tardis(path, inst, report=report))
        else:
            parts.append(of.read_binance([path], inst, report=report))
    events = np.concatenate(parts) if len(parts) > 1 else parts[0]
    return inst, events, report, time.perf_counter() - t0


def replay(args: argparse.Namespace) -> int:
    import orpflow as of
    from orpflow.feeds.replay import replay_book

    t0 = time.perf_counter()
    inst, events, report, load_s = _load(args)
    t1 = t0 + load_s
    if args.save:
        of.save_events(args.save, events)

    book = of.OrderBook(inst)
    t2 = time.perf_counter()
    result = replay_book(events, book, check_bbo=not args.no_bbo_check)
    t3 = time.perf_counter()

    s = book.stats()
    print(f"instrument   {inst.symbol} on {inst.venue} (tick {inst.tick_size}, lot {inst.lot_size}, "
          f"size unit {inst.size_increment})")
    if report.lines:
        rate = report.messages / (t1 - t0) if t1 > t0 else float("nan")
        print(f"feed         {report.summary()}  [{rate:,.0f} msg/s incl. decompression]")
    print(f"book         {s['records']:,} records, {s['messages']:,} book messages, "
          f"{s['applied']:,} level updates applied  [{s['records'] / max(t3 - t2, 1e-9):,.0f} records/s incl. checks]")
    print(f"sync         state {book.state}, in_sync={book.in_sync}, last_update_id {book.last_update_id}, "
          f"snapshots {s['snapshots']}, gaps {s['gaps']}, resyncs {s['resyncs']}, stale dropped {s['stale']}, "
          f"crossed {s['crossed']}, locked {s['locked']}")
    if s["rejected_by_reason"]:
        print(f"rejected     {s['rejected_by_reason']}")
    if result.bbo_pairs:
        print(f"bbo check    {result.bbo_matched:,} of {result.bbo_pairs:,} bookTickers matched the book exactly"
              f" ({result.bbo_mismatched} mismatched, {result.bbo_unverified} while not in sync)")
        for u, got, want in result.mismatches[:5]:
            print(f"   mismatch at u={u}: book {got} venue {want}")
    bids, asks = book.levels("bid", args.levels), book.levels("ask", args.levels)
    print(f"top of book  ({len(bids)} of {book.depth()[0]} bid levels, {len(asks)} of {book.depth()[1]} ask levels)")
    print(f"   {'bid size':>14} {'bid':>14} | {'ask':<14} {'ask size':<14}")
    pd, sd = inst.tick[1], inst.size_unit[1]     # decimals of the price and size grids
    for i in range(max(len(bids), len(asks))):
        b = f"{bids[i, 1]:>14.{sd}f} {bids[i, 0]:>14.{pd}f}" if i < len(bids) else " " * 29
        a = f"{asks[i, 0]:<14.{pd}f} {asks[i, 1]:<14.{sd}f}" if i < len(asks) else ""
        print(f"   {b} | {a}")
    m = book.metrics()
    print(f"metrics      mid {m['mid']:.4f}  spread {m['spread_bps']:.4f} bps  imbalance(5) {m['imbalance']:+.4f}  "
          f"weighted imbalance(10) {m['weighted_imbalance']:+.4f}  weighted mid {m['weighted_mid']:.4f}")
    ok = result.bbo_mismatched == 0 and s["gaps"] == 0
    return 0 if ok else 1


def signals(args: argparse.Namespace) -> int:
    import numpy as np
    import orpflow as of
    from orpflow.signals import reason_names

    inst, events, report, load_s = _load(args)
    weights = {}
    for w in args.weight:
        name, _, value = w.partition("=")
        try:
            weights[name] = float(value)
        except ValueError:
            raise ValueError(f"--weight {w!r}: expected FEATURE=NUMBER") from None
    fcfg = of.FeatureConfig(window_ms=args.window_ms, vpin_bucket_volume=args.vpin_bucket)
    cfg = of.SignalConfig(generator=args.generator, weights=weights, equity=args.equity, features=fcfg)
    runner = of.SignalRunner(inst, cfg)
    t0 = time.perf_counter()
    feats, sigs = runner.run_with_features(events)
    dt = time.perf_counter() - t0
    if args.save_features:
        np.save(args.save_features, feats)
    if args.save_signals:
        np.save(args.save_signals, sigs)

    book = runner.features.book
    s = book.stats()
    print(f"instrument   {inst.symbol} on {inst.venue} (tick {inst.tick_size}, lot {inst.lot_size})")
    if report.lines:
        print(f"feed         {report.summary()}")
    print(f"book         state {book.state}, {s['messages']:,} book messages, snapshots {s['snapshots']}, "
          f"gaps {s['gaps']}, resyncs {s['resyncs']}, crossed {s['crossed']}")
    kinds = np.bincount(feats["kind"], minlength=2)
    print(f"features     {len(feats):,} rows ({kinds[0]:,} book messages, {kinds[1]:,} trades) from "
          f"{len(events):,} events in {dt * 1e3:.1f} ms  [{dt / max(len(events), 1) * 1e9:.0f} ns/event "
          f"incl. book and signal]")
    if len(feats):
        last = feats[-1]
        shown = ("mid", "spread_bps", "imbalance", "weighted_imbalance", "ofi_window", "volatility",
                 "vwap", "trade_flow", "imbalance_twa", "volume_surge", "toxicity")
        print("last row     " + "  ".join(f"{n} {last[n]:.6g}" for n in shown))
    emitted = sigs["side"] != 0
    print(f"signals      {int(emitted.sum()):,} emitted of {len(sigs):,} rows; implied position "
          f"{runner.position_units * inst.size_scale[0] / inst.size_scale[1]:g} {inst.symbol}")
    names, counts = np.unique(reason_names(sigs["reason"]), return_counts=True)
    order = np.argsort(-counts)
    print("reasons      " + ", ".join(f"{names[i]} {counts[i]:,}" for i in order))
    if args.show > 0 and emitted.any():
        print(f"   {'ts_exch':>19} {'side':>5} {'size':>12} {'strength':>9} {'confidence':>10} "
              f"{'holding_ms':>10}  reason")
        for r in sigs[emitted][: args.show]:
            print(f"   {r['ts_exch']:>19} {('buy' if r['side'] > 0 else 'sell'):>5} {r['size']:>12g} "
                  f"{r['strength']:>9.3f} {r['confidence']:>10.3f} {r['holding_ms']:>10.1f}  "
                  f"{reason_names(np.array([r['reason']]))[0]}")
    return 0 if s["gaps"] == 0 else 1


def main(argv: Optional[List[str]] = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "replay":
            return replay(args)
        if args.command == "signals":
            return signals(args)
    except (FileNotFoundError, ValueError) as exc:
        print(f"orpflow: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:          # output piped into `head` and closed early
        import os
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    return 2


if __name__ == "__main__":
    sys.exit(main())
