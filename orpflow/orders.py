"""Order vocabulary shared by the compiled broker and its twin: enums, record dtypes, and the
parsing of ``submit()`` arguments into the core's integers."""
from __future__ import annotations

import enum
from decimal import Decimal
from typing import Any, Optional, Tuple

import numpy as np

from orpflow._core.types import REASONS
from orpflow.instrument import Instrument


class Side(enum.IntEnum):
    BUY = 1
    SELL = -1


class OrderType(enum.IntEnum):
    MARKET = 0
    LIMIT = 1
    POST_ONLY = 2


class TimeInForce(enum.IntEnum):
    GTC = 0
    IOC = 1
    FOK = 2
    GTD = 3


class OrderStatus(enum.IntEnum):
    PENDING = 0            # sent, not yet at the venue
    ACCEPTED = 1           # resting, nothing filled
    PARTIALLY_FILLED = 2
    FILLED = 3
    CANCELLED = 4
    REJECTED = 5
    EXPIRED = 6


OPEN_STATUSES = (OrderStatus.PENDING, OrderStatus.ACCEPTED, OrderStatus.PARTIALLY_FILLED)

#: One row per order, ever submitted (rejected ones included). Prices in ticks, sizes in size
#: units, times in ns (local clock for request/ack, venue clock for arrival/done).
ORDER_DTYPE = np.dtype([
    ("id", "<i8"), ("client_id", "<i8"), ("side", "i1"), ("type", "i1"), ("tif", "i1"),
    ("status", "i1"), ("reason", "<i4"), ("price", "<i8"), ("qty", "<i8"), ("filled", "<i8"),
    ("ts_request", "<i8"), ("ts_arrival", "<i8"), ("ts_ack", "<i8"), ("ts_done", "<i8"),
    ("expire_at", "<i8"), ("queue_ahead", "<i8"), ("fees", "<f8"),
])

#: One row per fill. `liquidity`: 0 maker, 1 taker. `fee` and `realised` (gross PnL this fill
#: realised) in quote currency; exact values are in ``account()``. `position`: after the fill.
FILL_DTYPE = np.dtype([
    ("order_id", "<i8"), ("client_id", "<i8"), ("side", "i1"), ("liquidity", "i1"),
    ("price", "<i8"), ("qty", "<i8"), ("fee", "<f8"), ("realised", "<f8"), ("position", "<i8"),
    ("ts_exch", "<i8"), ("ts_local", "<i8"),
])

_SIDES = {"buy": Side.BUY, "sell": Side.SELL, 1: Side.BUY, -1: Side.SELL}
_TYPES = {"market": (OrderType.MARKET, None), "limit": (OrderType.LIMIT, None),
          "post_only": (OrderType.POST_ONLY, None), "ioc": (OrderType.LIMIT, TimeInForce.IOC),
          "fok": (OrderType.LIMIT, TimeInForce.FOK)}


def _enum_arg(name: str, value: Any, table: dict) -> Any:
    key = value.lower() if isinstance(value, str) else value
    if isinstance(key, enum.Enum):
        key = key.name.lower() if name != "side" else int(key)
    if key not in table:
        raise ValueError(f"{name} must be one of {[k for k in table if isinstance(k, str)]}, got {value!r}")
    return table[key]


def _units(convert: Any, value: Any) -> Optional[int]:
    """Exact grid units of a number, or None if it is not on the grid (a rejected order)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str, Decimal)):
        raise TypeError(f"expected a number or a decimal string, got {type(value).__name__}")
    try:
        return int(convert(value))
    except ValueError:
        return None


def parse_type_tif(type: Any, tif: Any) -> Tuple[OrderType, TimeInForce]:
    """(order type, time in force) of a ``submit()``'s type and tif names; tif None: the
    type's ("ioc"/"fok"), IOC for market orders, else GTC. Unknown names and pairs the venue
    never accepts raise ValueError (a programming error, not an order)."""
    otype, forced_tif = _enum_arg("type", type, _TYPES)
    if tif is None:
        t = forced_tif if forced_tif is not None else (
            TimeInForce.IOC if otype == OrderType.MARKET else TimeInForce.GTC)
    else:
        t = TimeInForce[tif.upper()] if isinstance(tif, str) and tif.upper() in TimeInForce.__members__ \
            else None
        if t is None:
            raise ValueError(f"tif must be one of {list(TimeInForce.__members__)}, got {tif!r}")
        if forced_tif is not None and t != forced_tif:
            raise ValueError(f"type {type!r} implies tif {forced_tif.name}, got {tif!r}")
    if otype == OrderType.MARKET and t not in (TimeInForce.IOC, TimeInForce.FOK):
        raise ValueError("market orders are IOC or FOK")
    if otype == OrderType.POST_ONLY and t not in (TimeInForce.GTC, TimeInForce.GTD):
        raise ValueError("post-only orders are GTC or GTD")
    return otype, t


def parse_order(inst: Instrument, side: Any, qty: Any, type: Any, price: Any, tif: Any,
                expire_at: Any) -> Tuple[int, int, int, int, int, int, int]:
    """(side, type, tif, price ticks, qty units, expire_at, reason) for ``submit()``.

    Unknown names and wrong types raise (a programming error); a quantity or price off its
    grid, or a missing price, comes back as a reason code (a rejected order, counted).
    """
    s = int(_enum_arg("side", side, _SIDES))
    otype, t = parse_type_tif(type, tif)
    reason = 0
    units = _units(inst.size_to_units, qty)
    lot = inst.lot_units
    if units is None or units <= 0 or units % lot:
        reason, units = REASONS["ORDER_BAD_QTY"], 0 if units is None else units
    ticks = 0
    if otype == OrderType.MARKET:
        if price is not None:
            raise ValueError("market orders take no price")
    elif price is None:
        reason = reason or REASONS["ORDER_BAD_PRICE"]
    else:
        p = _units(inst.price_to_ticks, price)
        if p is None or p <= 0:
            reason = reason or REASONS["ORDER_BAD_PRICE"]
        else:
            ticks = p
    exp = 0
    if t == TimeInForce.GTD:
        if expire_at is None or isinstance(expire_at, bool) or not isinstance(expire_at, int):
            reason = reason or REASONS["ORDER_BAD_EXPIRY"]
        else:
            exp = expire_at
    elif expire_at is not None:
        reason = reason or REASONS["ORDER_BAD_EXPIRY"]
    if not -2 ** 63 <= units < 2 ** 63:
        reason, units = REASONS["ORDER_BAD_QTY"], 0
    if not 0 <= ticks < 2 ** 63:
        reason, ticks = REASONS["ORDER_BAD_PRICE"], 0
    return s, int(otype), int(t), ticks, units, exp, reason


def account_view(inst: Instrument, *, cash: Decimal, cost: Decimal, position: int, realised: Decimal,
                 fees: Decimal, mark_mid2: int, peak: Optional[Decimal], max_drawdown: float,
                 round_trips: int, losing_round_trips: int) -> dict:
    """The account as exact Decimals: cash, position (size and units), average entry, cost
    basis, realised PnL (gross and net of every fee paid), unrealised PnL and equity at the
    last mark (mid of the last complete book message), peak equity and max drawdown."""
    from decimal import localcontext
    from orpflow.config import EXACT
    with localcontext(EXACT):
        return _account_view(inst, cash, cost, position, realised, fees, mark_mid2, peak, max_drawdown,
                             round_trips, losing_round_trips)


def _account_view(inst: Instrument, cash: Decimal, cost: Decimal, position: int, realised: Decimal,
                  fees: Decimal, mark_mid2: int, peak: Optional[Decimal], max_drawdown: float,
                  round_trips: int, losing_round_trips: int) -> dict:
    from orpflow.config import EXACT as ctx
    size = inst.units_to_size(abs(position))
    sign = 1 if position > 0 else -1
    unreal = value = Decimal(0)
    if mark_mid2:
        mid = inst.ticks_to_price(mark_mid2) / 2
        value = ctx.multiply(size, mid) * sign if position else Decimal(0)
        unreal = (ctx.multiply(size, mid) - cost) * sign if position else Decimal(0)
    return {
        "cash": cash, "position": inst.units_to_size(position), "position_units": position,
        "avg_entry_price": ctx.divide(cost, size) if position else None,
        "cost_basis": cost, "realised_pnl": realised, "fees": fees,
        "net_realised_pnl": realised - fees, "unrealised_pnl": unreal,
        "equity": cash + value, "mark_price": inst.ticks_to_price(mark_mid2) / 2 if mark_mid2 else None,
        "peak_equity": peak, "max_drawdown": max_drawdown,
        "round_trips": round_trips, "losing_round_trips": losing_round_trips,
    }


def position_view(account: dict) -> dict:
    return {k: account[k] for k in ("position", "position_units", "avg_entry_price", "realised_pnl",
                                    "unrealised_pnl")}
