# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""grid.py's grid strategy as a CStrategy (nogil callbacks; integer arithmetic only, so the
same orders and fills as the Python one). C division truncates where Python's // floors: the
same for the positive prices and step used here.

Build:  python setup.py build_ext --inplace      (see README.md)
"""
from libc.stdint cimport int32_t, int64_t

from orpflow._core.broker cimport OS_FILLED, OT_LIMIT, OT_POST_ONLY, TIF_GTC, SimOrder
from orpflow._core.strategy cimport (CStrategy, StrategyContext, ctx_submit, ctx_cancel_all,
                                     ctx_position, ctx_best_bid, ctx_best_ask)


cdef enum:
    MAX_WAITING = 256             # refills kept for the next book message (more are dropped)


cdef class Grid(CStrategy):
    """Grid(order_units, step=10, levels=5, max_position=0): the parameters of grid.Grid."""
    cdef public int64_t order_units, step, levels, max_position, center, refills, dropped
    cdef int64_t w_side[MAX_WAITING]
    cdef int64_t w_price[MAX_WAITING]
    cdef int64_t w_qty[MAX_WAITING]
    cdef int64_t n_waiting

    def __init__(self, int64_t order_units, int64_t step=10, int64_t levels=5, int64_t max_position=0):
        if order_units <= 0 or step <= 0 or levels <= 0:
            raise ValueError("order_units, step and levels must be > 0")
        self.order_units = order_units
        self.step = step
        self.levels = levels
        self.max_position = max_position if max_position > 0 else levels * order_units
        self.center = 0
        self.refills = 0
        self.dropped = 0
        self.n_waiting = 0

    def feature_reads(self):
        return 0                          # no feature column read: the engine computes them after the callbacks

    cdef int on_book(self, StrategyContext *ctx) noexcept nogil:
        cdef int64_t bb, ba, i, n
        cdef int64_t side[MAX_WAITING]
        cdef int64_t price[MAX_WAITING]
        cdef int64_t qty[MAX_WAITING]
        if self.center:
            if self.n_waiting:                    # grid.py's retry, in the same order
                n = self.n_waiting
                for i in range(n):
                    side[i] = self.w_side[i]
                    price[i] = self.w_price[i]
                    qty[i] = self.w_qty[i]
                self.n_waiting = 0
                for i in range(n):
                    self.refill(ctx, side[i], price[i], qty[i])
            return 0
        bb = ctx_best_bid(ctx)
        ba = ctx_best_ask(ctx)
        if bb <= 0 or ba <= 0 or bb >= ba:
            return 0
        self.center = ((bb + ba) / 2 / self.step) * self.step        # grid.grid_center (all > 0)
        for i in range(1, self.levels + 1):
            ctx_submit(ctx, 1, OT_POST_ONLY, TIF_GTC, self.center - i * self.step, self.order_units, 0, 0)
            ctx_submit(ctx, -1, OT_POST_ONLY, TIF_GTC, self.center + i * self.step, self.order_units, 0, 0)
        return 0

    cdef int on_order(self, StrategyContext *ctx, const SimOrder *o) noexcept nogil:
        if o.status != OS_FILLED:
            return 0
        if o.side > 0:
            self.refill(ctx, -1, o.price + self.step, o.qty)
        else:
            self.refill(ctx, 1, o.price - self.step, o.qty)
        return 0

    cdef void refill(self, StrategyContext *ctx, int64_t side, int64_t price, int64_t qty) noexcept nogil:
        if (ctx_position(ctx) >= self.max_position) if side > 0 else (ctx_position(ctx) <= -self.max_position):
            return
        if ctx_submit(ctx, <int32_t>side, OT_LIMIT, TIF_GTC, price, qty, 0, 0) > 0:
            self.refills += 1
        elif self.n_waiting < MAX_WAITING:
            self.w_side[self.n_waiting] = side
            self.w_price[self.n_waiting] = price
            self.w_qty[self.n_waiting] = qty
            self.n_waiting += 1
        else:
            self.dropped += 1

    cdef int on_stop(self, StrategyContext *ctx) noexcept nogil:
        ctx_cancel_all(ctx, 0)
        return 0
