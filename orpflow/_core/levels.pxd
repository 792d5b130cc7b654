# One side of an order book (levels.pyx): the price window and the far levels, the best-levels
# read and its tracking. The book (book.pxd) holds two of them; features, the broker and the
# snapshot read them through the inline walkers below.
from libc.stdint cimport int32_t, int64_t, uint32_t, uint64_t, INT64_MIN

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
    WINDOW_DEFAULT = 32768        # window_ticks unless told (levels.pyx: why)
    WINDOW_MIN = 64
    WINDOW_MAX = 16777216

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


cdef int side_init(BookSide *s, int64_t wsize) noexcept nogil
cdef void side_free(BookSide *s) noexcept nogil
cdef void side_clear(BookSide *s) noexcept nogil
cdef int side_set_outside(BookSide *s, int64_t key, int64_t qty) noexcept nogil
cdef void side_best_removed(BookSide *s) noexcept nogil
cdef int side_stage(BookSide *s, int64_t key, int64_t qty) noexcept nogil
cdef int side_finish_snapshot(BookSide *s) noexcept nogil
# The n best levels into out, best first; returns how many.
cdef int64_t side_read_top(const BookSide *s, int64_t n, Level *out) noexcept nogil
# Keep the tracked best levels equal to the side's after the level at key became qty.
cdef void top_track(TopLevels *t, const BookSide *s, int64_t key, int64_t qty) noexcept nogil
cdef dict side_layout(const BookSide *s, bint is_ask)
cdef void check_side(const BookSide *s, str name) except *
cdef void check_top(const TopLevels *t, const BookSide *s, str name) except *


cdef inline void top_set_floor(TopLevels *t) noexcept nogil:
    t.floor = t.lv[t.n - 1].key if t.n == t.want else INT64_MIN


cdef inline int side_set(BookSide *s, int64_t key, int64_t qty) noexcept nogil:
    """Set the absolute size at key (0 removes the level); -1 only when out of memory.
    In the window: an index, a bit and two counters, without a data-dependent branch except
    when the best level itself changes."""
    cdef uint64_t slot, bit
    cdef uint64_t *word
    cdef int64_t had, now
    if <uint64_t>key - <uint64_t>s.lo >= <uint64_t>s.wsize:
        return side_set_outside(s, key, qty)
    slot = (<uint64_t>key) & (<uint64_t>s.wsize - 1)
    word = &s.wbits[slot >> 6]
    bit = (<uint64_t>1) << (slot & 63)
    had = <int64_t>((word[0] >> (slot & 63)) & 1)
    now = qty != 0
    word[0] = (word[0] & ~bit) | (bit & (<uint64_t>0 - <uint64_t>now))
    s.wq[slot] = qty
    s.nwin += now - had
    s.n += now - had
    if key >= s.best.key:
        if now:
            s.best.key = key
            s.best.qty = qty
        elif had:
            side_best_removed(s)
    return 0


