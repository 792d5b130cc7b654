"""L2 order book with the venue's sequence rules, int64 ticks and size units.

Per level update near the best (inside the side's window, see levels.pxd): an array index and a
bit, O(1) and without a search. Elsewhere: a binary search over the far levels' block index and
within one block, then a move of at most one block's levels. Memory: the windows are allocated
with the book; far blocks come from a per-side pool that doubles when exhausted and never
shrinks (released blocks are reused first), the snapshot staging array likewise, and the
pre-snapshot buffer is allocated once, so a book that has seen its widest depth allocates
nothing more (no malloc per update).

Message framing: records up to and including one with F_LAST form one venue message. The
message's first record decides what happens to the whole message (apply, buffer, drop), so a
message is never half-applied because of sequencing; a bad record inside an applied message
takes the book out of sync instead of leaving it silently wrong.
"""
from cpython.mem cimport PyMem_RawMalloc, PyMem_RawFree
from libc.stdint cimport int32_t, int64_t, uint32_t, uint64_t, INT64_MIN, INT64_MAX
from libc.stdlib cimport malloc, calloc, realloc, free
from libc.string cimport memcpy, memmove, memset
from libc.math cimport NAN

import numpy as np

cdef extern from "orp_atomic.h":
    int64_t ORP_load_acquire(const int64_t *p) noexcept nogil
    void ORP_store_release(int64_t *p, int64_t v) noexcept nogil
    int64_t ORP_fetch_add_acq_rel(int64_t *p, int64_t v) noexcept nogil
    void ORP_fence_seq_cst() noexcept nogil
    void ORP_pause() noexcept nogil

from orpflow._core.levels cimport (
    side_init, side_free, side_clear, side_set, side_stage, side_finish_snapshot, side_read_top,
    top_track, top_set_floor, side_layout, check_side, check_top,
)
from orpflow._core.types cimport (
    Event, debug_count_alloc, event_ptr, F_DEPTH, F_TRADE, F_BBO, F_SNAPSHOT, F_CLEAR, F_BID, F_ASK, F_LAST,
    R_COUNT, R_WRONG_INSTRUMENT, R_BAD_FLAGS, R_BAD_PRICE, R_NEGATIVE, R_STALE,
    R_BUFFER_OVERFLOW, R_NO_SNAPSHOT, R_STALE_SNAPSHOT, R_OUT_OF_SYNC, orp_i128, orp_i128_to_double,
)

cdef enum MsgKind:
    K_NONE = 0
    K_DEPTH = 1
    K_SNAPSHOT = 2
    K_CLEAR = 3

cdef enum MsgAction:
    A_NONE = 0
    A_APPLY = 1
    A_SNAPSHOT = 2
    A_BUFFER = 3
    A_DROP = 4

VENUES = {
    "binance-spot": VENUE_BINANCE_SPOT,
    "binance-usdm": VENUE_BINANCE_FUTURES,
    "binance-coinm": VENUE_BINANCE_FUTURES,
    "generic": VENUE_GENERIC,
}
STATE_NAMES = ("WAIT_SNAPSHOT", "AWAIT_FIRST_DIFF", "IN_SYNC", "OUT_OF_SYNC")
COUNTER_NAMES = (
    "records", "messages", "applied", "buffered", "snapshots", "resyncs", "gaps", "stale",
    "desyncs", "crossed", "locked", "trades", "bbo", "rejected", "bbo_checked", "bbo_mismatched",
)

# ------------------------------------------------------------------------------------------
# the book


cdef inline void book_reject(Book *b, int reason) noexcept nogil:
    b.rejects[reason] += 1
    b.c.rejected += 1


cdef int64_t book_top(const Book *b, bint is_ask, int64_t n, const Level **out) noexcept nogil:
    # tracking starts at the first read: filling it from a const view is safe (the book has
    # one thread, the writer, and readers on that thread between applies)
    cdef TopLevels *t = &(<Book *>b).top[is_ask]
    if n <= 0:
        out[0] = t.lv
        return 0
    if n > TOP_CACHE:
        n = TOP_CACHE
    if not t.valid or n > t.want:
        if n > t.want:
            t.want = n
        t.n = side_read_top(&b.ask if is_ask else &b.bid, t.want, t.lv)
        t.valid = 1
        top_set_floor(t)
    out[0] = t.lv
    return n if n < t.n else t.n


cdef inline void top_forget(Book *b) noexcept nogil:
    """The levels changed wholesale (snapshot, clear, a failure): read them again when asked."""
    b.top[0].valid = 0
    b.top[1].valid = 0
    b.top[0].floor = INT64_MAX
    b.top[1].floor = INT64_MAX


cdef inline int book_set_level(Book *b, uint32_t side, int64_t price, int64_t qty) noexcept nogil:
    """side_set on the record's side, keeping the tracked top levels; -1 out of memory."""
    cdef bint ask = side == F_ASK
    cdef BookSide *s = &b.ask if ask else &b.bid
    cdef int64_t key = -price if ask else price
    if side_set(s, key, qty) != 0:
        top_forget(b)
        return -1
    if key >= b.top[ask].floor:              # at or above the last tracked level (when tracking)
        top_track(&b.top[ask], s, key, qty)
    return 0


cdef inline void book_clear_levels(Book *b) noexcept nogil:
    top_forget(b)
    side_clear(&b.bid)
    side_clear(&b.ask)
    b.crossed_now = 0


cdef bint book_in_sync(const Book *b) noexcept nogil:
    return b.state == S_AWAIT_FIRST or b.state == S_IN_SYNC


cdef bint book_usable(const Book *b) noexcept nogil:
    """In sync and not inside a half-applied message: what consumers may act on."""
    return book_in_sync(b) and not b.msg_open


cdef void book_lose_sync(Book *b) noexcept nogil:
    """Leave sync after bad data (not a sequence gap): wait for the next snapshot."""
    if b.state != S_OUT_OF_SYNC and b.state != S_WAIT_SNAPSHOT:
        b.c.desyncs += 1
    b.state = S_OUT_OF_SYNC if b.ever_synced else S_WAIT_SNAPSHOT


cdef void book_check_bbo(Book *b, int64_t price, int64_t qty, uint32_t side) noexcept nogil:
    """The venue's best bid/ask at the book's own update id (Binance bookTicker u == the last
    applied diff's u) must be exactly the book's top: ground truth from the venue, checked as
    the book reaches that id. A disagreement means the book is wrong: it leaves sync (counted)
    and waits for a snapshot instead of trading on it."""
    cdef const Level *lv = side_best(&b.bid if side == F_BID else &b.ask)
    b.c.bbo_checked += 1
    if lv == NULL or (lv.key if side == F_BID else -lv.key) != price or lv.qty != qty:
        b.c.bbo_mismatched += 1
        book_lose_sync(b)


cdef void book_bbo_hold(Book *b, const Event *e, uint32_t side) noexcept nogil:
    """Keep a BBO record that is ahead of the book until its diff is applied."""
    cdef int64_t i
    if b.bbo_n == BBO_PENDING:
        b.bbo_head = (b.bbo_head + 1) % BBO_PENDING
        b.bbo_n -= 1
    i = (b.bbo_head + b.bbo_n) % BBO_PENDING
    b.bbo_u[i] = e.seq
    b.bbo_px[i] = e.price
    b.bbo_qty[i] = e.qty
    b.bbo_side[i] = side
    b.bbo_n += 1


cdef void book_bbo_due(Book *b) noexcept nogil:
    """After a diff is applied: check the held BBO records of its update id, drop older ones."""
    cdef int64_t i
    while b.bbo_n and b.state == S_IN_SYNC:
        i = b.bbo_head
        if b.bbo_u[i] > b.last_update_id:
            break
        b.bbo_head = (i + 1) % BBO_PENDING
        b.bbo_n -= 1
        if b.bbo_u[i] == b.last_update_id:
            book_check_bbo(b, b.bbo_px[i], b.bbo_qty[i], b.bbo_side[i])


cdef void book_check_crossed(Book *b) noexcept nogil:
    b.crossed_now = 0
    cdef const Level *bid = side_best(&b.bid)
    cdef const Level *ask = side_best(&b.ask)
    if bid == NULL or ask == NULL:
        return
    cdef int64_t best_bid = bid.key
    cdef int64_t best_ask = -ask.key
    if best_bid > best_ask:
        b.c.crossed += 1
        b.crossed_now = 1
    elif best_bid == best_ask:
        b.c.locked += 1
        b.crossed_now = 1


# After a snapshot, diffs older than it are dropped as stale only while they arrive within
# this long of it (receive time): the stream lags the REST snapshot by far less than this.
cdef int64_t AWAIT_FIRST_STALE_NS = 5000000000


cdef int book_depth_action(Book *b, const Event *e) noexcept nogil:
    """Decide what a diff message does, from its first record (Binance rules: docs/architecture.md, Sequencing)."""
    cdef int64_t lid = b.last_update_id
    cdef bint spot = b.venue == VENUE_BINANCE_SPOT
    if b.venue == VENUE_GENERIC:
        if b.state == S_IN_SYNC:
            return A_APPLY
        b.msg_drop_reason = R_NO_SNAPSHOT if b.state == S_WAIT_SNAPSHOT else R_OUT_OF_SYNC
        return A_DROP
    if b.state == S_WAIT_SNAPSHOT or b.state == S_OUT_OF_SYNC:
        return A_BUFFER
    if b.state == S_AWAIT_FIRST:
        # b.ts_local is still the snapshot's receive time: nothing has been applied since
        # (a snapshot without a receive time, 0, has no such bound)
        if (((e.seq <= lid) if spot else (e.seq < lid))
                and (b.ts_local == 0 or e.ts_local - b.ts_local <= AWAIT_FIRST_STALE_NS)):
            b.c.stale += 1
            b.msg_drop_reason = R_STALE
            return A_DROP
        # a diff older than the snapshot, received long after it: the snapshot's id cannot be
        # right (a corrupted, too-high id would drop every diff as stale while the book stays
        # usable, i.e. trading frozen): a gap, like any diff that does not bridge it
        if (e.seq_first <= lid + 1 <= e.seq) if spot else (e.seq_first <= lid <= e.seq):
            return A_APPLY
    else:  # S_IN_SYNC: continuity is established, so every diff must continue it
        if (e.seq_first == lid + 1) if spot else (e.seq_prev == lid):
            return A_APPLY
        # u <= lid is no "stale" diff here: after a forward-jumped id every later diff would
        # look old and the book would stay IN_SYNC while frozen. Any break is a gap.
    # a gap: the book no longer matches the venue; keep this diff, it may follow a new snapshot
    b.c.gaps += 1
    b.state = S_OUT_OF_SYNC
    return A_BUFFER


cdef int book_snapshot_action(Book *b, const Event *e) noexcept nogil:
    # Only a book that has applied a diff since its snapshot ignores an older snapshot. Before
    # that (AWAIT_FIRST) the newest snapshot received wins whatever its id: the pending one may
    # carry a corrupted, too-high id that would otherwise drop every diff as stale and refuse
    # every later snapshot. A genuinely older one costs at worst a gap and a resync.
    if b.venue != VENUE_GENERIC and b.state == S_IN_SYNC and e.seq <= b.last_update_id:
        b.msg_drop_reason = R_STALE_SNAPSHOT
        return A_DROP
    b.msg_resync = b.state == S_OUT_OF_SYNC
    book_clear_levels(b)
    b.state = S_WAIT_SNAPSHOT     # levels are being staged: not usable until the message ends
    return A_SNAPSHOT


cdef void buffer_drop_oldest_message(Book *b) noexcept nogil:
    cdef int64_t j = b.buf_start
    while j < b.buf_end and not (b.buf[j].flags & F_LAST):
        j += 1
    cdef int64_t dropped = j + 1 - b.buf_start
    b.rejects[R_BUFFER_OVERFLOW] += dropped
    b.c.rejected += dropped
    b.buf_start = j + 1


cdef void buffer_push(Book *b, const Event *e) noexcept nogil:
    """Append a record of the message in progress; on overflow discard whole oldest messages
    (a later continuity check then reports the gap), or this message if it alone is too big."""
    cdef int64_t live
    while b.buf_end == b.buf_cap:
        if b.buf_start > 0:
            live = b.buf_end - b.buf_start
            memmove(b.buf, &b.buf[b.buf_start], <size_t>live * sizeof(Event))
            b.msg_buf_start -= b.buf_start
            b.buf_end = live
            b.buf_start = 0
            continue
        if b.msg_buf_start == 0:
            # the message in progress fills the whole buffer: it cannot be kept
            live = b.buf_end + 1
            b.rejects[R_BUFFER_OVERFLOW] += live
            b.c.rejected += live
            b.buf_end = 0
            b.msg_action = A_DROP
            b.msg_drop_reason = R_BUFFER_OVERFLOW
            return
        buffer_drop_oldest_message(b)
    b.buf[b.buf_end] = e[0]
    b.buf_end += 1
    b.c.buffered += 1


cdef bint record_is_valid(Book *b, const Event *e, uint32_t side) noexcept nogil:
    """Level records need a positive price and a non-negative size; rejects with a reason."""
    if side == 0:
        return True
    if e.price <= 0:
        book_reject(b, R_BAD_PRICE)
        return False
    if e.qty < 0:
        book_reject(b, R_NEGATIVE)
        return False
    return True


cdef void book_abandon_message(Book *b) noexcept nogil:
    """A bad record inside a book message: undo what cannot stand, drop the rest of it."""
    if b.msg_action == A_APPLY or b.msg_action == A_SNAPSHOT:
        if b.msg_action == A_SNAPSHOT:
            book_clear_levels(b)
        book_lose_sync(b)
    elif b.msg_action == A_BUFFER:
        b.buf_end = b.msg_buf_start   # the lost message then shows up as a gap, as it should
    b.msg_action = A_DROP
    b.msg_drop_reason = R_OUT_OF_SYNC


cdef void book_end_message(Book *b) noexcept nogil:
    b.msg_open = 0
    b.c.messages += 1
    if b.msg_action == A_APPLY:
        b.last_update_id = b.msg_seq
        b.state = S_IN_SYNC
        book_check_crossed(b)
        if b.bbo_n:
            book_bbo_due(b)
    elif b.msg_action == A_SNAPSHOT:
        top_forget(b)
        if side_finish_snapshot(&b.bid) != 0 or side_finish_snapshot(&b.ask) != 0:
            book_clear_levels(b)          # out of memory: no half-loaded book
            book_lose_sync(b)
            return
        b.last_update_id = b.msg_seq
        b.state = S_IN_SYNC if b.venue == VENUE_GENERIC else S_AWAIT_FIRST
        b.c.snapshots += 1
        if b.msg_resync:
            b.c.resyncs += 1
        b.ever_synced = 1
        book_check_crossed(b)
        if not b.replaying:
            book_replay_buffer(b)


cdef int book_begin_message(Book *b, const Event *e, int kind) noexcept nogil:
    b.msg_open = 1
    b.msg_kind = kind
    b.msg_seq = e.seq
    b.msg_buf_start = b.buf_end
    b.msg_resync = 0
    if kind == K_DEPTH:
        b.msg_action = book_depth_action(b, e)
        if b.msg_action == A_BUFFER and b.replaying:
            b.replay_stop = 1        # leave this and later messages buffered
            b.msg_open = 0
            return 0
    elif kind == K_SNAPSHOT:
        b.msg_action = book_snapshot_action(b, e)
    else:  # K_CLEAR: the venue says its book was reset; wait for a snapshot
        book_clear_levels(b)
        if book_in_sync(b):
            b.state = S_WAIT_SNAPSHOT
        b.msg_action = A_NONE
    return 1


cdef int record_kind(uint32_t f) noexcept nogil:
    """The message kind a book record belongs to, or -1 for an invalid flag combination."""
    cdef uint32_t kinds = f & (F_DEPTH | F_SNAPSHOT | F_TRADE | F_BBO)
    if kinds == F_SNAPSHOT:
        return K_SNAPSHOT
    if kinds == F_DEPTH and not (f & F_CLEAR):
        return K_DEPTH
    if kinds == 0 and (f & F_CLEAR):
        return K_CLEAR
    return -1


cdef void book_process(Book *b, const Event *e) noexcept nogil:
    """One record. Counts it in b.c.applied if it changed (or staged) a level."""
    cdef uint32_t f = e.flags
    cdef uint32_t side = f & (F_BID | F_ASK)
    cdef int kind
    if (b.msg_open and b.msg_action == A_APPLY and b.msg_kind == K_DEPTH
            and (f & (F_DEPTH | F_SNAPSHOT | F_TRADE | F_BBO | F_CLEAR)) == F_DEPTH
            and (side == F_BID or side == F_ASK) and e.instrument == b.instrument
            and e.price > 0 and e.qty >= 0):
        # the common case, one level of the diff being applied: exactly what the general path
        # below does for it, without deciding again what the message is
        if book_set_level(b, side, e.price, e.qty) != 0:
            book_abandon_message(b)
        else:
            b.c.applied += 1
        if f & F_LAST:
            if b.msg_action == A_APPLY:      # not after an out-of-memory abandon
                b.ts_exch = e.ts_exch
                b.ts_local = e.ts_local
            book_end_message(b)
        return
    if e.instrument != b.instrument:
        book_reject(b, R_WRONG_INSTRUMENT)
        return
    if not (f & (F_DEPTH | F_SNAPSHOT | F_CLEAR)):
        if f & F_TRADE and not (f & F_BBO):
            b.c.trades += 1
        elif f & F_BBO and not (f & F_TRADE):
            b.c.bbo += 1
            if e.seq != 0 and (side == F_BID or side == F_ASK):
                if b.state == S_IN_SYNC and not b.msg_open and e.seq == b.last_update_id:
                    book_check_bbo(b, e.price, e.qty, side)
                elif e.seq > b.last_update_id or not book_in_sync(b):
                    book_bbo_hold(b, e, side)
        else:
            book_reject(b, R_BAD_FLAGS)
        return
    kind = record_kind(f)
    if kind < 0 or side == (F_BID | F_ASK):
        book_reject(b, R_BAD_FLAGS)
        if b.msg_open:
            book_abandon_message(b)
            if f & F_LAST:
                book_end_message(b)
        return

    if not b.msg_open:
        if not book_begin_message(b, e, kind):
            return
    elif kind != b.msg_kind:
        if b.msg_kind == K_CLEAR and kind == K_SNAPSHOT:
            b.msg_kind = K_SNAPSHOT           # CLEAR leading a snapshot group
            b.msg_seq = e.seq
            b.msg_action = book_snapshot_action(b, e)
        else:
            book_reject(b, R_BAD_FLAGS)
            book_abandon_message(b)
            if f & F_LAST:
                book_end_message(b)
            return

    if b.msg_action != A_DROP and not record_is_valid(b, e, side):
        book_abandon_message(b)
    elif b.msg_action == A_DROP:
        book_reject(b, b.msg_drop_reason)
    elif side != 0:
        if b.msg_action == A_APPLY:
            if book_set_level(b, side, e.price, e.qty) != 0:
                book_abandon_message(b)   # out of memory: never half-apply silently
            else:
                b.c.applied += 1
        elif b.msg_action == A_SNAPSHOT:
            if side_stage(&b.ask if side == F_ASK else &b.bid,
                          -e.price if side == F_ASK else e.price, e.qty) != 0:
                book_abandon_message(b)
            else:
                b.c.applied += 1
        elif b.msg_action == A_BUFFER:
            buffer_push(b, e)
    elif b.msg_action == A_BUFFER:
        buffer_push(b, e)     # a level-less record still carries the message's sequence ids

    if f & F_LAST:
        if b.msg_action == A_APPLY or b.msg_action == A_SNAPSHOT:
            b.ts_exch = e.ts_exch
            b.ts_local = e.ts_local
        book_end_message(b)


cdef void book_replay_buffer(Book *b) noexcept nogil:
    """After a snapshot: run the buffered diffs through the normal rules, oldest first.
    Stops (keeping the rest buffered) at the first one that has to wait for another snapshot."""
    cdef int64_t i = b.buf_start, msg_start = b.buf_start
    b.replaying = 1
    b.replay_stop = 0
    while i < b.buf_end:
        if not b.msg_open:
            msg_start = i
        book_process(b, &b.buf[i])
        if b.replay_stop:
            break
        i += 1
    b.replaying = 0
    if b.replay_stop:
        b.buf_start = msg_start
        b.replay_stop = 0
    else:
        b.buf_start = 0
        b.buf_end = 0
    b.msg_open = 0
    b.msg_buf_start = b.buf_end


cdef int64_t book_apply(Book *b, const Event *evs, int64_t n) noexcept nogil:
    """Apply n records; returns level records applied (replayed buffered ones included)."""
    cdef int64_t i, before = b.c.applied
    for i in range(n):
        b.c.records += 1
        book_process(b, &evs[i])
    return b.c.applied - before


cdef void book_metrics(const Book *b, BookMetrics *m) noexcept nogil:
    cdef double nan = NAN
    cdef const Level *bb = side_best(&b.bid)
    cdef const Level *ba = side_best(&b.ask)
    cdef SideIter bit, ait
    cdef Level lb, la
    cdef bint has_b, has_a
    cdef int64_t i, levels
    cdef orp_i128 depth_b = 0, depth_a = 0, imb_b = 0, imb_a = 0     # sizes can reach 1e18 each
    cdef double w = 1.0, wb = 0.0, wa = 0.0
    m.best_bid = nan; m.best_ask = nan; m.bid_qty = nan; m.ask_qty = nan
    m.mid = nan; m.spread_bps = nan; m.imbalance = nan; m.weighted_imbalance = nan
    m.stoikov_imbalance = nan; m.weighted_mid = nan
    if bb != NULL:
        m.best_bid = bb.key * b.px_num / b.px_den
        m.bid_qty = bb.qty * b.qty_num / b.qty_den
    if ba != NULL:
        m.best_ask = (-ba.key) * b.px_num / b.px_den
        m.ask_qty = ba.qty * b.qty_num / b.qty_den
    # one walk down both sides serves every window (the book's cached top levels when the
    # windows fit in it); size sums are exact integers
    levels = max(b.depth_levels, max(b.imbalance_levels, b.weighted_levels))
    cdef bint cached = levels <= TOP_CACHE
    cdef const Level *tb = NULL
    cdef const Level *ta = NULL
    cdef int64_t nb = 0, na = 0
    # begun either way (a few loads): the C compiler then sees them initialised
    side_iter_begin(&bit, &b.bid)
    side_iter_begin(&ait, &b.ask)
    if cached:
        nb = book_top(b, False, levels, &tb)
        na = book_top(b, True, levels, &ta)
    for i in range(levels):
        if cached:
            has_b = i < nb
            has_a = i < na
            if has_b:
                lb = tb[i]
            if has_a:
                la = ta[i]
        else:
            has_b = side_iter_next(&bit, &lb)
            has_a = side_iter_next(&ait, &la)
        if not has_b and not has_a:
            break
        if i < b.depth_levels:
            depth_b += lb.qty if has_b else 0
            depth_a += la.qty if has_a else 0
        if i < b.imbalance_levels:
            imb_b += lb.qty if has_b else 0
            imb_a += la.qty if has_a else 0
        if i < b.weighted_levels:
            if has_b:
                wb += w * lb.qty
            if has_a:
                wa += w * la.qty
            w *= b.weighted_decay
    m.depth_bid = orp_i128_to_double(depth_b) * b.qty_num / b.qty_den
    m.depth_ask = orp_i128_to_double(depth_a) * b.qty_num / b.qty_den
    if bb == NULL or ba == NULL:
        return
    m.mid = (m.best_bid + m.best_ask) / 2.0
    m.spread_bps = (m.best_ask - m.best_bid) / m.mid * 1e4
    m.imbalance = orp_i128_to_double(imb_b - imb_a) / orp_i128_to_double(imb_b + imb_a)
    m.weighted_imbalance = (wb - wa) / (wb + wa)
    m.stoikov_imbalance = (<double>bb.qty) / orp_i128_to_double(<orp_i128>bb.qty + ba.qty)
    m.weighted_mid = m.best_bid * (1.0 - m.stoikov_imbalance) + m.best_ask * m.stoikov_imbalance


# ------------------------------------------------------------------------------------------
# Python surface



cdef object _level_array(const BookSide *s, bint is_ask, int64_t n, bint raw, const Book *b):
    n = min(n, s.n) if n >= 0 else s.n
    out_i = np.empty((n, 2), dtype=np.int64)
    cdef int64_t[:, ::1] vi = out_i
    cdef int64_t i
    cdef SideIter it
    cdef Level lv
    side_iter_begin(&it, s)
    for i in range(n):
        if not side_iter_next(&it, &lv):      # n <= s.n: never taken, but never read garbage
            break
        vi[i, 0] = -lv.key if is_ask else lv.key
        vi[i, 1] = lv.qty
    if raw:
        return out_i
    out = np.empty((n, 2), dtype=np.float64)
    cdef double[:, ::1] v = out
    for i in range(n):
        v[i, 0] = vi[i, 0] * b.px_num / b.px_den
        v[i, 1] = vi[i, 1] * b.qty_num / b.qty_den
    return out



cdef class OrderBook:
    """L2 order book of one instrument, with the sequence rules of its venue.

    Parameters
    ----------
    instrument : orpflow.Instrument
        Supplies the venue rules (``instrument.venue``), the instrument id records must carry,
        and the tick/size scales for the float views.
    buffer_capacity : int
        Records kept while waiting for a snapshot (whole messages; oldest discarded first).
    imbalance_levels, weighted_levels, weighted_decay, depth_levels
        Book-metric windows: imbalance over the top 5, weighted imbalance with
        weights ``weighted_decay**level`` over the top 10, depth over the top 10 levels.
    window_ticks : int
        Price ticks per side held in a dense array around the best level (a power of two,
        default 32768): an update there is an index, not a search. Levels outside it are kept
        exactly all the same; the window follows the best. It changes speed, never contents.

    Raises
    ------
    ValueError
        Unknown venue, a non-positive metric window, or a window_ticks that is not a power of
        two in [64, 2**24].
    """

    def __cinit__(self, instrument, *, int64_t buffer_capacity=65536, int imbalance_levels=5,
                  int weighted_levels=10, double weighted_decay=0.9, int depth_levels=10,
                  int64_t window_ticks=WINDOW_DEFAULT):
        venue = VENUES.get(instrument.venue)
        if venue is None:
            raise ValueError(f"unknown venue {instrument.venue!r}; expected one of {sorted(VENUES)}")
        if buffer_capacity < 1:
            raise ValueError("buffer_capacity must be >= 1")
        if imbalance_levels < 1 or weighted_levels < 1 or depth_levels < 1:
            raise ValueError("metric level windows must be >= 1")
        if not (0.0 < weighted_decay <= 1.0):
            raise ValueError("weighted_decay must be in (0, 1]")
        if not (WINDOW_MIN <= window_ticks <= WINDOW_MAX) or window_ticks & (window_ticks - 1):
            raise ValueError(f"window_ticks must be a power of two from {WINDOW_MIN} to {WINDOW_MAX}, "
                             f"got {window_ticks}")
        self.book = <Book *>PyMem_RawMalloc(sizeof(Book))
        if self.book == NULL:
            raise MemoryError()
        debug_count_alloc(1)
        memset(self.book, 0, sizeof(Book))
        self.book.top[0].floor = INT64_MAX     # not tracking until a reader asks
        self.book.top[1].floor = INT64_MAX
        self.book.buf = <Event *>malloc(<size_t>buffer_capacity * sizeof(Event))
        if self.book.buf == NULL or side_init(&self.book.bid, window_ticks) or side_init(&self.book.ask, window_ticks):
            raise MemoryError()
        self.book.buf_cap = buffer_capacity
        self.book.venue = venue
        self.book.instrument = instrument.id
        self.book.px_num, self.book.px_den = instrument.price_scale
        self.book.qty_num, self.book.qty_den = instrument.size_scale
        self.book.imbalance_levels = imbalance_levels
        self.book.weighted_levels = weighted_levels
        self.book.weighted_decay = weighted_decay
        self.book.depth_levels = depth_levels
        self.instrument = instrument

    def __dealloc__(self):
        if self.book != NULL:
            side_free(&self.book.bid)
            side_free(&self.book.ask)
            free(self.book.buf)
            PyMem_RawFree(self.book)
            debug_count_alloc(-1)
            self.book = NULL

    def apply(self, events):
        """Apply a slice of EVENT_DTYPE records (any slice: messages may span calls).

        The GIL is released while the records are applied. The book has one writer: calling
        ``apply`` from two threads at once, or reading levels from another thread while it
        runs, raises RuntimeError (read a ``MarketSnapshot`` from other threads instead).

        Returns
        -------
        int
            Level records applied to the book (including buffered ones replayed on a snapshot).

        Raises
        ------
        TypeError, ValueError
            ``events`` is not a 1-D C-contiguous EVENT_DTYPE array.
        RuntimeError
            Another thread is inside ``apply`` on this book.
        """
        cdef const Event *p = event_ptr(events, False)
        cdef int64_t n = events.shape[0], applied
        if n == 0:
            return 0
        self._enter_write()
        with nogil:
            applied = book_apply(self.book, p, n)
        self._exit_write()
        return applied

    cdef int _enter_write(self) except -1:
        """Claim the book for one writer; waits (nogil) for Python readers to finish."""
        if ORP_fetch_add_acq_rel(&self.writing, 1) != 0:
            ORP_fetch_add_acq_rel(&self.writing, -1)
            raise RuntimeError("OrderBook.apply called from two threads at once: a book has one writer")
        with nogil:
            ORP_fence_seq_cst()                     # our flag, then their reader count
            while ORP_load_acquire(&self.readers) != 0:
                ORP_pause()                         # a Python reader is finishing a read
        return 0

    cdef void _exit_write(self) noexcept:
        ORP_store_release(&self.writing, 0)

    cdef int _enter_read(self) except -1:
        ORP_fetch_add_acq_rel(&self.readers, 1)
        ORP_fence_seq_cst()                         # our count, then their flag
        if ORP_load_acquire(&self.writing) != 0:
            ORP_fetch_add_acq_rel(&self.readers, -1)
            raise RuntimeError("OrderBook is being updated by another thread (apply is running); "
                               "read a MarketSnapshot published by the writer instead")
        return 0

    cdef void _exit_read(self) noexcept:
        ORP_fetch_add_acq_rel(&self.readers, -1)

    def best_bid(self):
        """(price, size) of the best bid as floats, or None if the side is empty."""
        lv = self._levels("bid", 1, False)
        return tuple(lv[0].tolist()) if len(lv) else None

    def best_ask(self):
        """(price, size) of the best ask as floats, or None if the side is empty."""
        lv = self._levels("ask", 1, False)
        return tuple(lv[0].tolist()) if len(lv) else None

    def levels(self, side, n=None):
        """Top n levels of "bid" or "ask", best first: float array of (price, size)."""
        return self._levels(side, n, False)

    def levels_raw(self, side, n=None):
        """Top n levels, best first, as int64 (price in ticks, size in size units)."""
        return self._levels(side, n, True)

    def _levels(self, side, n, bint raw):
        if side not in ("bid", "ask"):
            raise ValueError(f'side must be "bid" or "ask", got {side!r}')
        if n is not None and n < 0:
            raise ValueError("n must be >= 0")
        is_ask = side == "ask"
        self._enter_read()
        try:
            return _level_array(&self.book.ask if is_ask else &self.book.bid, is_ask,
                                -1 if n is None else n, raw, self.book)
        finally:
            self._exit_read()

    def depth(self):
        """Number of levels on each side: (bids, asks)."""
        return self.book.bid.n, self.book.ask.n

    def layout(self):
        """Where each side's levels live: the dense window around the best (its size in
        ticks, its first price, levels in it), the levels kept outside it, and how many times
        the window has moved."""
        return {"window_ticks": self.book.bid.wsize,
                "bid": side_layout(&self.book.bid, False), "ask": side_layout(&self.book.ask, True)}

    def _check(self):
        """Verify every structural invariant of both sides (tests); AssertionError names the
        first one broken."""
        self._enter_read()
        try:
            check_side(&self.book.bid, "bid")
            check_side(&self.book.ask, "ask")
            check_top(&self.book.top[0], &self.book.bid, "bid")
            check_top(&self.book.top[1], &self.book.ask, "ask")
        finally:
            self._exit_read()

    @property
    def in_sync(self):
        """True when the book matches the venue (snapshot applied, no gap since)."""
        return bool(book_usable(self.book))

    @property
    def state(self):
        return STATE_NAMES[self.book.state]

    @property
    def crossed(self):
        """True if the last complete message left the book crossed or locked."""
        return bool(self.book.crossed_now)

    @property
    def last_update_id(self):
        return self.book.last_update_id

    def stats(self):
        """Counters: records, messages, applied, gaps, resyncs, stale, crossed, ... and
        ``rejected_by_reason`` ({reason name: records})."""
        from orpflow._core.types import REASONS
        cdef dict counters = self.book.c
        out = {name: counters[name] for name in COUNTER_NAMES}
        out["buffer_pending"] = self.book.buf_end - self.book.buf_start
        out["rejected_by_reason"] = {
            name: self.book.rejects[code] for name, code in REASONS.items()
            if code and self.book.rejects[code]
        }
        return out

    def metrics(self):
        """Book metrics (docs/architecture.md, Metrics) as a dict of floats (NaN where a side is missing)."""
        cdef BookMetrics m
        self._enter_read()
        book_metrics(self.book, &m)
        self._exit_read()
        return m
