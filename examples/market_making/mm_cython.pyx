# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""mm.py's market maker as a CStrategy: every callback runs without the GIL inside orpflow's
loop. The same double arithmetic in the same order as mm.quote_prices, so both compute the
same integer prices and get identical fills (setup.py compiles with -ffp-contract=off: no
fused multiply-add may change a rounding).

Build:  python setup.py build_ext --inplace      (see README.md)
"""
from libc.math cimport ceil, floor
from libc.stdint cimport int64_t

from orpflow._core.broker cimport (OS_ACCEPTED, OS_PARTIALLY_FILLED, OS_FILLED, OS_CANCELLED,
                                   OS_REJECTED, OS_EXPIRED, OT_POST_ONLY, TIF_GTC, SimOrder)
from orpflow._core.strategy cimport (CStrategy, StrategyContext, ctx_submit, ctx_cancel,
                                     ctx_cancel_all, ctx_set_timer, ctx_position, ctx_top, ctx_now)

cdef enum:
    TIMER_ID = 1


cdef class MarketMaker(CStrategy):
    """MarketMaker(order_units, half_spread=1.0, skew=0.5, max_position=0, microprice=True,
    requote_ns=0): the parameters of mm.MarketMaker."""
    cdef public int64_t order_units, max_position, requote_ns, requotes
    cdef public double half_spread, skew
    cdef public bint microprice
    cdef int64_t oid[2]
    cdef int64_t price[2]
    cdef int live[2]              # 0 none, 1 sent (waiting for the venue), 2 open

    def __init__(self, int64_t order_units, double half_spread=1.0, double skew=0.5,
                 int64_t max_position=0, bint microprice=True, int64_t requote_ns=0):
        if order_units <= 0:
            raise ValueError("order_units must be > 0")
        self.order_units = order_units
        self.half_spread = half_spread
        self.skew = skew
        self.max_position = max_position if max_position > 0 else 5 * order_units
        self.microprice = microprice
        self.requote_ns = requote_ns
        self.requotes = 0
        for s in range(2):
            self.oid[s] = 0
            self.price[s] = 0
            self.live[s] = 0

    def feature_reads(self):
        return 0                          # no feature column read: the engine computes them after the callbacks

    cdef int on_start(self, StrategyContext *ctx) noexcept nogil:
        if self.requote_ns > 0:
            ctx_set_timer(ctx, ctx_now(ctx) + self.requote_ns, TIMER_ID)
        return 0

    cdef int on_book(self, StrategyContext *ctx) noexcept nogil:
        if self.requote_ns == 0:
            self.requote(ctx)
        return 0

    cdef int on_timer(self, StrategyContext *ctx, int64_t timer_id) noexcept nogil:
        if timer_id == TIMER_ID:
            self.requote(ctx)
            ctx_set_timer(ctx, ctx_now(ctx) + self.requote_ns, TIMER_ID)
        return 0

    cdef int on_order(self, StrategyContext *ctx, const SimOrder *o) noexcept nogil:
        cdef int s = 0 if o.side > 0 else 1
        if o.id != self.oid[s]:
            return 0                      # an order we already replaced
        if o.status == OS_ACCEPTED or o.status == OS_PARTIALLY_FILLED:
            self.live[s] = 2
        elif (o.status == OS_FILLED or o.status == OS_CANCELLED or o.status == OS_REJECTED
              or o.status == OS_EXPIRED):
            self.live[s] = 0
            self.oid[s] = 0
        return 0

    cdef int on_stop(self, StrategyContext *ctx) noexcept nogil:
        ctx_cancel_all(ctx, 0)
        return 0

    cdef void requote(self, StrategyContext *ctx) noexcept nogil:
        cdef int64_t bp[1]
        cdef int64_t bq[1]
        cdef int64_t ap[1]
        cdef int64_t aq[1]
        cdef int64_t want[2]
        cdef int64_t position, bb, ba, oid
        cdef double ref, r
        cdef int s
        if ctx_top(ctx, 1, 1, bp, bq) < 1 or ctx_top(ctx, -1, 1, ap, aq) < 1:
            return
        bb = bp[0]
        ba = ap[0]
        if bb >= ba:
            return
        position = ctx_position(ctx)
        # mm.quote_prices, operation for operation
        if self.microprice and bq[0] + aq[0] > 0:
            ref = (<double>bb * <double>aq[0] + <double>ba * <double>bq[0]) / <double>(bq[0] + aq[0])
        else:
            ref = <double>(bb + ba) * 0.5
        r = ref - (<double>position / <double>self.order_units) * self.skew
        want[0] = <int64_t>floor(r - self.half_spread)
        want[1] = <int64_t>ceil(r + self.half_spread)
        if want[0] >= ba:
            want[0] = ba - 1
        if want[1] <= bb:
            want[1] = bb + 1
        if position >= self.max_position or want[0] <= 0:
            want[0] = 0
        if position <= -self.max_position:
            want[1] = 0
        for s in range(2):
            if self.live[s] == 1 or (self.live[s] == 2 and self.price[s] == want[s]):
                continue                  # in flight, or already where we want it
            if self.live[s] == 2:
                ctx_cancel(ctx, self.oid[s])
                self.live[s] = 0
                self.oid[s] = 0
                self.requotes += 1
            if want[s] > 0:
                oid = ctx_submit(ctx, 1 if s == 0 else -1, OT_POST_ONLY, TIF_GTC, want[s],
                                 self.order_units, 0, 0)
                if oid > 0:
                    self.oid[s] = oid
                    self.price[s] = want[s]
                    self.live[s] = 1
