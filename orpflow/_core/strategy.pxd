# Strategies: the callbacks the engine calls, and the context they act through. nogil.
#
# Subclass CStrategy in your own .pyx (cimport from here) and override any callback; each is
# `noexcept nogil` and returns 0, or -1 to stop the run with an error. The context functions
# below send orders through the same risk gate as every order.
from libc.stdint cimport int32_t, int64_t
from orpflow._core.types cimport Event
from orpflow._core.book cimport Level, side_best
from orpflow._core.broker cimport ExecState, SimOrder, SimFill
from orpflow._core.features cimport FeatureState, FeatureVector

cdef enum:
    MAX_TIMERS = 16            # event-time timers per instrument
    TOP_MAX = 64               # levels ctx_top reads at most (the book tracks this many)

cdef struct StrategyContext:
    ExecState *x               # the instrument's book, broker and risk gate
    FeatureState *st           # st.fv: the latest feature row
    void *engine               # the engine's state (opaque: only its hooks read it)
    # the engine's hooks: an order was sent (write its record now: tick-to-trade ends there);
    # write an output record of `kind` (the signal strategy's signal records)
    void (*sent)(StrategyContext *ctx, int64_t result) noexcept nogil
    void (*record)(StrategyContext *ctx, int32_t kind, int64_t ts_exch, const int64_t *v) noexcept nogil
    const int64_t *event_no    # the engine's event counter (the record being processed)
    int32_t slot
    int32_t started            # on_start ran this run
    int64_t rows               # feature rows so far this run
    int64_t *open              # ids of orders sent and not yet reported final, in send order
    int64_t n_open
    int64_t open_cap
    int64_t timer_at[MAX_TIMERS]
    int64_t timer_id[MAX_TIMERS]
    int64_t n_timers
    int64_t next_timer         # the earliest due time (INT64_MAX: none)
    int32_t failed             # an allocation failed (the open-order list could not grow)

cdef class CStrategy:
    cdef int on_start(self, StrategyContext *ctx) noexcept nogil
    cdef int on_book(self, StrategyContext *ctx) noexcept nogil
    cdef int on_trade(self, StrategyContext *ctx, const Event *e) noexcept nogil
    cdef int on_order(self, StrategyContext *ctx, const SimOrder *o) noexcept nogil
    cdef int on_fill(self, StrategyContext *ctx, const SimFill *f) noexcept nogil
    cdef int on_timer(self, StrategyContext *ctx, int64_t timer_id) noexcept nogil
    cdef int on_stop(self, StrategyContext *ctx) noexcept nogil

# ------------------------------------------------------------------ the context

# Send an order (kind OT_*, tif TIF_* of orpflow._core.broker; price in ticks, 0 for market;
# qty in size units): its id, or -reason if the risk gate or the arguments rejected it.
cdef int64_t ctx_submit(StrategyContext *ctx, int32_t side, int32_t kind, int32_t tif,
                        int64_t price, int64_t qty, int64_t expire_at,
                        int64_t client_id) noexcept nogil
# The engine's own orders (signal targets, breaker flattening, recovery re-sends): no argument
# checks beyond the risk gate's (`reason` != 0: already known malformed).
cdef int64_t ctx_send(StrategyContext *ctx, int32_t side, int32_t kind, int32_t tif,
                      int64_t price, int64_t qty, int64_t expire_at, int64_t client_id,
                      int32_t reason) noexcept nogil
# Send a cancel: 1 if sent (the order is pending or open), 0 if unknown or final.
cdef int ctx_cancel(StrategyContext *ctx, int64_t order_id) noexcept nogil
# Send a modify (price, total qty): 0 sent, a reason code > 0 if the risk gate refused it,
# -1 if the order is unknown, final or a market order.
cdef int ctx_modify(StrategyContext *ctx, int64_t order_id, int64_t price, int64_t qty) noexcept nogil
# Cancel every open order of `side` (0: both): the cancels sent.
cdef int64_t ctx_cancel_all(StrategyContext *ctx, int32_t side) noexcept nogil
# on_timer(timer_id) once the local clock reaches `at` (setting an id again moves it):
# 0, or -1 if MAX_TIMERS are set.
cdef int ctx_set_timer(StrategyContext *ctx, int64_t at, int64_t timer_id) noexcept nogil
cdef int ctx_cancel_timer(StrategyContext *ctx, int64_t timer_id) noexcept nogil
# Up to n (<= TOP_MAX) best levels of side (+1 bids, -1 asks), best first: how many.
cdef int64_t ctx_top(StrategyContext *ctx, int32_t side, int64_t n, int64_t *prices,
                     int64_t *qtys) noexcept nogil
# The order with this id (its live state: status, filled, queue ahead), NULL if unknown.
cdef const SimOrder *ctx_order(StrategyContext *ctx, int64_t order_id) noexcept nogil
cdef int64_t ctx_best_bid(StrategyContext *ctx) noexcept nogil
cdef int64_t ctx_best_ask(StrategyContext *ctx) noexcept nogil

cdef inline int64_t taker_price(const ExecState *x, int32_t side, int64_t slippage_ticks) noexcept nogil:
    """An IOC limit's price: the opposite best +- slippage (at least 1 tick); 0 if that side
    is empty (the signal strategy's orders, breaker flattening)."""
    cdef const Level *lv = side_best(&x.book.ask if side > 0 else &x.book.bid)
    cdef int64_t price
    if lv == NULL:
        return 0
    price = (-lv.key + slippage_ticks) if side > 0 else (lv.key - slippage_ticks)
    return price if price > 0 else 1

cdef inline int64_t ctx_position(const StrategyContext *ctx) noexcept nogil:
    return ctx.x.b.acct.position

cdef inline int64_t ctx_now(const StrategyContext *ctx) noexcept nogil:
    """The local clock (ns): the time orders are sent at."""
    return ctx.x.now

cdef inline const FeatureVector *ctx_features(const StrategyContext *ctx) noexcept nogil:
    return &ctx.st.fv

cdef inline int64_t ctx_open_count(const StrategyContext *ctx) noexcept nogil:
    return ctx.n_open

cdef inline int64_t ctx_open_id(const StrategyContext *ctx, int64_t i) noexcept nogil:
    return ctx.open[i]

# ------------------------------------------------------------------ for the engine

cdef int ctx_init(StrategyContext *ctx) noexcept nogil
# Recompute next_timer from the timers set.
cdef void ctx_rearm(StrategyContext *ctx) noexcept nogil
cdef void ctx_free(StrategyContext *ctx) noexcept nogil
# An order reported final: drop it from the open list.
cdef void ctx_closed(StrategyContext *ctx, int64_t order_id) noexcept nogil
# Pop the earliest due timer at or before t: its id, or -1 (ties: the lower id first).
cdef int64_t ctx_pop_timer(StrategyContext *ctx, int64_t t, int64_t *due) noexcept nogil

cdef class PythonStrategy(CStrategy):
    cdef object obj
    cdef object ctx_obj
    cdef int32_t wants         # the callbacks obj overrides (bits): the others never take the GIL
    cdef public object error
