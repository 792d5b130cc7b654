"""Paper broker: a simulated venue in event time and an exact account, nogil.

Orders travel to the venue with an entry latency and are matched there against the visible
book: takers walk it level by level (remembering the liquidity they used until that level
next updates), resting orders keep a queue position that trades and depth decreases advance
(hftbacktest's queue models), and fills reach an integer-exact account. ``ExecutionSim``
wires one book, one broker and one risk gate and drives them with event records; the engine
calls the same ``exec_apply``. Rules: docs/broker.md. Twin: orpflow/reference/broker.py.
"""

from libc.stdint cimport int32_t, int64_t, uint32_t, uint64_t
from libc.stdlib cimport calloc, free, malloc, realloc
from libc.string cimport memmove, memset
from libc.math cimport ceil, fmin, isfinite, log, pow

from orpflow._core.types cimport (
    Event, event_ptr, orp_i128, MONEY_PER_TICK_UNIT, orp_i128_to_double, i128_from_py, i128_to_py, debug_count_alloc,
    F_DEPTH, F_TRADE, F_SNAPSHOT, F_CLEAR, F_BID, F_BUY, F_SELL, F_LAST, R_COUNT, R_OK,
    R_VENUE_BOOK_NOT_SYNCED, R_POST_ONLY_CROSS, R_FOK_UNFILLABLE, R_IOC_REMAINDER,
    R_NO_LIQUIDITY, R_GTD_EXPIRED, R_CANCELLED, R_CANCEL_REJECTED, R_MODIFY_REJECTED,
)
from orpflow._core.book cimport (
    Book, BookSide, Level, SideIter, OrderBook, book_process, book_in_sync, side_best,
    side_iter_begin, side_iter_next, side_qty_at, orp_max_i64,
)
from orpflow._core.risk cimport (
    RiskState, RiskGate, OrderContext, risk_check, risk_count, risk_on_reject, risk_on_mark,
    risk_on_round_trip, risk_on_book,
)

cimport cython

import numpy as np

cdef int64_t NEVER = 0x7FFFFFFFFFFFFFFF


# ------------------------------------------------------------------ storage

cdef int grow(void **p, int64_t *cap, int64_t need, size_t item) noexcept nogil:
    """Make room for `need` items (doubling); -1 if memory ran out (nothing changed)."""
    cdef int64_t c = cap[0]
    cdef void *q
    if need <= c:
        return 0
    if c < 16:
        c = 16
    while c < need:
        c *= 2
    q = realloc(p[0], c * item)
    if q == NULL:
        return -1
    if p[0] == NULL:
        debug_count_alloc(1)
    p[0] = q
    cap[0] = c
    return 0


cdef inline void release(void *p) noexcept nogil:
    if p != NULL:
        free(p)
        debug_count_alloc(-1)


cdef int order_room(Broker *b) noexcept nogil:
    """Make room for order n_orders: a new chunk when it starts one; -1 if memory ran out."""
    cdef int64_t c = b.n_orders >> ORDER_CHUNK_SHIFT
    if b.n_orders & (ORDER_CHUNK - 1):
        return 0
    if grow(<void **>&b.chunks, &b.chunks_cap, c + 1, sizeof(SimOrder *)) != 0:
        return -1
    b.chunks[c] = <SimOrder *>malloc(ORDER_CHUNK * sizeof(SimOrder))
    if b.chunks[c] == NULL:
        return -1
    debug_count_alloc(1)
    return 0


# ------------------------------------------------------------------ latency

cdef int64_t floordiv128(orp_i128 a, orp_i128 b) noexcept nogil:
    """Python's a // b for b > 0."""
    cdef orp_i128 q = a / b
    if (a % b) != 0 and a < 0:
        q -= 1
    return <int64_t>q


cdef int64_t lat_interp(const Broker *b, const int64_t *rows, int64_t t) noexcept nogil:
    """rows interpolated linearly in request time, clamped at the ends (twin: _interp)."""
    cdef int64_t lo = 0, hi = b.lat_n, mid, i, t0, t1
    while lo < hi:                      # bisect_right
        mid = (lo + hi) >> 1
        if b.lat_req[mid] <= t:
            lo = mid + 1
        else:
            hi = mid
    i = lo - 1
    if i < 0:
        return rows[0]
    if i >= b.lat_n - 1:
        return rows[b.lat_n - 1]
    t0 = b.lat_req[i]
    t1 = b.lat_req[i + 1]
    if t1 == t0:
        return rows[i]
    return rows[i] + floordiv128(<orp_i128>(rows[i + 1] - rows[i]) * (t - t0), t1 - t0)


cdef inline int64_t later(int64_t t, int64_t delay) noexcept nogil:
    """t + delay (delay >= 0), saturating at the end of time instead of wrapping."""
    return NEVER if t > NEVER - delay else t + delay


cdef uint64_t next_random(Broker *b) noexcept nogil:
    """splitmix64: small, seedable, identical in the twin."""
    cdef uint64_t z
    b.rng += <uint64_t>0x9E3779B97F4A7C15
    z = b.rng
    z = (z ^ (z >> 30)) * <uint64_t>0xBF58476D1CE4E5B9
    z = (z ^ (z >> 27)) * <uint64_t>0x94D049BB133111EB
    return z ^ (z >> 31)


cdef int64_t entry_at(Broker *b, int64_t t) noexcept nogil:
    cdef int64_t base = lat_interp(b, b.lat_entry, t) if b.lat_n else b.entry_ns
    if b.jitter_ns:
        base += <int64_t>(next_random(b) % <uint64_t>(b.jitter_ns + 1))
    return base


cdef int64_t response_at(const Broker *b, int64_t t) noexcept nogil:
    return lat_interp(b, b.lat_resp, t) if b.lat_n else b.response_ns


# ------------------------------------------------------------------ book views

cdef inline int64_t book_qty(const Book *book, int side, int64_t price) noexcept nogil:
    return side_qty_at(&book.bid, price) if side > 0 else side_qty_at(&book.ask, -price)


cdef inline int64_t best_price(const BookSide *s, int is_ask) noexcept nogil:
    cdef const Level *lv = side_best(s)
    if lv == NULL:
        return 0
    return -lv.key if is_ask else lv.key


cdef int64_t consumed_at(const Broker *b, int64_t side, int64_t price) noexcept nogil:
    cdef int64_t i
    for i in range(b.n_consumed):
        if b.consumed[i].side == side and b.consumed[i].price == price:
            return b.consumed[i].qty
    return 0


cdef void consumed_add(Broker *b, int64_t side, int64_t price, int64_t qty) noexcept nogil:
    cdef int64_t i
    for i in range(b.n_consumed):
        if b.consumed[i].side == side and b.consumed[i].price == price:
            b.consumed[i].qty += qty
            return
    if grow(<void **>&b.consumed, &b.consumed_cap, b.n_consumed + 1, sizeof(Consumed)) != 0:
        b.failed = 1
        return
    b.consumed[b.n_consumed].side = side
    b.consumed[b.n_consumed].price = price
    b.consumed[b.n_consumed].qty = qty
    b.n_consumed += 1


cdef inline void consumed_drop(Broker *b, int64_t side, int64_t price) noexcept nogil:
    cdef int64_t i
    for i in range(b.n_consumed):
        if b.consumed[i].side == side and b.consumed[i].price == price:
            b.n_consumed -= 1
            b.consumed[i] = b.consumed[b.n_consumed]
            return


cdef inline bint beyond(int side, int64_t price, int has_limit, int64_t limit) noexcept nogil:
    """A taker of `side` may not trade at `price` past its limit."""
    if not has_limit:
        return False
    return price > limit if side > 0 else price < limit


cdef int64_t takeable(const Broker *b, const Book *book, int side, int64_t leaves,
                      int has_limit, int64_t limit) noexcept nogil:
    """Size a taker could fill now up to its limit, net of consumed liquidity (capped at leaves)."""
    cdef SideIter it
    cdef Level lv
    cdef int64_t total = 0, price, avail
    side_iter_begin(&it, &book.ask if side > 0 else &book.bid)
    while side_iter_next(&it, &lv):
        price = -lv.key if side > 0 else lv.key
        if beyond(side, price, has_limit, limit):
            break
        avail = lv.qty - consumed_at(b, -side, price)
        if avail > 0:
            total += avail / b.lot * b.lot
        if total >= leaves:
            return leaves
    return total


# ------------------------------------------------------------------ account

cdef orp_i128 mul_div_half_even(orp_i128 c, int64_t q, int64_t p) noexcept nogil:
    """c * q / p rounded half to even, for c >= 0 and q, p > 0, without overflowing 128 bits."""
    cdef orp_i128 a = c / p, t = (c % p) * q, res, rem
    res = a * q + t / p
    rem = t % p
    if 2 * rem > p or (2 * rem == p and (res & 1)):
        res += 1
    return res


cdef void end_round_trip(Broker *b) noexcept nogil:
    b.acct.round_trips += 1
    if b.acct.rt_pnl < 0:
        b.acct.losing_round_trips += 1
    if b.risk != NULL:
        risk_on_round_trip(b.risk, b.acct.rt_pnl, b.clock)


cdef orp_i128 account_fill(Broker *b, int side, int64_t price, int64_t qty, orp_i128 fee) noexcept nogil:
    """Apply a fill to cash, position and cost basis; returns the gross PnL it realised.
    The entry price (cost / |position|) moves only when the position grows; a reduction takes
    its share of the cost basis (rounded half-even to the money unit); a flip reopens the rest
    at the fill price."""
    cdef Account *a = &b.acct
    cdef orp_i128 notional = <orp_i128>price * qty * MONEY_PER_TICK_UNIT, removed, realised
    cdef int64_t pos = a.position, close, rest
    a.cash -= notional * side + fee
    a.fees += fee
    if pos == 0 or (pos > 0) == (side > 0):
        if pos == 0:
            a.rt_pnl = 0
        a.cost += notional
        a.position = pos + side * qty
        a.rt_pnl -= fee
        return 0
    close = qty if qty < (pos if pos > 0 else -pos) else (pos if pos > 0 else -pos)
    removed = mul_div_half_even(a.cost, close, pos if pos > 0 else -pos)
    realised = <orp_i128>price * close * MONEY_PER_TICK_UNIT - removed
    if pos < 0:
        realised = -realised
    a.cost -= removed
    a.position = pos + side * close
    a.realised += realised
    a.rt_pnl += realised - fee
    if a.position == 0:
        end_round_trip(b)
    rest = qty - close
    if rest > 0:
        a.cost = <orp_i128>price * rest * MONEY_PER_TICK_UNIT
        a.position = side * rest
        a.rt_pnl = 0
    return realised


cdef inline orp_i128 equity_money(const Broker *b, int64_t mid2) noexcept nogil:
    """cash + position x mid (mid2 = bid + ask in ticks); exact: 1e8 is even."""
    return b.acct.cash + <orp_i128>b.acct.position * mid2 * MONEY_PER_TICK_UNIT / 2


cdef void mark(Broker *b, const Book *book, int64_t now) noexcept nogil:
    cdef int64_t bid = best_price(&book.bid, 0), ask = best_price(&book.ask, 1)
    cdef orp_i128 eq
    cdef double dd
    if bid == 0 or ask == 0:
        return
    b.acct.mark_mid2 = bid + ask
    eq = equity_money(b, b.acct.mark_mid2)
    if not b.acct.peak_set or eq > b.acct.peak:
        b.acct.peak = eq
        b.acct.peak_set = 1
    if b.acct.peak > 0:
        dd = orp_i128_to_double(b.acct.peak - eq) / orp_i128_to_double(b.acct.peak)
        if dd > b.acct.max_drawdown:
            b.acct.max_drawdown = dd
    if b.risk != NULL:
        risk_on_mark(b.risk, eq, now)


# ------------------------------------------------------------------ order states

cdef inline bint is_open(const SimOrder *o) noexcept nogil:
    return o.status == OS_ACCEPTED or o.status == OS_PARTIALLY_FILLED


cdef void broker_trim(Broker *b) noexcept nogil:
    """Free whole chunks of final orders, oldest first, never the chunk being filled. The scan
    resumes where it stopped (a final order stays final), so the cost is O(1) per order."""
    cdef int64_t full = b.n_orders >> ORDER_CHUNK_SHIFT     # chunks before the one being filled
    cdef const SimOrder *o
    cdef int64_t i
    for i in range(b.n_req):          # a queued request (a cancel of a final order) keeps its chunk
        if (b.heap[i].order >> ORDER_CHUNK_SHIFT) < full:
            full = b.heap[i].order >> ORDER_CHUNK_SHIFT
    while b.live_chunk < full:
        while b.trim_scan < (b.live_chunk + 1) << ORDER_CHUNK_SHIFT:
            o = order_at(b, b.trim_scan)
            if o.status == OS_PENDING or is_open(o):
                return
            b.trim_scan += 1
        release(b.chunks[b.live_chunk])
        b.chunks[b.live_chunk] = NULL
        b.live_chunk += 1


cdef inline void open_leaves_add(Broker *b, int side, int64_t d) noexcept nogil:
    if side > 0:
        b.open_buy += d
    else:
        b.open_sell += d


cdef void journal_add(Broker *b, int64_t oi) noexcept nogil:
    if grow(<void **>&b.journal, &b.journal_cap, b.n_journal + 1, sizeof(SimOrder)) != 0:
        b.failed = 1
        return
    b.journal[b.n_journal] = order_at(b, oi)[0]
    b.n_journal += 1


cdef inline void journal(Broker *b, int64_t oi) noexcept nogil:
    """Record the order's new state for the engine (a no-op outside the engine)."""
    if b.journal_on:
        journal_add(b, oi)


cdef void finish(Broker *b, int64_t oi, int status, int reason) noexcept nogil:
    """Move an order from pending/open to a final state (its leaves leave the exposure)."""
    cdef SimOrder *o = order_at(b, oi)
    if o.status == OS_PENDING or is_open(o):
        b.open_count -= 1
        open_leaves_add(b, o.side, -(o.qty - o.filled))
    o.status = status
    o.reason = reason
    o.ts_done = b.clock
    journal(b, oi)


# ------------------------------------------------------------------ resting levels

cdef inline RestSide *rest_side(Broker *b, int side) noexcept nogil:
    return &b.rest[0] if side > 0 else &b.rest[1]


cdef int64_t rest_find(const RestSide *rs, int64_t key) noexcept nogil:
    """Index of key, or -(insertion point) - 1."""
    cdef int64_t lo = 0, hi = rs.n, mid
    while lo < hi:
        mid = (lo + hi) >> 1
        if rs.lv[mid].key < key:
            lo = mid + 1
        else:
            hi = mid
    if lo < rs.n and rs.lv[lo].key == key:
        return lo
    return -lo - 1


cdef void rest(Broker *b, const Book *book, int64_t oi) noexcept nogil:
    """Queue the order at the back of its level: ahead = the visible size there now."""
    cdef SimOrder *o = order_at(b, oi)
    cdef RestSide *rs = rest_side(b, o.side)
    cdef int64_t key = o.price if o.side > 0 else -o.price
    cdef int64_t i = rest_find(rs, key)
    cdef int64_t q = book_qty(book, o.side, o.price)
    cdef RestLevel *lv
    if i < 0:
        i = -i - 1
        if grow(<void **>&rs.lv, &rs.cap, rs.n + 1, sizeof(RestLevel)) != 0:
            b.failed = 1
            return
        memmove(&rs.lv[i + 1], &rs.lv[i], (rs.n - i) * sizeof(RestLevel))
        rs.n += 1
        lv = &rs.lv[i]
        lv.key = key
        lv.level_qty = q
        lv.head = -1
        lv.tail = -1
    lv = &rs.lv[i]
    o.ahead = q
    o.cum_trade = 0
    o.prev = lv.tail
    o.next = -1
    if lv.tail >= 0:
        order_at(b, lv.tail).next = oi
    else:
        lv.head = oi
    lv.tail = oi
    if o.tif == TIF_GTD:
        b.gtd_resting += 1
        if o.expire_at < b.gtd_next:
            b.gtd_next = o.expire_at


cdef void unrest(Broker *b, int64_t oi) noexcept nogil:
    """Take a resting order out of its level (no-op if it does not rest)."""
    cdef SimOrder *o = order_at(b, oi)
    cdef RestSide *rs = rest_side(b, o.side)
    cdef int64_t i = rest_find(rs, o.price if o.side > 0 else -o.price)
    cdef RestLevel *lv
    if i < 0:
        return
    lv = &rs.lv[i]
    if o.prev < 0 and lv.head != oi:
        return                              # not in this level's FIFO
    if o.prev >= 0:
        order_at(b, o.prev).next = o.next
    else:
        lv.head = o.next
    if o.next >= 0:
        order_at(b, o.next).prev = o.prev
    else:
        lv.tail = o.prev
    o.prev = -1
    o.next = -1
    if o.tif == TIF_GTD:
        b.gtd_resting -= 1
        b.gtd_dirty = 1
    if lv.head < 0:
        memmove(&rs.lv[i], &rs.lv[i + 1], (rs.n - i - 1) * sizeof(RestLevel))
        rs.n -= 1


cdef double queue_prob(int model, double n, double front, double back) noexcept nogil:
    """Probability that a depth decrease happened behind the order (hftbacktest's functions)."""
    if model == QM_PROB_POWER:
        return pow(back, n) / (pow(back, n) + pow(front, n))
    if model == QM_PROB_POWER2:
        return pow(back, n) / pow(back + front, n)
    if model == QM_PROB_POWER3:
        return 1.0 - pow(front / (front + back), n)
    if model == QM_PROB_LOG:
        return log(1.0 + back) / (log(1.0 + back) + log(1.0 + front))
    return log(1.0 + back) / log(1.0 + back + front)


cdef void queue_depth(const Broker *b, SimOrder *o, int64_t prev, int64_t new) noexcept nogil:
    """A depth change at the order's level: attribute the decrease ahead/behind."""
    cdef int64_t chg
    cdef double front, back, ch, prob, est
    if b.queue_model == QM_RISK_AVERSE:
        if new < o.ahead:
            o.ahead = new
        return
    chg = prev - new - o.cum_trade         # trades already advanced the queue: no double count
    o.cum_trade = 0
    if chg < 0:
        if new < o.ahead:
            o.ahead = new
        return
    front = <double>o.ahead
    back = <double>(prev - o.ahead)
    ch = <double>chg
    prob = queue_prob(b.queue_model, b.queue_power, front, back)
    if not isfinite(prob):
        prob = 1.0
    prob = 0.0 if prob < 0.0 else (1.0 if prob > 1.0 else prob)
    est = (front - (1.0 - prob) * ch) + fmin(back - prob * ch, 0.0)
    o.ahead = 0 if est <= 0.0 else <int64_t>ceil(est)
    if new < o.ahead:
        o.ahead = new


cdef void level_changed(Broker *b, RestLevel *lv, int64_t new) noexcept nogil:
    cdef int64_t oi = lv.head
    while oi >= 0:
        queue_depth(b, order_at(b, oi), lv.level_qty, new)
        oi = order_at(b, oi).next
    lv.level_qty = new


cdef void on_depth(Broker *b, const Book *book, int side, int64_t price) noexcept nogil:
    """One applied level update: forget liquidity we used there; move our queue there."""
    cdef RestSide *rs = rest_side(b, side)
    cdef int64_t i
    if b.n_consumed:
        consumed_drop(b, side, price)
    if rs.n == 0:
        return
    i = rest_find(rs, price if side > 0 else -price)
    if i >= 0:
        level_changed(b, &rs.lv[i], book_qty(book, side, price))


cdef void refresh_levels(Broker *b, const Book *book) noexcept nogil:
    """After a snapshot, clear or buffered replay: re-read every level we rest at."""
    cdef int s
    cdef int64_t i, new, price
    cdef RestSide *rs
    b.n_consumed = 0
    for s in range(2):
        rs = &b.rest[s]
        for i in range(rs.n):
            price = rs.lv[i].key if s == 0 else -rs.lv[i].key
            new = book_qty(book, 1 if s == 0 else -1, price)
            if new != rs.lv[i].level_qty:
                level_changed(b, &rs.lv[i], new)


# ------------------------------------------------------------------ fills

cdef void fill(Broker *b, int64_t oi, int64_t price, int64_t qty, int taker) noexcept nogil:
    cdef SimOrder *o = order_at(b, oi)
    cdef orp_i128 fee = <orp_i128>price * qty * (b.taker_e8 if taker else b.maker_e8)
    cdef orp_i128 realised
    cdef SimFill *f
    if grow(<void **>&b.fills, &b.fills_cap, b.n_fills + 1, sizeof(SimFill)) != 0:
        b.failed = 1
        return
    o.filled += qty
    o.fees += fee
    open_leaves_add(b, o.side, -qty)
    realised = account_fill(b, o.side, price, qty, fee)
    if o.filled == o.qty:
        unrest(b, oi)
        finish(b, oi, OS_FILLED, o.reason)
    else:
        o.status = OS_PARTIALLY_FILLED
        journal(b, oi)
    f = &b.fills[b.n_fills]
    b.n_fills += 1
    f.order_id = o.id
    f.client_id = o.client_id
    f.side = o.side
    f.liquidity = taker
    f.price = price
    f.qty = qty
    f.fee = fee
    f.realised = realised
    f.position = b.acct.position
    f.ts_exch = b.clock
    f.ts_local = later(b.clock, response_at(b, b.clock))


cdef void walk(Broker *b, const Book *book, int64_t oi, int has_limit, int64_t limit) noexcept nogil:
    """Take the visible book from the best level until filled or past the limit."""
    cdef SideIter it
    cdef Level lv
    cdef int side = order_at(b, oi).side
    cdef int64_t price, avail, take, leaves
    side_iter_begin(&it, &book.ask if side > 0 else &book.bid)
    while side_iter_next(&it, &lv):
        leaves = order_at(b, oi).qty - order_at(b, oi).filled
        price = -lv.key if side > 0 else lv.key
        if leaves == 0 or beyond(side, price, has_limit, limit):
            break
        avail = lv.qty - consumed_at(b, -side, price)
        if avail < 0:
            avail = 0
        take = (avail if avail < leaves else leaves) / b.lot * b.lot
        if take > 0:
            consumed_add(b, -side, price, take)
            fill(b, oi, price, take, 1)


cdef void fill_level_all(Broker *b, RestLevel *lv) noexcept nogil:
    """Fill every order of a level in full at its own price (the market went through it)."""
    cdef int64_t oi = lv.head, nxt
    while oi >= 0:
        nxt = order_at(b, oi).next
        fill(b, oi, order_at(b, oi).price, order_at(b, oi).qty - order_at(b, oi).filled, 0)
        oi = nxt


cdef void on_trade(Broker *b, int side_hit, int64_t price, int64_t qty) noexcept nogil:
    """A trade whose aggressor hit our `side_hit` (+1 bids, -1 asks) at `price`: levels it
    went through fill in full; at its price, the queue ahead shrinks and what trades beyond
    it fills our orders in FIFO order, whole lots only."""
    cdef RestSide *rs = rest_side(b, side_hit)
    cdef RestLevel *lv
    cdef int64_t lprice, oi, nxt, avail, f, given = 0
    cdef SimOrder *o
    while rs.n > 0 and not b.failed:
        lv = &rs.lv[rs.n - 1]
        lprice = lv.key if side_hit > 0 else -lv.key
        if (lprice > price) if side_hit > 0 else (lprice < price):
            fill_level_all(b, lv)
            continue
        if lprice == price:
            oi = lv.head
            while oi >= 0:
                o = order_at(b, oi)
                nxt = o.next
                o.ahead -= qty
                o.cum_trade += qty
                if o.ahead < 0:
                    avail = -o.ahead - given
                    o.ahead = 0
                    if avail > 0:
                        f = (avail if avail < o.qty - o.filled else o.qty - o.filled) / b.lot * b.lot
                        if f > 0:
                            given += f
                            fill(b, oi, price, f, 0)
                oi = nxt
        return


cdef void on_book_message(Broker *b, const Book *book) noexcept nogil:
    """After a complete book message: resting orders the opposite best has moved through
    (a buy above the best ask, a sell below the best bid) fill in full at their price."""
    cdef int64_t ask = best_price(&book.ask, 1), bid = best_price(&book.bid, 0)
    cdef RestSide *rs
    cdef RestLevel *lv
    if ask:
        rs = &b.rest[0]
        while rs.n > 0 and rs.lv[rs.n - 1].key > ask and not b.failed:
            fill_level_all(b, &rs.lv[rs.n - 1])
    if bid:
        rs = &b.rest[1]
        while rs.n > 0 and -rs.lv[rs.n - 1].key < bid and not b.failed:
            fill_level_all(b, &rs.lv[rs.n - 1])


# ------------------------------------------------------------------ requests

cdef inline bint req_before(const Request *a, const Request *c) noexcept nogil:
    return a.arrival < c.arrival or (a.arrival == c.arrival and a.seq < c.seq)


cdef int heap_push(Broker *b, Request r) noexcept nogil:
    cdef int64_t i, parent
    if grow(<void **>&b.heap, &b.req_cap, b.n_req + 1, sizeof(Request)) != 0:
        b.failed = 1
        return -1
    i = b.n_req
    b.n_req += 1
    while i > 0:
        parent = (i - 1) >> 1
        if not req_before(&r, &b.heap[parent]):
            break
        b.heap[i] = b.heap[parent]
        i = parent
    b.heap[i] = r
    return 0


cdef Request heap_pop(Broker *b) noexcept nogil:
    cdef Request top = b.heap[0], last
    cdef int64_t i = 0, child
    b.n_req -= 1
    if b.n_req > 0:
        last = b.heap[b.n_req]
        while True:
            child = 2 * i + 1
            if child >= b.n_req:
                break
            if child + 1 < b.n_req and req_before(&b.heap[child + 1], &b.heap[child]):
                child += 1
            if not req_before(&b.heap[child], &last):
                break
            b.heap[i] = b.heap[child]
            i = child
        b.heap[i] = last
    return top


cdef void venue_end(ExecState *x, int64_t oi, int status, int reason) noexcept nogil:
    cdef Broker *b = x.b
    unrest(b, oi)
    finish(b, oi, status, reason)
    b.counts[reason] += 1
    if status == OS_REJECTED:
        risk_on_reject(x.risk, b.clock)


cdef int64_t next_expiry(Broker *b, int64_t *which) noexcept nogil:
    """Earliest (expire_at, id) among resting GTD orders; caches the time."""
    cdef int s
    cdef int64_t i, oi, best = NEVER
    cdef SimOrder *o
    which[0] = -1
    if b.gtd_resting == 0:
        b.gtd_next = NEVER
        b.gtd_dirty = 0
        return NEVER
    for s in range(2):
        for i in range(b.rest[s].n):
            oi = b.rest[s].lv[i].head
            while oi >= 0:
                o = order_at(b, oi)
                if o.tif == TIF_GTD and (which[0] < 0 or o.expire_at < best or
                                         (o.expire_at == best and oi < which[0])):
                    best = o.expire_at
                    which[0] = oi
                oi = o.next
    b.gtd_next = best
    b.gtd_dirty = 0
    return best


cdef void arrive(ExecState *x, int64_t oi) noexcept nogil:
    cdef Broker *b = x.b
    cdef const Book *book = x.book
    cdef SimOrder *o = order_at(b, oi)
    cdef int has_limit = o.kind != OT_MARKET
    o.ts_arrival = b.clock
    o.ts_ack = later(b.clock, response_at(b, b.clock))
    if not book_in_sync(book) or book.msg_open:
        venue_end(x, oi, OS_REJECTED, R_VENUE_BOOK_NOT_SYNCED)
        return
    if o.tif == TIF_GTD and o.expire_at <= b.clock:
        venue_end(x, oi, OS_EXPIRED, R_GTD_EXPIRED)
        return
    if o.kind == OT_POST_ONLY and takeable(b, book, o.side, o.qty - o.filled, 1, o.price) > 0:
        venue_end(x, oi, OS_REJECTED, R_POST_ONLY_CROSS)
        return
    if o.tif == TIF_FOK and takeable(b, book, o.side, o.qty - o.filled, has_limit, o.price) < o.qty - o.filled:
        venue_end(x, oi, OS_EXPIRED, R_FOK_UNFILLABLE)
        return
    o.status = OS_ACCEPTED
    journal(b, oi)
    walk(b, book, oi, has_limit, o.price)
    o = order_at(b, oi)
    if o.filled == o.qty:
        return
    if o.kind == OT_MARKET or o.tif == TIF_IOC or o.tif == TIF_FOK:
        venue_end(x, oi, OS_EXPIRED, R_IOC_REMAINDER if o.filled else R_NO_LIQUIDITY)
    else:
        rest(b, book, oi)


cdef void modify(ExecState *x, int64_t oi, int64_t price, int64_t qty) noexcept nogil:
    cdef Broker *b = x.b
    cdef const Book *book = x.book
    cdef SimOrder *o = order_at(b, oi)
    if not is_open(o) or qty <= o.filled or not book_in_sync(book) or book.msg_open:
        b.counts[R_MODIFY_REJECTED] += 1
        return
    if price == o.price and qty <= o.qty:
        open_leaves_add(b, o.side, qty - o.qty)     # a size cut keeps the queue position
        o.qty = qty
        b.counts[R_OK] += 1
        journal(b, oi)
        return
    if o.kind == OT_POST_ONLY and takeable(b, book, o.side, qty - o.filled, 1, price) > 0:
        b.counts[R_MODIFY_REJECTED] += 1
        return
    unrest(b, oi)
    open_leaves_add(b, o.side, qty - o.qty)
    o.price = price
    o.qty = qty
    journal(b, oi)
    walk(b, book, oi, 1, price)
    if order_at(b, oi).filled < order_at(b, oi).qty:
        rest(b, book, oi)
    b.counts[R_OK] += 1


cdef void exec_run_until(ExecState *x, int64_t t) noexcept nogil:
    """Process requests and GTD expiries due at venue times <= t, in time order (an expiry
    before a request at the same time)."""
    cdef Broker *b = x.b
    cdef int64_t t_exp = 0, which
    cdef Request r
    cdef SimOrder *o
    cdef bint has_exp
    while not b.failed:
        which = -1
        has_exp = b.gtd_resting > 0
        if has_exp:
            t_exp = b.gtd_next
            if b.gtd_dirty or t_exp <= t:
                t_exp = next_expiry(b, &which)
        if has_exp and (b.n_req == 0 or t_exp <= b.heap[0].arrival):
            if t_exp > t:
                return
            if t_exp > b.clock:
                b.clock = t_exp
            venue_end(x, which, OS_EXPIRED, R_GTD_EXPIRED)
            continue
        if b.n_req == 0 or b.heap[0].arrival > t:
            return
        r = heap_pop(b)
        if r.arrival > b.clock:
            b.clock = r.arrival
        o = order_at(b, r.order)
        if r.kind == RQ_NEW:
            arrive(x, r.order)
        elif r.kind == RQ_CANCEL:
            if is_open(o):
                venue_end(x, r.order, OS_CANCELLED, R_CANCELLED)
            else:
                b.counts[R_CANCEL_REJECTED] += 1
        else:
            modify(x, r.order, r.price, r.qty)


cdef int exec_send(ExecState *x, int32_t kind, int64_t order, int64_t t, int64_t price,
                   int64_t qty) noexcept nogil:
    cdef Request r
    r.arrival = later(t, entry_at(x.b, t))
    r.seq = x.b.seq
    x.b.seq += 1
    r.kind = kind
    r.order = order
    r.price = price
    r.qty = qty
    return heap_push(x.b, r)


cdef void order_context(ExecState *x, OrderContext *c, int32_t side, int64_t qty, int64_t price,
                        int64_t t) noexcept nogil:
    """What the risk gate sees for an order: the book, the account, the orders already open.
    Equity is marked at the current mid, else at the last mark, else it is the cash."""
    cdef Broker *b = x.b
    c.side = side
    c.qty = qty
    c.price = price
    c.now = t
    c.bid = best_price(&x.book.bid, 0)
    c.ask = best_price(&x.book.ask, 1)
    c.position = b.acct.position
    c.open_buy = b.open_buy
    c.open_sell = b.open_sell
    c.open_orders = b.open_count
    c.book_usable = book_in_sync(x.book) and not x.book.msg_open
    c.cash = b.acct.cash
    if c.bid and c.ask:
        c.equity = equity_money(b, c.bid + c.ask)
    elif b.acct.mark_mid2:
        c.equity = equity_money(b, b.acct.mark_mid2)
    else:
        c.equity = b.acct.cash


cdef int exec_modify(ExecState *x, int64_t oi, int64_t price, int64_t qty, int64_t t) noexcept nogil:
    """Risk-check a modify as the order it would become (its own leaves leave the open
    exposure first) and send it; returns R_OK or the reason. A size cut at the same price
    only lowers risk and is sent unchecked. Clipping lowers the new size."""
    cdef Broker *b = x.b
    cdef SimOrder *o = order_at(b, oi)
    cdef OrderContext c
    cdef int64_t leaves = o.qty - o.filled, q = qty - o.filled
    cdef int reason
    if not (price == o.price and qty <= o.qty):
        order_context(x, &c, o.side, q, price, t)
        if is_open(o) or o.status == OS_PENDING:
            if o.side > 0:
                c.open_buy -= leaves
            else:
                c.open_sell -= leaves
            c.open_orders -= 1
        reason = risk_check(x.risk, &c, &q)
        if reason != R_OK:
            risk_on_reject(x.risk, t)
            return reason
        qty = o.filled + q
    return exec_send(x, RQ_MODIFY, oi, t, price, qty)


cdef int64_t exec_submit(ExecState *x, int32_t side, int32_t kind, int32_t tif, int64_t price,
                         int64_t qty, int64_t client_id, int64_t expire_at, int64_t t,
                         int reason) noexcept nogil:
    """Risk-check an order and send it; returns its id, or -reason if it was rejected
    (rejected orders are recorded too). `reason` != 0: already invalid (parsing)."""
    cdef Broker *b = x.b
    cdef SimOrder *o
    cdef OrderContext c
    cdef int64_t oi, q = qty
    if order_room(b) != 0:
        b.failed = 1
        return 0
    oi = b.n_orders
    b.n_orders += 1
    o = order_at(b, oi)
    memset(o, 0, sizeof(SimOrder))
    o.id = oi + 1
    o.client_id = client_id
    o.side = side
    o.kind = kind
    o.tif = tif
    o.price = price
    o.qty = qty
    o.ts_request = t
    o.expire_at = expire_at
    o.prev = -1
    o.next = -1
    o.status = OS_PENDING
    if reason == R_OK:
        order_context(x, &c, side, qty, price, t)
        reason = risk_check(x.risk, &c, &q)
        o.qty = q
    else:
        risk_count(x.risk, reason)
    if reason != R_OK:
        o.status = OS_REJECTED
        o.reason = reason
        o.ts_done = t
        risk_on_reject(x.risk, t)
        journal(b, oi)
        return -reason
    b.open_count += 1
    open_leaves_add(b, side, o.qty)
    journal(b, oi)
    exec_send(x, RQ_NEW, oi, t, 0, 0)
    return o.id


cdef void exec_apply(ExecState *x, const Event *e) noexcept nogil:
    """One record: venue requests due before it, the book, then what it means for our orders."""
    cdef Broker *b = x.b
    cdef Book *book = x.book
    cdef int64_t before, delta
    cdef uint32_t f = e.flags
    cdef int hit
    if not book.msg_open and (b.n_req or b.gtd_resting):
        exec_run_until(x, e.ts_exch)
    # clocks only move forward; a max, not a branch (ties and out-of-order stamps are common)
    b.clock = orp_max_i64(e.ts_exch, b.clock)
    before = book.c.applied
    book.c.records += 1
    book_process(book, e)
    delta = book.c.applied - before
    if f & F_TRADE:
        # the aggressor's side decides whose orders it hits; none or both: no side to hit
        hit = 1 if (f & (F_BUY | F_SELL)) == F_SELL else (-1 if (f & (F_BUY | F_SELL)) == F_BUY else 0)
        if hit != 0 and e.price > 0 and e.qty > 0 and e.instrument == book.instrument:
            on_trade(b, hit, e.price, e.qty)
    elif (f & (F_DEPTH | F_SNAPSHOT | F_CLEAR)) == F_DEPTH and delta == 1:
        # most updates touch nothing of ours: test that here rather than pay a call per level
        if b.n_consumed or b.rest[0].n or b.rest[1].n:
            on_depth(b, book, 1 if f & F_BID else -1, e.price)
    elif delta > 0 or f & (F_SNAPSHOT | F_CLEAR):
        x.dirty = 1
    # the end of a book message, as one test (records of every kind interleave at random, so
    # separate short-circuit tests of LAST, the kind and the open message each mispredict)
    cdef bint book_end = ((f & F_LAST) != 0) & (book.msg_open == 0) & ((f & (F_DEPTH | F_SNAPSHOT | F_CLEAR)) != 0)
    if book_end:
        if x.dirty:
            refresh_levels(b, book)
            x.dirty = 0
        if book_in_sync(book):
            if b.rest[0].n or b.rest[1].n:
                on_book_message(b, book)
            mark(b, book, b.clock)
    if book.c.gaps + book.c.desyncs != x.risk.book_losses_seen:
        risk_on_book(x.risk, book.c.gaps + book.c.desyncs, b.clock)
    x.now = orp_max_i64(e.ts_local, x.now)


# ------------------------------------------------------------------ Python API

ORDER_CHUNK_SIZE = ORDER_CHUNK

@cython.auto_pickle(False)
cdef class PaperBroker:
    """Simulated venue and account for one instrument (event time, deterministic).

    Parameters
    ----------
    inst : Instrument
    cash : decimal-like
        Starting cash in quote currency (exact on the tick x size grid).
    fees : Fees, (maker, taker) or dict
        Rates as fractions of notional; a negative maker rate is a rebate.
    latency : Latency, int ns or (entry_ns, response_ns)
    queue_model : str
        "risk_averse", or hftbacktest's probabilistic "prob_power" / "prob_power2" /
        "prob_power3" / "prob_log" / "prob_log2" (docs/broker.md).
    queue_power : float
        The exponent n of the power models.
    seed : int
        Seeds the latency jitter.
    """

    def __cinit__(self, inst, *, cash=10_000, fees=None, latency=0, queue_model="prob_power2",
                  double queue_power=3.0, seed=0):
        from orpflow.config import MoneyScale, broker_params
        p = broker_params(inst, cash=cash, fees=fees, latency=latency, queue_model=queue_model,
                          queue_power=queue_power, seed=seed)
        self.instrument = inst
        self.scale = MoneyScale(inst)
        self.b = <Broker *>calloc(1, sizeof(Broker))
        if self.b == NULL:
            raise MemoryError()
        debug_count_alloc(1)
        cdef Broker *b = self.b
        b.lot = p["lot_units"]
        b.maker_e8 = p["maker_e8"]
        b.taker_e8 = p["taker_e8"]
        b.entry_ns = p["entry_ns"]
        b.response_ns = p["response_ns"]
        b.jitter_ns = p["jitter_ns"]
        b.rng = <uint64_t>p["seed"]
        b.queue_model = p["queue_model"]
        b.queue_power = p["queue_power"]
        b.gtd_next = NEVER
        b.acct.cash = i128_from_py(p["cash"])
        n = len(p["lat_request"])
        if n:
            b.lat_req = <int64_t *>calloc(n, sizeof(int64_t))
            b.lat_entry = <int64_t *>calloc(n, sizeof(int64_t))
            b.lat_resp = <int64_t *>calloc(n, sizeof(int64_t))
            debug_count_alloc((b.lat_req != NULL) + (b.lat_entry != NULL) + (b.lat_resp != NULL))
            if b.lat_req == NULL or b.lat_entry == NULL or b.lat_resp == NULL:
                raise MemoryError()
            for i in range(n):
                b.lat_req[i] = p["lat_request"][i]
                b.lat_entry[i] = p["lat_exchange"][i] - p["lat_request"][i]
                b.lat_resp[i] = p["lat_response"][i] - p["lat_exchange"][i]
            b.lat_n = n

    def __dealloc__(self):
        cdef Broker *b = self.b
        cdef int64_t i
        if b == NULL:
            return
        release(b.lat_req)
        release(b.lat_entry)
        release(b.lat_resp)
        for i in range(b.live_chunk, (b.n_orders + ORDER_CHUNK - 1) >> ORDER_CHUNK_SHIFT):
            release(b.chunks[i])
        release(b.chunks)
        release(b.fills)
        release(b.heap)
        release(b.consumed)
        release(b.journal)
        release(b.rest[0].lv)
        release(b.rest[1].lv)
        free(b)
        debug_count_alloc(-1)
        self.b = NULL


cdef object _decimal(object scale, orp_i128 money):
    return scale.to_decimal(i128_to_py(money))


@cython.auto_pickle(False)
cdef class ExecutionSim:
    """One instrument's book, PaperBroker and risk gate, driven by event records in event
    time. For notebooks and tests; the engine runs the same per-record function.

    ``submit`` returns the order id, or the ``Reason`` it was rejected for (the rejected order
    is recorded too). Times default to the local clock of the last applied record.
    """

    def __cinit__(self, inst, broker=None, risk=None, **book_options):
        from orpflow.config import RiskLimits
        if broker is None:
            broker = PaperBroker(inst)
        if not isinstance(broker, PaperBroker):
            raise TypeError("broker must be an orpflow.PaperBroker")
        if broker.instrument != inst:
            raise ValueError("broker was made for another instrument")
        if (<PaperBroker>broker).bound:
            raise ValueError("this broker already belongs to an ExecutionSim")
        self.instrument = inst
        self.book = OrderBook(inst, **book_options)
        self.risk = RiskGate(risk if risk is not None else RiskLimits(), inst)
        self.broker = broker
        self.broker.bound = True
        self.x.book = self.book.book
        self.x.b = self.broker.b
        self.x.risk = self.risk.r
        self.x.b.risk = self.risk.r

    def _t(self, ts):
        return self.x.now if ts is None else max(int(ts), self.x.now)

    def _check(self):
        if self.x.b.failed:
            raise MemoryError("the broker ran out of memory; its state is no longer complete")

    def submit(self, side, qty, type="limit", price=None, tif=None, *, client_id=0,
               expire_at=None, ts=None):
        """Send an order: side "buy"/"sell", type "market"/"limit"/"post_only"/"ioc"/"fok",
        tif "GTC"/"IOC"/"FOK"/"GTD" (GTD needs expire_at, venue ns). Returns the order id,
        or the Reason it was rejected for."""
        from orpflow.events import Reason
        from orpflow.orders import parse_order
        s, ty, tf, ticks, units, exp, reason = parse_order(self.instrument, side, qty, type, price, tif,
                                                           expire_at)
        cdef int64_t r = exec_submit(&self.x, s, ty, tf, ticks, units, int(client_id), exp,
                                     self._t(ts), reason)
        self._check()
        return r if r > 0 else Reason(-r)

    def _open_order(self, order_id, bint modifiable):
        if isinstance(order_id, bool) or not isinstance(order_id, int):
            raise TypeError("order_id must be an int")
        if not (self.x.b.live_chunk << ORDER_CHUNK_SHIFT) < order_id <= self.x.b.n_orders:
            return None                     # unknown, or trimmed (trimmed orders were final)
        cdef SimOrder *o = order_at(self.x.b, order_id - 1)
        if not (o.status == OS_PENDING or is_open(o)) or (modifiable and o.kind == OT_MARKET):
            return None
        return order_id - 1

    def cancel(self, order_id, *, ts=None):
        """Send a cancel (it races fills: it acts when it reaches the venue). False if the
        order is unknown or already final here."""
        oi = self._open_order(order_id, False)
        if oi is None:
            return False
        exec_send(&self.x, RQ_CANCEL, oi, self._t(ts), 0, 0)
        self._check()
        return True

    def modify(self, order_id, *, price=None, qty=None, ts=None):
        """Send a modify of price and/or total quantity. A size cut at the same price keeps
        the queue position; anything else re-queues (and may take liquidity) and is
        risk-checked first. True if sent, False if the order is unknown or final here, or the
        Reason the risk gate rejected it for."""
        oi = self._open_order(order_id, True)
        if oi is None:
            return False
        cdef SimOrder *o = order_at(self.x.b, oi)
        ticks = o.price if price is None else self.instrument.price_to_ticks(price)
        units = o.qty if qty is None else self.instrument.size_to_units(qty)
        if ticks <= 0 or units <= 0 or units % self.instrument.lot_units:
            raise ValueError("modify: price must be > 0 and qty a positive whole number of lots")
        cdef int r = exec_modify(&self.x, oi, ticks, units, self._t(ts))
        self._check()
        if r > 0:
            from orpflow.events import Reason
            return Reason(r)
        return True

    def kill(self):
        self.risk.kill()

    def reset_kill(self):
        self.risk.reset_kill()

    def reset_breakers(self):
        self.risk.reset_breakers()

    def trip_breaker(self):
        """Trip the "manual" breaker (at the current venue time)."""
        self.risk.trip(32, self.x.b.clock)

    @property
    def now(self):
        """Local clock: the latest ts_local applied."""
        return self.x.now

    @property
    def venue_time(self):
        return self.x.b.clock

    def advance(self, ts):
        """Let the venue run to venue time ts (requests and expiries due by then)."""
        cdef int64_t t = ts
        if not self.x.book.msg_open:
            self.book._enter_write()
            try:
                exec_run_until(&self.x, t)
            finally:
                self.book._exit_write()
        self._check()

    def apply(self, events):
        """Drive the book and the venue with EVENT_DTYPE records (nogil)."""
        cdef Event *evs = event_ptr(events, False)
        cdef int64_t n = events.shape[0], i
        self.book._enter_write()
        try:
            with nogil:
                for i in range(n):
                    exec_apply(&self.x, &evs[i])
        finally:
            self.book._exit_write()
        self._check()

    def orders(self):
        """Every order so far as an ORDER_DTYPE array (those still held: an engine run without
        keep_history frees final orders once written)."""
        from orpflow.orders import ORDER_DTYPE
        cdef Broker *b = self.x.b
        cdef SimOrder *o
        cdef int64_t first = b.live_chunk << ORDER_CHUNK_SHIFT, i
        out = np.zeros(b.n_orders - first, ORDER_DTYPE)
        for i in range(first, b.n_orders):
            o = order_at(b, i)
            out[i - first] = (o.id, o.client_id, o.side, o.kind, o.tif, o.status, o.reason, o.price, o.qty,
                      o.filled, o.ts_request, o.ts_arrival, o.ts_ack, o.ts_done, o.expire_at,
                      o.ahead, float(_decimal(self.broker.scale, o.fees)))
        return out

    def fills(self):
        """Every fill so far as a FILL_DTYPE array."""
        from orpflow.orders import FILL_DTYPE
        cdef Broker *b = self.x.b
        cdef SimFill *f
        out = np.zeros(b.n_fills, FILL_DTYPE)
        scale = self.broker.scale
        for i in range(b.n_fills):
            f = &b.fills[i]
            out[i] = (f.order_id, f.client_id, f.side, f.liquidity, f.price, f.qty,
                      float(_decimal(scale, f.fee)), float(_decimal(scale, f.realised)), f.position,
                      f.ts_exch, f.ts_local)
        return out

    def account(self):
        """Cash, position, entry, realised/unrealised PnL, fees, equity, peak and drawdown
        (exact Decimals in quote currency; unrealised and equity at the last mark)."""
        from orpflow.orders import account_view
        cdef Account *a = &self.x.b.acct
        scale = self.broker.scale
        return account_view(self.instrument, cash=_decimal(scale, a.cash), cost=_decimal(scale, a.cost),
                            position=a.position, realised=_decimal(scale, a.realised),
                            fees=_decimal(scale, a.fees), mark_mid2=a.mark_mid2,
                            peak=_decimal(scale, a.peak) if a.peak_set else None,
                            max_drawdown=a.max_drawdown, round_trips=a.round_trips,
                            losing_round_trips=a.losing_round_trips)

    def position(self):
        from orpflow.orders import position_view
        return position_view(self.account())

    def risk_stats(self):
        """Risk decisions by reason, breakers, trips; `venue`: venue outcomes by reason."""
        s = self.risk.stats()
        s["venue"] = {k: self.x.b.counts[k] for k in range(R_COUNT) if self.x.b.counts[k]}
        return s

    def open_exposure(self):
        """(open buy size, open sell size, open order count) in size units, in flight included."""
        return self.x.b.open_buy, self.x.b.open_sell, self.x.b.open_count


# ------------------------------------------------------------------ benchmark kernels

cdef extern from "orp_atomic.h":
    int64_t ORP_now_ns() nogil


def _bench_risk_check(ExecutionSim sim, int64_t n):
    """ns for n pre-trade checks of a 1-lot limit buy at the best bid (the rate buckets and
    the decision counters see every call: switch rates off for a steady figure)."""
    cdef ExecState *x = &sim.x
    cdef OrderContext c
    cdef int64_t i, q, t0, t1
    memset(&c, 0, sizeof(c))
    c.side = 1
    c.bid = best_price(&x.book.bid, 0)
    c.ask = best_price(&x.book.ask, 1)
    c.price = c.bid
    c.book_usable = book_in_sync(x.book)
    c.cash = x.b.acct.cash
    c.equity = x.b.acct.cash
    with nogil:
        t0 = ORP_now_ns()
        for i in range(n):
            q = x.b.lot
            c.now = i
            risk_check(x.risk, &c, &q)
        t1 = ORP_now_ns()
    return t1 - t0


def _bench_taker(ExecutionSim sim, int64_t n):
    """ns for n 1-lot market orders, alternately buy and sell, each risk-checked, sent, matched
    against the book and booked (the liquidity they use is forgotten after each, so every one
    takes the touch)."""
    cdef ExecState *x = &sim.x
    cdef int64_t i, t0, t1, t = x.now
    with nogil:
        t0 = ORP_now_ns()
        for i in range(n):
            exec_submit(x, 1 if i & 1 == 0 else -1, OT_MARKET, TIF_IOC, 0, x.b.lot, 0, 0, t, R_OK)
            exec_run_until(x, t)
            x.b.n_consumed = 0
        t1 = ORP_now_ns()
    sim._check()
    return t1 - t0
