"""The engine's per-event loop and its thread loops, nogil (docs/engine.md).

``core_step`` is the whole strategy for one record: the strategy's start and due timers, the
venue and the book (``exec_apply``), on a row-making record the feature groups the strategy
reads, its on_book / on_trade (orders through the pre-trade risk gate: the ORPFlow signal path
is one such strategy, orpflow/_core/signal_strategy.pyx), then the rest of the row (the other
groups, the extension: same values, after the order), then on a complete book message the
seqlock snapshot (published after the order: it serves other threads, not the decision); then
every order state change and fill (written, then given to the strategy's on_order / on_fill),
sync change, breaker trip and account snapshot as a fixed-size OutRecord.
The same function runs in the caller's thread over an array (``run_events``, from
EngineCore.run_array: backtest, records collected in a buffer) and in the strategy thread
over the `market` ring (``strategy_loop``, from EngineCore.run_ring: records
go to the `out` ring, waiting for room rather than dropping). Decisions read event time only,
so both give the same records; the wall clock only feeds the latency histograms.
"""
from libc.stdint cimport int32_t, int64_t, uint32_t, uint64_t, uintptr_t
from libc.stdlib cimport realloc, free
from libc.string cimport memcpy, memset

from orpflow._core.engine cimport *
from orpflow._core.types cimport (
    Event, F_TRADE, F_LAST, F_BOOK_KINDS, R_OK, orp_i128, orp_i128_hi, orp_i128_lo,
    debug_count_alloc,
)
from orpflow._core.ring cimport (
    RingState, ring_push_n, ring_pop_n, ring_push_n_stamped, ring_pop_n_stamped,
    ring_size, ring_room, ORP_load_acquire, ORP_load_relaxed, ORP_store_release, ORP_store_relaxed,
    ORP_pause, ORP_now_ns,
)
from orpflow._core.book cimport Book, book_in_sync
from orpflow._core.broker cimport (
    ExecState, Broker, SimOrder, SimFill, Account, exec_apply,
    OT_MARKET, OT_LIMIT, OT_POST_ONLY, TIF_GTC, TIF_IOC, TIF_FOK, TIF_GTD, ORDER_CHUNK_SHIFT,
    OS_FILLED, OS_CANCELLED, OS_REJECTED, OS_EXPIRED, broker_trim,
)
from orpflow._core.features cimport (
    FeatureState, FeatureExtension, features_begin, features_finish,
)
from orpflow._core.strategy cimport (
    CStrategy, StrategyContext, ctx_init, ctx_send, taker_price, ctx_closed, ctx_pop_timer,
    ctx_rearm,
)
from orpflow._core.snapshot cimport SeqlockSnapshot, snapshot_publish_book
from orpflow._core.risk cimport RiskState, BRK_COUNT, BRK_REJECT_STORM, ON_BREAKER_FLATTEN

cdef extern from "orp_atomic.h":
    void ORP_sleep_ns(int64_t ns) noexcept nogil
    void ORP_seqlock_write(int64_t *seq, int64_t *dst, const int64_t *src, size_t words) noexcept nogil

cdef extern from "orp_bits.h":
    int64_t orp_top_bit(uint64_t x) noexcept nogil
    int64_t orp_max_i64(int64_t a, int64_t b) noexcept nogil

# Idle back-off of the strategy thread: spin (pause) for Core.spin_ns after the last record,
# then sleep in short steps. Only this thread spins (never more spinning threads than cores).
cdef int64_t IDLE_SLEEP_NS = 50000
cdef int64_t FEED_WAIT_NS = 20000       # the feed's sleep while the market ring is full
cdef int64_t OUT_WAIT_SPINS = 64        # spins before the strategy sleeps on a full out ring


# ------------------------------------------------------------------ counters and histograms

cdef inline void bump(int64_t *p, int64_t d) noexcept nogil:
    """Single-writer counter other threads read: a relaxed store, never a torn value."""
    ORP_store_relaxed(p, p[0] + d)


cdef inline int64_t hist_index(int64_t v) noexcept nogil:
    cdef int e
    if v < HIST_SUB:
        return v if v > 0 else 0
    e = orp_top_bit(<unsigned long long>v)
    return (e - 3) * HIST_SUB + ((v >> (e - 4)) & (HIST_SUB - 1))


cdef int64_t hist_bucket(int64_t v) noexcept nogil:
    """hist_index out of line (EngineCore's tests and bounds)."""
    return hist_index(v)


cdef inline void hist_add(Histogram *h, int64_t v) noexcept nogil:
    if v < 0:
        v = 0
    bump(&h.counts[hist_index(v)], 1)
    bump(&h.total, v)
    bump(&h.n, 1)
    if v > h.max:
        ORP_store_relaxed(&h.max, v)


# ------------------------------------------------------------------ output records

cdef inline void put_i128(int64_t *v, orp_i128 x) noexcept nogil:
    v[0] = <int64_t>orp_i128_lo(x)
    v[1] = orp_i128_hi(x)


cdef inline void head(OutRecord *r, int32_t kind, int32_t slot, int64_t ts_exch,
                      int64_t ts_local) noexcept nogil:
    r.kind = kind
    r.slot = slot
    r.ts_exch = ts_exch
    r.ts_local = ts_local


cdef int out_push(RingState *r, const OutRecord *rec) noexcept nogil:
    """Both slots of a record or none (head only ever moves by OUT_SLOTS)."""
    if ring_room(r, OUT_SLOTS) < OUT_SLOTS:
        return 0
    return ring_push_n(r, <const Event *>rec, OUT_SLOTS) == OUT_SLOTS


cdef void emit(Core *c, OutRecord *r) noexcept nogil:
    """Write a record: to the out ring, waiting for room (never dropped unless the consumer
    aborted), or to the collection buffer (backtest)."""
    cdef int64_t spins = 0
    cdef void *q
    cdef int64_t cap
    r.event_no = c.c.events
    if c.out != NULL:
        while not out_push(c.out, r):
            if ORP_load_acquire(&c.ctl.abort):
                bump(&c.c.out_lost, 1)
                return
            bump(&c.c.out_waits, 1)
            spins += 1
            if spins < OUT_WAIT_SPINS:
                ORP_pause()
            else:
                ORP_sleep_ns(IDLE_SLEEP_NS)
    else:
        if c.n_buf == c.buf_cap:
            cap = c.buf_cap * 2 if c.buf_cap else 1024
            q = realloc(c.buf, cap * sizeof(OutRecord))
            if q == NULL:
                c.failed = 1
                return
            if c.buf == NULL:
                debug_count_alloc(1)
            c.buf = <OutRecord *>q
            c.buf_cap = cap
        c.buf[c.n_buf] = r[0]
        c.n_buf += 1
    bump(&c.c.out_records, 1)


cdef void emit_order(Core *c, int32_t slot, const Slot *s, const SimOrder *o) noexcept nogil:
    cdef OutRecord r
    head(&r, OUT_ORDER, slot, s.x.b.clock, s.x.now)
    r.v[0] = o.id
    r.v[1] = o.client_id
    r.v[2] = o.price
    r.v[3] = o.qty
    r.v[4] = o.filled
    r.v[5] = o.ts_request
    r.v[6] = o.ts_arrival
    r.v[7] = o.ts_done
    put_i128(&r.v[8], o.fees)
    r.v[10] = ((<int64_t>(o.side + 1)) | (<int64_t>o.kind << 8) | (<int64_t>o.tif << 16)
               | (<int64_t>o.status << 24) | (<int64_t>o.reason << 32))
    r.v[11] = o.expire_at
    emit(c, &r)


cdef void emit_fill(Core *c, int32_t slot, const SimFill *f, int64_t fill_id) noexcept nogil:
    cdef OutRecord r
    head(&r, OUT_FILL, slot, f.ts_exch, f.ts_local)
    r.v[0] = f.order_id
    r.v[1] = f.client_id
    r.v[2] = f.price
    r.v[3] = f.qty
    r.v[4] = f.position
    r.v[5] = fill_id
    put_i128(&r.v[6], f.fee)
    put_i128(&r.v[8], f.realised)
    r.v[10] = (<int64_t>(f.side + 1)) | (<int64_t>f.liquidity << 8)
    r.v[11] = 0
    emit(c, &r)


cdef void emit_account(Core *c, int32_t slot, const Slot *s) noexcept nogil:
    cdef OutRecord r
    cdef const Account *a = &s.x.b.acct
    head(&r, OUT_ACCOUNT, slot, s.x.b.clock, s.x.now)
    put_i128(&r.v[0], a.cash)
    put_i128(&r.v[2], a.cost)
    put_i128(&r.v[4], a.realised)
    put_i128(&r.v[6], a.fees)
    r.v[8] = a.position
    r.v[9] = a.mark_mid2
    r.v[10] = a.round_trips
    r.v[11] = a.losing_round_trips
    emit(c, &r)


cdef void check_sync(Core *c, int32_t slot, Slot *s) noexcept nogil:
    """A SYNC record whenever the book's state or its gap/resync/desync counts change."""
    cdef const Book *b = s.x.book
    cdef OutRecord r
    if (b.state == s.sync_key[0] and b.c.gaps == s.sync_key[1] and b.c.resyncs == s.sync_key[2]
            and b.c.desyncs == s.sync_key[3]):
        return
    s.sync_key[0] = b.state
    s.sync_key[1] = b.c.gaps
    s.sync_key[2] = b.c.resyncs
    s.sync_key[3] = b.c.desyncs
    memset(&r, 0, sizeof(r))
    head(&r, OUT_SYNC, slot, s.x.b.clock, s.x.now)
    r.v[0] = b.state
    r.v[1] = b.c.gaps
    r.v[2] = b.c.resyncs
    r.v[3] = b.c.desyncs
    r.v[4] = book_in_sync(b)
    r.v[5] = b.last_update_id
    emit(c, &r)


cdef void check_breakers(Core *c, int32_t slot, Slot *s) noexcept nogil:
    """A BREAKER record for each trip since the last look (one compare when there is none):
    v[0] the breaker's bit, v[1] all tripped now, v[2:4] value and v[4:6] limit (128-bit: the
    drawdown in 1e-9 of peak, the daily loss in money, else counts), v[6] reject_storm: ns
    from the first to the last rejection, v[7] its trips so far, v[8] the position, v[9]
    on_breaker, v[10] the time the risk gate was given, v[11] reject_storm: the window (ns).
    Under on_breaker = "flatten" the next feature row sends the closing order."""
    cdef RiskState *r = s.x.risk
    cdef OutRecord rec
    cdef int k
    if r.n_trips == s.trips_seen:
        return
    s.trips_seen = r.n_trips
    for k in range(BRK_COUNT):
        if r.trips[k] == s.trips_out[k]:
            continue
        s.trips_out[k] = r.trips[k]
        memset(&rec, 0, sizeof(rec))
        head(&rec, OUT_BREAKER, slot, s.x.b.clock, s.x.now)
        rec.v[0] = 1 << k
        rec.v[1] = r.breakers
        put_i128(&rec.v[2], r.trip_value[k])
        put_i128(&rec.v[4], r.trip_limit[k])
        rec.v[6] = r.trip_extra[k]
        rec.v[7] = r.trips[k]
        rec.v[8] = s.x.b.acct.position
        rec.v[9] = r.p.on_breaker
        rec.v[10] = r.trip_ts[k]
        rec.v[11] = r.p.reject_storm_window_ns if (1 << k) == BRK_REJECT_STORM else 0
        emit(c, &rec)
        bump(&c.c.breaker_trips, 1)
    if r.p.on_breaker == ON_BREAKER_FLATTEN and r.breakers:
        s.flatten_pending = 1


cdef inline void forget_written(Slot *s) noexcept nogil:
    """Without keep_history: drop the fills just written (and given to on_fill), and free
    chunks of final orders (they were written when they became final), so memory does not
    grow with the run."""
    cdef Broker *b = s.x.b
    if s.fills_cb == b.n_fills:             # else kept until the message ends (dispatch)
        b.n_fills = 0
        s.fills_out = 0
        s.fills_cb = 0
    if (b.n_orders >> ORDER_CHUNK_SHIFT) > b.live_chunk:
        broker_trim(b)


cdef void drain_journal(Core *c, int32_t slot, Slot *s) noexcept nogil:
    """Write the order state changes not yet written (they stay in the journal until the
    strategy has been given them: dispatch)."""
    cdef Broker *b = s.x.b
    while s.j_written < b.n_journal:
        emit_order(c, slot, s, &b.journal[s.j_written])
        s.j_written += 1


cdef bint write_fills(Core *c, int32_t slot, Slot *s) noexcept nogil:
    """New fills, then an account snapshot after them; True if there were any."""
    cdef Broker *b = s.x.b
    cdef bint filled = b.n_fills > s.fills_out
    while s.fills_out < b.n_fills:
        s.fills_total += 1
        emit_fill(c, slot, &b.fills[s.fills_out], s.fills_total)
        s.fills_out += 1
        bump(&c.c.fills, 1)
    if filled:
        emit_account(c, slot, s)
    return filled


cdef inline bint is_final(int32_t status) noexcept nogil:
    return (status == OS_FILLED or status == OS_CANCELLED or status == OS_REJECTED
            or status == OS_EXPIRED)


cdef void fail(Core *c, int32_t slot) noexcept nogil:
    if not c.failed:
        c.failed = 2
        c.failed_slot = slot


# How dispatch gives order and fill callbacks.
cdef enum:
    DELIVER = 0                # now, or at the end of an open book message
    DELIVER_NOW = 1            # the run ends: no message will end any more
    WRITE_ONLY = 2             # after on_stop: written, given to nobody


cdef bint dispatch(Core *c, int32_t slot, Slot *s, int mode) noexcept nogil:
    """Write every order state change and fill, then give the strategy each state change
    (on_order), then each fill (on_fill), in the order they happened, writing what its
    callbacks send; until nothing is pending. Inside a book message nothing is given yet (a
    strategy never sees half a message: its orders would meet an unusable book); the
    message's end delivers it. Callbacks get copies: the journal may grow (and move) while
    they run. True if filled."""
    cdef Broker *b = s.x.b
    cdef SimOrder o
    cdef SimFill f
    cdef bint filled = False
    while True:
        drain_journal(c, slot, s)
        filled |= write_fills(c, slot, s)
        if c.failed or mode == WRITE_ONLY:
            # the run stops: everything is written, nothing more is given to the strategy
            s.j_done = b.n_journal
            s.fills_cb = b.n_fills
            break
        if s.x.book.msg_open and mode == DELIVER:
            return filled
        if s.j_done < b.n_journal:
            o = b.journal[s.j_done]
            s.j_done += 1
            if is_final(o.status):
                ctx_closed(&s.ctx, o.id)
            if (<CStrategy>s.strategy).on_order(&s.ctx, &o) != 0:
                fail(c, slot)
        elif s.fills_cb < b.n_fills:
            f = b.fills[s.fills_cb]
            s.fills_cb += 1
            if (<CStrategy>s.strategy).on_fill(&s.ctx, &f) != 0:
                fail(c, slot)
        else:
            break
    b.n_journal = 0
    s.j_done = 0
    s.j_written = 0
    return filled


cdef void flush_changes(Core *c, int32_t slot, Slot *s, bint row_maker) noexcept nogil:
    """flush_slot's work when something changed (out of line)."""
    cdef Broker *b = s.x.b
    cdef bint filled = False
    if b.n_journal | (b.n_fills - s.fills_cb):
        filled = dispatch(c, slot, s, DELIVER)
    if not filled and row_maker and s.ep.account_every_ns > 0 and b.clock >= s.next_account:
        emit_account(c, slot, s)
        s.next_account = b.clock + s.ep.account_every_ns
    check_sync(c, slot, s)
    check_breakers(c, slot, s)
    if b.failed or s.ctx.failed:
        c.failed = 1


cdef inline void flush_slot(Core *c, int32_t slot, Slot *s, bint row_maker) noexcept nogil:
    """After a record: order changes and fills (written, then given to the strategy), an
    account snapshot after fills, sync changes, breaker trips, and on a row-making record the
    periodic account snapshot. Inline and one test: on most records nothing changed (the work,
    out of line, re-checks each part)."""
    cdef Broker *b = s.x.b
    cdef const Book *bk = s.x.book
    cdef int64_t due = 0
    if row_maker and s.ep.account_every_ns > 0:
        due = b.clock >= s.next_account
    if (b.n_journal | (b.n_fills - s.fills_cb) | due | b.failed
            | (bk.state ^ s.sync_key[0]) | (bk.c.gaps ^ s.sync_key[1]) | (bk.c.resyncs ^ s.sync_key[2])
            | (bk.c.desyncs ^ s.sync_key[3]) | (s.x.risk.n_trips ^ s.trips_seen)):
        flush_changes(c, slot, s, row_maker)
    if not s.ep.keep_history:
        forget_written(s)


# ------------------------------------------------------------------ the strategy's hooks

cdef void on_sent(StrategyContext *ctx, int64_t result) noexcept nogil:
    """An order was sent (or rejected): count it and write its record now. The first order a
    row-making record leads to ends that record's tick-to-trade."""
    cdef Core *c = <Core *>ctx.engine
    cdef Slot *s = &c.slots[ctx.slot]
    cdef int64_t t1
    bump(&c.c.orders, 1)
    if result < 0:
        bump(&c.c.rejected, 1)
    drain_journal(c, ctx.slot, s)
    if s.t0 != 0 and not s.measured:
        s.measured = 1
        t1 = ORP_now_ns()
        hist_add(&c.incore, t1 - s.t0)
        if s.stamp > 0:
            hist_add(&c.wire if c.wire_stamps else &c.ingress, t1 - s.stamp)


cdef void on_record(StrategyContext *ctx, int32_t kind, int64_t ts_exch, const int64_t *v) noexcept nogil:
    """A record the strategy writes (the signal strategy: its signals)."""
    cdef Core *c = <Core *>ctx.engine
    cdef Slot *s = &c.slots[ctx.slot]
    cdef OutRecord r
    head(&r, kind, ctx.slot, ts_exch, s.x.now)
    memcpy(r.v, v, sizeof(r.v))
    if kind == OUT_SIGNAL:
        bump(&c.c.signals, 1)
    emit(c, &r)


# ------------------------------------------------------------------ the strategy step

cdef inline Slot *find_slot(Core *c, uint32_t instrument, int32_t *index) noexcept nogil:
    cdef int64_t i
    if c.slots[c.last].instrument == instrument:
        index[0] = <int32_t>c.last
        return &c.slots[c.last]
    for i in range(c.n_slots):
        if c.slots[i].instrument == instrument:
            c.last = i
            index[0] = <int32_t>i
            return &c.slots[i]
    return NULL


cdef void flatten(Core *c, Slot *s) noexcept nogil:
    """on_breaker = "flatten", at the first feature row after a trip: one order closing the
    position net of the open orders on the closing side (whole lots), through the risk gate:
    a market order, or an IOC limit at the opposite best +- slippage ([execution]).
    Whatever becomes of it, reduce_only applies from then on."""
    cdef Broker *b = s.x.b
    cdef int64_t pos = b.acct.position, price = 0
    cdef int64_t qty = (pos - b.open_sell) if pos > 0 else (-pos - b.open_buy)
    cdef int32_t side = -1 if pos > 0 else 1
    s.flatten_pending = 0
    qty = qty / b.lot * b.lot
    if pos == 0 or qty <= 0 or not s.x.risk.breakers:
        return
    if s.ep.order_kind == OT_LIMIT:
        price = taker_price(s.x, side, s.ep.slippage_ticks)
        if price == 0:
            return
    ctx_send(&s.ctx, side, s.ep.order_kind, TIF_IOC, price, qty, 0, c.c.events, R_OK)


cdef void resend_restored(Core *c, Slot *s) noexcept nogil:
    """The previous run's open orders, through the risk gate like any order."""
    cdef int64_t i
    cdef RestoredOrder *o
    for i in range(s.n_restore):
        o = &s.restore[i]
        ctx_send(&s.ctx, o.side, o.kind, o.tif, o.price, o.qty, o.expire_at, o.client_id, R_OK)
    s.n_restore = 0


cdef void on_row(Core *c, int32_t slot, Slot *s, const Event *e) noexcept nogil:
    """Only what the decision reads before it: the feature groups the strategy reads (and
    the book group), the engine's own orders (breaker flattening, restored orders), the
    strategy's on_book / on_trade and its orders, then the other groups and the extension (if
    the strategy reads none of its columns). Same rows, same values as computing them all
    first (features_finish; tests compare the records)."""
    # The feature histogram times one row in FEATURE_SAMPLE, with every group before the
    # decision (the same values): a clock read costs 20-120 ns, and the two around the
    # features would otherwise lie on every order's path.
    cdef bint timed = c.measure and (s.ctx.rows & (FEATURE_SAMPLE - 1)) == 0
    cdef int32_t late = 0 if timed else s.late
    cdef bint ext_late = s.ext_late and not timed
    cdef int64_t t1 = 0
    cdef int r
    if timed:
        t1 = ORP_now_ns()
    if not features_begin(s.st, s.x.book, e, late):
        return
    if s.extension != NULL and not ext_late:
        (<FeatureExtension>s.extension).compute(s.st, s.x.book, e, s.st.fv.extra)
    if timed:
        hist_add(&c.feature, ORP_now_ns() - t1)
    s.ctx.rows += 1
    bump(&c.c.rows, 1)
    if s.flatten_pending:
        flatten(c, s)
    if s.n_restore and s.ctx.rows > s.ep.warmup_rows:
        resend_restored(c, s)
    if e.flags & F_TRADE:
        r = (<CStrategy>s.strategy).on_trade(&s.ctx, e)
    else:
        r = (<CStrategy>s.strategy).on_book(&s.ctx)
    if r != 0:
        fail(c, slot)
        return
    # after the order: the rest of the row
    if late:
        features_finish(s.st, e, late)
    if ext_late:
        (<FeatureExtension>s.extension).compute(s.st, s.x.book, e, s.st.fv.extra)


cdef void strategy_due(Core *c, int32_t slot, Slot *s, const Event *e) noexcept nogil:
    """The strategy's start (its first record this run) and its timers due by this record's
    local time (between book messages only: a strategy never sees half a message). The
    local clock is moved to each timer's due time before its callback."""
    cdef int64_t tid, due = 0
    if not s.ctx.started:
        s.ctx.started = 1
        s.x.now = orp_max_i64(s.x.now, e.ts_local)
        ctx_rearm(&s.ctx)
        if (<CStrategy>s.strategy).on_start(&s.ctx) != 0:
            fail(c, slot)
            return
        if s.x.b.n_journal:
            dispatch(c, slot, s, DELIVER)
    if s.x.book.msg_open:
        return
    while not c.failed:
        tid = ctx_pop_timer(&s.ctx, e.ts_local, &due)
        if tid < 0:
            break
        s.x.now = orp_max_i64(s.x.now, due)
        if (<CStrategy>s.strategy).on_timer(&s.ctx, tid) != 0:
            fail(c, slot)
            return
        if s.x.b.n_journal:
            dispatch(c, slot, s, DELIVER)


cdef void core_step(Core *c, const Event *e, int64_t stamp) noexcept nogil:
    """One record through the whole strategy (see the module docstring)."""
    cdef int32_t slot = 0
    cdef Slot *s = find_slot(c, e.instrument, &slot)
    cdef uint32_t f = e.flags
    # one test, not a short-circuit chain: the kinds of consecutive records are not predictable
    cdef bint row_maker = ((f & F_TRADE) != 0) | (((f & F_LAST) != 0) & ((f & F_BOOK_KINDS) != 0))
    bump(&c.c.events, 1)
    if s == NULL:
        bump(&c.c.unknown, 1)
        return
    # the start and timers: one compare (next_timer is below any time until the start)
    if e.ts_local >= s.ctx.next_timer:
        strategy_due(c, slot, s, e)
        if c.failed:
            return
    if not row_maker:
        exec_apply(s.x, e)
        flush_slot(c, slot, s, False)
        return
    s.t0 = 0
    if c.measure:
        s.t0 = ORP_now_ns()
        s.stamp = stamp
        s.measured = 0
    exec_apply(s.x, e)
    if not s.x.book.msg_open:
        on_row(c, slot, s, e)
        if f & F_LAST and f & F_BOOK_KINDS:
            # for the control thread's readers: after the order, off the tick-to-trade path
            snapshot_publish_book(s.snap, s.x.book)
    s.t0 = 0
    flush_slot(c, slot, s, True)


cdef void publish_stats(Core *c) noexcept nogil:
    """Copy every instrument's book, risk and venue counters where other threads may read them
    (SlotStats, seqlock). The strategy thread calls it when it goes idle, every STATS_EVERY
    events and at the end: a few hundred word stores, never per event."""
    cdef SlotStats d
    cdef Slot *s
    cdef int64_t i
    c.stats_at = c.c.events
    for i in range(c.n_slots):
        s = &c.slots[i]
        d.events = c.c.events
        d.book = s.x.book.c
        memcpy(d.book_rejects, s.x.book.rejects, sizeof(d.book_rejects))
        memcpy(d.decisions, s.x.risk.decisions, sizeof(d.decisions))
        memcpy(d.venue, s.x.b.counts, sizeof(d.venue))
        memcpy(d.trips, s.x.risk.trips, sizeof(d.trips))
        d.breakers = s.x.risk.breakers
        ORP_seqlock_write(&s.stats.seq, <int64_t *>&s.stats.data, <const int64_t *>&d,
                          sizeof(SlotStats) // 8)


cdef void final_accounts(Core *c) noexcept nogil:
    """The end of a run: each strategy's on_stop (what it sends is written), then an account
    record per instrument."""
    cdef int64_t i
    cdef Slot *s
    for i in range(c.n_slots):
        s = &c.slots[i]
        if s.ctx.started and not c.failed:
            # what is still undelivered (the recording ended inside a book message), then
            # on_stop; what it sends is written, and given to nobody
            dispatch(c, <int32_t>i, s, DELIVER_NOW)
            if not c.failed and (<CStrategy>s.strategy).on_stop(&s.ctx) != 0:
                fail(c, <int32_t>i)
            dispatch(c, <int32_t>i, s, WRITE_ONLY)
            ctx_init(&s.ctx)                    # the next run starts afresh (on_start again)
        flush_slot(c, <int32_t>i, s, False)
        emit_account(c, <int32_t>i, s)


# ------------------------------------------------------------------ thread loops

cdef void strategy_loop(Core *c, RingState *market) noexcept nogil:
    """Pop the market ring until the feed is done and the ring is drained."""
    cdef Event buf[BATCH]
    cdef int64_t stamps[BATCH]
    cdef int64_t n, i, idle_since = 0
    cdef int done
    while True:
        n = ring_pop_n_stamped(market, buf, stamps, BATCH)
        if n == 0:
            done = ORP_load_acquire(&c.ctl.feed_done)
            n = ring_pop_n_stamped(market, buf, stamps, BATCH)    # pushed before `done`?
            if n == 0:
                if done:
                    break
                if idle_since == 0:
                    idle_since = ORP_now_ns()
                    if c.stats_at != c.c.events:
                        publish_stats(c)
                if ORP_now_ns() - idle_since < c.spin_ns:
                    ORP_pause()
                else:
                    bump(&c.c.idle_sleeps, 1)
                    ORP_sleep_ns(IDLE_SLEEP_NS)
                continue
        idle_since = 0
        if c.measure and stamps[0] > 0:
            hist_add(&c.handoff, ORP_now_ns() - stamps[0])
        for i in range(n):
            core_step(c, &buf[i], stamps[i])
            if c.failed:
                publish_stats(c)
                ORP_store_release(&c.ctl.strategy_done, 1)
                return
        if c.c.events - c.stats_at >= STATS_EVERY:
            publish_stats(c)
    final_accounts(c)
    publish_stats(c)
    ORP_store_release(&c.ctl.strategy_done, 1)


cdef int64_t push_received(Core *c, RingState *market, const Event *evs, int64_t n,
                           int64_t stamp) noexcept nogil:
    """Live feed thread: push the records of one received frame (whole messages), stamped with
    the frame's receive time. A full ring makes the feed wait (counted): the socket backs up
    and the venue's data waits in the kernel, nothing is dropped. Only if the strategy has
    ended (it failed) are the records given up, counted as feed_lost."""
    cdef int64_t i = 0, k
    while i < n:
        k = ring_push_n_stamped(market, &evs[i], n - i, stamp)
        if k == 0:
            if ORP_load_acquire(&c.ctl.strategy_done):
                bump(&c.c.feed_lost, n - i)
                break
            bump(&c.c.market_waits, 1)
            ORP_sleep_ns(FEED_WAIT_NS)
            continue
        i += k
    bump(&c.c.fed, i)
    if c.measure and i:
        hist_add(&c.decode, ORP_now_ns() - stamp)
    return i


cdef inline int64_t message_end(const Event *evs, int64_t i, int64_t n) noexcept nogil:
    """Index after the record that ends the message starting at i (F_LAST or a non-book record)."""
    while i < n:
        if evs[i].flags & F_LAST or not (evs[i].flags & F_BOOK_KINDS):
            return i + 1
        i += 1
    return n


cdef inline void shift_copy(Event *dst, const Event *src, int64_t n, int64_t dt, int64_t ds) noexcept nogil:
    """Copies of records moved dt ns later and ds further in venue sequence (0 stays 0:
    it means absent, e.g. the exchange time of a REST snapshot)."""
    cdef int64_t i
    for i in range(n):
        dst[i] = src[i]
        if dst[i].ts_exch != 0:
            dst[i].ts_exch += dt
        if dst[i].ts_local != 0:
            dst[i].ts_local += dt
        if dst[i].seq != 0:
            dst[i].seq += ds
        if dst[i].seq_first != 0:
            dst[i].seq_first += ds
        if dst[i].seq_prev != 0:
            dst[i].seq_prev += ds


cdef int64_t feed_loop(Core *c, RingState *market, const Event *evs, int64_t n, double speed,
                       int64_t repeat, int64_t span_t, int64_t span_s) noexcept nogil:
    """Push `evs` message by message, stamped with the push time; speed > 0 paces them to
    recorded local time divided by speed. Sleeps (never spins) while the ring is full.
    repeat > 1 replays the array again, copy k shifted by k*span_t ns and k*span_s in venue
    sequence (orpflow.engine.repeat_events without materialising the copies)."""
    cdef Event buf[BATCH]
    cdef int64_t i, j, k, m, rep, pushed = 0, wall0 = ORP_now_ns(), due, now, dt, ds
    cdef int64_t t_first = evs[0].ts_local if n else 0
    cdef const Event *src
    for rep in range(repeat):
        dt = rep * span_t
        ds = rep * span_s
        i = 0
        while i < n and not ORP_load_acquire(&c.ctl.feed_stop):
            j = message_end(evs, i, n)
            if speed > 0:
                due = wall0 + <int64_t>((evs[i].ts_local + dt - t_first) / speed)
                now = ORP_now_ns()
                while now < due and not ORP_load_relaxed(&c.ctl.feed_stop):
                    ORP_sleep_ns(due - now if due - now < 1000000 else 1000000)
                    now = ORP_now_ns()
            while i < j:
                m = j - i
                src = &evs[i]
                if rep:
                    if m > BATCH:
                        m = BATCH
                    shift_copy(buf, src, m, dt, ds)
                    src = buf
                k = ring_push_n_stamped(market, src, m, ORP_now_ns())
                if k == 0:
                    if ORP_load_relaxed(&c.ctl.feed_stop):
                        break               # e.g. the strategy failed: nobody pops any more
                    bump(&c.c.market_waits, 1)
                    ORP_sleep_ns(FEED_WAIT_NS)
                    continue
                i += k
                pushed += k
                bump(&c.c.fed, k)
        if ORP_load_acquire(&c.ctl.feed_stop):
            break
    ORP_store_release(&c.ctl.feed_done, 1)
    return pushed


cdef void run_events(Core *c, const Event *evs, int64_t n) noexcept nogil:
    """Backtest: every record through core_step in the caller's thread, until one fails."""
    cdef int64_t i
    for i in range(n):
        core_step(c, &evs[i], 0)
        if c.failed:
            break
