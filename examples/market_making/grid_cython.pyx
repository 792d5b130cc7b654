# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=False
"""grid.py's grid strategy as a CStrategy (nogil callbacks; integer arithmetic only, so the
same orders and fills as the Python one). cdivision=False: Python's floor division.

Build:  python setup.py build_ext --inplace      (see README.md)
"""
from libc.stdint cimport int64_t

from orpflow._core.broker cimport OS_FILLED, OT_LIMIT, OT_POST_ONLY, TIF_GTC, SimOrder
from orpflow._core.strategy cimport (CStrategy, StrategyContext, ctx_submit, ctx_cancel_all,
                                     ctx_position, ctx_best_bid, ctx_best_ask)


cdef class Grid(CStrategy):
    """Grid(order_units, step=10, levels=5, max_position=0): the parameters of grid.Grid."""
    cdef public int64_t order_units, step, levels, max_position, center, refills

    def __init__(self, int64_t order_units, int64_t step=10, int64_t levels=5, int64_t max_position=0):
        if order_units <= 0 or step <= 0 or levels <= 0:
            raise ValueError("order_units, step and levels must be > 0")
        self.order_units = order_units
        self.step = step
        self.levels = levels
        self.max_position = max_position if max_position > 0 else levels * order_units
        self.center = 0
        self.refills = 0

    cdef int on_book(self, StrategyContext *ctx) noexcept nogil:
        cdef int64_t bb, ba, i
        if self.center:
            return 0
        bb = ctx_best_bid(ctx)
        ba = ctx_best_ask(ctx)
        if bb <= 0 or ba <= 0 or bb >= ba:
            return 0
        self.center = ((bb + ba) // 2 // self.step) * self.step      # grid.grid_center
        for i in range(1, self.levels + 1):
            ctx_submit(ctx, 1, OT_POST_ONLY, TIF_GTC, self.center - i * self.step, self.order_units, 0, 0)
            ctx_submit(ctx, -1, OT_POST_ONLY, TIF_GTC, self.center + i * self.step, self.order_units, 0, 0)
        return 0

    cdef int on_order(self, StrategyContext *ctx, const SimOrder *o) noexcept nogil:
        if o.status != OS_FILLED:
            return 0
        if o.side > 0:
            if ctx_position(ctx) > -self.max_position:
                ctx_submit(ctx, -1, OT_LIMIT, TIF_GTC, o.price + self.step, o.qty, 0, 0)
                self.refills += 1
        elif ctx_position(ctx) < self.max_position:
            ctx_submit(ctx, 1, OT_LIMIT, TIF_GTC, o.price - self.step, o.qty, 0, 0)
            self.refills += 1
        return 0

    cdef int on_stop(self, StrategyContext *ctx) noexcept nogil:
        ctx_cancel_all(ctx, 0)
        return 0
