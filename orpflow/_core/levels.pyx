"""One side of an order book: the price window around the best and the exact far levels,
the read of its best levels, and the tracking that keeps them current (see levels.pxd).

Everything here works on one BookSide, knows nothing of venues, sequences or messages (the
book, book.pyx, decides what is applied), and allocates only when a side grows: the window
once, far blocks when the far part outgrows its pool.
"""
from libc.stdint cimport int32_t, int64_t, uint32_t, uint64_t, INT64_MIN, INT64_MAX
from libc.stdlib cimport calloc, realloc, free
from libc.string cimport memcpy, memmove, memset


# ------------------------------------------------------------------------------------------
# far levels: a blocked sorted array (see levels.pxd)


cdef int far_grow_pool(FarLevels *s) noexcept nogil:
    """Double the block pool; 0 on success, -1 out of memory. Blocks are addressed by pool
    index, so moving the pool in memory invalidates nothing."""
    cdef int64_t cap = s.pool_cap * 2 if s.pool_cap > 0 else 16
    cdef LevelBlock *pool = <LevelBlock *>realloc(s.pool, <size_t>cap * sizeof(LevelBlock))
    if pool == NULL:
        return -1
    s.pool = pool
    cdef int32_t *order = <int32_t *>realloc(s.order, <size_t>cap * sizeof(int32_t))
    if order == NULL:
        return -1
    s.order = order
    cdef int32_t *free_blocks = <int32_t *>realloc(s.free_blocks, <size_t>cap * sizeof(int32_t))
    if free_blocks == NULL:
        return -1
    s.free_blocks = free_blocks
    s.pool_cap = cap
    return 0


cdef int64_t far_new_block(FarLevels *s) noexcept nogil:
    """A free block's pool index (n = 0), or -1 out of memory."""
    cdef int64_t idx
    if s.nfree > 0:
        s.nfree -= 1
        idx = s.free_blocks[s.nfree]
    else:
        if s.pool_used == s.pool_cap and far_grow_pool(s) != 0:
            return -1
        idx = s.pool_used
        s.pool_used += 1
    s.pool[idx].n = 0
    return idx


cdef inline void far_order_insert(FarLevels *s, int64_t pos, int64_t idx) noexcept nogil:
    memmove(&s.order[pos + 1], &s.order[pos], <size_t>(s.nblocks - pos) * sizeof(int32_t))
    s.order[pos] = <int32_t>idx
    s.nblocks += 1


cdef inline void far_order_remove(FarLevels *s, int64_t pos) noexcept nogil:
    s.free_blocks[s.nfree] = s.order[pos]
    s.nfree += 1
    memmove(&s.order[pos], &s.order[pos + 1], <size_t>(s.nblocks - pos - 1) * sizeof(int32_t))
    s.nblocks -= 1


cdef void far_clear(FarLevels *s) noexcept nogil:
    s.nblocks = 0
    s.nfree = 0
    s.pool_used = 0
    s.n = 0


cdef void far_free(FarLevels *s) noexcept nogil:
    free(s.pool)
    free(s.order)
    free(s.free_blocks)


cdef inline LevelBlock *far_block(const FarLevels *s, int64_t pos) noexcept nogil:
    return &s.pool[s.order[pos]]


cdef inline int64_t far_route(const FarLevels *s, int64_t key) noexcept nogil:
    """Position in `order` of the block that holds key or would receive it: the last block
    whose first key is <= key (the first block if none). Branch-free halving (the step taken
    is a conditional add, not a jump): far updates land anywhere, so a branch on the
    comparison would be a coin flip per step."""
    cdef int64_t base = 0, n = s.nblocks, half
    while n > 1:
        half = n >> 1
        base += half * (far_block(s, base + half).lv[0].key <= key)
        n -= half
    return base


cdef inline int64_t block_lower_bound(const LevelBlock *blk, int64_t key) noexcept nogil:
    """First index whose key is >= key (blk.n if none), branch-free like far_route."""
    cdef int64_t base = 0, n = blk.n, half
    if n == 0:
        return 0
    while n > 1:
        half = n >> 1
        base += half * (blk.lv[base + half - 1].key < key)
        n -= half
    return base + (blk.lv[base].key < key)


cdef int64_t far_qty_at(const FarLevels *s, int64_t key) noexcept nogil:
    cdef const LevelBlock *blk
    cdef int64_t i
    if s.nblocks == 0:
        return 0
    blk = far_block(s, far_route(s, key))
    i = block_lower_bound(blk, key)
    return blk.lv[i].qty if i < blk.n and blk.lv[i].key == key else 0


cdef void far_merge_small(FarLevels *s, int64_t pos) noexcept nogil:
    """Keep blocks at least a quarter full: fold a small block into a neighbour with room."""
    cdef LevelBlock *lo
    cdef LevelBlock *hi
    cdef int64_t k, p
    for k in range(2):                # merge (p, p+1): with the next block, else the previous
        p = pos - k
        if p < 0 or p + 1 >= s.nblocks:
            continue
        lo = far_block(s, p)
        hi = far_block(s, p + 1)
        if lo.n + hi.n <= (BLOCK_LEVELS * 3) // 4:
            memcpy(&lo.lv[lo.n], &hi.lv[0], <size_t>hi.n * sizeof(Level))
            lo.n += hi.n
            far_order_remove(s, p + 1)
            return


cdef int far_set(FarLevels *s, int64_t key, int64_t qty) noexcept nogil:
    """Set the absolute size at key (0 removes the level); -1 only when out of memory."""
    cdef int64_t pos, i, idx, half
    cdef LevelBlock *blk
    cdef LevelBlock *upper
    if s.nblocks == 0:
        if qty == 0:
            return 0
        idx = far_new_block(s)
        if idx < 0:
            return -1
        far_order_insert(s, 0, idx)
    pos = far_route(s, key)
    blk = far_block(s, pos)
    i = block_lower_bound(blk, key)
    if i < blk.n and blk.lv[i].key == key:
        if qty != 0:
            blk.lv[i].qty = qty
            return 0
        memmove(&blk.lv[i], &blk.lv[i + 1], <size_t>(blk.n - i - 1) * sizeof(Level))
        blk.n -= 1
        s.n -= 1
        if blk.n == 0:
            far_order_remove(s, pos)
        elif blk.n < BLOCK_LEVELS // 4:
            far_merge_small(s, pos)
        return 0
    if qty == 0:
        return 0    # removing a level the book does not have: valid, nothing to do
    if blk.n == BLOCK_LEVELS:
        # split: the upper half moves to a new block right after this one
        idx = far_new_block(s)
        if idx < 0:
            return -1
        blk = far_block(s, pos)              # the pool may have moved
        upper = &s.pool[idx]
        half = BLOCK_LEVELS // 2
        memcpy(&upper.lv[0], &blk.lv[half], <size_t>(BLOCK_LEVELS - half) * sizeof(Level))
        upper.n = BLOCK_LEVELS - half
        blk.n = half
        far_order_insert(s, pos + 1, idx)
        if i > half:
            blk = upper
            i -= half
    memmove(&blk.lv[i + 1], &blk.lv[i], <size_t>(blk.n - i) * sizeof(Level))
    blk.lv[i].key = key
    blk.lv[i].qty = qty
    blk.n += 1
    s.n += 1
    return 0


cdef inline const Level *far_top(const FarLevels *s) noexcept nogil:
    cdef const LevelBlock *blk
    if s.nblocks == 0:
        return NULL
    blk = far_block(s, s.nblocks - 1)
    return &blk.lv[blk.n - 1]


cdef void far_pop_top(FarLevels *s) noexcept nogil:
    """Remove the highest level (there must be one)."""
    cdef LevelBlock *blk = far_block(s, s.nblocks - 1)
    blk.n -= 1
    s.n -= 1
    if blk.n == 0:
        far_order_remove(s, s.nblocks - 1)


cdef int far_load(FarLevels *s, const Level *lv, int64_t n) noexcept nogil:
    """Replace the contents with n levels sorted by key, in blocks filled to 3/4 (room to
    insert before a split). -1 only when out of memory."""
    cdef int64_t i = 0, idx, take
    far_clear(s)
    while i < n:
        idx = far_new_block(s)
        if idx < 0:
            return -1
        take = min(n - i, (BLOCK_LEVELS * 3) // 4)
        memcpy(&s.pool[idx].lv[0], &lv[i], <size_t>take * sizeof(Level))
        s.pool[idx].n = take
        far_order_insert(s, s.nblocks, idx)
        i += take
    s.n = n
    return 0


# ------------------------------------------------------------------------------------------
# one side: the window and the far levels (see levels.pxd)
#
# Window policy, from the recordings (Binance BTCUSDT spot and USD-M, every level update
# measured against the best of its side): updates land far from the touch, median 2,600
# ticks (spot, 0.01) and 400 ticks (USD-M, 0.1) below the best; 16,384 ticks cover 90 % and
# 95 %, 4,096 only 59 % and 89 %. Book alone, ns per record (spot / USD-M, side by side):
# 8,192 ticks 40.8 / 22.5, 16,384 27.1 / 18.9, 32,768 21.4 / 17.9, 65,536 20.9 / 17.6. So
# the default is 32,768 ticks (256 KiB of sizes and 4 KiB of bits per side, allocated zeroed:
# untouched pages cost no memory; an update touches one line of each), with the best kept in
# the window's upper part: window_headroom of it above the best for the price to rise into,
# and the window moves down once the best falls into its lower half.



cdef inline int64_t window_headroom(const BookSide *s) noexcept nogil:
    return s.wsize >> 3


cdef int64_t window_base_for(const BookSide *s, int64_t key) noexcept nogil:
    """The window start that puts key `headroom` below the window's top, clamped so that the
    window's keys stay inside int64."""
    cdef int64_t below = s.wsize - window_headroom(s)
    if key < INT64_MIN + below:
        return INT64_MIN
    if key - below > INT64_MAX - s.wsize + 1:
        return INT64_MAX - s.wsize + 1
    return key - below


cdef int side_init(BookSide *s, int64_t wsize) noexcept nogil:
    """Allocate the window (zeroed); -1 out of memory."""
    s.wsize = wsize
    s.wq = <int64_t *>calloc(<size_t>wsize, sizeof(int64_t))
    s.wbits = <uint64_t *>calloc(<size_t>(wsize >> 6), sizeof(uint64_t))
    s.best.key = INT64_MIN
    if s.wq == NULL or s.wbits == NULL or far_grow_pool(&s.far) != 0:
        return -1
    return 0


cdef void side_free(BookSide *s) noexcept nogil:
    free(s.wq)
    free(s.wbits)
    far_free(&s.far)
    free(s.stage)


cdef void window_clear(BookSide *s) noexcept nogil:
    """Empty the window: zero the sizes of the occupied slots only (the bitmap says which)."""
    cdef int64_t w, nw = s.wsize >> 6
    cdef uint64_t word
    for w in range(nw):
        word = s.wbits[w]
        while word:
            s.wq[(w << 6) + orp_low_bit(word)] = 0
            word &= word - 1
        s.wbits[w] = 0
    s.nwin = 0


cdef void side_clear(BookSide *s) noexcept nogil:
    if s.nwin:
        window_clear(s)
    far_clear(&s.far)
    s.n = 0
    s.best.key = INT64_MIN
    s.best.qty = 0
    s.stage_n = 0


cdef inline void window_put(BookSide *s, int64_t key, int64_t qty) noexcept nogil:
    """Place a level (qty > 0) known to be absent from the window, key inside it."""
    cdef uint64_t slot = (<uint64_t>key) & (<uint64_t>s.wsize - 1)
    s.wbits[slot >> 6] |= (<uint64_t>1) << (slot & 63)
    s.wq[slot] = qty
    s.nwin += 1


cdef void window_move_down(BookSide *s) noexcept nogil:
    """Put the best `headroom` below the window's top again, bringing back the far levels
    that the lower window now covers. The slots it reuses held keys above the best: empty."""
    cdef const Level *top
    cdef int64_t new_lo
    if s.n == 0:
        return
    if s.nwin:
        top = &s.best
    else:
        top = far_top(&s.far)
    new_lo = window_base_for(s, top.key)
    if new_lo >= s.lo:
        return
    s.lo = new_lo
    s.recentres += 1
    while s.far.n:
        top = far_top(&s.far)
        if top.key < new_lo:
            break
        if s.nwin == 0:
            s.best = top[0]                   # the highest level comes back first
        window_put(s, top.key, top.qty)
        far_pop_top(&s.far)


cdef int window_move_up(BookSide *s, int64_t key) noexcept nogil:
    """Make room for a level at key above the window: the window's levels that end up below
    its new start go to the far levels (in ascending order, so each lands on top).
    -1 out of memory: the side is then emptied rather than left inconsistent."""
    cdef int64_t new_lo = window_base_for(s, key), off, shift, b
    cdef uint64_t mask = <uint64_t>s.wsize - 1, base = <uint64_t>s.lo, slot, word
    cdef uint64_t ushift = <uint64_t>new_lo - base
    shift = s.wsize if ushift > <uint64_t>s.wsize else <int64_t>ushift
    off = 0
    while off < shift and s.nwin:
        slot = (base + <uint64_t>off) & mask
        b = <int64_t>(slot & 63)
        word = s.wbits[slot >> 6] & ~((((<uint64_t>1) << b)) - 1)       # bits b..63
        if word == 0:
            off += 64 - b
            continue
        off += orp_low_bit(word) - b
        if off >= shift:
            break
        slot = (base + <uint64_t>off) & mask
        if far_set(&s.far, <int64_t>(base + <uint64_t>off), s.wq[slot]) != 0:
            side_clear(s)
            return -1
        s.wbits[slot >> 6] &= ~((<uint64_t>1) << (slot & 63))
        s.wq[slot] = 0
        s.nwin -= 1
        off += 1
    s.lo = new_lo
    s.recentres += 1
    return 0


cdef void side_best_removed(BookSide *s) noexcept nogil:
    """The best level just left the window: find the next one, and move the window down once
    the best sits in its lower half (or the window is empty and far levels remain)."""
    cdef int64_t off = <int64_t>(<uint64_t>s.best.key - <uint64_t>s.lo)
    if s.nwin == 0 or not window_next(s, off - 1, &s.best):
        s.best.key = INT64_MIN
        s.best.qty = 0
        if s.far.n:
            window_move_down(s)
        return
    if <uint64_t>s.best.key - <uint64_t>s.lo < <uint64_t>(s.wsize >> 1):
        window_move_down(s)


cdef int side_set_outside(BookSide *s, int64_t key, int64_t qty) noexcept nogil:
    """side_set for a key outside the window."""
    cdef int64_t before
    if qty == 0:
        if key < s.lo and s.far.n:            # above the window there are no levels
            far_set(&s.far, key, 0)           # removing never allocates
            s.n = s.nwin + s.far.n
        return 0
    if s.n == 0:
        s.lo = window_base_for(s, key)        # an empty side: the window starts here
    elif key < s.lo:
        before = s.far.n
        if far_set(&s.far, key, qty) != 0:
            return -1
        s.n += s.far.n - before               # never the best: the window holds it
        return 0
    elif window_move_up(s, key) != 0:
        return -1
    return side_set(s, key, qty)


cdef int64_t side_qty_at(const BookSide *s, int64_t key) noexcept nogil:
    if <uint64_t>key - <uint64_t>s.lo < <uint64_t>s.wsize:
        return s.wq[(<uint64_t>key) & (<uint64_t>s.wsize - 1)]
    if key < s.lo:
        return far_qty_at(&s.far, key)
    return 0


cdef int side_stage(BookSide *s, int64_t key, int64_t qty) noexcept nogil:
    """Snapshot staging: append now, sort once when the snapshot message is complete."""
    cdef int64_t cap
    cdef Level *p
    if s.stage_n == s.stage_cap:
        cap = s.stage_cap * 2 if s.stage_cap > 0 else 1024
        p = <Level *>realloc(s.stage, <size_t>cap * sizeof(Level))
        if p == NULL:
            return -1
        s.stage = p
        s.stage_cap = cap
    s.stage[s.stage_n].key = key
    s.stage[s.stage_n].qty = qty
    s.stage_n += 1
    return 0


cdef int side_finish_snapshot(BookSide *s) noexcept nogil:
    """Sort the staged levels by key (stable), keep the last size given for a repeated price,
    drop zero sizes, and load them: the window placed at the best, the rest far.
    Venues send snapshots best-first, which is exactly reversed order, so that case is a
    reversal; anything else falls back to an insertion sort. -1 only when out of memory."""
    cdef Level *lv = s.stage
    cdef int64_t i, j, n = s.stage_n, w, split
    cdef Level tmp
    cdef bint strictly_desc = True
    for i in range(1, n):
        if lv[i].key >= lv[i - 1].key:
            strictly_desc = False
            break
    if strictly_desc:
        i = 0
        j = n - 1
        while i < j:
            tmp = lv[i]
            lv[i] = lv[j]
            lv[j] = tmp
            i += 1
            j -= 1
    else:
        for i in range(1, n):
            tmp = lv[i]
            j = i - 1
            while j >= 0 and lv[j].key > tmp.key:
                lv[j + 1] = lv[j]
                j -= 1
            lv[j + 1] = tmp
    # dedupe (last one given wins: the sort kept arrival order among equal keys), drop zeros
    w = 0
    for i in range(n):
        if i + 1 < n and lv[i + 1].key == lv[i].key:
            continue
        if lv[i].qty != 0:
            lv[w] = lv[i]
            w += 1
    side_clear(s)
    if w == 0:
        return 0
    s.lo = window_base_for(s, lv[w - 1].key)
    split = w
    while split > 0 and lv[split - 1].key >= s.lo:
        split -= 1
    if far_load(&s.far, lv, split) != 0:
        far_clear(&s.far)
        return -1
    for i in range(split, w):
        window_put(s, lv[i].key, lv[i].qty)
    s.n = w
    s.best = lv[w - 1]
    return 0


cdef int64_t side_top(const BookSide *s, int64_t n, int64_t *keys, int64_t *qty) noexcept nogil:
    """Copy up to n best levels (best first) into keys/qty; returns how many."""
    cdef SideIter it
    cdef Level lv
    cdef int64_t k = 0
    side_iter_begin(&it, s)
    while k < n and side_iter_next(&it, &lv):
        keys[k] = lv.key
        qty[k] = lv.qty
        k += 1
    return k


cdef int64_t side_read_top(const BookSide *s, int64_t n, Level *out) noexcept nogil:
    """The n best levels into out, best first; returns how many. The window's bitmap is read a
    word (64 ticks) at a time from the best down, every level in a word taken before the next
    word is loaded; an empty word costs a load and a test. (A summary bitmap to skip empty
    words was tried: gaps near the touch are a word or two, and keeping it cost more than it
    saved, on both recordings.)"""
    cdef uint64_t mask = <uint64_t>s.wsize - 1, base = <uint64_t>s.lo, slot, word
    cdef uint64_t wmask = (<uint64_t>s.wsize >> 6) - 1, wi
    cdef int64_t k = 0, hi, o, top
    cdef SideIter it
    if s.n == 0 or n <= 0:
        return 0
    slot = (<uint64_t>s.best.key) & mask
    wi = slot >> 6
    hi = <int64_t>(<uint64_t>s.best.key - base) + <int64_t>(63 - (slot & 63))   # offset of bit 63 of word wi
    word = s.wbits[wi] & (((<uint64_t>2) << (slot & 63)) - 1)                 # the best and below
    while True:
        while word:
            top = orp_top_bit(word)
            o = hi - (63 - top)
            if o < 0:
                break                           # below the window's start: ring wrap-around
            out[k].key = <int64_t>(base + <uint64_t>o)
            out[k].qty = s.wq[(wi << 6) + <uint64_t>top]
            k += 1
            if k == n:
                return k
            word ^= (<uint64_t>1) << top
        hi -= 64
        if hi < 0:
            break
        wi = (wi - 1) & wmask
        word = s.wbits[wi]
    if s.far.n:
        it.s = s
        it.off = -1
        it.block = s.far.nblocks - 1
        it.i = s.far.pool[s.far.order[it.block]].n - 1
        while k < n and side_iter_next(&it, &out[k]):
            k += 1
    return k


cdef bint side_next_below(const BookSide *s, int64_t key, Level *out) noexcept nogil:
    """The best level strictly below key; False if none."""
    cdef int64_t pos, i
    cdef const LevelBlock *blk
    cdef const Level *top
    if key > s.lo:
        if <uint64_t>key - <uint64_t>s.lo <= <uint64_t>s.wsize:
            if window_next(s, <int64_t>(<uint64_t>key - <uint64_t>s.lo) - 1, out):
                return True
        elif window_next(s, s.wsize - 1, out):
            return True
        top = far_top(&s.far)
        if top == NULL:
            return False
        out[0] = top[0]
        return True
    if s.far.nblocks == 0:
        return False
    pos = far_route(&s.far, key)
    blk = far_block(&s.far, pos)
    i = block_lower_bound(blk, key) - 1          # the last level < key in this block
    if i < 0:
        if pos == 0:
            return False
        blk = far_block(&s.far, pos - 1)
        i = blk.n - 1
    out[0] = blk.lv[i]
    return True


cdef void top_track(TopLevels *t, const BookSide *s, int64_t key, int64_t qty) noexcept nogil:
    """Keep the tracked best levels equal to the side's after the level at key became qty."""
    cdef int64_t n = t.n, i = 0, j, half, m = n
    while m > 1:                                # position: tracked levels better than key
        half = m >> 1                           # (branch-free halving, as far_route)
        i += half * (t.lv[i + half - 1].key > key)
        m -= half
    if n > 0:
        i += t.lv[i].key > key
    if i < n and t.lv[i].key == key:
        if qty != 0:
            t.lv[i].qty = qty
            return
        for j in range(i, n - 1):
            t.lv[j] = t.lv[j + 1]
        n -= 1
        # the level that now becomes the last tracked one, if the side has it
        if n == t.want - 1 and side_next_below(s, t.lv[n - 1].key if n > 0 else key, &t.lv[n]):
            n += 1
        t.n = n
        top_set_floor(t)
        return
    if qty == 0:
        return                                  # removing a level the side did not have
    if n == t.want:
        n -= 1                                  # the last tracked level drops out
    j = n
    while j > i:
        t.lv[j] = t.lv[j - 1]
        j -= 1
    t.lv[i].key = key
    t.lv[i].qty = qty
    t.n = n + 1
    top_set_floor(t)



# ------------------------------------------------------------------------------------------
# checks (tests): every structural invariant, and what a side looks like


cdef dict side_layout(const BookSide *s, bint is_ask):
    """Window prices are those of the window's keys (asks: -key, so the range reverses)."""
    cdef int64_t first = s.lo, last = s.lo + s.wsize - 1
    return {"window_levels": s.nwin, "far_levels": s.far.n, "recentres": s.recentres,
            "window_prices": (-last, -first) if is_ask else (first, last)}


cdef void check_top(const TopLevels *t, const BookSide *s, str name) except *:
    """The tracked best levels, when tracking, equal a fresh read of the side."""
    cdef Level fresh[TOP_CACHE]
    cdef int64_t i, got
    if not t.valid:
        return
    got = side_read_top(s, t.want, fresh)
    if got != t.n:
        raise AssertionError(f"{name}: {t.n} tracked top levels, the side has {got} of {t.want}")
    for i in range(got):
        if fresh[i].key != t.lv[i].key or fresh[i].qty != t.lv[i].qty:
            raise AssertionError(f"{name}: tracked level {i} {t.lv[i].key}/{t.lv[i].qty}, "
                                 f"side {fresh[i].key}/{fresh[i].qty}")


cdef void check_side(const BookSide *s, str name) except *:
    cdef int64_t slot, nbits = 0, k, prev
    cdef uint64_t w
    cdef SideIter it
    cdef Level lv
    cdef int64_t count = 0
    for slot in range(s.wsize):
        w = (s.wbits[slot >> 6] >> (slot & 63)) & 1
        if w != (s.wq[slot] != 0):
            raise AssertionError(f"{name}: slot {slot} bit {w} but size {s.wq[slot]}")
        if s.wq[slot] < 0:
            raise AssertionError(f"{name}: negative size in slot {slot}")
        nbits += w
    if nbits != s.nwin:
        raise AssertionError(f"{name}: {nbits} window bits, nwin {s.nwin}")
    if s.n != s.nwin + s.far.n:
        raise AssertionError(f"{name}: n {s.n} != window {s.nwin} + far {s.far.n}")
    if s.n > 0 and s.nwin == 0:
        raise AssertionError(f"{name}: levels but none in the window")
    prev = 0
    side_iter_begin(&it, s)
    while side_iter_next(&it, &lv):
        if count == 0 and (lv.key != s.best.key or lv.qty != s.best.qty):
            raise AssertionError(f"{name}: best {s.best.key}/{s.best.qty}, first level {lv.key}/{lv.qty}")
        if count > 0 and lv.key >= prev:
            raise AssertionError(f"{name}: keys not descending at {lv.key} after {prev}")
        if lv.qty <= 0:
            raise AssertionError(f"{name}: level {lv.key} with size {lv.qty}")
        if count < s.nwin and not (s.lo <= lv.key and <uint64_t>lv.key - <uint64_t>s.lo < <uint64_t>s.wsize):
            raise AssertionError(f"{name}: window level {lv.key} outside [{s.lo}, +{s.wsize})")
        if count >= s.nwin and lv.key >= s.lo:
            raise AssertionError(f"{name}: far level {lv.key} >= window start {s.lo}")
        if side_qty_at(s, lv.key) != lv.qty:
            raise AssertionError(f"{name}: qty_at({lv.key}) disagrees")
        prev = lv.key
        count += 1
    if count != s.n:
        raise AssertionError(f"{name}: walked {count} levels, n {s.n}")
    # the word-at-a-time read of the top levels (features, metrics, snapshots) == the walk
    cdef Level top[TOP_CACHE]
    cdef int64_t i, got = side_read_top(s, TOP_CACHE, top)
    if got != min(s.n, TOP_CACHE):
        raise AssertionError(f"{name}: top read {got} levels of {s.n}")
    side_iter_begin(&it, s)
    for i in range(got):
        if not side_iter_next(&it, &lv):
            raise AssertionError(f"{name}: the walk ended at level {i}, the top read has {got}")
        if top[i].key != lv.key or top[i].qty != lv.qty:
            raise AssertionError(f"{name}: top level {i} {top[i].key}/{top[i].qty}, walk {lv.key}/{lv.qty}")


