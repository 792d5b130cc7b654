"""The simulated venue of the paper broker: orders matched in event time against the visible
book, nogil (rules: docs/broker.md; twin: orpflow/reference/broker.py).

Orders travel to the venue with an entry latency (latency.pxd) and are matched there against
the visible book: takers walk it level by level (remembering the liquidity they used until that
level next updates), resting orders keep a queue position that trades and depth decreases
advance (resting.pyx), and fills reach an integer-exact account (account.pxd). ``exec_apply`` is
the per-record call of both the engine and ``ExecutionSim``: the state it works on is declared
in broker_state.pxd.
"""

from libc.stdint cimport int32_t, int64_t, uint32_t
from libc.stdlib cimport malloc
from libc.string cimport memset

from orpflow._core.types cimport (
    Event, orp_i128, debug_count_alloc,
    F_DEPTH, F_TRADE, F_SNAPSHOT, F_CLEAR, F_BID, F_BUY, F_SELL, F_LAST, R_OK,
    R_VENUE_BOOK_NOT_SYNCED, R_POST_ONLY_CROSS, R_FOK_UNFILLABLE, R_IOC_REMAINDER,
    R_NO_LIQUIDITY, R_GTD_EXPIRED, R_CANCELLED, R_CANCEL_REJECTED, R_MODIFY_REJECTED,
)
from orpflow._core.book cimport (
    Book, Level, SideIter, book_process, book_in_sync, side_iter_begin, side_iter_next, orp_max_i64,
)
from orpflow._core.risk cimport (
    OrderContext, risk_check, risk_count, risk_on_reject, risk_on_book,
)
from orpflow._core.broker_state cimport (
    Broker, ExecState, SimOrder, SimFill, RestLevel, RestSide, Request, Consumed, NEVER,
    OS_PENDING, OS_ACCEPTED, OS_PARTIALLY_FILLED, OS_FILLED, OS_CANCELLED, OS_REJECTED, OS_EXPIRED,
    OT_MARKET, OT_POST_ONLY, TIF_IOC, TIF_FOK, TIF_GTD, RQ_NEW, RQ_CANCEL, RQ_MODIFY,
    ORDER_CHUNK, ORDER_CHUNK_SHIFT, order_at, is_open, open_leaves_add, later, grow, release,
    book_qty, best_price, rest_side,
)
from orpflow._core.latency cimport entry_at, response_at
from orpflow._core.account cimport account_fill, equity_money, mark
from orpflow._core.resting cimport rest, unrest, level_changed, rest_find


# ------------------------------------------------------------------ order storage

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


# ------------------------------------------------------------------ consumed liquidity

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


# ------------------------------------------------------------------ order states

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


# ------------------------------------------------------------------ our levels as the book moves

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


# ------------------------------------------------------------------ at the venue

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
