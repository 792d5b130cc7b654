"""Pure-Python twin of ``orpflow._core.broker``: the simulated venue, the account, and the
ExecutionSim that drives them with a book and the risk gate.

Written as the specification (docs/broker.md): plain dicts and lists, the account in
``decimal.Decimal`` quote currency. The compiled broker keeps the account in integer money
units; the differential tests demand the two agree exactly.
"""
from __future__ import annotations

import bisect
import decimal
import functools
import heapq
import math
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from orpflow._core.types import FLAGS, REASONS
from orpflow.config import EXACT, FEE_SCALE, MoneyScale, RiskLimits, broker_params
from orpflow.events import Reason, check_event_array
from orpflow.instrument import Instrument
from orpflow.orders import (
    FILL_DTYPE, ORDER_DTYPE, OrderStatus as St, OrderType as Ty, TimeInForce as Tif, account_view,
    parse_order, position_view,
)
from orpflow.reference.book import OrderBook
from orpflow.reference.risk import OrderContext, RiskGate

R = REASONS
DEPTH, TRADE, SNAPSHOT, CLEAR = FLAGS["DEPTH"], FLAGS["TRADE"], FLAGS["SNAPSHOT"], FLAGS["CLEAR"]
BID, BUY, SELL, LAST = FLAGS["BID"], FLAGS["BUY"], FLAGS["SELL"], FLAGS["LAST"]
NEW, CANCEL, MODIFY = 0, 1, 2
INF = float("inf")
_CTX = EXACT
MASK64 = (1 << 64) - 1
END_OF_TIME = 2 ** 63 - 1


def later(t: int, delay: int) -> int:
    """t + delay, saturating at the end of int64 time (the core's clocks are int64)."""
    return min(t + delay, END_OF_TIME)


class Order:
    __slots__ = ("id", "client_id", "side", "type", "tif", "status", "reason", "price", "qty",
                 "filled", "ts_request", "ts_arrival", "ts_ack", "ts_done", "expire_at",
                 "ahead", "cum_trade", "fees")

    def __init__(self, **kw: Any) -> None:
        for k in self.__slots__:
            setattr(self, k, kw.get(k, 0))

    @property
    def leaves(self) -> int:
        return self.qty - self.filled

    @property
    def open(self) -> bool:
        return self.status in (St.ACCEPTED, St.PARTIALLY_FILLED)

    def copy(self) -> "Order":
        return Order(**{k: getattr(self, k) for k in self.__slots__})


class Latency:
    """Entry/response legs: constant or interpolated from recorded rows, plus seeded jitter."""

    def __init__(self, p: Dict[str, Any]) -> None:
        self.entry, self.response, self.jitter = p["entry_ns"], p["response_ns"], p["jitter_ns"]
        self.req = list(p["lat_request"])
        self.entry_rows = [x - r for r, x in zip(p["lat_request"], p["lat_exchange"])]
        self.resp_rows = [y - x for x, y in zip(p["lat_exchange"], p["lat_response"])]
        self.state = p["seed"] & MASK64

    def _interp(self, rows: List[int], t: int) -> int:
        i = bisect.bisect_right(self.req, t) - 1
        if i < 0:
            return rows[0]
        if i >= len(rows) - 1:
            return rows[-1]
        t0, t1 = self.req[i], self.req[i + 1]
        if t1 == t0:
            return rows[i]
        return rows[i] + (rows[i + 1] - rows[i]) * (t - t0) // (t1 - t0)

    def _next_random(self) -> int:
        """splitmix64."""
        self.state = (self.state + 0x9E3779B97F4A7C15) & MASK64
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
        return z ^ (z >> 31)

    def entry_at(self, t: int) -> int:
        base = self._interp(self.entry_rows, t) if self.req else self.entry
        return base + (self._next_random() % (self.jitter + 1) if self.jitter else 0)

    def response_at(self, t: int) -> int:
        return self._interp(self.resp_rows, t) if self.req else self.response


def queue_prob(model: int, n: float, front: float, back: float) -> float:
    """Probability that a depth decrease happened behind the order (hftbacktest's functions)."""
    def pw(x: float) -> float:
        try:
            return math.pow(x, n)
        except OverflowError:
            return INF

    def div(a: float, b: float) -> float:
        if b == 0.0:
            return math.nan if a == 0.0 else math.copysign(INF, a)
        return a / b

    if model == 1:
        return div(pw(back), pw(back) + pw(front))
    if model == 2:
        return div(pw(back), pw(back + front))
    if model == 3:
        return 1.0 - pw(div(front, front + back))
    if model == 4:
        return div(math.log(1.0 + back), math.log(1.0 + back) + math.log(1.0 + front))
    return div(math.log(1.0 + back), math.log(1.0 + back + front))


class PaperBroker:
    """Twin of ``orpflow.PaperBroker``: venue simulator + account for one instrument."""

    def __init__(self, inst: Instrument, *, cash: Any = 10_000, fees: Any = None, latency: Any = 0,
                 queue_model: str = "prob_power2", queue_power: float = 3.0, seed: int = 0) -> None:
        self.inst = self.instrument = inst
        self.p = broker_params(inst, cash=cash, fees=fees, latency=latency, queue_model=queue_model,
                               queue_power=queue_power, seed=seed)
        self.scale = MoneyScale(inst)
        self.lot = inst.lot_units
        self.latency = Latency(self.p)
        self.maker_rate = Decimal(self.p["maker_e8"]).scaleb(-8)
        self.taker_rate = Decimal(self.p["taker_e8"]).scaleb(-8)
        self.orders: List[Order] = []
        self.fills: List[tuple] = []
        self.requests: List[tuple] = []          # heap of (arrival, seq, kind, id, price, qty)
        self.seq = 0
        self.slots: Dict[Tuple[int, int], List[Order]] = {}   # (side, price) -> FIFO
        self.level_qty: Dict[Tuple[int, int], int] = {}
        self.consumed: Dict[Tuple[int, int], int] = {}
        self.clock = 0                           # venue time: running max of ts_exch
        self.counts: Dict[int, int] = {}          # venue-side outcomes by reason
        # account (Decimal quote currency)
        self.cash = self.scale.to_decimal(self.p["cash"])
        self.position = 0
        self.cost = Decimal(0)
        self.realised = Decimal(0)
        self.fees = Decimal(0)
        self.rt_pnl = Decimal(0)
        self.round_trips = 0
        self.losing_round_trips = 0
        self.mark_mid2 = 0                       # bid + ask of the last mark (0: none yet)
        self.peak: Optional[int] = None
        self.max_drawdown = 0.0
        self.risk: Optional[RiskGate] = None
        # copies of orders at every state change, at the compiled broker's journal() points
        # (only while journal_on: the engine switches it on and drains it after each record)
        self.journal: List[Order] = []
        self.journal_on = False

    def journal_add(self, o: Order) -> None:
        if self.journal_on:
            self.journal.append(o.copy())

    # ------------------------------------------------------------ book views
    def _book_qty(self, book: OrderBook, side: int, price: int) -> int:
        return (book.bids if side > 0 else book.asks).get(price, 0)

    def _opposite_levels(self, book: OrderBook, side: int) -> List[Tuple[int, int]]:
        return book._sorted("ask" if side > 0 else "bid")

    def _takeable(self, book: OrderBook, o: Order, limit: Optional[int]) -> int:
        """Size a taker could fill now, up to its limit, net of consumed liquidity."""
        total, opp = 0, -o.side
        for price, qty in self._opposite_levels(book, o.side):
            if limit is not None and (price > limit if o.side > 0 else price < limit):
                break
            avail = qty - self.consumed.get((opp, price), 0)
            total += max(avail, 0) // self.lot * self.lot
            if total >= o.leaves:
                return o.leaves
        return total

    def _walk(self, book: OrderBook, o: Order, limit: Optional[int]) -> None:
        opp = -o.side
        for price, qty in self._opposite_levels(book, o.side):
            if o.leaves == 0 or (limit is not None and (price > limit if o.side > 0 else price < limit)):
                break
            avail = qty - self.consumed.get((opp, price), 0)
            take = min(max(avail, 0), o.leaves) // self.lot * self.lot
            if take > 0:
                self.consumed[(opp, price)] = self.consumed.get((opp, price), 0) + take
                self._fill(o, price, take, taker=True)

    # ------------------------------------------------------------ account
    def _fill(self, o: Order, price: int, qty: int, taker: bool) -> None:
        inst = self.inst
        o.filled += qty
        px, sz = inst.ticks_to_price(price), inst.units_to_size(qty)
        notional = _CTX.multiply(px, sz)
        fee = _CTX.multiply(notional, self.taker_rate if taker else self.maker_rate)
        o.fees += self.scale.to_money("fee", fee, floor=False)
        realised = self._account_fill(o.side, price, qty, notional, fee)
        if o.leaves == 0:
            o.status = St.FILLED
            o.ts_done = self.clock
            self._unrest(o)
        else:
            o.status = St.PARTIALLY_FILLED
        self.journal_add(o)
        self.fills.append((o.id, o.client_id, o.side, int(taker), price, qty,
                           self.scale.to_money("fee", fee, floor=False),
                           self.scale.to_money("realised", realised, floor=False), self.position,
                           self.clock, later(self.clock, self.latency.response_at(self.clock))))

    def _account_fill(self, side: int, price: int, qty: int, notional: Decimal, fee: Decimal) -> Decimal:
        self.cash = _CTX.subtract(self.cash, _CTX.add(notional * side, fee))
        self.fees += fee
        pos, realised = self.position, Decimal(0)
        if pos == 0 or (pos > 0) == (side > 0):
            if pos == 0:
                self.rt_pnl = Decimal(0)
            self.cost = _CTX.add(self.cost, notional)
            self.position = pos + side * qty
            self.rt_pnl -= fee
            return realised
        close = min(qty, abs(pos))
        unit = self.scale.to_decimal(1)
        exact = _CTX.divide(_CTX.multiply(self.cost, close), abs(pos))
        removed = _CTX.divide(exact, unit).to_integral_value(rounding=ROUND_HALF_EVEN) * unit
        close_notional = _CTX.multiply(self.inst.ticks_to_price(price), self.inst.units_to_size(close))
        realised = (close_notional - removed) * (1 if pos > 0 else -1)
        self.cost -= removed
        self.position = pos + side * close
        self.realised += realised
        self.rt_pnl += realised - fee
        if self.position == 0:
            self._end_round_trip()
        rest = qty - close
        if rest > 0:
            self.cost = _CTX.multiply(self.inst.ticks_to_price(price), self.inst.units_to_size(rest))
            self.position = side * rest
            self.rt_pnl = Decimal(0)
        return realised

    def _end_round_trip(self) -> None:
        self.round_trips += 1
        pnl = self.scale.to_money("pnl", self.rt_pnl, floor=False)
        if pnl < 0:
            self.losing_round_trips += 1
        if self.risk is not None:
            self.risk.on_round_trip(pnl, self.clock)

    def equity_money(self, mid2: int) -> int:
        """cash + position x mid, in money units (mid2 = bid + ask in ticks)."""
        return self.scale.to_money("cash", self.cash, floor=False) + self.position * mid2 * FEE_SCALE // 2

    def mark(self, book: OrderBook, now: int) -> None:
        if not book.bids or not book.asks:
            return
        self.mark_mid2 = max(book.bids) + min(book.asks)
        eq = self.equity_money(self.mark_mid2)
        if self.peak is None or eq > self.peak:
            self.peak = eq
        if self.peak > 0:
            self.max_drawdown = max(self.max_drawdown, float(self.peak - eq) / float(self.peak))
        if self.risk is not None:
            self.risk.on_mark(eq, now)

    # ------------------------------------------------------------ resting orders
    def _rest(self, book: OrderBook, o: Order) -> None:
        key = (o.side, o.price)
        q = self._book_qty(book, o.side, o.price)
        if key not in self.slots:
            self.slots[key] = []
            self.level_qty[key] = q
        o.ahead, o.cum_trade = q, 0
        self.slots[key].append(o)

    def _unrest(self, o: Order) -> None:
        key = (o.side, o.price)
        lst = self.slots.get(key)
        if lst is not None and o in lst:
            lst.remove(o)
            if not lst:
                del self.slots[key]
                del self.level_qty[key]

    def _queue_depth(self, o: Order, prev: int, new: int) -> None:
        model = self.p["queue_model"]
        if model == 0:
            o.ahead = min(o.ahead, new)
            return
        chg = prev - new - o.cum_trade
        o.cum_trade = 0
        if chg < 0:
            o.ahead = min(o.ahead, new)
            return
        front, back, ch = float(o.ahead), float(prev - o.ahead), float(chg)
        prob = queue_prob(model, self.p["queue_power"], front, back)
        if not math.isfinite(prob):
            prob = 1.0
        prob = min(max(prob, 0.0), 1.0)
        est = (front - (1.0 - prob) * ch) + min(back - prob * ch, 0.0)
        o.ahead = min(0 if est <= 0.0 else math.ceil(est), new)

    def _level_changed(self, key: Tuple[int, int], new: int) -> None:
        prev = self.level_qty[key]
        for o in self.slots[key]:
            self._queue_depth(o, prev, new)
        self.level_qty[key] = new

    def on_depth(self, book: OrderBook, side: int, price: int) -> None:
        key = (side, price)
        self.consumed.pop(key, None)
        if key in self.slots:
            self._level_changed(key, self._book_qty(book, side, price))

    def refresh_levels(self, book: OrderBook) -> None:
        """After a snapshot, clear or buffered replay: re-read every level we rest at."""
        self.consumed.clear()
        for key in sorted(self.slots):
            new = self._book_qty(book, *key)
            if new != self.level_qty[key]:
                self._level_changed(key, new)

    def _resting(self, side: int) -> List[Tuple[int, int]]:
        """Our price levels on a side, best first."""
        keys = [k for k in self.slots if k[0] == side]
        return sorted(keys, key=lambda k: -k[1] * side)

    def on_trade(self, side_hit: int, price: int, qty: int) -> None:
        """A trade whose aggressor hit `side_hit` (+1 bids, -1 asks) at `price`."""
        for key in self._resting(side_hit):
            through = key[1] > price if side_hit > 0 else key[1] < price
            if through:
                for o in list(self.slots[key]):
                    self._fill(o, o.price, o.leaves, taker=False)
            elif key[1] == price:
                given = 0
                for o in list(self.slots[key]):
                    o.ahead -= qty
                    o.cum_trade += qty
                    if o.ahead < 0:
                        avail = -o.ahead - given
                        o.ahead = 0
                        f = min(avail, o.leaves) // self.lot * self.lot if avail > 0 else 0
                        if f > 0:
                            given += f
                            self._fill(o, price, f, taker=False)
            else:
                break

    def on_book_message(self, book: OrderBook) -> None:
        """After a complete book message: orders the opposite side has moved through fill."""
        for side, levels in ((1, book.asks), (-1, book.bids)):
            if not levels:
                continue
            best = min(levels) if side > 0 else max(levels)
            for key in self._resting(side):
                if not (key[1] > best if side > 0 else key[1] < best):
                    break
                for o in list(self.slots[key]):
                    self._fill(o, o.price, o.leaves, taker=False)

    # ------------------------------------------------------------ requests
    def send(self, kind: int, oid: int, t: int, price: int = 0, qty: int = 0) -> int:
        arrival = later(t, self.latency.entry_at(t))
        heapq.heappush(self.requests, (arrival, self.seq, kind, oid, price, qty))
        self.seq += 1
        return arrival

    def _count(self, reason: int) -> None:
        self.counts[reason] = self.counts.get(reason, 0) + 1

    def _end(self, o: Order, status: int, reason: int) -> None:
        self._unrest(o)
        o.status, o.reason, o.ts_done = status, reason, self.clock
        self.journal_add(o)
        self._count(reason)
        if status == St.REJECTED and self.risk is not None:
            self.risk.on_reject(self.clock)

    def _next_expiry(self) -> Tuple[float, Optional[Order]]:
        best: Tuple[float, Optional[Order]] = (INF, None)
        for lst in self.slots.values():
            for o in lst:
                if o.tif == Tif.GTD and (o.expire_at, o.id) < (best[0], best[1].id if best[1] else INF):
                    best = (o.expire_at, o)
        return best

    def run_until(self, book: OrderBook, t: int) -> None:
        """Process requests and expiries due at venue times <= t, in time order."""
        while True:
            t_exp, o = self._next_expiry()
            t_req = self.requests[0][0] if self.requests else INF
            if min(t_exp, t_req) > t:
                return
            if t_exp <= t_req:
                self.clock = max(self.clock, int(t_exp))
                assert o is not None
                self._end(o, St.EXPIRED, R["GTD_EXPIRED"])
                continue
            arrival, _, kind, oid, price, qty = heapq.heappop(self.requests)
            self.clock = max(self.clock, arrival)
            o = self.orders[oid - 1]
            if kind == NEW:
                self._arrive(book, o)
            elif kind == CANCEL:
                if o.open:
                    self._end(o, St.CANCELLED, R["CANCELLED"])
                else:
                    self._count(R["CANCEL_REJECTED"])
            else:
                self._modify(book, o, price, qty)

    def _arrive(self, book: OrderBook, o: Order) -> None:
        o.ts_arrival = self.clock
        o.ts_ack = later(self.clock, self.latency.response_at(self.clock))
        if not book._in_sync() or book._msg_open:
            return self._end(o, St.REJECTED, R["VENUE_BOOK_NOT_SYNCED"])
        if o.tif == Tif.GTD and o.expire_at <= self.clock:
            return self._end(o, St.EXPIRED, R["GTD_EXPIRED"])
        limit = None if o.type == Ty.MARKET else o.price
        if o.type == Ty.POST_ONLY and self._takeable(book, o, limit) > 0:
            return self._end(o, St.REJECTED, R["POST_ONLY_CROSS"])
        if o.tif == Tif.FOK and self._takeable(book, o, limit) < o.leaves:
            return self._end(o, St.EXPIRED, R["FOK_UNFILLABLE"])
        o.status = St.ACCEPTED
        self.journal_add(o)
        self._walk(book, o, limit)
        if o.leaves == 0:
            return
        if o.type == Ty.MARKET or o.tif in (Tif.IOC, Tif.FOK):
            self._end(o, St.EXPIRED, R["IOC_REMAINDER"] if o.filled else R["NO_LIQUIDITY"])
        else:
            self._rest(book, o)

    def _modify(self, book: OrderBook, o: Order, price: int, qty: int) -> None:
        if not o.open or qty <= o.filled or not book._in_sync() or book._msg_open:
            return self._count(R["MODIFY_REJECTED"])
        if price == o.price and qty <= o.qty:
            o.qty = qty                          # a size cut keeps the queue position
            self.journal_add(o)
            return self._count(R["OK"])
        probe = Order(side=o.side, qty=qty, filled=o.filled)
        if o.type == Ty.POST_ONLY and self._takeable(book, probe, price) > 0:
            return self._count(R["MODIFY_REJECTED"])
        self._unrest(o)
        o.price, o.qty = price, qty
        self.journal_add(o)
        self._walk(book, o, price)
        if o.leaves > 0:
            self._rest(book, o)
        self._count(R["OK"])

    # ------------------------------------------------------------ exports
    def open_exposure(self) -> Tuple[int, int, int]:
        """(open buy size, open sell size, open order count): resting plus in flight."""
        buy = sell = n = 0
        for o in self.orders:
            if o.status in (St.PENDING, St.ACCEPTED, St.PARTIALLY_FILLED):
                n += 1
                if o.side > 0:
                    buy += o.leaves
                else:
                    sell += o.leaves
        return buy, sell, n

    def orders_array(self) -> np.ndarray:
        out = np.zeros(len(self.orders), ORDER_DTYPE)
        for i, o in enumerate(self.orders):
            out[i] = (o.id, o.client_id, o.side, o.type, o.tif, o.status, o.reason, o.price, o.qty,
                      o.filled, o.ts_request, o.ts_arrival, o.ts_ack, o.ts_done, o.expire_at,
                      o.ahead, float(self.scale.to_decimal(o.fees)))
        return out

    def fills_array(self) -> np.ndarray:
        out = np.zeros(len(self.fills), FILL_DTYPE)
        for i, f in enumerate(self.fills):
            out[i] = f[:6] + (float(self.scale.to_decimal(f[6])), float(self.scale.to_decimal(f[7]))) + f[8:]
        return out

    def account(self) -> Dict[str, Any]:
        return account_view(self.inst, cash=self.cash, cost=self.cost, position=self.position,
                            realised=self.realised, fees=self.fees, mark_mid2=self.mark_mid2,
                            peak=None if self.peak is None else self.scale.to_decimal(self.peak),
                            max_drawdown=self.max_drawdown, round_trips=self.round_trips,
                            losing_round_trips=self.losing_round_trips)


def _exact(fn: Any) -> Any:
    """Run with 80-digit Decimal arithmetic: the account never rounds (like the int128 core)."""
    @functools.wraps(fn)
    def wrapper(*args: Any, **kw: Any) -> Any:
        with decimal.localcontext(_CTX):
            return fn(*args, **kw)
    return wrapper


class ExecutionSim:
    """Twin of ``orpflow.ExecutionSim``: a book, a PaperBroker and a RiskGate in event time."""

    def __init__(self, inst: Instrument, broker: Optional[PaperBroker] = None,
                 risk: Optional[RiskLimits] = None, **book_options: Any) -> None:
        self.inst = self.instrument = inst
        self.book = OrderBook(inst, **book_options)
        self.broker = broker if broker is not None else PaperBroker(inst)
        if self.broker.inst != inst:
            raise ValueError("broker was made for another instrument")
        if self.broker.risk is not None:
            raise ValueError("this broker already belongs to an ExecutionSim")
        self.limits = risk if risk is not None else RiskLimits()
        self.risk = RiskGate(self.limits, inst)
        self.broker.risk = self.risk
        self.now = 0                 # local clock: running max of ts_local
        self.dirty = False

    # ------------------------------------------------------------ orders
    def _t(self, ts: Optional[int]) -> int:
        return self.now if ts is None else max(int(ts), self.now)

    @_exact
    def submit(self, side: Any, qty: Any, type: Any = "limit", price: Any = None, tif: Any = None, *,
               client_id: int = 0, expire_at: Optional[int] = None, ts: Optional[int] = None) -> Any:
        s, ty, tf, ticks, units, exp, reason = parse_order(self.inst, side, qty, type, price, tif, expire_at)
        r = self.submit_units(s, ty, tf, ticks, units, int(client_id), exp, self._t(ts), reason)
        return r if r > 0 else Reason(-r)

    @_exact
    def submit_units(self, s: int, ty: int, tf: int, ticks: int, units: int, client_id: int, exp: int,
                     t: int, reason: int = 0) -> int:
        """Twin of ``exec_submit``: risk-check an order in grid units and send it; its id, or
        -reason if it was rejected (recorded too). `reason` != 0: already invalid."""
        b = self.broker
        buy, sell, n = b.open_exposure()
        o = Order(id=len(b.orders) + 1, client_id=client_id, side=s, type=ty, tif=tf,
                  price=ticks, qty=units, ts_request=t, expire_at=exp, status=St.PENDING)
        b.orders.append(o)
        if reason == 0:
            ctx = self._context(s, units, ticks, t, buy, sell, n)
            reason, units = self.risk.check(ctx)
            o.qty = units
        else:
            self.risk._count(reason)
        if reason:
            o.status, o.reason, o.ts_done = St.REJECTED, reason, t
            self.risk.on_reject(t)
            b.journal_add(o)
            return -reason
        b.journal_add(o)
        b.send(NEW, o.id, t)
        return o.id

    def _context(self, side: int, qty: int, price: int, t: int, buy: int, sell: int, n: int) -> OrderContext:
        """What the risk gate sees; equity at the current mid, else the last mark, else cash."""
        b = self.broker
        bid = max(self.book.bids) if self.book.bids else 0
        ask = min(self.book.asks) if self.book.asks else 0
        cash = b.scale.to_money("cash", b.cash, floor=False)
        mid2 = bid + ask if bid and ask else b.mark_mid2
        return OrderContext(side=side, qty=qty, price=price, now=t,
                            book_usable=self.book._in_sync() and not self.book._msg_open,
                            bid=bid, ask=ask, position=b.position, open_buy=buy, open_sell=sell,
                            open_orders=n, cash=cash, equity=b.equity_money(mid2) if mid2 else cash)

    @_exact
    def cancel(self, order_id: int, *, ts: Optional[int] = None) -> bool:
        o = self._known(order_id)
        if o is None or o.status not in (St.PENDING, St.ACCEPTED, St.PARTIALLY_FILLED):
            return False
        self.broker.send(CANCEL, o.id, self._t(ts))
        return True

    @_exact
    def modify(self, order_id: int, *, price: Any = None, qty: Any = None, ts: Optional[int] = None) -> Any:
        o = self._known(order_id)
        if o is None or o.status not in (St.PENDING, St.ACCEPTED, St.PARTIALLY_FILLED) or o.type == Ty.MARKET:
            return False
        ticks = o.price if price is None else self.inst.price_to_ticks(price)
        units = o.qty if qty is None else self.inst.size_to_units(qty)
        if ticks <= 0 or units <= 0 or units % self.inst.lot_units:
            raise ValueError("modify: price must be > 0 and qty a positive whole number of lots")
        reason = self.modify_units(o, ticks, units, self._t(ts))
        return Reason(reason) if reason else True

    @_exact
    def modify_units(self, o: Order, ticks: int, units: int, t: int) -> int:
        """Twin of ``exec_modify``: risk-check the order it would become (its own leaves leave
        the open exposure first) and send it; 0 or the reason. A size cut is sent unchecked."""
        if not (ticks == o.price and units <= o.qty):       # a size cut only lowers risk
            buy, sell, n = self.broker.open_exposure()
            if o.side > 0:
                buy -= o.leaves
            else:
                sell -= o.leaves
            reason, q = self.risk.check(self._context(o.side, units - o.filled, ticks, t, buy, sell, n - 1))
            if reason:
                self.risk.on_reject(t)
                return int(reason)
            units = o.filled + q
        self.broker.send(MODIFY, o.id, t, ticks, units)
        return 0

    def _known(self, order_id: int) -> Optional[Order]:
        if isinstance(order_id, bool) or not isinstance(order_id, int):
            raise TypeError("order_id must be an int")
        return self.broker.orders[order_id - 1] if 1 <= order_id <= len(self.broker.orders) else None

    # ------------------------------------------------------------ control
    def kill(self) -> None:
        self.risk.kill()

    def reset_kill(self) -> None:
        self.risk.reset_kill()

    def reset_breakers(self) -> None:
        self.risk.reset_breakers()

    def trip_breaker(self) -> None:
        self.risk.trip(32, self.broker.clock)

    @property
    def venue_time(self) -> int:
        return self.broker.clock

    # ------------------------------------------------------------ events
    @_exact
    def advance(self, ts: int) -> None:
        """Let the venue run to venue time ts (requests and expiries due by then)."""
        if not self.book._msg_open:
            self.broker.run_until(self.book, int(ts))

    @_exact
    def apply(self, events: np.ndarray) -> None:
        check_event_array(events)
        for rec in events.tolist():
            self._apply_record(rec)

    def _apply_record(self, rec: tuple) -> None:
        b, book = self.broker, self.book
        ts_exch, ts_local, _, _, _, price, qty, f = rec[:8]
        if not book._msg_open:
            b.run_until(book, ts_exch)
        b.clock = max(b.clock, ts_exch)
        before = book.c["applied"]
        book.apply_record(rec)
        delta = book.c["applied"] - before
        if f & TRADE:
            aggr = f & (BUY | SELL)
            hit = 1 if aggr == SELL else -1 if aggr == BUY else 0
            if hit and price > 0 and qty > 0 and rec[8] == self.inst.id:
                b.on_trade(hit, price, qty)
        elif (f & (DEPTH | SNAPSHOT | CLEAR)) == DEPTH and delta == 1:
            b.on_depth(book, 1 if f & BID else -1, price)
        elif delta > 0 or f & (SNAPSHOT | CLEAR):
            self.dirty = True
        if f & LAST and not book._msg_open and f & (DEPTH | SNAPSHOT | CLEAR):
            if self.dirty:
                b.refresh_levels(book)
                self.dirty = False
            if book._in_sync():
                b.on_book_message(book)
                b.mark(book, b.clock)
        self.risk.on_book(book.c["gaps"] + book.c["desyncs"], b.clock)
        self.now = max(self.now, ts_local)

    # ------------------------------------------------------------ views
    @_exact
    def orders(self) -> np.ndarray:
        return self.broker.orders_array()

    @_exact
    def fills(self) -> np.ndarray:
        return self.broker.fills_array()

    @_exact
    def position(self) -> Dict[str, Any]:
        return position_view(self.broker.account())

    @_exact
    def account(self) -> Dict[str, Any]:
        return self.broker.account()

    def open_exposure(self) -> Tuple[int, int, int]:
        return self.broker.open_exposure()

    def risk_stats(self) -> Dict[str, Any]:
        s = self.risk.stats()
        s["venue"] = dict(self.broker.counts)
        return s
