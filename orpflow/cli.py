"""The ``orpflow`` command."""
from __future__ import annotations

import argparse
import sys
import threading
import time
from typing import Any, Dict, List, Optional, Tuple

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
    i = sub.add_parser("init", help="write a starter config (paper.toml over the bundled sample) into a folder")
    i.add_argument("folder", help="where paper.toml goes (created if missing)")
    i.add_argument("--force", action="store_true", help="overwrite an existing paper.toml")
    e = sub.add_parser("run", help="a paper-trading session: the threaded engine over the config's data")
    e.add_argument("config", help="engine config (TOML), e.g. examples/paper.toml")
    e.add_argument("--speed", type=float, default=None, help="replay speed (0: full speed, 1: recorded pace)")
    e.add_argument("--db", default=None, help="database path (overrides [persistence] path)")
    e.add_argument("--no-db", action="store_true", help="run without a database")
    e.add_argument("--duration", type=float, default=None, help="stop gracefully after this many seconds")
    e.add_argument("--metrics-port", type=int, default=None, help="serve Prometheus metrics on this port")
    b = sub.add_parser("backtest", help="the engine's loop in one thread over data files")
    b.add_argument("config", help="engine config (TOML)")
    b.add_argument("paths", nargs="*", help="data files (default: the config's)")
    b.add_argument("--save-fills", default=None, help="save the fills as .npy")
    b.add_argument("--plot", default=None,
                   help="save a price/fills, position, equity and drawdown plot (PNG, needs matplotlib)")
    b.add_argument("--report", action="store_true",
                   help="print the text report (statistics, orders, risk, breakers, data quality)")
    w = sub.add_parser("sweep", help="one backtest per parameter set and data slice, in parallel (dask)",
                       description="Every combination of the --grid values over every --data slice, on a "
                                   "local dask cluster; prints the best rows by PnL.")
    w.add_argument("config", help="engine config (TOML)")
    w.add_argument("--grid", action="append", default=[], metavar="SECTION.KEY=V1,V2,...",
                   help="values of one config key (repeatable), e.g. --grid signal.threshold=0.5,0.7,0.9")
    w.add_argument("--data", action="append", nargs="+", default=None, metavar="FILE[,FILE...]",
                   help="data slices: each FILE is one slice; FILE1,FILE2 (comma-joined) is one slice "
                        "of several files (repeatable; default: the config's data)")
    w.add_argument("--workers", type=int, default=None, help="worker processes (default: the CPU count)")
    w.add_argument("--serial", action="store_true", help="run every backtest in this process, without dask")
    w.add_argument("--batch", type=int, default=None, help="backtests per dask task (default: about 8 tasks a worker)")
    w.add_argument("--work-dir", default=None, help="keep the converted slices (.npy) in this folder")
    w.add_argument("--out", default=None, help="write every row to a .csv or .parquet file")
    w.add_argument("--top", type=int, default=10, help="rows to print, best PnL first")
    w.add_argument("--no-progress", action="store_true", help="no progress bar")
    n = sub.add_parser("bench", help="engine benchmarks on real data: one table")
    n.add_argument("--data", nargs="*", default=None, help="recordings (default: the bundled sample)")
    n.add_argument("--events", type=int, default=10_000_000, help="events in the long replay (memory)")
    n.add_argument("--quick", action="store_true", help="a short run (smoke test)")
    n.add_argument("--live", action="store_true",
                   help="tick-to-trade from the wire: a live engine against a loopback exchange")
    n.add_argument("--seconds", type=float, default=30.0, help="--live: length of the paced session")
    n.add_argument("--speed", type=float, default=1.0, help="--live: pace of the paced session (1 = recorded)")
    n.add_argument("--no-flat-out", action="store_true", help="--live: skip the flat-out run")
    n.add_argument("--spin", choices=("always", "adaptive"), default="always",
                   help="--live: the strategy thread's idle policy in the paced session")
    s = sub.add_parser("serve-replay", help="a loopback Binance exchange playing recorded files (websocket + REST)")
    s.add_argument("files", nargs="+", help="Binance recordings (.gz lines), played in the order given")
    # numbers are parsed by serve_replay, so a bad value is one line (argparse prints its usage too)
    s.add_argument("--speed", default="1", help="1: recorded pace, N: N times faster, 0: flat out")
    s.add_argument("--host", default="127.0.0.1", help="127.0.0.1, localhost or ::1 (loopback only)")
    s.add_argument("--port", default="0", help="websocket port (0: ephemeral)")
    s.add_argument("--rest-port", default="0", help="REST port (0: ephemeral)")
    s.add_argument("--drop-diff", action="append", default=[], metavar="K",
                   help="fault: do not send the K-th depth diff (0-based, repeatable)")
    s.add_argument("--close-after", action="append", default=[], metavar="N",
                   help="fault: close the clients' sockets after N messages sent (repeatable)")
    s.add_argument("--snapshot-delay", default="0", metavar="S", help="fault: answer REST snapshots S seconds late")
    s.add_argument("--malformed-every", default="0", metavar="N",
                   help="fault: a malformed frame before every Nth message")
    s.add_argument("--binary-every", default="0", metavar="N", help="fault: a binary frame before every Nth message")
    s.add_argument("--stall-after", default=None, metavar="N", help="fault: stall once after N messages sent")
    s.add_argument("--stall-s", default="0", metavar="S", help="fault: how long the stall lasts (seconds)")
    s.add_argument("--loop", action="store_true",
                   help="at the end, play the files again (long sessions; clients resync)")
    s.add_argument("--keep-times", action="store_true",
                   help="send every byte as recorded (default: exchange times E/T moved to the send time)")
    for command in sub.choices.values():
        _add_log_args(command)
    return p


def _add_log_args(p: argparse.ArgumentParser) -> None:
    """--log-format / --log-level, the same on every command (orpflow.logs.configure)."""
    from orpflow.logs import FORMATS, LEVELS
    p.add_argument("--log-format", choices=FORMATS, default="text",
                   help="stderr log lines: text, or json (one object per line)")
    p.add_argument("--log-level", choices=LEVELS, default="info", type=str.lower,
                   help="least severe level logged (default info)")


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
    from orpflow.progress import Progress
    bar = Progress(len(args.paths), "load", "files", enabled=len(args.paths) > 1)
    for path in args.paths:
        fmt = _format_of(path, args.format)
        if fmt == "npy":
            parts.append(of.load_events(path))
        elif fmt == "tardis":
            parts.append(of.read_tardis(path, inst, report=report))
        else:
            parts.append(of.read_binance([path], inst, report=report))
        bar.update()
    bar.close()
    events = np.concatenate(parts) if len(parts) > 1 else parts[0]
    _warn_feed(report)
    return inst, events, report, time.perf_counter() - t0


def _warn_feed(report: Any) -> None:
    """A damaged input file is a warning (its readable lines were used), not an error."""
    if report is not None:
        import logging
        for (src, n, why), line in zip(report.truncated, report.warnings()):
            logging.getLogger("orpflow.feed").warning("%s", line, extra={"file": src, "line": n})


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


def _ns(v: float) -> str:
    return "n/a" if v != v else (f"{v / 1e6:,.2f} ms" if v >= 1e6 else
                                 f"{v / 1e3:,.1f} us" if v >= 1e4 else f"{v:,.0f} ns")


def _print_latency(lat: dict) -> None:
    live = "wire" in lat
    names = {"incore": "tick-to-trade in-core", "ingress": "feed push -> order", "feature": "features per row",
             "handoff": "feed push -> popped", "wire": "wire -> order (live)",
             "decode": "wire -> pushed (decode)"}
    if live:
        names["handoff"] = "wire -> popped"
    for key, d in lat.items():
        if d["count"]:
            print(f"latency      {names[key]:<22} p50 {_ns(d['p50'])}  p99 {_ns(d['p99'])}  "
                  f"p99.9 {_ns(d['p99_9'])}  max {_ns(d['max_ns'])}  (n={d['count']:,})")


def _print_live(f: dict) -> None:
    rej = ", ".join(f"{k} {v:,}" for k, v in f["rejected_by_reason"].items())
    print(f"feed         {f['frames']:,} messages ({f['bytes'] / 1e6:,.1f} MB), {f['rejected']:,} refused"
          f"{' (' + rej + ')' if rej else ''}, {f['binary_frames']:,} binary frames skipped; "
          f"{f['connects']:,} connections ({f['reconnects']:,} reconnects, {f['silent_reconnects']:,} after "
          f"silence, {f['connect_errors']:,} failed attempts); {f['snapshots']:,} REST snapshots "
          f"({f['resyncs']:,} for a book out of sync, {f['snapshot_errors']:,} failed requests)")
    if f.get("recording"):
        print(f"recording    {f['recorded_lines']:,} lines in {', '.join(f['recording'])}")
    if f.get("last_error"):
        print(f"feed         last problem: {f['last_error']}")


def _print_models(models: dict) -> None:
    """Which evaluator runs each model, and why."""
    import os
    for sym, m in models.items():
        print(f"model        {sym}: {os.path.basename(m['path'])} output {m['output']!r} on the "
              f"{m['evaluator']} evaluator ({m['reason']})")


def _print_accounts(accounts: dict) -> None:
    for sym, a in accounts.items():
        net = a["realised_pnl"] - a["fees"] + a["unrealised_pnl"]
        print(f"account      {sym}: position {a['position']:f}, cash {a['cash']:.4f}, realised {a['realised_pnl']:.6f}, "
              f"fees {a['fees']:.6f}, PnL {net:.6f} (net of fees, marked to mid), round trips {a['round_trips']}")


def _print_risk(rejections: dict, trips: list, on_breaker: str, events: Any) -> None:
    """Risk refusals by reason, then one line per circuit breaker trip: which, when, why."""
    import datetime
    n = sum(rejections.values())
    by = ", ".join(f"{k} {v:,}" for k, v in rejections.items())
    print(f"risk         {n:,} orders refused{': ' + by if n else ''}; on a tripped breaker: {on_breaker}")
    t0 = None
    if events is not None and len(events):              # None: a live feed
        ts = events["ts_exch"][events["ts_exch"] > 0]
        t0 = int(ts.min()) if len(ts) else None
    for t in trips:
        when = datetime.datetime.fromtimestamp(t.ts / 1e9, datetime.timezone.utc).isoformat(timespec="milliseconds")
        into = f" ({(t.ts - t0) / 1e9:,.1f} s into the data)" if t0 is not None else ""
        print(f"breaker      {t.symbol} {t.breaker} tripped at {when.replace('+00:00', 'Z')}"
              f"{into}: {t.why}; position then {t.position:g}")


def _load_config(path: str, **overrides: Dict[str, Tuple[str, Any]]) -> Any:
    """The config file with command-line overrides {section: {key: (flag, value)}}."""
    import dataclasses
    from orpflow.config import ConfigError, load_config
    cfg = load_config(path)
    for section, values in overrides.items():
        for key, (flag, value) in values.items():
            if value is None:
                continue
            try:
                part = dataclasses.replace(getattr(cfg, section), **{key: value})
            except (TypeError, ValueError) as exc:
                raise ConfigError(f"{flag}: {exc}") from None
            try:
                cfg = dataclasses.replace(cfg, **{section: part})
            except (TypeError, ValueError) as exc:
                raise ConfigError(f"{flag}: {exc}") from None
    return cfg


def run(args: argparse.Namespace) -> int:
    import dataclasses
    import signal as sig
    from orpflow.config import ConfigError, PersistenceConfig
    from orpflow.engine import Engine

    cfg = _load_config(args.config, feed={"speed": ("--speed", args.speed)},
                       persistence={"path": ("--db", args.db)},
                       metrics={"port": ("--metrics-port", args.metrics_port),
                                "enabled": ("--metrics-port", True if args.metrics_port is not None else None)})
    if args.no_db:
        cfg = dataclasses.replace(cfg, persistence=PersistenceConfig(path=None))
    if args.duration is not None and not args.duration >= 0:
        raise ConfigError(f"--duration must be >= 0 seconds, got {args.duration}")
    engine = Engine(cfg, progress=True)
    stop = []
    for s in (sig.SIGINT, sig.SIGTERM):
        sig.signal(s, lambda *_: stop.append(1))
    t0 = time.perf_counter()
    engine.start()
    feed = engine.feed_report
    _warn_feed(feed)
    insts = ", ".join(f"{i.symbol} ({i.venue})" for i in engine.instruments)
    speed = cfg.feed.speed
    if engine.live is not None:
        print(f"run          strategy {cfg.strategy_id!r}: {insts}; live from {engine.live.ws_url}"
              f"{'; recording to ' + cfg.feed.record if cfg.feed.record else ''}  (Ctrl-C stops)")
    else:
        print(f"run          strategy {cfg.strategy_id!r}: {insts}; {len(engine._events):,} events, "
              f"replay {'at full speed' if not speed else f'at {speed:g}x recorded pace'}")
    _print_models(engine.models())
    if engine.restored.get("symbols"):
        for sym, st in engine.restored["symbols"].items():
            print(f"restored     {sym}: position {st['position']} units from {st['fills']} persisted fills, "
                  f"{len(st['open_orders'])} open orders; runs so far {len(engine.restored['runs'])}")
    if engine.metrics is not None:
        print(f"metrics      {engine.metrics.url}/metrics  (health: {engine.metrics.url}/health)")
    while engine.running():
        if stop or (args.duration is not None and time.perf_counter() - t0 >= args.duration):
            break
        time.sleep(0.02)
    try:
        summary = engine.stop(timeout=5.0) if (stop or engine.running()) else (engine.wait(), engine.summary())[1]
    except TimeoutError as exc:            # a stalled disk: everything is still written first
        import logging
        logging.getLogger("orpflow.engine").warning("%s; waiting", exc)
        engine.wait()
        summary = engine.summary()
    st = summary["stats"]
    if feed is not None and feed.lines:
        print(f"feed         {feed.summary()}")
    if "feed" in st:
        _print_live(st["feed"])
    el = st["elapsed_s"]
    print(f"engine       {st['events']:,} events, {st['rows']:,} feature rows, {st['signals']:,} signals, "
          f"{st['orders']:,} orders ({st['rejected']:,} rejected by risk), {st['fills']:,} fills "
          f"in {el:.3f} s [{st['events'] / max(el, 1e-9):,.0f} events/s through the threads]")
    print(f"rings        market full {st['market_waits']:,} times (feed waited), out full {st['out_waits']:,} "
          f"times; {st['out_records']:,} records out, {st['out_lost']} lost")
    _print_risk(summary["risk_rejections"], summary["breaker_trips"], cfg.risk.on_breaker, engine._events)
    _print_accounts(summary["accounts"])
    _print_latency(summary["latency"])
    if summary["stop_seconds"] is not None:
        print(f"stopped      gracefully in {summary['stop_seconds'] * 1e3:.1f} ms (signal or --duration)")
    if summary["database"]:
        w = engine.writer
        print(f"database     {summary['database']} (run {summary['run_id']}, WAL, {w.records:,} records in "
              f"{w.commits} commits)")
    engine.close()
    return 0


def backtest_cmd(args: argparse.Namespace) -> int:
    import numpy as np
    from orpflow.backtest import backtest
    from orpflow.config import load_config
    from orpflow.engine import load_engine_events, repeat_events

    from orpflow.config import check_memory
    cfg = load_config(args.config)
    insts = cfg.make_instruments()
    events, report = load_engine_events(cfg, insts, args.paths or None, progress=True)
    _warn_feed(report)
    check_memory(f"[feed] repeat = {cfg.feed.repeat}", events.nbytes * cfg.feed.repeat)
    events = repeat_events(events, cfg.feed.repeat)
    res = backtest(events, cfg, progress=True)
    res.feed_report = report
    c = res.counters
    if report.lines:
        print(f"feed         {report.summary()}")
    print(f"backtest     {c['events']:,} events, {c['rows']:,} feature rows, {c['signals']:,} signals, "
          f"{c['orders']:,} orders ({c['rejected']:,} rejected by risk), {c['fills']:,} fills in "
          f"{res.seconds:.3f} s [{res.events_per_second:,.0f} events/s]")
    _print_models(res.models)
    _print_risk(res.risk_rejections, res.breaker_trips, cfg.risk.on_breaker, events)
    _print_accounts(res.accounts)
    from orpflow.results import sharpe_text
    for sym, s in res.stats.items():
        print(f"stats        {sym}: PnL {s['pnl']:.6f}, Sharpe {sharpe_text(s)}, max drawdown "
              f"{s['max_drawdown'] * 100:.3f}%, win rate {s['win_rate'] * 100:.1f}%, avg trade "
              f"{s['avg_trade']:.6f}, {s['trade_count']} fills")
    _print_latency(res.latency)
    if args.report:
        print("\n" + res.report())
    if args.save_fills:
        np.save(args.save_fills, res.fills[insts[0].symbol])
    if args.plot:
        try:
            import matplotlib
        except ImportError:
            raise ImportError("--plot needs matplotlib: pip install 'orpflow[plot]'") from None
        matplotlib.use("Agg")
        res.plot().savefig(args.plot)
    return 0


def _grid_arg(text: str) -> Tuple[str, List[Any]]:
    """--grid SECTION.KEY=V1,V2,... -> (key, values); values read as TOML (0.5, 3, true, "x")."""
    from orpflow.config import ConfigError
    from orpflow.sweep import parse_grid_value
    key, eq, values = text.partition("=")
    parts = [v for v in values.split(",")]
    if not eq or not key.strip() or not values.strip() or any(not v.strip() for v in parts):
        raise ConfigError(f"--grid {text!r}: expected SECTION.KEY=V1,V2,... (e.g. signal.threshold=0.5,0.7)")
    return key.strip(), [parse_grid_value(v) for v in parts]


def sweep_cmd(args: argparse.Namespace) -> int:
    from orpflow.config import ConfigError
    from orpflow.sweep import sweep
    grid: Dict[str, List[Any]] = {}
    for g in args.grid:
        key, values = _grid_arg(g)
        if key in grid:
            raise ConfigError(f"--grid {key}: given twice; list all its values in one --grid")
        grid[key] = values
    data = None
    if args.data:
        data = [[f for f in item.split(",") if f] for group in args.data for item in group]
    if args.workers is not None and args.workers < 1:
        raise ConfigError(f"--workers must be >= 1, got {args.workers}")
    if args.batch is not None and args.batch < 1:
        raise ConfigError(f"--batch must be >= 1, got {args.batch}")
    if args.out and not args.out.endswith((".csv", ".parquet")):
        raise ConfigError(f"--out {args.out}: expected a .csv or .parquet file name")
    if args.out and args.out.endswith(".parquet"):          # known before the sweep, not after
        import importlib.util
        if not any(importlib.util.find_spec(m) for m in ("pyarrow", "fastparquet")):
            raise ImportError(f"--out {args.out}: writing Parquet needs pyarrow (pip install pyarrow)")
    t0 = time.perf_counter()
    df = sweep(args.config, grid, data, "serial" if args.serial else None, n_workers=args.workers,
               work_dir=args.work_dir, progress=not args.no_progress, batch=args.batch)
    dt = time.perf_counter() - t0
    if args.out:
        if args.out.endswith(".parquet"):
            df.to_parquet(args.out, index=False)
        else:
            df.to_csv(args.out, index=False)
    errors = df[df["error"] != ""]
    tasks = len(df) // max(1, df["symbol"].nunique())
    import os
    where = "in this process" if args.serial else f"on {args.workers or os.cpu_count()} workers"
    sets = 1
    for v in grid.values():
        sets *= len(v)
    print(f"sweep        {tasks:,} backtests ({sets:,} parameter sets x {tasks // sets:,} data slices) {where} "
          f"in {dt:.2f} s; {len(errors) // max(1, df['symbol'].nunique()):,} failed")
    show = list(grid) + (["data"] if df["data"].nunique() > 1 else []) + \
        (["symbol"] if df["symbol"].nunique() > 1 else []) + \
        ["pnl", "sharpe", "max_drawdown", "trade_count", "round_trips", "risk_rejections"]
    ok = df[df["error"] == ""].sort_values("pnl", ascending=False, kind="stable")
    if len(ok) and args.top > 0:
        print(f"best {min(args.top, len(ok))} by PnL:")
        print(ok[show].head(args.top).to_string(index=False, float_format=lambda v: f"{v:.6g}"))
    for _, r in errors.head(5).iterrows():
        print(f"failed       {', '.join(f'{k}={r[k]!r}' for k in grid)} {r['data']}: {r['error']}")
    if args.out:
        print(f"written      {len(df):,} rows to {args.out}")
    return 0


def bench(args: argparse.Namespace) -> int:
    from orpflow.bench import run_bench
    from orpflow.config import ConfigError
    if not 1 <= args.events <= 10 ** 10:
        raise ConfigError(f"--events must be in [1, 10**10], got {args.events}")
    if args.live:
        import os
        from orpflow.bench_live import run_live_bench
        if not (0 < args.seconds <= 86400):
            raise ConfigError(f"--seconds must be in (0, 86400], got {args.seconds}")
        if not (0 < args.speed <= 1e6):
            raise ConfigError(f"--speed must be > 0 for the paced session, got {args.speed}")
        for f in args.data or ():
            if not os.path.isfile(f):
                raise FileNotFoundError(f"recording not found: {f}")
        run_live_bench(args.data, seconds=args.seconds if not args.quick else min(args.seconds, 5.0),
                       speed=args.speed, flat_out=not args.no_flat_out, spin=args.spin)
        return 0
    return run_bench(args.data, args.events, args.quick)


def _number(flag: str, value: Optional[str], kind: Any) -> Any:
    """A flag's value as int/float, or a one-line error naming the flag."""
    if value is None:
        return None
    try:
        v = kind(value)
    except ValueError:
        raise ValueError(f"{flag} {value!r}: expected {'a whole number' if kind is int else 'a number'}") from None
    if kind is float and not 0 <= v < float("inf"):
        raise ValueError(f"{flag} {value!r}: expected a number >= 0")
    return v


def serve_replay(args: argparse.Namespace) -> int:
    from orpflow.feeds.loopback import Faults, LoopbackExchange
    try:
        faults = Faults(drop_diffs=tuple(_number("--drop-diff", v, int) for v in args.drop_diff),
                        close_after=tuple(_number("--close-after", v, int) for v in args.close_after),
                        snapshot_delay_s=_number("--snapshot-delay", args.snapshot_delay, float),
                        malformed_every=_number("--malformed-every", args.malformed_every, int),
                        binary_every=_number("--binary-every", args.binary_every, int),
                        stall_after=_number("--stall-after", args.stall_after, int),
                        stall_s=_number("--stall-s", args.stall_s, float))
    except ValueError as exc:            # Faults names its fields; say the flag instead
        msg = str(exc)
        for field, flag in (("drop_diffs", "--drop-diff"), ("close_after", "--close-after"),
                            ("snapshot_delay_s", "--snapshot-delay"), ("malformed_every", "--malformed-every"),
                            ("binary_every", "--binary-every"), ("stall_after", "--stall-after"),
                            ("stall_s", "--stall-s")):
            msg = msg.replace(f"faults {field}", flag)
        raise ValueError(msg) from None
    ex = LoopbackExchange(args.files, speed=_number("--speed", args.speed, float), host=args.host,
                          ws_port=_number("--port", args.port, int),
                          rest_port=_number("--rest-port", args.rest_port, int), faults=faults,
                          restamp=not args.keep_times, loop=args.loop)
    if not len(ex.symbols):
        raise ValueError(f"{args.files[0]}: no Binance stream message to play")
    ex.serve_forever(lambda e: print(f"serving {e.ws_url} rest {e.rest_url}", flush=True))
    return 0


def init(args: argparse.Namespace) -> int:
    import shlex
    from orpflow.bundled import init_folder
    try:
        path = init_folder(args.folder, force=args.force)
    except FileExistsError as exc:
        print(f"orpflow: error: {_line(exc)}", file=sys.stderr)
        return 2
    print(f"wrote {path}: a paper-trading session over the sample recording that comes with orpflow")
    print(f"next: orpflow run {shlex.quote(str(path))}")
    return 0


def _version() -> str:
    try:
        from importlib.metadata import version
        return version("orpflow")
    except Exception:                # pragma: no cover - not installed (a source checkout)
        from orpflow import __version__
        return __version__


def _show_warning(message: Any, category: Any, filename: str, lineno: int, file: Any = None,
                  line: Any = None) -> None:
    """Library warnings (rejected feed messages) as one log record each (orpflow.feed)."""
    import logging
    logging.getLogger("orpflow.feed").warning("%s", " ".join(str(message).split()),
                                              extra={"category": category.__name__})


def main(argv: Optional[List[str]] = None) -> int:
    import warnings
    p = _parser()
    p.add_argument("--version", action="version", version=f"orpflow {_version()}")
    args = p.parse_args(argv)
    import logging
    import signal
    from orpflow.logs import configure
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    root = logging.getLogger("orpflow")
    level = root.level
    handler = configure(args.log_level, args.log_format)
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            return _dispatch(args)
    finally:                         # `run` installs its own; main() called in-process gives them back
        root.removeHandler(handler)  # main() called in-process leaves the logging as it found it
        root.setLevel(level)
        if threading.current_thread() is threading.main_thread():
            for s, h in handlers.items():
                if h is not None:    # None: a handler not set from Python, nothing to give back
                    signal.signal(s, h)


def _dispatch(args: argparse.Namespace) -> int:
    from orpflow.config import ConfigError
    try:
        if args.command == "replay":
            return replay(args)
        if args.command == "signals":
            return signals(args)
        if args.command == "init":
            return init(args)
        if args.command == "run":
            return run(args)
        if args.command == "backtest":
            return backtest_cmd(args)
        if args.command == "bench":
            return bench(args)
        if args.command == "sweep":
            return sweep_cmd(args)
        if args.command == "serve-replay":
            return serve_replay(args)
    except ConfigError as exc:
        _fail("config error", _line(exc))
        return 2
    except (FileNotFoundError, ValueError, ImportError) as exc:
        _fail("error", _line(exc))
        return 2
    except BrokenPipeError:          # output piped into `head` and closed early
        import os
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as exc:           # a directory or an unreadable file where a file was expected
        where = f"{exc.filename}: " if exc.filename else ""
        _fail("error", f"{where}{exc.strerror or _line(exc)}")
        return 2
    return 2


def _fail(kind: str, text: str) -> None:
    """The one stderr line of a mistake: as it always read, or one JSON log record when the
    command logs JSON (a log collector then parses every line)."""
    import logging
    from orpflow.logs import JsonFormatter, is_cli_handler
    handler = [h for h in logging.getLogger("orpflow").handlers if is_cli_handler(h)]
    if handler and isinstance(handler[0].formatter, JsonFormatter):
        logging.getLogger("orpflow.cli").error("%s: %s", kind, text, extra={"error": kind})
    else:
        print(f"orpflow: {kind}: {text}", file=sys.stderr)


def _line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


if __name__ == "__main__":
    sys.exit(main())
