# L2 order book: snapshot + diffs under the venue's sequence rules, one writer thread.
from libc.stdint cimport int32_t, int64_t, uint32_t, uint64_t
from orpflow._core.types cimport Event, R_COUNT

cdef enum BookVenue:
    VENUE_BINANCE_SPOT = 0
    VENUE_BINANCE_FUTURES = 1     # USD-M and COIN-M: `pu` continuity, inclusive first-diff rule
    VENUE_GENERIC = 2             # absolute sizes, no sequence rules (Tardis, Bybit deltas)

cdef enum SyncState:
    S_WAIT_SNAPSHOT = 0           # no snapshot yet: diffs are buffered (Binance) or dropped (generic)
    S_AWAIT_FIRST = 1             # snapshot applied, first diff must straddle its id
    S_IN_SYNC = 2
    S_OUT_OF_SYNC = 3             # gap or bad data: diffs buffered until a snapshot re-syncs

from orpflow._core.levels cimport (
    BLOCK_LEVELS, TOP_CACHE, WINDOW_DEFAULT, WINDOW_MIN, WINDOW_MAX, Level, LevelBlock, FarLevels,
    BookSide, TopLevels, SideIter, window_next, side_iter_begin, side_iter_next, side_best,
    side_qty_at, side_top, orp_top_bit, orp_low_bit, orp_max_i64,
)

cdef enum:
    BBO_PENDING = 64              # venue BBO records kept until the diff with their update id

cdef struct BookCounters:
    int64_t records           # records seen by apply()
    int64_t messages          # book messages completed (LAST seen)
    int64_t applied           # level records applied to the book
    int64_t buffered          # records put in the pre-snapshot buffer
    int64_t snapshots         # snapshots applied
    int64_t resyncs           # snapshots that ended an OUT_OF_SYNC period
    int64_t gaps              # sequence gaps detected
    int64_t stale             # diff messages dropped as already in the book
    int64_t desyncs           # times the book left sync for bad data (not a gap)
    int64_t crossed           # complete messages that left the book crossed (bid > ask)
    int64_t locked            # ... or locked (bid == ask)
    int64_t trades            # trade records seen (passed over)
    int64_t bbo               # BBO records seen
    int64_t rejected          # records rejected, all reasons
    int64_t bbo_checked       # BBO records at the book's own update id, compared with its top
    int64_t bbo_mismatched    # ... that disagreed: the book was wrong, so it left sync

cdef struct BookMetrics:
    double best_bid
    double best_ask
    double bid_qty
    double ask_qty
    double mid
    double spread_bps
    double imbalance              # (sum Qb - sum Qa)/(sum Qb + sum Qa), top imbalance_levels
    double weighted_imbalance     # same with weights decay**level, top weighted_levels
    double depth_bid              # sum of sizes, top depth_levels
    double depth_ask
    double stoikov_imbalance      # Qb/(Qb+Qa) at level 1
    double weighted_mid           # Pb(1-I) + Pa*I with I the Stoikov imbalance

cdef struct Book:
    BookSide bid
    BookSide ask
    int venue
    int state
    int ever_synced
    int crossed_now
    int64_t last_update_id
    uint32_t instrument
    # the message in progress (records up to one carrying F_LAST)
    int msg_open
    int msg_kind
    int msg_action
    int msg_drop_reason
    int msg_resync
    int64_t msg_seq
    int64_t msg_buf_start
    # the venue's best bid/ask records ahead of the book (update id > the book's): each is
    # compared with the book's top once the diff with that id is applied (a ring, oldest
    # dropped when full: the one that matters arrives just before its diff)
    int64_t bbo_u[BBO_PENDING]
    int64_t bbo_px[BBO_PENDING]
    int64_t bbo_qty[BBO_PENDING]
    uint32_t bbo_side[BBO_PENDING]
    int64_t bbo_head
    int64_t bbo_n
    int64_t ts_exch               # times of the last complete applied message
    int64_t ts_local
    # pre-snapshot buffer: [buf_start, buf_end) holds whole messages (plus the one in progress)
    Event *buf
    int64_t buf_start
    int64_t buf_end
    int64_t buf_cap
    int replaying
    int replay_stop
    # price/size scale for the float views: value = units * num / den
    double px_num
    double px_den
    double qty_num
    double qty_den
    int imbalance_levels
    int weighted_levels
    int depth_levels
    double weighted_decay
    BookCounters c
    int64_t rejects[R_COUNT]
    TopLevels top[2]              # [bid, ask]: tracked once read (book_top)

# The n best levels of one side (is_ask 0/1), best first, n <= TOP_CACHE: a pointer into the
# book's tracked top levels; returns how many (fewer if the side has fewer). The pointer is
# valid until the book changes.
cdef int64_t book_top(const Book *b, bint is_ask, int64_t n, const Level **out) noexcept nogil

cdef int64_t book_apply(Book *b, const Event *evs, int64_t n) noexcept nogil
# One record (book_apply without the loop; the caller counts b.c.records).
cdef void book_process(Book *b, const Event *e) noexcept nogil
cdef void book_metrics(const Book *b, BookMetrics *m) noexcept nogil
cdef bint book_in_sync(const Book *b) noexcept nogil
cdef bint book_usable(const Book *b) noexcept nogil

cdef class OrderBook:
    cdef Book *book
    # Python-boundary guard: apply() releases the GIL, so a Python reader on another thread
    # must not walk the levels while they change (a block pool realloc would be a crash).
    cdef int64_t writing      # 1 while apply() runs
    cdef int64_t readers      # Python readers inside a read
    cdef int _enter_write(self) except -1
    cdef void _exit_write(self) noexcept
    cdef int _enter_read(self) except -1
    cdef void _exit_read(self) noexcept
    cdef readonly object instrument
