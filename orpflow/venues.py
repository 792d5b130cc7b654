"""What the live feed needs to know about each Binance market: public endpoints, stream names,
the depth snapshot's REST path, its request weight and the per-minute weight budget.

Plain data: the config validates against it, the live feed reads it. Binance's figures as
published for the public market-data endpoints (spot: api.binance.com, USD-M futures:
fapi.binance.com, COIN-M futures: dapi.binance.com).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Tuple


@dataclass(frozen=True)
class Venue:
    name: str
    ws_url: str                       # combined streams: ws_url + "/stream?streams=a/b/c"
    rest_url: str
    depth_path: str                   # REST order book snapshot
    depth_limits: Tuple[int, ...]     # the `limit` values the venue accepts (() = any in 1..5000)
    depth_ms: Tuple[int, ...]         # diff stream update speeds (ms)
    trades: Tuple[str, ...]           # trade stream names the venue has
    default_trades: str
    weight_per_minute: int            # REQUEST_WEIGHT budget per IP per minute
    futures: bool                     # futures sequencing (pu == previous u)

    def depth_weight(self, limit: int) -> int:
        """Request weight of one depth snapshot of `limit` levels."""
        if self.futures:
            return 2 if limit <= 50 else 5 if limit <= 100 else 10 if limit <= 500 else 20
        return 5 if limit <= 100 else 25 if limit <= 500 else 50 if limit <= 1000 else 250

    def depth_stream(self, symbol: str, ms: int) -> str:
        s = symbol.lower()
        # the venues name the default speed without a suffix only for futures' 250 ms
        return f"{s}@depth" if self.futures and ms == 250 else f"{s}@depth@{ms}ms"


_FUTURES_LIMITS = (5, 10, 20, 50, 100, 500, 1000)

VENUES: Dict[str, Venue] = {
    "binance-spot": Venue("binance-spot", "wss://stream.binance.com:9443", "https://api.binance.com",
                          "/api/v3/depth", (), (100, 1000), ("trade", "aggTrade"), "trade", 6000, False),
    "binance-usdm": Venue("binance-usdm", "wss://fstream.binance.com", "https://fapi.binance.com",
                          "/fapi/v1/depth", _FUTURES_LIMITS, (0, 100, 250, 500), ("trade", "aggTrade"),
                          "aggTrade", 2400, True),
    "binance-coinm": Venue("binance-coinm", "wss://dstream.binance.com", "https://dapi.binance.com",
                           "/dapi/v1/depth", _FUTURES_LIMITS, (0, 100, 250, 500), ("trade", "aggTrade"),
                           "aggTrade", 2400, True),
}
