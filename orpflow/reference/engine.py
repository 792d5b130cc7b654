"""Twin of the compiled engine loop (orpflow/_core/engine.pyx), in plain Python.

Composes the other twins (ExecutionSim with its book, broker and risk gate; FeatureTwin on
that same book; the signal rules) exactly as ``core_step`` does, and writes the same output
records. Order state changes are not journalled here: compare the orders' final states
(``orders()``) instead. No snapshot publication, no latency clocks, no extensions.
"""
from __future__ import annotations

from typing import Any, List, Optional, Sequence, Tuple

import numpy as np

from orpflow._core.types import FLAGS
from orpflow.config import EngineConfig
from orpflow.events import Reason
from orpflow.instrument import Instrument
from orpflow.records import OUT_ACCOUNT, OUT_BREAKER, OUT_DTYPE, OUT_FILL, OUT_SIGNAL, OUT_SYNC
from orpflow.reference.broker import ExecutionSim, PaperBroker, _exact
from orpflow.reference.features import FeatureTwin
from orpflow.reference.risk import BREAKERS
from orpflow.reference.signals import PositionRules, make_rule

TRADE, LAST = FLAGS["TRADE"], FLAGS["LAST"]
BOOK_KINDS = FLAGS["DEPTH"] | FLAGS["SNAPSHOT"] | FLAGS["CLEAR"]
MASK64 = (1 << 64) - 1
NO_ORDER_PLACED, NO_ORDER_WARMUP, NO_ORDER_AT_TARGET, NO_ORDER_NO_PRICE = 0, 1, 2, 3


def _i128(x: int) -> Tuple[int, int]:
    lo = x & MASK64
    return (lo - (1 << 64) if lo >= 1 << 63 else lo), x >> 64


def _bits(d: float) -> int:
    return int(np.array([d], np.float64).view(np.int64)[0])


class _Slot:
    def __init__(self, config: EngineConfig, inst: Instrument) -> None:
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


class EngineTwin:
    """Same contract as ``orpflow.backtest`` over the same records: ``run(events)`` returns the
    output records (OUT_DTYPE) except order state changes; ``orders(i)`` / ``fills(i)``."""

    def __init__(self, config: EngineConfig, insts: Optional[Sequence[Instrument]] = None) -> None:
        self.insts = list(insts if insts is not None else config.make_instruments())
        self.slots = [_Slot(config, i) for i in self.insts]
        self.events = 0
        self.unknown = 0
        self.breaker_trips = 0
        self.out: List[Tuple[Any, ...]] = []

    def _emit(self, kind: int, slot: int, ts_exch: int, ts_local: int, v: Sequence[int]) -> None:
        self.out.append((kind, slot, self.events, ts_exch, ts_local, tuple(v) + (0,) * (12 - len(v))))

    @_exact
    def run(self, events: np.ndarray, final: bool = True) -> np.ndarray:
        for rec in events.tolist():
            self.step(tuple(rec))
        if final:
            for i, s in enumerate(self.slots):
                self._flush(i, s, False)
                self._account(i, s)
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
        s.sim._apply_record(rec)
        if row_maker and not s.sim.book.message_open:
            self._on_row(i, s, rec)
        self._flush(i, s, row_maker)

    def _on_row(self, i: int, s: _Slot, rec: Tuple[int, ...]) -> None:
        row = s.features.update(rec)
        if row is None:
            return
        s.rows += 1
        if s.flatten_pending:
            self._flatten(s)
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

    def _flush(self, i: int, s: _Slot, row_maker: bool) -> None:
        b = s.sim.broker
        filled = len(b.fills) > s.fills_out
        while s.fills_out < len(b.fills):
            f = b.fills[s.fills_out]
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
