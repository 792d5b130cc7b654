"""Pre-trade risk checks and circuit breakers over C structs, nogil.

``risk_check`` runs the checks in a fixed order (docs/risk.md); the first failure is the order's reason code.
Breakers trip from the account marks, round trips, rejections and book sync losses the broker
reports, and stay tripped until ``reset_breakers``; while one is, ``on_breaker`` decides what
passes (by default only orders that reduce the position). Each trip keeps when and why. The kill switch is one atomic word any
thread may set. The plain-Python twin is orpflow/reference/risk.py; the rules: docs/risk.md.
"""

from libc.stdint cimport int64_t
from libc.stdlib cimport calloc, free

from orpflow._core.types cimport (
    orp_i128, i128_from_py, i128_to_py, debug_count_alloc, MONEY_PER_TICK_UNIT, R_COUNT, R_OK, R_RISK_KILL_SWITCH,
    R_RISK_BOOK_NOT_SYNCED, R_RISK_BREAKER, R_RISK_RATE_SECOND, R_RISK_ORDER_QTY,
    R_RISK_ORDER_NOTIONAL, R_RISK_POSITION, R_RISK_GROSS_EXPOSURE, R_RISK_PRICE_BAND,
    R_RISK_OPEN_ORDERS, R_RISK_MIN_BALANCE, R_RISK_NO_PRICE, R_RISK_CLIPPED,
    R_RISK_BREAKER_REDUCE_ONLY,
)

cimport cython

from orpflow.config import ON_BREAKER    # RiskLimits.on_breaker, by its C value

cdef extern from "orp_atomic.h":
    int64_t ORP_load_acquire(const int64_t *p) nogil
    void ORP_store_release(int64_t *p, int64_t v) nogil

BREAKERS = {"drawdown": BRK_DRAWDOWN, "daily_loss": BRK_DAILY_LOSS,
            "consecutive_losses": BRK_CONSECUTIVE_LOSSES, "reject_storm": BRK_REJECT_STORM,
            "book_desync": BRK_BOOK_DESYNC, "manual": BRK_MANUAL}

cdef int64_t[3] RATE_WINDOWS_NS = [1000000000, 60000000000, 3600000000000]
cdef int64_t DAY_NS = 86400000000000


cdef inline orp_i128 abs128(orp_i128 x) noexcept nogil:
    return -x if x < 0 else x


cdef inline int64_t floordiv64(int64_t a, int64_t b) noexcept nogil:
    """Python's a // b for b > 0 (C division truncates toward zero)."""
    cdef int64_t q = a / b
    if (a % b) != 0 and a < 0:
        q -= 1
    return q


cdef int rate_reason(RiskState *r, int64_t now) noexcept nogil:
    """GCRA (token bucket) per window: `limit` orders per window, bursts up to `limit`."""
    cdef int k
    cdef orp_i128 now_s
    for k in range(3):
        if r.p.rates[k] <= 0 or not r.tat_set[k]:
            continue
        now_s = <orp_i128>now * r.p.rates[k]
        if r.tat[k] - now_s > <orp_i128>(r.p.rates[k] - 1) * RATE_WINDOWS_NS[k]:
            return R_RISK_RATE_SECOND + k
    return R_OK


cdef void rate_commit(RiskState *r, int64_t now) noexcept nogil:
    cdef int k
    cdef orp_i128 now_s
    for k in range(3):
        if r.p.rates[k] <= 0:
            continue
        now_s = <orp_i128>now * r.p.rates[k]
        if not r.tat_set[k] or r.tat[k] < now_s:
            r.tat[k] = now_s
            r.tat_set[k] = 1
        r.tat[k] += RATE_WINDOWS_NS[k]


cdef void risk_count(RiskState *r, int reason) noexcept nogil:
    r.decisions[reason] += 1


cdef int reduce_only(const RiskParams *p, const OrderContext *c, int64_t *qty) noexcept nogil:
    """With a breaker tripped: the order must be against the position, and it is cut (whole
    lots) so that it and the open orders on its side together cannot take |position| past zero."""
    cdef int64_t pos = c.position * c.side, same = c.open_buy if c.side > 0 else c.open_sell
    cdef int64_t room
    if pos >= 0:                                # flat, or the order would add to the position
        return R_RISK_BREAKER_REDUCE_ONLY
    room = (-pos - same) / p.lot * p.lot
    if room <= 0:
        return R_RISK_BREAKER_REDUCE_ONLY
    if qty[0] > room:
        qty[0] = room
    return R_OK


cdef int check_order(RiskState *r, const OrderContext *c, int64_t *qty) noexcept nogil:
    cdef const RiskParams *p = &r.p
    cdef int64_t ref, same, room, s
    cdef orp_i128 projected
    cdef int reason
    if ORP_load_acquire(&r.kill):
        return R_RISK_KILL_SWITCH
    if not c.book_usable:
        return R_RISK_BOOK_NOT_SYNCED
    if r.breakers:
        if p.on_breaker == ON_BREAKER_HALT:
            return R_RISK_BREAKER
        reason = reduce_only(p, c, qty)
        if reason != R_OK:
            return reason
    reason = rate_reason(r, c.now)
    if reason != R_OK:
        return reason
    ref = c.price if c.price > 0 else (c.ask if c.side > 0 else c.bid)
    if ref <= 0:
        return R_RISK_NO_PRICE
    if p.max_order_qty >= 0 and qty[0] > p.max_order_qty:
        if not p.clip:
            return R_RISK_ORDER_QTY
        qty[0] = p.max_order_qty / p.lot * p.lot
        if qty[0] <= 0:
            return R_RISK_ORDER_QTY
    if p.max_order_notional >= 0 and <orp_i128>qty[0] * ref * MONEY_PER_TICK_UNIT > p.max_order_notional:
        return R_RISK_ORDER_NOTIONAL
    same = c.open_buy if c.side > 0 else c.open_sell
    if p.max_position >= 0:
        room = p.max_position - c.side * c.position - same
        if qty[0] > room:
            if not p.clip or room < p.lot:
                return R_RISK_POSITION
            qty[0] = room / p.lot * p.lot
    projected = abs128(<orp_i128>c.position + <orp_i128>c.side * (<orp_i128>same + qty[0]))
    if p.max_gross_exposure >= 0 and projected * ref * MONEY_PER_TICK_UNIT > p.max_gross_exposure:
        return R_RISK_GROSS_EXPOSURE
    if p.price_band_e2 >= 0 and c.price > 0:
        if c.bid <= 0 or c.ask <= 0:
            return R_RISK_NO_PRICE
        s = c.bid + c.ask
        if abs128(<orp_i128>2 * c.price - s) * 1000000 > <orp_i128>p.price_band_e2 * s:
            return R_RISK_PRICE_BAND
    if p.max_open_orders >= 0 and c.open_orders >= p.max_open_orders:
        return R_RISK_OPEN_ORDERS
    if p.has_min_balance:
        # a buy must leave min_balance in cash after itself and the buys already open (valued
        # at this order's price: O(1), and no cheaper than they can fill when it is a limit)
        if c.equity < p.min_balance or (c.side > 0 and c.cash - (<orp_i128>c.open_buy + qty[0]) * ref
                                        * MONEY_PER_TICK_UNIT < p.min_balance):
            return R_RISK_MIN_BALANCE
    return R_OK


cdef int risk_check(RiskState *r, const OrderContext *c, int64_t *qty) noexcept nogil:
    """The order's reason code (R_OK accepts); qty may come back clipped. Counts the decision
    and, on acceptance, spends a token from each rate bucket."""
    cdef int64_t asked = qty[0]
    cdef int reason = check_order(r, c, qty)
    if reason == R_OK:
        rate_commit(r, c.now)
        if qty[0] != asked:
            r.decisions[R_RISK_CLIPPED] += 1
    r.decisions[reason] += 1
    return reason


cdef void risk_trip(RiskState *r, int64_t bit, int64_t now, orp_i128 value, orp_i128 limit,
                    int64_t extra) noexcept nogil:
    """Trip `bit` (a tripped one stays as it is): count it and keep its evidence."""
    cdef int k
    if r.breakers & bit:
        return
    for k in range(BRK_COUNT):
        if bit == (1 << k):
            r.trips[k] += 1
            r.n_trips += 1
            r.trip_ts[k] = now
            r.trip_value[k] = value
            r.trip_limit[k] = limit
            r.trip_extra[k] = extra
    r.breakers |= bit


cdef void risk_on_reject(RiskState *r, int64_t now) noexcept nogil:
    cdef int64_t n = r.p.reject_storm, oldest
    if n <= 0:
        return
    r.rejects[r.rej_head] = now
    r.rej_head = (r.rej_head + 1) % n
    if r.rej_n < n:
        r.rej_n += 1
    if r.rej_n == n:
        oldest = r.rejects[r.rej_head]          # the ring is full: head is the oldest
        if now - oldest <= r.p.reject_storm_window_ns:
            risk_trip(r, BRK_REJECT_STORM, now, n, n, now - oldest)


cdef void risk_on_mark(RiskState *r, orp_i128 equity, int64_t now) noexcept nogil:
    cdef int64_t day = floordiv64(now, DAY_NS)
    if not r.peak_set or equity > r.peak:
        r.peak = equity
        r.peak_set = 1
    if not r.day_set or day != r.day:
        r.day = day
        r.day_set = 1
        r.day_open_equity = equity
    if r.p.max_drawdown_e9 >= 0 and r.peak > 0 and \
            (r.peak - equity) * 1000000000 >= <orp_i128>r.p.max_drawdown_e9 * r.peak:
        risk_trip(r, BRK_DRAWDOWN, now, (r.peak - equity) * 1000000000 / r.peak, r.p.max_drawdown_e9, 0)
    if r.p.max_daily_loss >= 0 and r.day_open_equity - equity >= r.p.max_daily_loss:
        risk_trip(r, BRK_DAILY_LOSS, now, r.day_open_equity - equity, r.p.max_daily_loss, 0)


cdef void risk_on_round_trip(RiskState *r, orp_i128 pnl, int64_t now) noexcept nogil:
    r.consecutive_losses = r.consecutive_losses + 1 if pnl < 0 else 0
    if 0 < r.p.max_consecutive_losses <= r.consecutive_losses:
        risk_trip(r, BRK_CONSECUTIVE_LOSSES, now, r.consecutive_losses, r.p.max_consecutive_losses, 0)


cdef void risk_on_book(RiskState *r, int64_t losses_total, int64_t now) noexcept nogil:
    """losses_total: the book's gaps + desyncs so far."""
    if losses_total > r.book_losses_seen:
        r.desyncs += losses_total - r.book_losses_seen
        if 0 < r.p.max_book_desyncs <= r.desyncs:
            risk_trip(r, BRK_BOOK_DESYNC, now, r.desyncs, r.p.max_book_desyncs, 0)
    r.book_losses_seen = losses_total


@cython.auto_pickle(False)
cdef class RiskGate:
    """The runtime side of ``RiskLimits`` for one instrument: counters, buckets, breakers and
    the kill switch. ``ExecutionSim`` (and the engine) own one each."""

    def __cinit__(self, limits, instrument):
        from orpflow.config import RiskLimits
        from orpflow.instrument import Instrument
        if not isinstance(limits, RiskLimits):
            raise TypeError("limits must be an orpflow.RiskLimits")
        if not isinstance(instrument, Instrument):
            raise TypeError("instrument must be an orpflow.Instrument")
        p = limits.resolve(instrument)
        self.limits = limits
        self.instrument = instrument
        self.r = <RiskState *>calloc(1, sizeof(RiskState))
        if self.r == NULL:
            raise MemoryError()
        debug_count_alloc(1)
        cdef RiskParams *rp = &self.r.p
        rp.lot = p["lot_units"]
        rp.max_order_qty = p["max_order_qty"]
        rp.max_position = p["max_position"]
        rp.price_band_e2 = p["price_band_e2"]
        rp.max_open_orders = p["max_open_orders"]
        rp.max_order_notional = i128_from_py(p["max_order_notional"])
        rp.max_gross_exposure = i128_from_py(p["max_gross_exposure"])
        rp.max_daily_loss = i128_from_py(p["max_daily_loss"])
        rp.min_balance = i128_from_py(p["min_balance"])
        rp.has_min_balance = p["has_min_balance"]
        rp.clip = p["clip"]
        for k in range(3):
            rp.rates[k] = p["rates"][k]
        rp.max_drawdown_e9 = p["max_drawdown_e9"]
        rp.max_consecutive_losses = p["max_consecutive_losses"]
        rp.reject_storm = p["reject_storm"]
        rp.reject_storm_window_ns = p["reject_storm_window_ns"]
        rp.max_book_desyncs = p["max_book_desyncs"]
        rp.on_breaker = p["on_breaker"]
        if rp.reject_storm > 0:
            self.r.rejects = <int64_t *>calloc(rp.reject_storm, sizeof(int64_t))
            if self.r.rejects == NULL:
                raise MemoryError()
            debug_count_alloc(1)

    def __dealloc__(self):
        if self.r != NULL:
            if self.r.rejects != NULL:
                free(self.r.rejects)
                debug_count_alloc(-1)
            free(self.r)
            debug_count_alloc(-1)
            self.r = NULL

    def kill(self):
        """Stop every new order from now on (any thread; takes effect at the next check)."""
        ORP_store_release(&self.r.kill, 1)

    def reset_kill(self):
        ORP_store_release(&self.r.kill, 0)

    @property
    def killed(self):
        return bool(ORP_load_acquire(&self.r.kill))

    def trip(self, int bit=BRK_MANUAL, int64_t ts=0):
        """Trip a breaker by hand (BREAKERS["manual"] by default) at time ts."""
        if bit not in BREAKERS.values():
            raise ValueError(f"unknown breaker bit {bit}; expected one of {BREAKERS}")
        risk_trip(self.r, bit, ts, 0, 0, 0)

    def reset_breakers(self):
        """Clear every breaker and the evidence that tripped them (peak restarts at the next mark)."""
        self.r.breakers = 0
        self.r.consecutive_losses = 0
        self.r.rej_n = 0
        self.r.rej_head = 0
        self.r.desyncs = 0
        self.r.peak_set = 0
        self.r.day_set = 0

    def stats(self):
        """Decisions by reason code (0 = accepted), breakers tripped now, trips so far."""
        return {
            "decisions": {k: self.r.decisions[k] for k in range(R_COUNT) if self.r.decisions[k]},
            "killed": self.killed,
            "breakers": [k for k, v in BREAKERS.items() if self.r.breakers & v],
            "trips": {k: self.r.trips[i] for i, k in enumerate(BREAKERS) if self.r.trips[i]},
            "last_trips": {k: {"ts": self.r.trip_ts[i], "value": i128_to_py(self.r.trip_value[i]),
                               "limit": i128_to_py(self.r.trip_limit[i]), "extra": self.r.trip_extra[i]}
                           for i, k in enumerate(BREAKERS) if self.r.trips[i]},
            "on_breaker": ON_BREAKER[self.r.p.on_breaker],
            "consecutive_losses": self.r.consecutive_losses,
            "book_desyncs": self.r.desyncs,
        }
