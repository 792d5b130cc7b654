"""What a Python strategy's callbacks receive: trades, order updates and fills, as named tuples
of exact integers (prices in ticks, sizes in size units, times in ns). Shared by the compiled
engine and its pure-Python twin."""
from __future__ import annotations

from typing import NamedTuple

__all__ = ["Trade", "OrderUpdate", "FillUpdate", "ORDER_TYPES", "TIFS", "STATUSES"]

#: Integer codes of the broker (orpflow.orders) -> the names callbacks see.
ORDER_TYPES = ("market", "limit", "post_only")
TIFS = ("GTC", "IOC", "FOK", "GTD")
STATUSES = ("pending", "accepted", "partially_filled", "filled", "cancelled", "rejected", "expired")


class Trade(NamedTuple):
    """A trade record: side +1 the buyer was the aggressor, -1 the seller, 0 unknown."""
    ts_exch: int
    ts_local: int
    price_ticks: int
    qty_units: int
    side: int


class OrderUpdate(NamedTuple):
    """One of the strategy's orders at a state change (on_order) or now (open_orders, order).
    queue_ahead_units: the size ahead of it at its price level (resting limit orders)."""
    id: int
    client_id: int
    side: int
    type: str
    tif: str
    status: str
    reason: int
    price_ticks: int
    qty_units: int
    filled_units: int
    queue_ahead_units: int
    ts_request: int
    ts_done: int
    expire_at: int

    @property
    def leaves_units(self) -> int:
        return self.qty_units - self.filled_units

    @property
    def is_open(self) -> bool:
        return self.status in ("pending", "accepted", "partially_filled")


class FillUpdate(NamedTuple):
    """One fill of the strategy's orders; position_units is the position after it."""
    order_id: int
    client_id: int
    side: int
    price_ticks: int
    qty_units: int
    liquidity: str
    position_units: int
    ts_exch: int
    ts_local: int
