"""Prometheus metrics and a health endpoint for a running Engine.

Nothing here touches the hot path: a custom collector reads the engine's C counters and
latency histograms (relaxed loads) when Prometheus scrapes, on the HTTP server's thread.
prometheus_client is imported only when metrics are switched on ([metrics] enabled = true).
"""
from __future__ import annotations

import threading
from typing import Any, Dict, Iterator, List, Tuple

import numpy as np

from orpflow._core.engine import hist_bucket_bounds

# Tick-to-trade buckets (seconds): sub-microsecond ones, then those the issue asks for.
LATENCY_BUCKETS = (1e-7, 2.5e-7, 5e-7, 7.5e-7, 1e-6, 2e-6, 5e-6, 1e-5, 2e-5, 5e-5, 1e-4, 1e-3, 1e-2)


def _prometheus() -> Any:
    try:
        import prometheus_client
    except ImportError:
        raise ImportError("metrics need prometheus-client: pip install 'orpflow[metrics]'") from None
    return prometheus_client


def histogram_buckets(counts: np.ndarray, total_ns: int,
                      edges: Tuple[float, ...] = LATENCY_BUCKETS) -> Tuple[List[Tuple[str, float]], float]:
    """Cumulative Prometheus buckets from the engine's log-linear histogram. A bucket of ours
    counts under the first edge at or above its upper bound (never under-reports latency)."""
    _, hi = hist_bucket_bounds()
    hi_s = hi * 1e-9
    out = []
    for e in edges:
        out.append((repr(e), float(counts[hi_s <= e].sum())))
    out.append(("+Inf", float(counts.sum())))
    return out, total_ns * 1e-9


class EngineCollector:
    """Reads an Engine's counters at scrape time."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
        e = self.engine
        s = e.stats()
        yield CounterMetricFamily("strategy_market_updates", "Market records processed", value=s["events"])
        yield CounterMetricFamily("strategy_feature_rows", "Feature rows computed", value=s["rows"])
        yield CounterMetricFamily("strategy_signals_generated", "Signals emitted", value=s["signals"])
        yield CounterMetricFamily("strategy_orders_submitted", "Orders sent to the risk gate", value=s["orders"])
        yield CounterMetricFamily("strategy_fills", "Fills", value=s["fills"])
        hists = [("strategy_tick_to_trade_duration_seconds", "incore"),
                 ("strategy_ingress_to_trade_duration_seconds", "ingress"),
                 ("strategy_feature_calculation_duration_seconds", "feature"),
                 ("strategy_channel_handoff_duration_seconds", "handoff")]
        if e.live is not None:
            hists += [("strategy_wire_to_trade_duration_seconds", "wire"),
                      ("feed_decode_duration_seconds", "decode")]
        for name, key in hists:
            counts, n, total, _ = e.core.histogram(key)
            buckets, total_s = histogram_buckets(counts, total)
            h = HistogramMetricFamily(name, f"Latency: {key}", buckets=buckets, sum_value=total_s)
            yield h
        pnl = GaugeMetricFamily("strategy_pnl_total", "Equity minus starting cash (quote currency)",
                                labels=["symbol"])
        pos = GaugeMetricFamily("strategy_position_size", "Position (base quantity)", labels=["symbol"])
        start = float(e.config.broker.cash)
        for sym, eq in s["equity"].items():
            pnl.add_metric([sym], eq - start)
        for sym, p in s["positions"].items():
            pos.add_metric([sym], p)
        yield pnl
        yield pos
        util = GaugeMetricFamily("strategy_channel_utilization_ratio", "Ring fill (0..1)", labels=["channel"])
        util.add_metric(["market"], s.get("market_ring_utilisation", 0.0))
        util.add_metric(["out"], s.get("out_ring_utilisation", 0.0))
        yield util
        waits = CounterMetricFamily("strategy_channel_full_waits", "Times a ring was full (back-pressure)",
                                    labels=["channel"])
        waits.add_metric(["market"], s["market_waits"])
        waits.add_metric(["out"], s["out_waits"])
        yield waits
        book = CounterMetricFamily("strategy_book_events", "Book gaps, resyncs, desyncs and the venue BBO "
                                   "checks (bbo_checked, bbo_mismatched)", labels=["symbol", "event"])
        rej = CounterMetricFamily("strategy_rejections", "Orders rejected or ended, by reason",
                                  labels=["symbol", "reason"])
        from orpflow.events import Reason
        # the loop's own counters are read from what it published (seqlock), never directly:
        # this runs on the HTTP thread while the strategy thread writes them
        published = [e.core.slot_stats(i) for i in range(len(e._parts))]
        for (sim, *_), rs in zip(e._parts, published):
            sym = sim.instrument.symbol
            bs = rs["book"]
            for k in ("gaps", "resyncs", "desyncs", "snapshots", "bbo_checked", "bbo_mismatched"):
                book.add_metric([sym, k], bs.get(k, 0))
            merged: Dict[int, int] = {}
            for src in (rs.get("decisions", {}), rs.get("venue", {})):
                for code, n in src.items():
                    code = int(code)
                    if code != 0 and n:
                        merged[code] = merged.get(code, 0) + int(n)
            for code, n in merged.items():
                try:
                    name = Reason(code).name
                except ValueError:
                    name = str(code)
                rej.add_metric([sym, name], n)
        yield book
        yield rej
        trips = CounterMetricFamily("strategy_breaker_trips", "Circuit breaker trips", labels=["symbol", "breaker"])
        for (sim, *_), rs in zip(e._parts, published):
            for name, n in rs["trips"].items():
                trips.add_metric([sim.instrument.symbol, name], n)
        yield trips
        if e.live is not None:
            yield from _feed_metrics(s["feed"])


_FEED_COUNTERS = (
    ("frames", "Websocket messages received"),
    ("bytes", "Bytes of websocket messages received"),
    ("rejected", "Messages the converter refused (malformed, unsupported, other symbol)"),
    ("binary_frames", "Binary websocket frames (skipped: the venue sends text)"),
    ("connects", "Websocket connections made"),
    ("reconnects", "Websocket reconnections"),
    ("connect_errors", "Failed connection attempts"),
    ("silent_reconnects", "Reconnections after a silent socket"),
    ("closes_received", "Close frames received from the venue"),
    ("snapshot_requests", "REST depth snapshot requests"),
    ("snapshots", "REST depth snapshots received and pushed to the book"),
    ("snapshot_errors", "REST depth snapshot requests that failed"),
    ("resyncs", "Snapshots requested because a book was out of sync"),
    ("rest_waits", "Times a snapshot waited for the venue's request-weight budget"),
)


def _feed_metrics(f: Dict[str, Any]) -> Iterator[Any]:
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
    for key, text in _FEED_COUNTERS:
        yield CounterMetricFamily(f"feed_{key}", text, value=f[key])
    yield GaugeMetricFamily("feed_connected", "1 while the websocket is connected",
                            value=1.0 if f["connected"] else 0.0)


class MetricsServer:
    """Prometheus text on http://host:port/metrics (any path but /health), and /health
    answering 200 "ok" while the engine runs (503 once it stopped or failed)."""

    def __init__(self, engine: Any, host: str = "127.0.0.1", port: int = 9108) -> None:
        from wsgiref.simple_server import WSGIRequestHandler, make_server
        pc = _prometheus()
        self.registry = pc.CollectorRegistry(auto_describe=False)
        self.registry.register(EngineCollector(engine))
        metrics_app = pc.make_wsgi_app(self.registry)
        self.engine = engine

        def app(environ: Dict[str, Any], start_response: Any) -> List[bytes]:
            if environ.get("PATH_INFO") == "/health":
                ok = engine.error is None and engine.running()
                start_response("200 OK" if ok else "503 Service Unavailable",
                               [("Content-Type", "text/plain")])
                return [b"ok\n" if ok else b"stopped\n"]
            return metrics_app(environ, start_response)

        class Quiet(WSGIRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

        self.server = make_server(host, port, app, handler_class=Quiet)
        self.port = self.server.server_port
        self.host = host
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                       name="orpflow-metrics", daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(1.0)
