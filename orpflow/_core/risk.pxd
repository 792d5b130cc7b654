# Pre-trade risk: checks in a fixed order (first failure wins) and circuit breakers, nogil.
from libc.stdint cimport int64_t
from orpflow._core.types cimport orp_i128, R_COUNT

# Circuit breakers: bits of RiskState.breakers; a tripped one stays until reset.
cdef enum:
    BRK_DRAWDOWN = 1
    BRK_DAILY_LOSS = 2
    BRK_CONSECUTIVE_LOSSES = 4
    BRK_REJECT_STORM = 8
    BRK_BOOK_DESYNC = 16
    BRK_MANUAL = 32
    BRK_COUNT = 6
    # what a tripped breaker lets through (RiskParams.on_breaker)
    ON_BREAKER_REDUCE_ONLY = 0     # only orders that bring the position toward zero
    ON_BREAKER_HALT = 1            # nothing
    ON_BREAKER_FLATTEN = 2         # the engine closes the position, then reduce_only

# Limits in core units (sizes: size units, prices: ticks, money: MoneyScale units); -1 = off.
cdef struct RiskParams:
    int64_t lot
    int64_t max_order_qty
    int64_t max_position
    int64_t price_band_e2          # hundredths of a basis point
    int64_t max_open_orders
    orp_i128 max_order_notional
    orp_i128 max_gross_exposure
    orp_i128 max_daily_loss
    orp_i128 min_balance
    int has_min_balance
    int clip                       # qty_policy "clip"
    int64_t rates[3]               # per second / minute / hour (0 = off)
    int64_t max_drawdown_e9        # fraction of peak equity, in 1e-9
    int64_t max_consecutive_losses
    int64_t reject_storm
    int64_t reject_storm_window_ns
    int64_t max_book_desyncs
    int on_breaker

# What one check reads: the order and the account/book state it would join.
cdef struct OrderContext:
    int64_t side                   # +1 buy, -1 sell
    int64_t qty
    int64_t price                  # 0 for a market order
    int64_t now                    # local time of the request (rate limits)
    int64_t bid                    # best prices in ticks (0: side empty)
    int64_t ask
    int64_t position
    int64_t open_buy               # leaves of open + in-flight orders per side
    int64_t open_sell
    int64_t open_orders
    int book_usable
    orp_i128 cash
    orp_i128 equity

cdef struct RiskState:
    RiskParams p
    int64_t kill                   # atomic: written from any thread, read by the strategy
    int64_t breakers
    orp_i128 tat[3]                # GCRA theoretical arrival times, scaled by the rate
    int tat_set[3]
    int64_t decisions[R_COUNT]
    int64_t trips[BRK_COUNT]
    int64_t n_trips                # all trips so far: the engine writes a record per new one
    # the latest trip of each breaker: when (the time its evidence carried), what tripped it
    int64_t trip_ts[BRK_COUNT]
    orp_i128 trip_value[BRK_COUNT] # drawdown: 1e-9 of peak; daily_loss: money; others: counts
    orp_i128 trip_limit[BRK_COUNT]
    int64_t trip_extra[BRK_COUNT]  # reject_storm: ns between the first and last rejection
    int64_t consecutive_losses
    int64_t *rejects               # ring of the last reject_storm reject times
    int64_t rej_n
    int64_t rej_head
    int64_t desyncs
    int64_t book_losses_seen
    int64_t day
    int day_set
    int peak_set
    orp_i128 day_open_equity
    orp_i128 peak

cdef int risk_check(RiskState *r, const OrderContext *c, int64_t *qty) noexcept nogil
cdef void risk_count(RiskState *r, int reason) noexcept nogil
cdef void risk_on_reject(RiskState *r, int64_t now) noexcept nogil
cdef void risk_on_mark(RiskState *r, orp_i128 equity, int64_t now) noexcept nogil
cdef void risk_on_round_trip(RiskState *r, orp_i128 pnl, int64_t now) noexcept nogil
cdef void risk_on_book(RiskState *r, int64_t losses_total, int64_t now) noexcept nogil
cdef void risk_trip(RiskState *r, int64_t bit, int64_t now, orp_i128 value, orp_i128 limit,
                    int64_t extra) noexcept nogil

cdef class RiskGate:
    cdef RiskState *r
    cdef readonly object limits
    cdef readonly object instrument
    cdef bint bound                # owned by an ExecutionSim
