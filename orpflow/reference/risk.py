"""Pure-Python twin of ``orpflow._core.risk``: the pre-trade checks and circuit breakers.

Every quantity is an exact Python int in the core's units (sizes in size units, prices in
ticks, money in ``MoneyScale`` units), so the differential tests can demand equality.
"""
from __future__ import annotations

import threading
from typing import Any, Dict, List, Optional, Tuple

from orpflow._core.types import REASONS
from orpflow.config import FEE_SCALE

R = REASONS
BREAKERS = {"drawdown": 1, "daily_loss": 2, "consecutive_losses": 4, "reject_storm": 8,
            "book_desync": 16, "manual": 32}
ON_BREAKER = ("reduce_only", "halt", "flatten")
RATE_WINDOWS_NS = (10 ** 9, 60 * 10 ** 9, 3600 * 10 ** 9)
RATE_REASONS = (R["RISK_RATE_SECOND"], R["RISK_RATE_MINUTE"], R["RISK_RATE_HOUR"])
DAY_NS = 86400 * 10 ** 9


class OrderContext:
    """What a pre-trade check reads: the order and the state it would join."""

    __slots__ = ("side", "qty", "price", "now", "book_usable", "bid", "ask", "position",
                 "open_buy", "open_sell", "open_orders", "cash", "equity")

    def __init__(self, **kw: Any) -> None:
        for k in self.__slots__:
            setattr(self, k, kw[k])


class RiskGate:
    """Checks an order in the compiled gate's order (docs/risk.md); the first failure is its reason code."""

    def __init__(self, limits: Any, instrument: Any) -> None:
        self.limits, self.instrument = limits, instrument
        self.p = p = limits.resolve(instrument)
        self.lot = p["lot_units"]
        self._kill = threading.Event()
        self.breakers = 0
        self.tat: List[Optional[int]] = [None, None, None]   # GCRA theoretical arrival, scaled
        self.decisions: Dict[int, int] = {}
        self.trips: Dict[str, int] = {}
        self.n_trips = 0
        self.last_trips: Dict[str, Dict[str, int]] = {}       # the latest trip of each breaker
        self.consecutive_losses = 0
        self.rejects: List[int] = []                         # times of the last reject_storm rejects
        self.desyncs = 0
        self.book_losses_seen = 0
        self.day = None
        self.day_open_equity = 0
        self.peak = None

    # ------------------------------------------------------------ control
    def kill(self) -> None:
        self._kill.set()

    def reset_kill(self) -> None:
        self._kill.clear()

    @property
    def killed(self) -> bool:
        return self._kill.is_set()

    def trip(self, bit: int = 32, ts: int = 0, value: int = 0, limit: int = 0, extra: int = 0) -> None:
        if bit not in BREAKERS.values():
            raise ValueError(f"unknown breaker bit {bit}; expected one of {BREAKERS}")
        if self.breakers & bit:
            return
        name = next(k for k, v in BREAKERS.items() if v == bit)
        self.trips[name] = self.trips.get(name, 0) + 1
        self.n_trips += 1
        self.last_trips[name] = {"ts": ts, "value": value, "limit": limit, "extra": extra}
        self.breakers |= bit

    def reset_breakers(self) -> None:
        """Clear every breaker and the evidence that tripped them (peak = current equity)."""
        self.breakers = 0
        self.consecutive_losses = 0
        self.rejects = []
        self.desyncs = 0
        self.peak = None
        self.day = None

    # ------------------------------------------------------------ pre-trade
    def _rate_reason(self, now: int) -> int:
        for k, limit in enumerate(self.p["rates"]):
            if limit <= 0:
                continue
            tat = self.tat[k]
            now_s = now * limit
            if tat is not None and tat - now_s > (limit - 1) * RATE_WINDOWS_NS[k]:
                return RATE_REASONS[k]
        return 0

    def _rate_commit(self, now: int) -> None:
        for k, limit in enumerate(self.p["rates"]):
            if limit <= 0:
                continue
            now_s = now * limit
            tat = self.tat[k]
            self.tat[k] = max(tat if tat is not None else now_s, now_s) + RATE_WINDOWS_NS[k]

    def check(self, c: OrderContext) -> Tuple[int, int]:
        """(reason, qty): reason 0 accepts with qty (clipped if the policy says so)."""
        reason, qty = self._check(c)
        if reason == 0:
            self._rate_commit(c.now)
            if qty != c.qty:
                self._count(R["RISK_CLIPPED"])
        self._count(reason)
        return reason, qty

    def _count(self, reason: int) -> None:
        self.decisions[reason] = self.decisions.get(reason, 0) + 1

    def _check(self, c: OrderContext) -> Tuple[int, int]:
        p, qty = self.p, c.qty
        if self._kill.is_set():
            return R["RISK_KILL_SWITCH"], qty
        if not c.book_usable:
            return R["RISK_BOOK_NOT_SYNCED"], qty
        if self.breakers:
            if p["on_breaker"] == 1:                          # halt
                return R["RISK_BREAKER"], qty
            # reduce-only: against the position, cut so that it and the open orders on its side
            # cannot take |position| past zero
            same = c.open_buy if c.side > 0 else c.open_sell
            if c.position * c.side >= 0:
                return R["RISK_BREAKER_REDUCE_ONLY"], qty
            room = (abs(c.position) - same) // self.lot * self.lot
            if room <= 0:
                return R["RISK_BREAKER_REDUCE_ONLY"], qty
            qty = min(qty, room)
        r = self._rate_reason(c.now)
        if r:
            return r, qty
        ref = c.price if c.price > 0 else (c.ask if c.side > 0 else c.bid)
        if ref <= 0:
            return R["RISK_NO_PRICE"], qty
        if 0 <= p["max_order_qty"] < qty:
            if not p["clip"]:
                return R["RISK_ORDER_QTY"], qty
            qty = p["max_order_qty"] // self.lot * self.lot
            if qty <= 0:
                return R["RISK_ORDER_QTY"], qty
        if p["max_order_notional"] >= 0 and qty * ref * FEE_SCALE > p["max_order_notional"]:
            return R["RISK_ORDER_NOTIONAL"], qty
        same = c.open_buy if c.side > 0 else c.open_sell
        if p["max_position"] >= 0:
            room = p["max_position"] - c.side * c.position - same
            if qty > room:
                if not p["clip"] or room < self.lot:
                    return R["RISK_POSITION"], qty
                qty = room // self.lot * self.lot
        projected = abs(c.position + c.side * (same + qty))
        if p["max_gross_exposure"] >= 0 and projected * ref * FEE_SCALE > p["max_gross_exposure"]:
            return R["RISK_GROSS_EXPOSURE"], qty
        if p["price_band_e2"] >= 0 and c.price > 0:
            if c.bid <= 0 or c.ask <= 0:
                return R["RISK_NO_PRICE"], qty
            s = c.bid + c.ask
            if abs(2 * c.price - s) * 10 ** 6 > p["price_band_e2"] * s:
                return R["RISK_PRICE_BAND"], qty
        if 0 <= p["max_open_orders"] <= c.open_orders:
            return R["RISK_OPEN_ORDERS"], qty
        if p["has_min_balance"]:
            mb = p["min_balance"]
            if c.equity < mb or (c.side > 0 and c.cash - (c.open_buy + qty) * ref * FEE_SCALE < mb):
                return R["RISK_MIN_BALANCE"], qty
        return 0, qty

    # ------------------------------------------------------------ breakers
    def on_reject(self, now: int) -> None:
        n = self.p["reject_storm"]
        if n <= 0:
            return
        self.rejects.append(now)
        if len(self.rejects) > n:
            self.rejects.pop(0)
        if len(self.rejects) == n and now - self.rejects[0] <= self.p["reject_storm_window_ns"]:
            self.trip(BREAKERS["reject_storm"], now, n, n, now - self.rejects[0])

    def on_mark(self, equity: int, now: int) -> None:
        if self.peak is None or equity > self.peak:
            self.peak = equity
        day = now // DAY_NS
        if day != self.day:
            self.day, self.day_open_equity = day, equity
        dd = self.p["max_drawdown_e9"]
        if dd >= 0 and self.peak > 0 and (self.peak - equity) * 10 ** 9 >= dd * self.peak:
            self.trip(BREAKERS["drawdown"], now, (self.peak - equity) * 10 ** 9 // self.peak, dd)
        dl = self.p["max_daily_loss"]
        if dl >= 0 and self.day_open_equity - equity >= dl:
            self.trip(BREAKERS["daily_loss"], now, self.day_open_equity - equity, dl)

    def on_round_trip(self, pnl: int, now: int) -> None:
        self.consecutive_losses = self.consecutive_losses + 1 if pnl < 0 else 0
        n = self.p["max_consecutive_losses"]
        if 0 < n <= self.consecutive_losses:
            self.trip(BREAKERS["consecutive_losses"], now, self.consecutive_losses, n)

    def on_book(self, losses_total: int, now: int) -> None:
        """losses_total: the book's gaps + desyncs so far."""
        if losses_total > self.book_losses_seen:
            self.desyncs += losses_total - self.book_losses_seen
            n = self.p["max_book_desyncs"]
            if 0 < n <= self.desyncs:
                self.trip(BREAKERS["book_desync"], now, self.desyncs, n)
        self.book_losses_seen = losses_total

    def stats(self) -> Dict[str, Any]:
        return {
            "decisions": dict(self.decisions),
            "killed": self.killed,
            "breakers": [k for k, v in BREAKERS.items() if self.breakers & v],
            "trips": dict(self.trips),
            "last_trips": {k: dict(self.last_trips[k]) for k in BREAKERS if k in self.last_trips},
            "on_breaker": ON_BREAKER[self.p["on_breaker"]],
            "consecutive_losses": self.consecutive_losses,
            "book_desyncs": self.desyncs,
        }
