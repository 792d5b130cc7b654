"""Twin of the compiled engine loop (orpflow/_core/engine.pyx), in plain Python.

Composes the other twins (ExecutionSim with its book, broker and risk gate; FeatureTwin on
that same book; the signal rules, or a Python strategy's callbacks) exactly as ``core_step``
does, and writes the same output records. Order state changes (OUT_ORDER) are journalled when
``journal=True`` or a strategy runs; otherwise compare the orders' final states (``orders()``).
No snapshot publication, no latency clocks, no extensions, no restored orders.
"""
from __future__ import annotations

import functools
from typing import Any, List, Optional, Sequence, Tuple

import numpy as np

from orpflow._core.types import FLAGS
from orpflow.config import EngineConfig
from orpflow.instrument import Instrument
from orpflow.records import OUT_ACCOUNT, OUT_BREAKER, OUT_DTYPE, OUT_FILL, OUT_ORDER, OUT_SIGNAL, OUT_SYNC
from orpflow.orders import OrderStatus as St, OrderType as Ty, TimeInForce as Tif
from orpflow.reference.broker import ExecutionSim, PaperBroker, _exact
from orpflow.reference.features import FeatureTwin
from orpflow.reference.risk import BREAKERS
from orpflow.reference.signals import PositionRules, make_rule
from orpflow.reference.strategy import Context, as_fill_update, as_order_update, as_trade

TRADE, LAST, BUY, SELL = FLAGS["TRADE"], FLAGS["LAST"], FLAGS["BUY"], FLAGS["SELL"]
BOOK_KINDS = FLAGS["DEPTH"] | FLAGS["SNAPSHOT"] | FLAGS["CLEAR"]
MASK64 = (1 << 64) - 1
FINAL = (St.FILLED, St.CANCELLED, St.REJECTED, St.EXPIRED)
NO_ORDER_PLACED, NO_ORDER_WARMUP, NO_ORDER_AT_TARGET, NO_ORDER_NO_PRICE = 0, 1, 2, 3


def _i128(x: int) -> Tuple[int, int]:
    lo = x & MASK64
    return (lo - (1 << 64) if lo >= 1 << 63 else lo), x >> 64


def _bits(d: float) -> int:
    return int(np.array([d], np.float64).view(np.int64)[0])


def _callback(strategy: Any, name: str) -> Any:
    fn = getattr(strategy, name, None)
    return fn if callable(fn) else None


CALLBACKS = ("on_start", "on_book", "on_trade", "on_order", "on_fill", "on_timer", "on_stop")


def strategies_for(strategy: Any, insts: Sequence[Instrument]) -> List[Any]:
    """One strategy per instrument (None: the signal rules), as orpflow.runtime takes them:
    an object with Strategy callbacks (one instrument), a dict {symbol: object} naming every
    instrument, or a callable f(instrument) -> object."""
    if strategy is None:
        return [None] * len(insts)
    if isinstance(strategy, dict):
        syms = [i.symbol for i in insts]
        if set(strategy) != set(syms):
            raise ValueError(f"strategy dict: symbols {sorted(strategy)}, trading {syms}")
        made = [strategy[s] for s in syms]
    elif any(_callback(strategy, n) for n in CALLBACKS):
        if len(insts) != 1:
            raise ValueError("one strategy instance for several instruments: pass a dict or a callable")
        made = [strategy]
    elif callable(strategy):
        made = [strategy(i) for i in insts]
    else:
        raise TypeError("strategy must be a Strategy, a dict {symbol: Strategy} or a callable f(instrument)")
    if len({id(m) for m in made}) != len(made):
        raise ValueError("one strategy object per instrument (a strategy keeps one instrument's state)")
    return made


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
        self.fills_out = 0                       # fills written
        self.fills_cb = 0                        # fills given to on_fill
        self.j_written = 0                       # journal entries written
        self.j_done = 0                          # journal entries given to on_order
        self.next_account = 0
        self.sync_key: Tuple[int, ...] = (-1, 0, 0, 0)
        self.trips_seen = 0
        self.trips_out = {name: 0 for name in BREAKERS}
        self.flatten_pending = False
        self.sim.broker.journal_on = journal
        self.strategy = strategy
        self.cb = {n: _callback(strategy, n) for n in CALLBACKS} if strategy is not None else {}
        self.ctx = Context(self)
        self.last_row = (0, 0)                   # (ts_exch, seq) of the latest feature row
        self.started = False                     # on_start ran this run

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
    rules of its instrument and is called where the compiled engine calls a strategy. An
    exception in a callback propagates (``records()`` keeps what was written until then)."""

    def __init__(self, config: EngineConfig, insts: Optional[Sequence[Instrument]] = None,
                 strategy: Any = None, journal: Optional[bool] = None) -> None:
        self.insts = list(insts if insts is not None else config.make_instruments())
        if strategy is None and config.strategy_class is not None:
            from orpflow.runtime import strategy_from_config      # [strategy] class (Python ones)
            strategy = strategy_from_config(config)
        strats = strategies_for(strategy, self.insts)
        self.journal = bool(journal) if journal is not None else strategy is not None
        self.slots = [_Slot(config, i, st, self.journal) for i, st in zip(self.insts, strats)]
        for i, s in enumerate(self.slots):
            s.ctx.sent = functools.partial(self._sent, i, s)
        self.events = 0
        self.unknown = 0
        self.breaker_trips = 0
        self.out: List[Tuple[Any, ...]] = []

    def _emit(self, kind: int, slot: int, ts_exch: int, ts_local: int, v: Sequence[int]) -> None:
        self.out.append((kind, slot, self.events, ts_exch, ts_local, tuple(v) + (0,) * (12 - len(v))))

    @_exact
    def run(self, events: np.ndarray, final: bool = True) -> np.ndarray:
        """Every record through step(); final: each slot's on_stop (what it sends is written),
        then its account record."""
        for rec in events.tolist():
            self.step(tuple(rec))
        if final:
            for i, s in enumerate(self.slots):
                if s.started:
                    # what is still undelivered (the recording ended inside a book message),
                    # then on_stop; what it sends is written, and given to nobody
                    self._dispatch(i, s, "now")
                    s.call("on_stop")
                    self._dispatch(i, s, "write")
                    s.started, s.rows = False, 0          # a next run starts afresh
                    s.ctx.timers.clear()
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
        self._due(i, s, rec[1])
        s.sim._apply_record(rec)
        if row_maker and not s.sim.book.message_open:
            self._on_row(i, s, rec)
        self._flush(i, s, row_maker)

    def _due(self, i: int, s: _Slot, ts_local: int) -> None:
        """Before the record: on_start at the slot's first record of the run (the local clock
        at its time), then the timers due by its local time, earliest first (ties: lower id),
        the local clock moved to each due time; only between book messages."""
        if not s.started:
            s.started = True
            s.sim.now = max(s.sim.now, ts_local)
            s.call("on_start")
            if s.sim.broker.journal:
                self._dispatch(i, s)
        if s.sim.book.message_open:
            return
        while True:
            nxt = s.ctx.next_timer()
            if nxt is None or nxt[0] > ts_local:
                return
            due, tid = nxt
            del s.ctx.timers[tid]
            s.sim.now = max(s.sim.now, due)
            s.call("on_timer", tid)
            if s.sim.broker.journal:
                self._dispatch(i, s)

    def _sent(self, i: int, s: _Slot, result: int) -> None:
        """An order was sent or rejected (result != 0): its record is written now."""
        self._drain(i, s)

    def _send_order(self, s: _Slot, side: int, kind: int, price: int, units: int) -> int:
        """The engine's own orders (the signal's, breaker flattening): IOC, through the context."""
        return s.ctx.send(side, kind, int(Tif.IOC), price, units, 0, self.events)

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
        self._emit(OUT_SIGNAL, i, ts, s.sim.now,
                   (seq, side, reason, units, target, _bits(strength), _bits(conf), _bits(holding),
                    result, why, s.rows))

    def _price(self, s: _Slot, side: int) -> int:
        """The IOC limit: the opposite best +- slippage (at least 1); 0 if that side is empty."""
        levels = s.sim.book.asks if side > 0 else s.sim.book.bids
        if not levels:
            return 0
        slip = s.ep["slippage_ticks"]
        return max((min(levels) + slip) if side > 0 else (max(levels) - slip), 1)

    def _place(self, s: _Slot, side: int, target: int) -> Tuple[int, int]:
        b = s.sim.broker
        buy, sell, _ = b.open_exposure()
        delta = target - (b.position + buy - sell)
        if delta == 0 or (delta > 0) != (side > 0):
            return 0, NO_ORDER_AT_TARGET
        side = 1 if delta > 0 else -1
        price, kind = 0, Ty.MARKET
        if s.ep["order_type"] == "ioc":
            price, kind = self._price(s, side), Ty.LIMIT
            if price == 0:
                return 0, NO_ORDER_NO_PRICE
        return self._send_order(s, side, int(kind), price, abs(delta)), NO_ORDER_PLACED

    def _flatten(self, s: _Slot) -> None:
        b, lot = s.sim.broker, s.inst.lot_units
        s.flatten_pending = False
        buy, sell, _ = b.open_exposure()
        pos = b.position
        qty = (pos - sell if pos > 0 else -pos - buy) // lot * lot
        if pos == 0 or qty <= 0 or not s.sim.risk.breakers:
            return
        side = -1 if pos > 0 else 1
        price, kind = 0, Ty.MARKET
        if s.ep["order_type"] == "ioc":
            price, kind = self._price(s, side), Ty.LIMIT
            if price == 0:
                return
        self._send_order(s, side, int(kind), price, qty)

    # ------------------------------------------------------------ records and callbacks
    def _drain(self, i: int, s: _Slot) -> None:
        """Journal entries not yet written, as OUT_ORDER records (they stay for on_order)."""
        b = s.sim.broker
        while s.j_written < len(b.journal):
            o = b.journal[s.j_written]
            s.j_written += 1
            packed = (o.side + 1) | (o.type << 8) | (o.tif << 16) | (o.status << 24) | (o.reason << 32)
            self._emit(OUT_ORDER, i, b.clock, s.sim.now,
                       (o.id, o.client_id, o.price, o.qty, o.filled, o.ts_request, o.ts_arrival,
                        o.ts_done) + _i128(o.fees) + (packed, o.expire_at))

    def _write_fills(self, i: int, s: _Slot) -> bool:
        """New fills, then an account record after them; True if there were any."""
        b = s.sim.broker
        filled = len(b.fills) > s.fills_out
        while s.fills_out < len(b.fills):
            f = b.fills[s.fills_out]
            oid, cid, side, taker, price, qty, fee, realised, pos, ts_exch, ts_local = f
            self._emit(OUT_FILL, i, ts_exch, ts_local,
                       (oid, cid, price, qty, pos, s.fills_out + 1) + _i128(fee) + _i128(realised)
                       + ((side + 1) | (taker << 8),))
            s.fills_out += 1
        if filled:
            self._account(i, s)
        return filled

    def _dispatch(self, i: int, s: _Slot, mode: str = "deliver") -> bool:
        """Write every state change and fill, and give the strategy each state change
        (on_order), then each fill (on_fill), one callback at a time, writing what each one
        sent before the next; until nothing is pending. Inside a book message nothing is
        given yet: the message's end delivers it. True if filled."""
        b = s.sim.broker
        filled = False
        while True:
            self._drain(i, s)
            filled |= self._write_fills(i, s)
            if mode == "write":                # after on_stop: written, given to nobody
                s.j_done, s.fills_cb = len(b.journal), len(b.fills)
                break
            if s.sim.book.message_open and mode == "deliver":   # delivered when the message ends
                return filled
            if s.j_done < len(b.journal):
                o = b.journal[s.j_done]
                s.j_done += 1
                if o.status in FINAL:
                    s.ctx.closed(o.id)
                s.call("on_order", as_order_update(o))
            elif s.fills_cb < len(b.fills):
                f = b.fills[s.fills_cb]
                s.fills_cb += 1
                s.call("on_fill", as_fill_update(f))
            else:
                break
        b.journal = []
        s.j_done = s.j_written = 0
        return filled

    def _flush(self, i: int, s: _Slot, row_maker: bool) -> None:
        b = s.sim.broker
        filled = False
        if b.journal or s.fills_cb < len(b.fills):
            filled = self._dispatch(i, s)
        every = s.ep["account_every_ns"]
        if not filled and row_maker and every > 0 and b.clock >= s.next_account:
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
