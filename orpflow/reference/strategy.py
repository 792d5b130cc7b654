"""Twin of the strategy context (the ``ctx`` a Python strategy's callbacks receive), in plain
Python over the twin ExecutionSim: the same methods and properties, the same results.

Prices in ticks, sizes in size units, times in ns. Orders are sent at the local clock
(``ctx.now``) and go through the same risk gate as the engine's own orders. As the strategy
API contract says, invalid arguments (unknown names, a size off the lot grid, a missing or
superfluous price or expiry, a type and time in force that contradict) raise ValueError; the
compiled Python context records some of them as rejected orders instead.
"""
from __future__ import annotations

import numbers
from typing import Any, Callable, Dict, List, Optional, Tuple

from orpflow.features import FEATURE_NAMES
from orpflow.events import Reason
from orpflow.orders import OPEN_STATUSES, OrderType as Ty, TimeInForce as Tif, parse_type_tif
from orpflow.reference.broker import Order
from orpflow.strategy_types import ORDER_TYPES, STATUSES, TIFS, FillUpdate, OrderUpdate, Trade

MAX_TIMERS = 16
TOP_MAX = 64                       # levels top() reads at most
_SIDES = {1: 1, -1: -1, "buy": 1, "sell": -1}

__all__ = ["Context", "MAX_TIMERS", "as_order_update", "as_fill_update", "as_trade"]


def as_order_update(o: Order) -> OrderUpdate:
    return OrderUpdate(o.id, o.client_id, o.side, ORDER_TYPES[o.type], TIFS[o.tif], STATUSES[o.status],
                       int(o.reason), o.price, o.qty, o.filled, o.ahead, o.ts_request, o.ts_done, o.expire_at)


def as_fill_update(f: tuple) -> FillUpdate:
    oid, cid, side, taker, price, qty, _fee, _realised, pos, ts_exch, ts_local = f
    return FillUpdate(oid, cid, side, price, qty, "taker" if taker else "maker", pos, ts_exch, ts_local)


def as_trade(rec: Tuple[int, ...], buy_flag: int, sell_flag: int) -> Trade:
    aggr = rec[7] & (buy_flag | sell_flag)
    side = 1 if aggr == buy_flag else (-1 if aggr == sell_flag else 0)
    return Trade(rec[0], rec[1], rec[5], rec[6], side)


def _int(name: str, v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, numbers.Integral):
        raise ValueError(f"{name} must be an int, got {v!r}")
    return int(v)


def _side(v: Any, allow_both: bool = False) -> int:
    if allow_both and isinstance(v, numbers.Integral) and not isinstance(v, bool) and v == 0:
        return 0
    key = v.lower() if isinstance(v, str) else (int(v) if isinstance(v, numbers.Integral) else v)
    if isinstance(v, bool) or not isinstance(key, (int, str)) or key not in _SIDES:
        raise ValueError(f"side must be +1, -1, 'buy' or 'sell'{', or 0' if allow_both else ''}, got {v!r}")
    return _SIDES[key]


class Context:
    """One instrument's context for its strategy (the same object every call).

    ``open``: the ids of orders sent and not yet reported final to the strategy (on_order),
    in send order; ``sent(result)``: the engine's hook after every order sent or rejected."""

    def __init__(self, slot: Any, sent: Optional[Callable[[int], None]] = None) -> None:
        self._slot = slot                   # the engine twin's _Slot: sim, features, rows
        self._sim = slot.sim
        self._inst = slot.inst
        self.timers: Dict[int, int] = {}    # timer id -> due local time (ns)
        self.open: List[int] = []
        self.sent = sent

    # ------------------------------------------------------------ engine side
    def send(self, side: int, kind: int, tif: int, price: int, qty: int, expire_at: int, client_id: int,
             reason: int = 0) -> int:
        """Any order of the instrument (the strategy's, the engine's): through the risk gate
        at the local clock; its id, or -reason."""
        r = self._sim.submit_units(side, kind, tif, price, qty, client_id, expire_at, self._sim.now, reason)
        if r > 0:
            self.open.append(r)
        if r != 0 and self.sent is not None:
            self.sent(r)
        return r

    def closed(self, order_id: int) -> None:
        """The strategy was told the order is final: it leaves ``open``."""
        if order_id in self.open:
            self.open.remove(order_id)

    # ------------------------------------------------------------ orders
    def submit(self, side: Any, qty_units: int, price_ticks: int = 0, type: str = "limit",
               tif: Optional[str] = None, expire_at: int = 0, client_id: int = 0) -> int:
        """Send an order; its id (> 0), or -reason if it was rejected (by the risk gate, or a
        size, price or expiry off the grid: ORDER_BAD_QTY / _PRICE / _EXPIRY, recorded). tif
        None: IOC for market orders, the type's for "ioc"/"fok", else GTC. Unknown names and
        a type/tif pair the venue never accepts raise ValueError."""
        s = _side(side)
        qty, price = _int("qty_units", qty_units), _int("price_ticks", price_ticks)
        exp, cid = _int("expire_at", expire_at), _int("client_id", client_id)
        kind, tf = parse_type_tif(type, tif)
        if kind == Ty.MARKET and price != 0:
            raise ValueError("market orders take no price")
        # values off the grid: a rejected order with the reason, as the compiled ctx_submit
        reason = 0
        if qty <= 0 or qty % self._inst.lot_units:
            reason = int(Reason.ORDER_BAD_QTY)
        elif kind != Ty.MARKET and price <= 0:
            reason = int(Reason.ORDER_BAD_PRICE)
        elif (tf == Tif.GTD) != (exp != 0):
            reason = int(Reason.ORDER_BAD_EXPIRY)
        return self.send(s, int(kind), int(tf), price, qty, exp, cid, reason)

    def _live(self, order_id: Any) -> Optional[Order]:
        if isinstance(order_id, bool) or not isinstance(order_id, int):
            return None
        o = self._sim._known(order_id)
        return o if o is not None and o.status in OPEN_STATUSES else None

    def cancel(self, order_id: int) -> bool:
        """True if a cancel was sent (the order was pending or open)."""
        if self._live(order_id) is None:
            return False
        return bool(self._sim.cancel(order_id))

    def modify(self, order_id: int, price_ticks: int, qty_units: int) -> int:
        """0 if the modify was sent, a reason (> 0: the risk gate's, or ORDER_BAD_PRICE /
        ORDER_BAD_QTY for values off the grid), or -1 if the order is unknown, final or a
        market order."""
        o = self._live(order_id)
        if o is None or o.type == Ty.MARKET:
            return -1
        price, qty = _int("price_ticks", price_ticks), _int("qty_units", qty_units)
        if price <= 0:
            return int(Reason.ORDER_BAD_PRICE)
        if qty <= 0 or qty % self._inst.lot_units:
            return int(Reason.ORDER_BAD_QTY)
        return self._sim.modify_units(o, price, qty, self._sim.now)

    def cancel_all(self, side: Any = 0) -> int:
        """Cancels sent to every pending or open order (of one side if side != 0), in send order."""
        s = _side(side, allow_both=True)
        n = 0
        for oid in list(self.open):
            o = self._sim._known(oid)
            if o is not None and (s == 0 or o.side == s):
                n += self.cancel(oid)
        return n

    # ------------------------------------------------------------ timers
    def set_timer(self, at_ns: int, timer_id: int = 0) -> None:
        """on_timer(ctx, timer_id) once the local clock reaches at_ns (setting an id again moves it)."""
        at, tid = _int("at_ns", at_ns), _int("timer_id", timer_id)
        if tid not in self.timers and len(self.timers) >= MAX_TIMERS:
            raise ValueError(f"at most {MAX_TIMERS} timers")
        self.timers[tid] = at

    def cancel_timer(self, timer_id: int) -> bool:
        return self.timers.pop(timer_id, None) is not None

    def next_timer(self) -> Optional[Tuple[int, int]]:
        """(due, id) of the timer to fire first: the earliest, the lowest id on a tie."""
        return min(((at, tid) for tid, at in self.timers.items()), default=None)

    # ------------------------------------------------------------ state
    @property
    def position(self) -> int:
        return self._sim.broker.position

    def account(self) -> Dict[str, Any]:
        return self._sim.account()

    def open_orders(self) -> List[OrderUpdate]:
        """The orders sent and not yet reported final (current state), in send order: an
        order that became final since the last on_order shows its final status until then."""
        return [as_order_update(self._sim.broker.orders[oid - 1]) for oid in self.open]

    def order(self, order_id: int) -> Optional[OrderUpdate]:
        if isinstance(order_id, bool) or not isinstance(order_id, int):
            return None
        o = self._sim._known(order_id)
        return None if o is None else as_order_update(o)

    def features(self) -> Dict[str, float]:
        f = self._slot.features
        d = {n: float(f.row[n]) for n in FEATURE_NAMES}
        ts, seq = self._slot.last_row
        d.update(ts_exch=ts, seq=seq, kind=f.row["kind"], book_ok=f.row["book_ok"])
        return d

    def feature(self, name: str) -> float:
        return self.features()[name]

    @property
    def best_bid(self) -> int:
        bids = self._sim.book.bids
        return max(bids) if bids else 0

    @property
    def best_ask(self) -> int:
        asks = self._sim.book.asks
        return min(asks) if asks else 0

    def top(self, n: int = 5) -> Tuple[List[Tuple[int, int]], List[Tuple[int, int]]]:
        """(bids, asks): up to n (<= 64) levels each, best first, as (price_ticks, qty_units)."""
        n = min(_int("n", n), TOP_MAX)
        if n <= 0:
            return [], []
        book = self._sim.book
        return list(book.top("bid", n)), list(book.top("ask", n))

    @property
    def now(self) -> int:
        return self._sim.now

    @property
    def venue_time(self) -> int:
        return self._sim.broker.clock

    @property
    def rows(self) -> int:
        return self._slot.rows

    @property
    def instrument(self) -> Any:
        return self._inst
