# The engine's per-event loop and thread loops over its state (engine.pxd). nogil.
from libc.stdint cimport int32_t, int64_t
from orpflow._core.types cimport Event
from orpflow._core.ring cimport RingState
from orpflow._core.engine cimport Core
from orpflow._core.strategy cimport StrategyContext

# One record through the whole strategy (book, features, strategy, orders, records).
cdef void core_step(Core *c, const Event *e, int64_t stamp) noexcept nogil
# Backtest: core_step over an array until a record fails.
cdef void run_events(Core *c, const Event *evs, int64_t n) noexcept nogil
# The end of a run: on_stop, the last order changes, an account record per instrument.
cdef void final_accounts(Core *c) noexcept nogil
# Copy every instrument's counters where other threads read them (seqlock).
cdef void publish_stats(Core *c) noexcept nogil
# Strategy thread: pop `market` until the feed is done and the ring drained.
cdef void strategy_loop(Core *c, RingState *market) noexcept nogil
# Feed thread: push recorded events message by message (paced, repeated).
cdef int64_t feed_loop(Core *c, RingState *market, const Event *evs, int64_t n, double speed,
                       int64_t repeat, int64_t span_t, int64_t span_s) noexcept nogil
# Live feed thread: one received frame's records, stamped with its receive time.
cdef int64_t push_received(Core *c, RingState *market, const Event *evs, int64_t n,
                           int64_t stamp) noexcept nogil
# The strategy context's hooks (an order was sent; a record the strategy writes).
cdef void on_sent(StrategyContext *ctx, int64_t result) noexcept nogil
cdef void on_record(StrategyContext *ctx, int32_t kind, int64_t ts_exch, const int64_t *v) noexcept nogil
# The latency histograms' bucket of a value (ns).
cdef int64_t hist_bucket(int64_t v) noexcept nogil
