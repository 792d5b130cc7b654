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

# A side keeps every level the venue sends, in two parts. key = price for bids and -price for
# asks, so the best level has the highest key on both sides and they share one code path.
# - The window: the `wsize` keys [lo, lo + wsize) just below and around the best, held
#   densely: the size at key k sits in wq[k & (wsize - 1)] (a ring, so moving the window never
#   moves the levels that stay in it) and one bit per key in wbits says a level is there. An
#   update in the window is an index and a bit flip, no search: nothing to mispredict.
# - Far levels: every level below the window (key < lo), exact, in a blocked sorted array
#   (ascending keys, cut into blocks of at most BLOCK_LEVELS; `order` lists the blocks).
# Invariants: far keys < lo <= window keys < lo + wsize; a non-empty side has its best level in
# the window (so `best` is a window level). The window follows the best: a level above it
# moves the window up (levels left below it go to the far part), and when the best falls
# into the window's lower half the window moves down (far levels in range come back in).
cdef enum:
    BLOCK_LEVELS = 64
    BBO_PENDING = 64              # venue BBO records kept until the diff with their update id

cdef struct Level:
    int64_t key
    int64_t qty

cdef struct LevelBlock:
    int64_t n
    Level lv[BLOCK_LEVELS]

cdef struct FarLevels:
    LevelBlock *pool          # block storage; grows by doubling, never shrinks
    int32_t *order            # pool indices of the blocks in use, in key order
    int32_t *free_blocks      # pool indices released by merges/empties, reused first
    int64_t nblocks           # entries in `order`
    int64_t nfree
    int64_t pool_used         # pool entries ever handed out since the last clear
    int64_t pool_cap
    int64_t n                 # levels

cdef struct BookSide:
    int64_t *wq               # window sizes by slot (key & (wsize - 1)); 0 where no level
    uint64_t *wbits           # window occupancy, one bit per slot
    int64_t lo                # the window holds keys [lo, lo + wsize)
    int64_t wsize             # a power of two
    int64_t nwin              # levels in the window
    int64_t n                 # levels on the side (window + far)
    Level best                # the best level when n > 0
    int64_t recentres         # times the window moved
    FarLevels far
    Level *stage              # snapshot levels as they arrive, sorted once when complete
    int64_t stage_n
    int64_t stage_cap

cdef extern from "orp_bits.h":
    int64_t orp_top_bit(uint64_t x) noexcept nogil
    int64_t orp_low_bit(uint64_t x) noexcept nogil
    int64_t orp_max_i64(int64_t a, int64_t b) noexcept nogil


cdef inline bint window_next(const BookSide *s, int64_t off, Level *out) noexcept nogil:
    """The highest level in the window at offset <= off from lo (offsets, not keys, so the
    walk never overflows near the ends of int64); False if there is none."""
    cdef uint64_t mask = <uint64_t>s.wsize - 1, base = <uint64_t>s.lo, slot, word
    cdef int64_t b, top
    while off >= 0:
        slot = (base + <uint64_t>off) & mask
        b = <int64_t>(slot & 63)
        word = s.wbits[slot >> 6] & (((<uint64_t>2) << b) - 1)      # bits 0..b of the word
        if word:
            top = orp_top_bit(word)
            off -= b - top
            if off < 0:
                return False
            out.key = <int64_t>(base + <uint64_t>off)
            out.qty = s.wq[slot - <uint64_t>(b - top)]
            return True
        off -= b + 1
    return False


# Walks a side from the best level down: the window, then the far levels.
cdef struct SideIter:
    const BookSide *s
    int64_t off               # window: next offset to look at, -1 when the window is done
    int64_t block             # far levels: block position, -1 when done
    int64_t i

cdef inline void side_iter_begin(SideIter *it, const BookSide *s) noexcept nogil:
    it.s = s
    it.off = <int64_t>(<uint64_t>s.best.key - <uint64_t>s.lo) if s.nwin > 0 else -1
    it.block = s.far.nblocks - 1
    it.i = s.far.pool[s.far.order[it.block]].n - 1 if s.far.nblocks > 0 else -1


cdef inline bint side_iter_next(SideIter *it, Level *out) noexcept nogil:
    """Next level, best first; False when the side is exhausted."""
    cdef const LevelBlock *blk
    if it.off >= 0:
        if window_next(it.s, it.off, out):
            it.off = <int64_t>(<uint64_t>out.key - <uint64_t>it.s.lo) - 1
            return True
        it.off = -1
    if it.block < 0:
        return False
    blk = &it.s.far.pool[it.s.far.order[it.block]]
    out[0] = blk.lv[it.i]
    it.i -= 1
    if it.i < 0:
        it.block -= 1
        if it.block >= 0:
            it.i = it.s.far.pool[it.s.far.order[it.block]].n - 1
    return True


cdef inline const Level *side_best(const BookSide *s) noexcept nogil:
    return &s.best if s.n > 0 else NULL


# Size at one key (price for bids, -price for asks); 0 if the level is absent.
cdef int64_t side_qty_at(const BookSide *s, int64_t key) noexcept nogil

# Copy up to n best levels (best first) into keys/qty; returns how many.
cdef int64_t side_top(const BookSide *s, int64_t n, int64_t *keys, int64_t *qty) noexcept nogil

# The best levels of a side, kept up to date as the book changes once a reader has asked for
# them (features, book metrics, the published snapshot all read them every row): a read is a
# pointer, and an update below the tracked levels costs one comparison.
cdef enum:
    TOP_CACHE = 64

cdef struct TopLevels:
    int valid                 # lv holds the side's n best levels (0: read them again)
    int64_t floor             # an update at a key below this leaves lv as it is (INT64_MAX when
                              # not tracking; INT64_MIN while the side has fewer than `want`)
    int64_t want              # levels tracked (the most any reader asked for, <= TOP_CACHE)
    int64_t n                 # levels in lv: want, or fewer when the side has fewer
    Level lv[TOP_CACHE]       # best first

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
