"""Twin of the compiled engine loop (orpflow/_core/engine.pyx), in plain Python.

Composes the other twins (ExecutionSim with its book, broker and risk gate; FeatureTwin on
that same book; the signal rules, or a Python strategy's callbacks) exactly as ``core_step``
does, and writes the same output records. Order state changes (OUT_ORDER) are journalled when
``journal=True`` or a strategy runs; otherwise compare the orders' final states (``orders()``).
No snapshot publication, no latency clocks, no extensions, no restored orders.
"""
from __future__ import annotations

from typing import Any, List, Optional, Sequence, Tuple

import numpy as np

from orpflow._core.types import FLAGS
from orpflow.config import EngineConfig
from orpflow.events import Reason
from orpflow.instrument import Instrument
from orpflow.records import OUT_ACCOUNT, OUT_BREAKER, OUT_DTYPE, OUT_FILL, OUT_ORDER, OUT_SIGNAL, OUT_SYNC
from orpflow.reference.broker import ExecutionSim, Order, PaperBroker, _exact
from orpflow.reference.features import FeatureTwin
from orpflow.reference.risk import BREAKERS
from orpflow.reference.signals import PositionRules, make_rule
from orpflow.reference.strategy import Context, as_fill_update, as_order_update, as_trade

TRADE, LAST, BUY, SELL = FLAGS["TRADE"], FLAGS["LAST"], FLAGS["BUY"], FLAGS["SELL"]
BOOK_KINDS = FLAGS["DEPTH"] | FLAGS["SNAPSHOT"] | FLAGS["CLEAR"]
MASK64 = (1 << 64) - 1
NO_ORDER_PLACED, NO_ORDER_WARMUP, NO_ORDER_AT_TARGET, NO_ORDER_NO_PRICE = 0, 1, 2, 3


def _i128(x: int) -> Tuple[int, int]:
    lo = x & MASK64
    return (lo - (1 << 64) if lo >= 1 << 63 else lo), x >> 64


def _bits(d: float) -> int:
    return int(np.array([d], np.float64).view(np.int64)[0])


def _callback(strategy: Any, name: str) -> Any:
    fn = getattr(strategy, name, None)
    return fn if callable(fn) else None


def strategies_for(strategy: Any, insts: Sequence[Instrument]) -> List[Any]:
    """One strategy per instrument from an instance (one instrument), a dict {symbol:
    instance} or a callable f(instrument) -> instance (as the compiled engine takes them)."""
    if strategy is None:
        return [None] * len(insts)
    if isinstance(strategy, dict):
        unknown = set(strategy) - {i.symbol for i in insts}
        if unknown:
            raise ValueError(f"strategy for unknown symbols {sorted(unknown)}")
        return [strategy.get(i.symbol) for i in insts]
    if any(_callback(strategy, n) for n in CALLBACKS):
        if len(insts) != 1:
            raise ValueError("one strategy instance for several instruments: pass a dict or a factory")
        return [strategy]
    if callable(strategy):
        return [strategy(i) for i in insts]
    raise TypeError("strategy must be a Strategy, a dict {symbol: Strategy} or a callable f(instrument)")


CALLBACKS = ("on_start", "on_book", "on_trade", "on_order", "on_fill", "on_timer", "on_stop")


class _Slot:
    def __init__(self, config: EngineConfig, inst: Instrument, strategy: Any = None,
                 journal: bool = False) -> None:
        fc = config.signal.features
        self.inst = inst
        self.sim = ExecutionSim(inst, PaperBroker(inst, **config.broker.params(inst)), config.risk,
                                imbalance_levels=fc.imbalance_levels, weighted_levels=fc.weighted_levels,
                                weighted_decay=fc.weighted_decay)
        self.features = FeatureTwin(inst, fc)
        self.features.book = self.sim.book                   # one book, as in the engine
        self.rule = make_rule(config.signal, inst)
        self.rules = PositionRules(config.signal.resolve(inst))
        self.ep = config.execution.resolve()
        self.rows = 0
        self.fills_out = 0
        self.next_account = 0
        self.sync_key: Tuple[int, ...] = (-1, 0, 0, 0)
        self.trips_seen = 0
        self.trips_out = {name: 0 for name in BREAKERS}
        self.flatten_pending = False
        self.sim.broker.journal_on = journal
        self.strategy = strategy
        self.cb = {n: _callback(strategy, n) for n in CALLBACKS} if strategy is not None else {}
        self.ctx = Context(self) if strategy is not None else None
        self.last_row = (0, 0)                  # (ts_exch, seq) of the latest feature row
        self.started = False
        self.pend_orders: List[Order] = []       # journal copies not yet given to on_order
        self.pend_fills: List[tuple] = []

    def call(self, name: str, *args: Any) -> None:
        fn = self.cb.get(name)
        if fn is not None:
            fn(self.ctx, *args)


class EngineTwin:
    """Same contract as ``orpflow.backtest`` over the same records: ``run(events)`` returns the
    output records (OUT_DTYPE), order state changes only with ``journal`` or a strategy;
    ``orders(i)`` / ``fills(i)``.

    ``strategy``: as for ``orpflow.backtest`` (an object with any of the Strategy callbacks,
    a dict {symbol: object} or a callable f(instrument) -> object); it replaces the signal
    rules of its instrument and is called where the compiled engine calls a strategy."""

    def __init__(self, config: EngineConfig, insts: Optional[Sequence[Instrument]] = None,
                 strategy: Any = None, journal: Optional[bool] = None) -> None:
        self.insts = list(insts if insts is not None else config.make_instruments())
        strats = strategies_for(strategy, self.insts)
        self.journal = bool(journal) if journal is not None else strategy is not None
        self.slots = [_Slot(config, i, st, self.journal) for i, st in zip(self.insts, strats)]
        self.events = 0
        self.unknown = 0
        self.breaker_trips = 0
        self.out: List[Tuple[Any, ...]] = []

    def _emit(self, kind: int, slot: int, ts_exch: int, ts_local: int, v: Sequence[int]) -> None:
        self.out.append((kind, slot, self.events, ts_exch, ts_local, tuple(v) + (0,) * (12 - len(v))))

    @_exact
    def run(self, events: np.ndarray, final: bool = True) -> np.ndarray:
        """Every record through step(); final: on_stop, then the account records. A
        strategy's exception propagates (``out`` keeps the records written until then)."""
        for s in self.slots:
            if s.strategy is not None and not s.started:
                s.started = True
                s.call("on_start")
        for rec in events.tolist():
            self.step(tuple(rec))
        if final:
            for i, s in enumerate(self.slots):
                if s.strategy is not None:
                    s.call("on_stop")
                    self._settle(i, s, False)
            for i, s in enumerate(self.slots):
                self._flush(i, s, False)
                self._account(i, s)
        return self.records()

    def records(self) -> np.ndarray:
        """The records written so far (OUT_DTYPE)."""
        out = np.zeros(len(self.out), OUT_DTYPE)
        for k, r in enumerate(self.out):
            out[k] = r
        return out

    def step(self, rec: Tuple[int, ...]) -> None:
        self.events += 1
        f, inst_id = rec[7], rec[8]
        found = [i for i, s in enumerate(self.slots) if s.inst.id == inst_id]
        if not found:
            self.unknown += 1
            return
        i = found[0]
        s = self.slots[i]
        row_maker = bool(f & TRADE) or bool(f & LAST and f & BOOK_KINDS)
        if s.ctx is not None and s.ctx.timers and not s.sim.book.message_open:
            self._fire_timers(s, rec[1])
        s.sim._apply_record(rec)
        if row_maker and not s.sim.book.message_open:
            self._on_row(i, s, rec)
        self._settle(i, s, row_maker)

    def _fire_timers(self, s: _Slot, ts_local: int) -> None:
        """Timers due by this record's local time, earliest first, the local clock at each."""
        assert s.ctx is not None
        while True:
            nxt = s.ctx.next_timer()
            if nxt is None or nxt[0] > ts_local:
                return
            due, tid = nxt
            del s.ctx.timers[tid]
            s.sim.now = max(s.sim.now, due)
            s.call("on_timer", tid)

    def _settle(self, i: int, s: _Slot, row_maker: bool) -> None:
        """Write what the record changed; then a strategy's on_order for each state change and
        on_fill for each fill, in order, and again for what those callbacks did."""
        self._flush(i, s, row_maker)
        while s.pend_orders or s.pend_fills:
            orders, fills = s.pend_orders, s.pend_fills
            s.pend_orders, s.pend_fills = [], []
            for o in orders:
                s.call("on_order", as_order_update(o))
            for fl in fills:
                s.call("on_fill", as_fill_update(fl))
            self._flush(i, s, False)

    def _on_row(self, i: int, s: _Slot, rec: Tuple[int, ...]) -> None:
        row = s.features.update(rec)
        if row is None:
            return
        s.rows += 1
        s.last_row = (row[0], row[1])
        if s.flatten_pending:
            self._flatten(s)
        if s.strategy is not None:               # it replaces the signal rules
            if rec[7] & TRADE:
                s.call("on_trade", as_trade(rec, BUY, SELL))
            else:
                s.call("on_book")
            return
        d = dict(s.features.row)
        d["ts_exch"], d["seq"] = row[0], row[1]
        sig = s.rules.decide(d, s.rule(d))
        ts, seq, side, reason, strength, conf, _, holding, units, target = sig
        if side == 0:
            return
        result, why = 0, NO_ORDER_WARMUP
        if s.rows > s.ep["warmup_rows"]:
            result, why = self._place(s, side, target)
        if result != 0:
            self._drain(i, s)                    # the order's record before the signal's
        self._emit(OUT_SIGNAL, i, ts, s.sim.now,
                   (seq, side, reason, units, target, _bits(strength), _bits(conf), _bits(holding),
                    result, why, s.rows))

    def _place(self, s: _Slot, side: int, target: int) -> Tuple[int, int]:
        b = s.sim.broker
        buy, sell, _ = b.open_exposure()
        delta = target - (b.position + buy - sell)
        if delta == 0 or (delta > 0) != (side > 0):
            return 0, NO_ORDER_AT_TARGET
        return self._send(s, 1 if delta > 0 else -1, abs(delta))

    def _send(self, s: _Slot, side: int, units: int) -> Tuple[int, int]:
        inst = s.inst
        oside = "buy" if side > 0 else "sell"
        qty = inst.units_to_size(units)
        if s.ep["order_type"] == "ioc":
            book = s.sim.book
            levels = book.asks if side > 0 else book.bids
            if not levels:
                return 0, NO_ORDER_NO_PRICE
            slip = s.ep["slippage_ticks"]
            ticks = (min(levels) + slip) if side > 0 else (max(levels) - slip)
            r = s.sim.submit(oside, qty, "ioc", inst.ticks_to_price(max(ticks, 1)), client_id=self.events)
        else:
            r = s.sim.submit(oside, qty, "market", client_id=self.events)
        return (-int(r) if isinstance(r, Reason) else r), NO_ORDER_PLACED

    def _flatten(self, s: _Slot) -> None:
        b, lot = s.sim.broker, s.inst.lot_units
        s.flatten_pending = False
        buy, sell, _ = b.open_exposure()
        pos = b.position
        qty = (pos - sell if pos > 0 else -pos - buy) // lot * lot
        if pos != 0 and qty > 0 and s.sim.risk.breakers:
            self._send(s, -1 if pos > 0 else 1, qty)

    def _drain(self, i: int, s: _Slot) -> None:
        """The broker's journal as OUT_ORDER records (and for the strategy's on_order)."""
        b = s.sim.broker
        for o in b.journal:
            packed = (o.side + 1) | (o.type << 8) | (o.tif << 16) | (o.status << 24) | (o.reason << 32)
            self._emit(OUT_ORDER, i, b.clock, s.sim.now,
                       (o.id, o.client_id, o.price, o.qty, o.filled, o.ts_request, o.ts_arrival,
                        o.ts_done) + _i128(o.fees) + (packed, o.expire_at))
        if s.strategy is not None:
            s.pend_orders.extend(b.journal)
        b.journal = []

    def _flush(self, i: int, s: _Slot, row_maker: bool) -> None:
        b = s.sim.broker
        filled = len(b.fills) > s.fills_out
        if b.journal:
            self._drain(i, s)
        while s.fills_out < len(b.fills):
            f = b.fills[s.fills_out]
            if s.strategy is not None:
                s.pend_fills.append(f)
            oid, cid, side, taker, price, qty, fee, realised, pos, ts_exch, ts_local = f
            self._emit(OUT_FILL, i, ts_exch, ts_local,
                       (oid, cid, price, qty, pos, s.fills_out + 1) + _i128(fee) + _i128(realised)
                       + ((side + 1) | (taker << 8),))
            s.fills_out += 1
        every = s.ep["account_every_ns"]
        if filled:
            self._account(i, s)
        elif row_maker and every > 0 and b.clock >= s.next_account:
            self._account(i, s)
            s.next_account = b.clock + every
        book = s.sim.book
        key = (book._state, book.c["gaps"], book.c["resyncs"], book.c["desyncs"])
        if key != s.sync_key:
            s.sync_key = key
            self._emit(OUT_SYNC, i, b.clock, s.sim.now,
                       key + (int(book._in_sync()), book.last_update_id))
        self._breakers(i, s)

    def _breakers(self, i: int, s: _Slot) -> None:
        r, b = s.sim.risk, s.sim.broker
        if r.n_trips == s.trips_seen:
            return
        s.trips_seen = r.n_trips
        for name, bit in BREAKERS.items():
            n = r.trips.get(name, 0)
            if n == s.trips_out[name]:
                continue
            s.trips_out[name] = n
            t = r.last_trips[name]
            window = r.p["reject_storm_window_ns"] if name == "reject_storm" else 0
            self._emit(OUT_BREAKER, i, b.clock, s.sim.now,
                       (bit, r.breakers) + _i128(t["value"]) + _i128(t["limit"])
                       + (t["extra"], n, b.position, r.p["on_breaker"], t["ts"], window))
            self.breaker_trips += 1
        if r.p["on_breaker"] == 2 and r.breakers:
            s.flatten_pending = True

    def _account(self, i: int, s: _Slot) -> None:
        b = s.sim.broker
        m = b.scale.to_money
        self._emit(OUT_ACCOUNT, i, b.clock, s.sim.now,
                   _i128(m("cash", b.cash, floor=False)) + _i128(m("cost", b.cost, floor=False))
                   + _i128(m("realised", b.realised, floor=False)) + _i128(m("fees", b.fees, floor=False))
                   + (b.position, b.mark_mid2, b.round_trips, b.losing_round_trips))

    def orders(self, slot: int = 0) -> np.ndarray:
        return self.slots[slot].sim.broker.orders_array()

    def fills(self, slot: int = 0) -> np.ndarray:
        return self.slots[slot].sim.broker.fills_array()
