"""Strategies: the engine's callbacks and the context they act through (nogil).

The engine calls a CStrategy per instrument: ``on_start`` once per run, ``on_book`` after each
complete book message and ``on_trade`` after each trade that made a feature row, ``on_order``
for every state change of its orders and ``on_fill`` for every fill (after the callback that
caused them returns, never nested), ``on_timer`` for the event-time timers it set, and
``on_stop`` at the end. The context functions send orders through the instrument's risk gate
and paper broker, exactly like every other order of the engine.

``PythonStrategy`` runs an ``orpflow.Strategy`` (plain Python methods) behind the same
callbacks, taking the GIL per callback, and only for the callbacks it overrides.
"""
from libc.stdint cimport int32_t, int64_t
from libc.stdlib cimport realloc, free
from libc.string cimport memmove, memset

cimport cython

from orpflow._core.types cimport (
    Event, F_BUY, F_SELL, R_OK, R_ORDER_BAD_QTY, R_ORDER_BAD_PRICE, R_ORDER_BAD_EXPIRY,
    R_ORDER_BAD_TYPE, debug_count_alloc, i128_to_py,
)
from orpflow._core.book cimport Book, Level, book_top, side_best
from orpflow._core.broker cimport (
    Broker, SimOrder, SimFill, ExecState, ExecutionSim, order_at, exec_submit, exec_modify,
    exec_send, OS_PENDING, OS_ACCEPTED, OS_PARTIALLY_FILLED, OT_MARKET, OT_LIMIT, OT_POST_ONLY,
    TIF_GTC, TIF_IOC, TIF_FOK, TIF_GTD, RQ_CANCEL, ORDER_CHUNK_SHIFT,
)
from orpflow._core.ring cimport ORP_now_ns
from orpflow._core.features cimport FeatureState, FeatureVector, G_ALL, G_EXTENSION

from orpflow import strategy_types as _types

cdef int64_t NEVER = 0x7FFFFFFFFFFFFFFF

# Bits of PythonStrategy.wants: which callbacks the Python object overrides.
cdef enum:
    W_START = 1
    W_BOOK = 2
    W_TRADE = 4
    W_ORDER = 8
    W_FILL = 16
    W_TIMER = 32
    W_STOP = 64


# ------------------------------------------------------------------ engine side

cdef int ctx_init(StrategyContext *ctx) noexcept nogil:
    """A new run: no timers, no rows; next_timer below any time, so the engine's one compare
    per record also catches the run's first record (on_start). Open orders stay open."""
    ctx.n_timers = 0
    ctx.next_timer = -NEVER - 1
    ctx.started = 0
    ctx.rows = 0
    return 0


cdef void ctx_rearm(StrategyContext *ctx) noexcept nogil:
    timers_min(ctx)


cdef void ctx_free(StrategyContext *ctx) noexcept nogil:
    if ctx.open != NULL:
        free(ctx.open)
        debug_count_alloc(-1)
        ctx.open = NULL
    ctx.open_cap = 0
    ctx.n_open = 0


cdef int open_add(StrategyContext *ctx, int64_t order_id) noexcept nogil:
    cdef void *q
    cdef int64_t cap
    if ctx.n_open == ctx.open_cap:
        cap = ctx.open_cap * 2 if ctx.open_cap else 64
        q = realloc(ctx.open, cap * sizeof(int64_t))
        if q == NULL:
            ctx.failed = 1
            return -1
        if ctx.open == NULL:
            debug_count_alloc(1)
        ctx.open = <int64_t *>q
        ctx.open_cap = cap
    ctx.open[ctx.n_open] = order_id
    ctx.n_open += 1
    return 0


cdef void ctx_closed(StrategyContext *ctx, int64_t order_id) noexcept nogil:
    """Drop a final order from the open list, keeping send order (the list is short: a
    strategy's resting orders, searched from the oldest, which usually end first)."""
    cdef int64_t i
    for i in range(ctx.n_open):
        if ctx.open[i] == order_id:
            memmove(&ctx.open[i], &ctx.open[i + 1], (ctx.n_open - i - 1) * sizeof(int64_t))
            ctx.n_open -= 1
            return


cdef void timers_min(StrategyContext *ctx) noexcept nogil:
    cdef int64_t i, m = NEVER
    for i in range(ctx.n_timers):
        if ctx.timer_at[i] < m:
            m = ctx.timer_at[i]
    ctx.next_timer = m


cdef int64_t ctx_pop_timer(StrategyContext *ctx, int64_t t, int64_t *due) noexcept nogil:
    cdef int64_t i, k = -1, tid
    for i in range(ctx.n_timers):
        if ctx.timer_at[i] <= t and (k < 0 or ctx.timer_at[i] < ctx.timer_at[k]
                                     or (ctx.timer_at[i] == ctx.timer_at[k]
                                         and ctx.timer_id[i] < ctx.timer_id[k])):
            k = i
    if k < 0:
        return -1
    tid = ctx.timer_id[k]
    due[0] = ctx.timer_at[k]
    ctx.n_timers -= 1
    ctx.timer_at[k] = ctx.timer_at[ctx.n_timers]
    ctx.timer_id[k] = ctx.timer_id[ctx.n_timers]
    timers_min(ctx)
    return tid


# ------------------------------------------------------------------ the context

cdef inline bint pending_or_open(const SimOrder *o) noexcept nogil:
    return o.status == OS_PENDING or o.status == OS_ACCEPTED or o.status == OS_PARTIALLY_FILLED


cdef const SimOrder *ctx_order(StrategyContext *ctx, int64_t order_id) noexcept nogil:
    cdef const Broker *b = ctx.x.b
    if not ((b.live_chunk << ORDER_CHUNK_SHIFT) < order_id <= b.n_orders):
        return NULL                     # unknown, or trimmed (trimmed orders were final)
    return order_at(b, order_id - 1)


cdef int32_t order_args(int32_t side, int32_t kind, int32_t tif, int64_t price, int64_t qty,
                        int64_t expire_at, int64_t lot) noexcept nogil:
    """The reason a compiled strategy's order is malformed, or R_OK (the Python context
    raises for these instead, like ExecutionSim.submit)."""
    if side != 1 and side != -1:
        return R_ORDER_BAD_TYPE
    if kind == OT_MARKET:
        if tif != TIF_IOC and tif != TIF_FOK:
            return R_ORDER_BAD_TYPE
    elif kind == OT_LIMIT:
        if tif < TIF_GTC or tif > TIF_GTD:
            return R_ORDER_BAD_TYPE
    elif kind == OT_POST_ONLY:
        if tif != TIF_GTC and tif != TIF_GTD:
            return R_ORDER_BAD_TYPE
    else:
        return R_ORDER_BAD_TYPE
    if qty <= 0 or qty % lot:
        return R_ORDER_BAD_QTY
    if (kind == OT_MARKET and price != 0) or (kind != OT_MARKET and price <= 0):
        return R_ORDER_BAD_PRICE
    if (tif == TIF_GTD) != (expire_at != 0):
        return R_ORDER_BAD_EXPIRY
    return R_OK


cdef int64_t ctx_send(StrategyContext *ctx, int32_t side, int32_t kind, int32_t tif,
                      int64_t price, int64_t qty, int64_t expire_at, int64_t client_id,
                      int32_t reason) noexcept nogil:
    cdef int64_t r = exec_submit(ctx.x, side, kind, tif, price, qty, client_id, expire_at,
                                 ctx.x.now, reason)
    if r > 0:
        open_add(ctx, r)
    if r != 0:
        ctx.sent(ctx, r)
    return r


cdef int64_t ctx_submit(StrategyContext *ctx, int32_t side, int32_t kind, int32_t tif,
                        int64_t price, int64_t qty, int64_t expire_at,
                        int64_t client_id) noexcept nogil:
    cdef int32_t bad = order_args(side, kind, tif, price, qty, expire_at, ctx.x.b.lot)
    if bad != R_OK:
        # recorded as a rejected order like any other (with fields the broker can hold)
        if side != 1 and side != -1:
            side = 1
        if kind < OT_MARKET or kind > OT_POST_ONLY:
            kind = OT_LIMIT
        if tif < TIF_GTC or tif > TIF_GTD:
            tif = TIF_GTC
    return ctx_send(ctx, side, kind, tif, price, qty, expire_at, client_id, bad)


cdef int ctx_cancel(StrategyContext *ctx, int64_t order_id) noexcept nogil:
    cdef const SimOrder *o = ctx_order(ctx, order_id)
    if o == NULL or not pending_or_open(o):
        return 0
    exec_send(ctx.x, RQ_CANCEL, order_id - 1, ctx.x.now, 0, 0)
    return 1


cdef int ctx_modify(StrategyContext *ctx, int64_t order_id, int64_t price, int64_t qty) noexcept nogil:
    cdef const SimOrder *o = ctx_order(ctx, order_id)
    if o == NULL or not pending_or_open(o) or o.kind == OT_MARKET:
        return -1
    if price <= 0:
        return R_ORDER_BAD_PRICE
    if qty <= 0 or qty % ctx.x.b.lot:
        return R_ORDER_BAD_QTY
    return exec_modify(ctx.x, order_id - 1, price, qty, ctx.x.now)


cdef int64_t ctx_cancel_all(StrategyContext *ctx, int32_t side) noexcept nogil:
    cdef int64_t i, n = 0
    cdef const SimOrder *o
    for i in range(ctx.n_open):
        o = ctx_order(ctx, ctx.open[i])
        if o != NULL and (side == 0 or o.side == side):
            n += ctx_cancel(ctx, ctx.open[i])
    return n


cdef int ctx_set_timer(StrategyContext *ctx, int64_t at, int64_t timer_id) noexcept nogil:
    cdef int64_t i
    for i in range(ctx.n_timers):
        if ctx.timer_id[i] == timer_id:
            ctx.timer_at[i] = at
            timers_min(ctx)
            return 0
    if ctx.n_timers == MAX_TIMERS:
        return -1
    ctx.timer_at[ctx.n_timers] = at
    ctx.timer_id[ctx.n_timers] = timer_id
    ctx.n_timers += 1
    if at < ctx.next_timer:
        ctx.next_timer = at
    return 0


cdef int ctx_cancel_timer(StrategyContext *ctx, int64_t timer_id) noexcept nogil:
    cdef int64_t i
    for i in range(ctx.n_timers):
        if ctx.timer_id[i] == timer_id:
            ctx.n_timers -= 1
            ctx.timer_at[i] = ctx.timer_at[ctx.n_timers]
            ctx.timer_id[i] = ctx.timer_id[ctx.n_timers]
            timers_min(ctx)
            return 1
    return 0


cdef int64_t ctx_top(StrategyContext *ctx, int32_t side, int64_t n, int64_t *prices,
                     int64_t *qtys) noexcept nogil:
    cdef const Level *lv
    cdef int64_t k, i
    if n > TOP_MAX:
        n = TOP_MAX
    if n <= 0:
        return 0
    k = book_top(ctx.x.book, side < 0, n, &lv)
    for i in range(k):
        prices[i] = lv[i].key if side > 0 else -lv[i].key
        qtys[i] = lv[i].qty
    return k


cdef int64_t ctx_best_bid(StrategyContext *ctx) noexcept nogil:
    cdef const Level *lv = side_best(&ctx.x.book.bid)
    return lv.key if lv != NULL else 0


cdef int64_t ctx_best_ask(StrategyContext *ctx) noexcept nogil:
    cdef const Level *lv = side_best(&ctx.x.book.ask)
    return -lv.key if lv != NULL else 0


# ------------------------------------------------------------------ the base class

@cython.auto_pickle(False)
cdef class CStrategy:
    """Base class of strategies; subclass it in Cython for a nogil strategy.

    Override any of ``cdef int on_start(self, StrategyContext *ctx) noexcept nogil`` (once per
    run), ``on_book(ctx)`` (after each complete book message that made a feature row),
    ``on_trade(ctx, const Event *e)``, ``on_order(ctx, const SimOrder *o)`` (a copy of the order
    at each state change), ``on_fill(ctx, const SimFill *f)``, ``on_timer(ctx, int64_t
    timer_id)``, ``on_stop(ctx)``; return 0, or -1 to stop the run with an error. Act through
    the ``ctx_*`` functions of orpflow._core.strategy. Override ``feature_reads()`` if the
    strategy reads only some feature groups: the engine then computes the others after it.
    """

    cdef int on_start(self, StrategyContext *ctx) noexcept nogil:
        return 0

    cdef int on_book(self, StrategyContext *ctx) noexcept nogil:
        return 0

    cdef int on_trade(self, StrategyContext *ctx, const Event *e) noexcept nogil:
        return 0

    cdef int on_order(self, StrategyContext *ctx, const SimOrder *o) noexcept nogil:
        return 0

    cdef int on_fill(self, StrategyContext *ctx, const SimFill *f) noexcept nogil:
        return 0

    cdef int on_timer(self, StrategyContext *ctx, int64_t timer_id) noexcept nogil:
        return 0

    cdef int on_stop(self, StrategyContext *ctx) noexcept nogil:
        return 0

    def feature_reads(self):
        """The feature groups the callbacks read (bits of FEATURE_GROUPS, | READS_EXTENSION);
        the engine computes the others after on_book / on_trade. Default: everything."""
        return G_ALL | G_EXTENSION

    def _attach(self, sim, names):
        """Called by the engine when it adds this strategy for `sim`'s instrument."""

    def _restore_position(self, int64_t position):
        """A restarted run starts from this position (the signal strategy's rules use it)."""

    def _failure(self):
        """The exception to raise when a callback returned -1."""
        return RuntimeError(f"strategy {type(self).__name__} stopped the run (a callback returned -1)")


# ------------------------------------------------------------------ Python strategies

cdef object order_update(const SimOrder *o):
    return _types.OrderUpdate(o.id, o.client_id, o.side, _types.ORDER_TYPES[o.kind],
                              _types.TIFS[o.tif], _types.STATUSES[o.status], o.reason, o.price, o.qty, o.filled, o.ahead,
                       o.ts_request, o.ts_done, o.expire_at)


cdef object fill_update(const SimFill *f):
    return _types.FillUpdate(f.order_id, f.client_id, f.side, f.price, f.qty,
                      "taker" if f.liquidity else "maker", f.position, f.ts_exch, f.ts_local)


@cython.auto_pickle(False)
cdef class Context:
    """What a Python strategy acts through (the same object on every callback of a run).

    Prices are integer ticks, sizes integer size units (``ctx.instrument`` converts), times ns.
    Valid only inside a callback.
    """
    cdef StrategyContext *c
    cdef readonly object instrument
    cdef object sim
    cdef tuple names

    cdef StrategyContext *_live(self) except NULL:
        if self.c == NULL:
            raise RuntimeError("the context is only valid inside a strategy callback")
        return self.c

    def submit(self, side, int64_t qty_units, int64_t price_ticks=0, type="limit", tif=None,
               int64_t expire_at=0, int64_t client_id=0):
        """Send an order: side +1/-1 or "buy"/"sell"; type "market", "limit", "post_only",
        "ioc" or "fok"; tif "GTC", "IOC", "FOK" or "GTD" (GTD needs expire_at, venue ns).
        Returns the order id, or -reason if it was rejected (an on_order "rejected" follows):
        by the risk gate, or a size, price or expiry off the grid (ORDER_BAD_QTY, _PRICE,
        _EXPIRY). Unknown names and a type/tif pair the venue never accepts raise ValueError."""
        from orpflow.orders import _SIDES, _enum_arg, parse_type_tif, OrderType
        cdef StrategyContext *c = self._live()
        s = int(_enum_arg("side", side, _SIDES))
        kind, t = parse_type_tif(type, tif)
        if kind == OrderType.MARKET and price_ticks != 0:
            raise ValueError("market orders take no price")
        r = ctx_submit(c, s, int(kind), int(t), price_ticks, qty_units, expire_at, client_id)
        if r == 0:
            raise MemoryError("the broker ran out of memory")
        return r

    def cancel(self, int64_t order_id):
        """Send a cancel; False if the order is unknown or already final."""
        return ctx_cancel(self._live(), order_id) == 1

    def modify(self, int64_t order_id, int64_t price_ticks, int64_t qty_units):
        """Send a modify (price and total size): 0 sent, a reason code if the risk gate
        refused it, -1 if the order is unknown, final or a market order."""
        return ctx_modify(self._live(), order_id, price_ticks, qty_units)

    def cancel_all(self, side=0):
        """Cancel every open order of side (+1, -1; 0 both): the number of cancels sent."""
        from orpflow.orders import _SIDES, _enum_arg
        cdef int32_t s = 0 if side == 0 else int(_enum_arg("side", side, _SIDES))
        return ctx_cancel_all(self._live(), s)

    def set_timer(self, int64_t at_ns, int64_t timer_id=0):
        """on_timer(ctx, timer_id) once the local clock reaches at_ns (an id set again moves)."""
        if ctx_set_timer(self._live(), at_ns, timer_id) != 0:
            raise ValueError(f"at most {MAX_TIMERS} timers per instrument")

    def cancel_timer(self, int64_t timer_id):
        return ctx_cancel_timer(self._live(), timer_id) == 1

    @property
    def position(self):
        return ctx_position(self._live())

    @property
    def now(self):
        return ctx_now(self._live())

    @property
    def venue_time(self):
        return self._live().x.b.clock

    @property
    def rows(self):
        return self._live().rows

    @property
    def best_bid(self):
        return ctx_best_bid(self._live())

    @property
    def best_ask(self):
        return ctx_best_ask(self._live())

    def top(self, int64_t n=5):
        """(bids, asks): up to n (<= 64) levels each, best first, as (price_ticks, qty_units)."""
        cdef StrategyContext *c = self._live()
        cdef int64_t p[TOP_MAX]
        cdef int64_t q[TOP_MAX]
        cdef int64_t k
        out = []
        for side in (1, -1):
            k = ctx_top(c, side, n, p, q)
            out.append([(p[i], q[i]) for i in range(k)])
        return out[0], out[1]

    def open_orders(self):
        """The orders sent and not yet reported final (OrderUpdate, current state), in send order."""
        cdef StrategyContext *c = self._live()
        cdef const SimOrder *o
        out = []
        for i in range(c.n_open):
            o = ctx_order(c, c.open[i])
            if o != NULL:
                out.append(order_update(o))
        return out

    def order(self, int64_t order_id):
        """The order's current state (OrderUpdate), or None if unknown."""
        cdef const SimOrder *o = ctx_order(self._live(), order_id)
        return None if o == NULL else order_update(o)

    def features(self):
        """The latest feature row: {column: value} plus ts_exch, seq, kind, book_ok."""
        cdef const FeatureVector *fv = ctx_features(self._live())
        cdef const double *x = &fv.mid
        row = {"ts_exch": fv.ts_exch, "seq": fv.seq, "kind": fv.kind, "book_ok": fv.book_ok}
        for i, name in enumerate(self.names):
            row[name] = x[i]
        return row

    def feature(self, str name):
        cdef const FeatureVector *fv = ctx_features(self._live())
        try:
            i = self.names.index(name)
        except ValueError:
            raise KeyError(f"no feature column {name!r}") from None
        return (&fv.mid)[i]

    def account(self):
        """Cash, position, realised/unrealised PnL, fees, equity (exact Decimals), as
        ExecutionSim.account()."""
        self._live()
        return self.sim.account()


cdef int call_py(PythonStrategy self, StrategyContext *ctx, object fn, tuple args) noexcept:
    """One Python callback (GIL held): the context is live only during it."""
    cdef Context c = <Context>self.ctx_obj
    c.c = ctx
    try:
        fn(*args)
    except BaseException as exc:
        self.error = exc
        return -1
    finally:
        c.c = NULL
    return 0


@cython.auto_pickle(False)
cdef class PythonStrategy(CStrategy):
    """Runs an ``orpflow.Strategy`` (Python methods) as a CStrategy: the GIL is taken for each
    callback the object overrides, never for the others. An exception stops the run and is
    re-raised by the backtest / Engine with its traceback."""

    def __init__(self, obj):
        from orpflow.strategy import Strategy
        if not isinstance(obj, Strategy):
            raise TypeError(f"expected an orpflow.Strategy, got {type(obj).__name__}")
        self.obj = obj
        self.error = None
        base = Strategy
        cls = type(obj)
        for bit, name in ((W_START, "on_start"), (W_BOOK, "on_book"), (W_TRADE, "on_trade"),
                          (W_ORDER, "on_order"), (W_FILL, "on_fill"), (W_TIMER, "on_timer"),
                          (W_STOP, "on_stop")):
            if getattr(cls, name) is not getattr(base, name):
                self.wants |= bit

    @property
    def strategy(self):
        return self.obj

    def feature_reads(self):
        return self.obj.feature_reads()

    def _attach(self, sim, names):
        cdef Context ctx = Context.__new__(Context)
        ctx.instrument = (<ExecutionSim?>sim).instrument
        ctx.sim = sim
        ctx.names = tuple(names)
        self.ctx_obj = ctx

    def _failure(self):
        err = self.error
        self.error = None
        return err if err is not None else RuntimeError("strategy failed")

    cdef int on_start(self, StrategyContext *ctx) noexcept nogil:
        if not self.wants & W_START:
            return 0
        with gil:
            return call_py(self, ctx, self.obj.on_start, (self.ctx_obj,))

    cdef int on_book(self, StrategyContext *ctx) noexcept nogil:
        if not self.wants & W_BOOK:
            return 0
        with gil:
            return call_py(self, ctx, self.obj.on_book, (self.ctx_obj,))

    cdef int on_trade(self, StrategyContext *ctx, const Event *e) noexcept nogil:
        cdef int side
        if not self.wants & W_TRADE:
            return 0
        with gil:
            side = 1 if (e.flags & (F_BUY | F_SELL)) == F_BUY else (
                -1 if (e.flags & (F_BUY | F_SELL)) == F_SELL else 0)
            return call_py(self, ctx, self.obj.on_trade,
                           (self.ctx_obj, _types.Trade(e.ts_exch, e.ts_local, e.price, e.qty, side)))

    cdef int on_order(self, StrategyContext *ctx, const SimOrder *o) noexcept nogil:
        if not self.wants & W_ORDER:
            return 0
        with gil:
            return call_py(self, ctx, self.obj.on_order, (self.ctx_obj, order_update(o)))

    cdef int on_fill(self, StrategyContext *ctx, const SimFill *f) noexcept nogil:
        if not self.wants & W_FILL:
            return 0
        with gil:
            return call_py(self, ctx, self.obj.on_fill, (self.ctx_obj, fill_update(f)))

    cdef int on_timer(self, StrategyContext *ctx, int64_t timer_id) noexcept nogil:
        if not self.wants & W_TIMER:
            return 0
        with gil:
            return call_py(self, ctx, self.obj.on_timer, (self.ctx_obj, timer_id))

    cdef int on_stop(self, StrategyContext *ctx) noexcept nogil:
        if not self.wants & W_STOP:
            return 0
        with gil:
            return call_py(self, ctx, self.obj.on_stop, (self.ctx_obj,))


# ------------------------------------------------------------------ benchmark kernel

def _bench_callback(CStrategy strategy not None, ExecutionSim sim not None, int64_t n):
    """ns per on_book call through the strategy's vtable, n calls in a nogil loop (orpflow
    bench: a compiled no-op strategy's cost per callback; a Python strategy's with the GIL)."""
    cdef StrategyContext ctx
    cdef int64_t i, t0, t1
    cdef int r = 0
    memset(&ctx, 0, sizeof(ctx))
    ctx.x = &sim.x
    strategy._attach(sim, ())
    with nogil:
        t0 = ORP_now_ns()
        for i in range(n):
            r |= strategy.on_book(&ctx)
        t1 = ORP_now_ns()
    if r:
        raise strategy._failure()
    return (t1 - t0) / n
