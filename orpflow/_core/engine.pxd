# The engine's state: per instrument a slot (book, broker, risk, features, strategy), the
# output records, counters, thread hand-off flags, latency histograms. The per-event loop over
# it is orpflow/_core/loop.pyx; EngineCore (engine.pyx) is its Python surface.
from libc.stdint cimport int32_t, int64_t, uint32_t
from orpflow._core.types cimport Event
from orpflow._core.ring cimport RingState
from orpflow._core.broker cimport ExecState
from orpflow._core.features cimport FeatureState
from orpflow._core.strategy cimport StrategyContext
from orpflow._core.snapshot cimport SeqlockSnapshot
from orpflow._core.book cimport BookCounters
from orpflow._core.risk cimport BRK_COUNT
from orpflow._core.types cimport R_COUNT

cdef enum:
    # kinds of OutRecord (stable: persisted)
    OUT_ORDER = 1              # an order's state changed
    OUT_FILL = 2
    OUT_SIGNAL = 3             # an emitted signal (side != 0) and the order it led to
    OUT_ACCOUNT = 4            # account snapshot: after fills, periodically, at the end
    OUT_SYNC = 5               # the book's sync state or gap/resync counts changed
    OUT_BREAKER = 6            # a circuit breaker tripped: which, when, the value and the limit
    OUT_FIELDS = 12
    OUT_SLOTS = 2              # ring slots (Event records) per OutRecord
    MAX_SLOTS = 64             # instruments per engine
    HIST_SUB = 16              # log-linear histogram: 16 linear buckets per power of two
    HIST_BUCKETS = 976         # values below 16 exact, then up to 2**63 in 6% steps
    BATCH = 256                # records popped from the market ring at a time
    MAX_RESTORE = 256          # open orders a restart re-sends per instrument
    STATS_EVERY = 4096         # events between two publishes of the per-instrument stats
    FEATURE_SAMPLE = 16        # the feature histogram times one row in 16 (a power of two)

# One output record: 128 bytes = two ring slots. The meaning of v[] depends on kind
# (orpflow/engine_records.py names them).
cdef struct OutRecord:
    int32_t kind
    int32_t slot               # index of the instrument in the engine
    int64_t event_no           # the engine's event counter when it was written
    int64_t ts_exch
    int64_t ts_local
    int64_t v[OUT_FIELDS]

cdef struct Histogram:
    int64_t counts[HIST_BUCKETS]
    int64_t n
    int64_t total
    int64_t max

# The engine's own orders (breaker flattening, recovery re-sends) and its records.
cdef struct ExecParams:
    int32_t order_kind         # flattening: OT_MARKET, or OT_LIMIT: IOC at the opposite best +- slippage
    int64_t slippage_ticks
    int64_t warmup_rows        # feature rows before restored orders are re-sent (after every (re)start)
    int64_t account_every_ns   # periodic account record interval (event time); 0: off
    int32_t keep_history       # 0: free fills and final orders once written (flat memory)

# An order left open by the previous run, re-sent once the features are warm again.
cdef struct RestoredOrder:
    int32_t side
    int32_t kind
    int32_t tif
    int64_t price
    int64_t qty
    int64_t client_id          # the previous run's order id
    int64_t expire_at

# What other threads (stats(), metrics) may read about one instrument while the loop runs.
# The book's, risk gate's and venue's counters are plain fields of the loop's own structs; the
# strategy thread copies them here under a seqlock when it goes idle, every STATS_EVERY events
# and at the end of a run, so a reader never races the loop (publish_stats).
cdef struct SlotStats:
    int64_t events             # the engine's event counter when published
    BookCounters book
    int64_t book_rejects[R_COUNT]
    int64_t decisions[R_COUNT] # risk decisions by reason (0 = accepted)
    int64_t venue[R_COUNT]     # venue outcomes by reason
    int64_t trips[BRK_COUNT]   # breaker trips so far, by breaker
    int64_t breakers           # breakers tripped now (bits)

cdef struct SeqlockStats:
    int64_t seq
    char _pad[56]
    SlotStats data

cdef struct Slot:
    ExecState *x
    FeatureState *st
    void *strategy             # CStrategy (borrowed: EngineCore keeps it alive)
    void *extension            # FeatureExtension or NULL
    SeqlockSnapshot *snap
    StrategyContext ctx        # what the strategy acts through (ctx.rows: feature rows this run)
    ExecParams ep
    uint32_t instrument
    int64_t t0                 # clock reading when the current row-making record was dequeued (0: none)
    int64_t stamp              # its ring stamp
    int32_t measured           # its tick-to-trade was taken (the first order it led to)
    int64_t j_written          # journal entries already written as records
    int64_t j_done             # journal entries already given to on_order
    int64_t fills_cb           # fills of the broker's array already given to on_fill
    int64_t fills_out          # fills of the broker's array already written
    int64_t fills_total        # fills written in all (the next fill id - 1)
    int64_t next_account       # event time due for the next periodic account record
    int64_t sync_key[4]        # book state, gaps, resyncs, desyncs last written
    int64_t trips_seen         # the risk gate's n_trips last looked at
    int64_t trips_out[8]       # trips of each breaker already written
    int flatten_pending        # on_breaker = "flatten": close the position at the next row
    int32_t late               # feature groups computed after the order (the generator does not read them)
    int32_t ext_late           # 1: the extension too (the generator reads none of its columns)
    RestoredOrder restore[MAX_RESTORE]
    int64_t n_restore
    SeqlockStats stats

# Written by the strategy thread only (relaxed stores); read by any thread (relaxed loads).
cdef struct Counters:
    int64_t events
    int64_t rows
    int64_t signals
    int64_t orders
    int64_t rejected
    int64_t fills
    int64_t out_records
    int64_t out_waits          # times the out ring was full (back-pressure on the strategy)
    int64_t unknown            # records of an instrument the engine does not trade (skipped)
    int64_t idle_sleeps
    int64_t market_waits       # times the market ring was full (back-pressure on the feed)
    int64_t fed                # records pushed by the feed
    int64_t out_lost           # records not written because the consumer aborted
    int64_t breaker_trips      # circuit breaker trips written (OUT_BREAKER records)
    int64_t feed_lost          # records a live feed could not push: the strategy had ended

# Thread hand-off flags, each on its own line.
cdef struct Control:
    int64_t feed_stop          # the feed stops at the next message boundary
    char _p0[56]
    int64_t feed_done          # release-stored by the feed after its last push
    char _p1[56]
    int64_t abort              # the out consumer is gone: do not wait for room
    char _p2[56]
    int64_t strategy_done      # release-stored by the strategy loop when it returns
    char _p3[56]

cdef struct Core:
    Slot slots[MAX_SLOTS]
    int64_t n_slots
    int64_t last
    RingState *out             # NULL: records go to the collection buffer (backtest)
    OutRecord *buf
    int64_t n_buf
    int64_t buf_cap
    int measure                # take clock readings for the latency histograms
    int64_t spin_ns            # strategy thread: spin this long after the last record, then sleep
    int failed                 # 1 out of memory, 2 a strategy callback failed (failed_slot)
    int32_t failed_slot
    Counters c
    Control ctl
    Histogram incore           # row-making record dequeued -> order record written
    Histogram ingress          # feed push -> order record written
    Histogram feature          # features_update (+ extension) per row
    Histogram handoff          # feed push -> popped by the strategy (first record of each pop)
    Histogram wire             # live: frame received -> order record written (strategy thread)
    Histogram decode           # live: frame received -> its records pushed (feed thread)
    int wire_stamps            # the ring's stamps are receive stamps (live feed): `wire`, not `ingress`
    int64_t stats_at           # c.events at the last publish_stats

