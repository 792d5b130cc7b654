"""[feed]: where market data comes from (a replay of files, or a live Binance venue), and
the checks a live feed's settings need against the venue (orpflow.venues)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from orpflow.validate import _check_cpu, _check_float, _check_int

MARKET_RING_MAX = 1 << 18            # events; why: FeedConfig.__post_init__
OUT_RING_MAX = 1 << 15               # records


FEED_SOURCES = ("replay", "binance")


@dataclass(frozen=True)
class FeedConfig:
    """Where market data comes from.

    source = "replay" (default) replays the instruments' files: speed 0 = as fast as the
    engine takes them (the market ring back-pressures the feed), 1 = recorded pace, 10 = ten
    times faster; repeat > 1 replays the recording again, shifted in time (benchmarks).

    source = "binance" trades the venue's live public streams (all instruments on one venue,
    one combined websocket): ws_url / rest_url default to the venue's public endpoints (point
    them at `orpflow serve-replay` for a loopback exchange); depth_ms is the diff stream's
    update speed, trades the trade stream, depth_limit the REST snapshot's levels. No frame
    for silence_s seconds = reconnect; reconnects back off from reconnect_min_s doubling to
    reconnect_max_s, with jitter. record = "path.gz" writes every received frame and REST
    snapshot (rotated files path-YYYYMMDD-NNNN.gz, new file past record_max_mb or at a new
    UTC day). cpu pins the feed thread.
    """

    source: str = "replay"
    speed: float = 0.0
    repeat: int = 1
    market_ring: int = 16384
    out_ring: int = 16384
    ws_url: Optional[str] = None
    rest_url: Optional[str] = None
    depth_ms: Optional[int] = None
    trades: Optional[str] = None
    depth_limit: int = 1000
    silence_s: float = 10.0
    reconnect_min_s: float = 0.25
    reconnect_max_s: float = 30.0
    snapshot_timeout_s: float = 10.0
    resync_min_s: float = 1.0
    rest_weight_per_minute: Optional[int] = None
    record: Optional[str] = None
    record_max_mb: float = 256.0
    cpu: Optional[int] = None

    def __post_init__(self) -> None:
        if self.source not in FEED_SOURCES:
            raise ValueError(f"source must be one of {FEED_SOURCES}, got {self.source!r}")
        _check_float("speed", self.speed, 0.0, 1e9)
        _check_int("repeat", self.repeat, 1, 10 ** 6)
        # stop() must drain both rings within 1 s: the strategy works through a full market
        # ring (>= ~1.2 M events/s with the database on, on a loaded 2-core VM: 2^18 in ~0.2
        # s) while the persistence thread writes a full out ring and what those events make
        # (~0.1 record/event; >= ~150 k records/s there: 2^15 + ~26 k in <= ~0.4 s; margin for
        # the machine's stalls: 2^16 took 1.2 s once in five on a busy VM). `orpflow
        # bench` measures stop() at these maxima.
        for name, value, top, why in (
                ("market_ring", self.market_ring, MARKET_RING_MAX, "the strategy drains at least "
                 "~1 M events/s, and stop() drains this ring within its 1 s budget"),
                ("out_ring", self.out_ring, OUT_RING_MAX, "the persistence thread writes at least "
                 "~150 k records/s, and stop() writes this ring within its 1 s budget")):
            _check_int(name, value, 1024)
            if value > top:
                raise ValueError(f"{name} must be in [1024, {top}], got {value}: {why}")
        for name, url, schemes in (("ws_url", self.ws_url, ("ws://", "wss://")),
                                   ("rest_url", self.rest_url, ("http://", "https://"))):
            if url is not None and (not isinstance(url, str) or not url.startswith(schemes)
                                    or len(url) <= len(schemes[1])):
                raise ValueError(f"{name} must be a {' or '.join(schemes)} URL, got {url!r}")
        if self.depth_ms is not None:
            _check_int("depth_ms", self.depth_ms, 0, 1000)
        if self.trades is not None and self.trades not in ("trade", "aggTrade"):
            raise ValueError(f"trades must be 'trade' or 'aggTrade', got {self.trades!r}")
        _check_int("depth_limit", self.depth_limit, 1, 5000)
        _check_float("silence_s", self.silence_s, 0.0, 86400.0, lo_open=True)
        _check_float("reconnect_min_s", self.reconnect_min_s, 0.0, 3600.0, lo_open=True)
        _check_float("reconnect_max_s", self.reconnect_max_s, self.reconnect_min_s, 3600.0)
        _check_float("snapshot_timeout_s", self.snapshot_timeout_s, 0.0, 600.0, lo_open=True)
        _check_float("resync_min_s", self.resync_min_s, 0.0, 3600.0)
        if self.rest_weight_per_minute is not None:
            _check_int("rest_weight_per_minute", self.rest_weight_per_minute, 1, 10 ** 6)
        if self.record is not None and (not isinstance(self.record, str) or not self.record):
            raise ValueError("record must be a file path ending in .gz (or omitted)")
        if self.record is not None and not self.record.endswith(".gz"):
            raise ValueError(f"record must name a .gz file (it is written gzip), got {self.record!r}")
        _check_float("record_max_mb", self.record_max_mb, 0.0, 1e6, lo_open=True)
        _check_cpu("cpu", self.cpu)

    @property
    def live(self) -> bool:
        return self.source != "replay"


def check_live(cfg: "EngineConfig") -> None:
    """A live feed: one Binance venue for every instrument, and settings that venue accepts."""
    from orpflow.venues import VENUES
    venues = sorted({ic.venue for ic in cfg.instruments})
    if len(venues) != 1 or venues[0] not in VENUES:
        raise ValueError(f"[feed] source = {cfg.feed.source!r} trades one Binance venue "
                         f"({', '.join(VENUES)}) per engine; the instruments are on {venues}")
    venue = VENUES[venues[0]]
    for i, ic in enumerate(cfg.instruments):
        if ic.paths:
            raise ValueError(f"[instruments[{i}]] paths: a live feed reads the venue, not files "
                             "(remove paths, or use [feed] source = \"replay\")")
    f = cfg.feed
    if f.depth_ms is not None and f.depth_ms not in venue.depth_ms:
        raise ValueError(f"[feed] depth_ms must be one of {venue.depth_ms} on {venue.name}, "
                         f"got {f.depth_ms}")
    if venue.depth_limits and f.depth_limit not in venue.depth_limits:
        raise ValueError(f"[feed] depth_limit must be one of {venue.depth_limits} on {venue.name}, "
                         f"got {f.depth_limit}")
    if f.repeat != 1 or f.speed != 0.0:
        raise ValueError("[feed] speed and repeat are for replays; a live feed runs at the "
                         "venue's pace")
