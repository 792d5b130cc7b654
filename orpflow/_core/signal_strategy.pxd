# The ORPFlow signal path as a strategy: generator -> position rules -> one taker order.
from libc.stdint cimport int32_t, int64_t
from orpflow._core.strategy cimport CStrategy, StrategyContext
from orpflow._core.signals cimport PositionParams, PositionState, SignalRow

cdef class SignalStrategy(CStrategy):
    cdef object generator          # SignalGenerator (kept alive here; called through gen)
    cdef void *gen
    cdef PositionParams pp
    cdef PositionState ps
    cdef int32_t order_kind        # OT_MARKET, or OT_LIMIT: IOC at the opposite best +- slippage
    cdef int64_t slippage_ticks
    cdef int64_t warmup_rows
    cdef int decide(self, StrategyContext *ctx) noexcept nogil
    cdef int64_t place(self, StrategyContext *ctx, const SignalRow *row, int64_t *why) noexcept nogil
