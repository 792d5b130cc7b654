"""The compiled engine's Python surface: EngineCore (orpflow.Engine and orpflow.backtest
drive it) over the per-event loop of orpflow/_core/loop.pyx (docs/engine.md).

EngineCore owns the Core state (every instrument's slot: book, broker, risk, features,
strategy), runs the loop over an array in the caller's thread (``run_array``: backtest) or
over the `market` ring in the strategy thread (``run_ring``), feeds that ring (``feed``,
``push_received``), and gives counters, per-instrument stats and latency histograms to any
thread.
"""
from cpython.mem cimport PyMem_RawCalloc, PyMem_RawFree
from libc.stdint cimport int32_t, int64_t, uint32_t, uint64_t, uintptr_t
from libc.stdlib cimport free
from libc.string cimport memcpy, memset

cimport cython
import numpy as np

from orpflow._core.types cimport (
    Event, R_OK, orp_i128, i128_from_py, debug_count_alloc, event_ptr, array_bytes,
)
from orpflow._core.ring cimport (
    EventRing, ring_pop_n, ring_size, ring_room, ORP_load_relaxed, ORP_store_release,
)
from orpflow._core.broker cimport (
    ExecutionSim, Account, OT_MARKET, OT_LIMIT, OT_POST_ONLY, TIF_GTC, TIF_IOC, TIF_FOK, TIF_GTD,
)
from orpflow._core.features cimport FeatureState, FeatureEngine, features_late, G_ALL, G_BOOK, G_EXTENSION
from orpflow._core.strategy cimport CStrategy, ctx_init, ctx_free
from orpflow._core.convert cimport EventBuffer
from orpflow._core.snapshot cimport MarketSnapshot
from orpflow._core.risk cimport BRK_COUNT
from orpflow._core.loop cimport (
    run_events, final_accounts, publish_stats, strategy_loop, feed_loop, push_received, on_sent,
    on_record, hist_bucket,
)

cdef extern from "orp_atomic.h":
    int64_t ORP_seqlock_read(const int64_t *seq, int64_t *dst, const int64_t *src, size_t words) noexcept nogil


# ------------------------------------------------------------------ Python API

OUT_DTYPE = np.dtype([("kind", "<i4"), ("slot", "<i4"), ("event_no", "<i8"), ("ts_exch", "<i8"),
                      ("ts_local", "<i8"), ("v", "<i8", (OUT_FIELDS,))])
#: The "feature" histogram times one feature row in this many (the rows whose index is a multiple).
FEATURE_SAMPLE_EVERY = FEATURE_SAMPLE

COUNTER_NAMES = ("events", "rows", "signals", "orders", "rejected", "fills", "out_records",
                 "out_waits", "unknown", "idle_sleeps", "market_waits", "fed", "out_lost", "breaker_trips",
                 "feed_lost")


@cython.auto_pickle(False)
cdef class EngineCore:
    """The compiled engine over one or more instruments (orpflow.Engine and orpflow.backtest
    drive it; see orpflow/engine.py). Each instrument brings an ExecutionSim (book, broker,
    risk), a FeatureEngine on that same book, a SignalGenerator and a MarketSnapshot."""
    cdef Core *c
    cdef void *_block
    cdef list _keep               # the Python objects the slots point into
    cdef readonly int64_t n_slots

    def __cinit__(self):
        cdef size_t nbytes = sizeof(Core) + 64
        self._block = PyMem_RawCalloc(1, nbytes)     # zero pages on demand: unused slots cost no RSS
        if self._block == NULL:
            raise MemoryError()
        debug_count_alloc(1)
        self.c = <Core *>((<uintptr_t>self._block + 63) & ~(<uintptr_t>63))
        self.c.measure = 1
        self.c.spin_ns = 1000000
        self._keep = []

    def __dealloc__(self):
        if self.c != NULL:
            for i in range(self.c.n_slots):
                ctx_free(&self.c.slots[i].ctx)
        if self.c != NULL and self.c.buf != NULL:
            free(self.c.buf)
            debug_count_alloc(-1)
        if self._block != NULL:
            PyMem_RawFree(self._block)
            debug_count_alloc(-1)
            self._block = NULL
            self.c = NULL

    def add(self, ExecutionSim sim not None, FeatureEngine features not None,
            CStrategy strategy not None, MarketSnapshot snapshot not None,
            dict exec_params not None):
        """Add one instrument traded by `strategy`; returns its slot index."""
        if self.n_slots == MAX_SLOTS:
            raise ValueError(f"at most {MAX_SLOTS} instruments per engine")
        if features.book is not sim.book:
            raise ValueError("the FeatureEngine must run on the ExecutionSim's book")
        inst = sim.instrument.id
        for i in range(self.n_slots):
            if self.c.slots[i].instrument == inst:
                raise ValueError(f"two instruments with id {inst}: give each a distinct Instrument.id")
            if self._keep[i][2] is strategy:
                raise ValueError("one strategy object per instrument: give each its own instance")
        strategy._attach(sim, features.dtype.names[4:] if features.dtype is not None else ())
        cdef Slot *s = &self.c.slots[self.n_slots]
        memset(s, 0, sizeof(Slot))
        s.x = &sim.x
        s.st = &features.st
        s.strategy = <void *>strategy
        s.extension = <void *>features.extension if features.has_extension else NULL
        s.snap = snapshot.snap
        s.instrument = inst
        s.ctx.x = &sim.x
        s.ctx.st = &features.st
        s.ctx.engine = <void *>self.c
        s.ctx.sent = on_sent
        s.ctx.record = on_record
        s.ctx.event_no = &self.c.c.events
        s.ctx.slot = <int32_t>self.n_slots
        ctx_init(&s.ctx)
        e = exec_params
        s.ep.order_kind = OT_LIMIT if e["order_type"] == "ioc" else OT_MARKET
        s.ep.slippage_ticks = e["slippage_ticks"]
        s.ep.warmup_rows = e["warmup_rows"]
        s.ep.account_every_ns = e["account_every_ns"]
        s.ep.keep_history = 1 if e["keep_history"] else 0
        s.sync_key[0] = -1
        s.trips_seen = sim.x.risk.n_trips           # trips before the engine are not its news
        for k in range(BRK_COUNT):
            s.trips_out[k] = sim.x.risk.trips[k]
        sim.x.b.journal_on = 1
        self._order_features(s, features, strategy.feature_reads())
        self._keep.append((sim, features, strategy, snapshot))
        self.n_slots += 1
        self.c.n_slots = self.n_slots
        return self.n_slots - 1

    def strategy(self, int slot):
        """The strategy trading `slot`."""
        self._slot(slot)
        return self._keep[slot][2]

    cdef void _order_features(self, Slot *s, FeatureEngine features, int reads):
        """Which feature groups wait until after the order: those the strategy does not read.
        The book group never waits (the position rules size with mid); an extension whose
        columns the strategy reads may read any built-in column, so then nothing waits."""
        cdef int32_t first = (reads & G_ALL) | G_BOOK
        if features.has_extension and reads & G_EXTENSION:
            first = G_ALL
        s.late = features_late(&features.st.p, first)
        s.ext_late = 1 if features.has_extension and not (reads & G_EXTENSION) else 0

    def feature_order(self, int slot):
        """{"first": groups computed before the decision, "after": groups computed after the
        order, "extension": "first", "after" or None}."""
        from orpflow._core.features import FEATURE_GROUPS
        self._slot(slot)
        cdef Slot *s = &self.c.slots[slot]
        groups = s.st.p.groups
        ext = None if s.extension == NULL else ("after" if s.ext_late else "first")
        return {"first": [k for k, b in FEATURE_GROUPS.items() if groups & b and not s.late & b],
                "after": [k for k, b in FEATURE_GROUPS.items() if s.late & b], "extension": ext}

    def feature_row(self, int slot):
        """The raw FeatureVector of `slot`'s latest row (tests: both orders give the same)."""
        self._slot(slot)
        cdef FeatureState *st = self.c.slots[slot].st
        return bytes((<char *>&st.fv)[:sizeof(st.fv)])

    def set_feature_reads(self, int slot, int reads):
        """Debug: order the features of `slot` as if its strategy read `reads` (READS_ALL:
        everything before the decision, the order before this split existed)."""
        self._slot(slot)
        cdef Slot *s = &self.c.slots[slot]
        cdef FeatureEngine fe = self._keep[slot][1]
        self._order_features(s, fe, reads)

    def restore(self, int slot, *, cash, cost, realised, fees, int64_t position,
                int64_t round_trips=0, int64_t losing_round_trips=0):
        """Start from a persisted account (money in MoneyScale units, exact ints). The signal
        strategy's rules start from the same position (their holding period counts as lapsed)."""
        self._slot(slot)
        cdef Slot *s = &self.c.slots[slot]
        cdef Account *a = &s.x.b.acct
        a.cash = i128_from_py(cash)
        a.cost = i128_from_py(cost)
        a.realised = i128_from_py(realised)
        a.fees = i128_from_py(fees)
        a.position = position
        a.round_trips = round_trips
        a.losing_round_trips = losing_round_trips
        (<CStrategy>s.strategy)._restore_position(position)

    def add_restored_order(self, int slot, int side, str type, str tif, int64_t price_ticks,
                           int64_t qty_units, int64_t client_id, int64_t expire_at=0):
        """Queue an order the previous run left open; it is re-sent (risk-checked) at the
        first feature row after warm-up, with client_id = its old id."""
        self._slot(slot)
        cdef Slot *s = &self.c.slots[slot]
        kinds = {"market": OT_MARKET, "limit": OT_LIMIT, "post_only": OT_POST_ONLY}
        tifs = {"GTC": TIF_GTC, "IOC": TIF_IOC, "FOK": TIF_FOK, "GTD": TIF_GTD}
        if side not in (1, -1) or type not in kinds or tif not in tifs or qty_units <= 0:
            raise ValueError(f"cannot restore order {client_id}: {side} {type} {tif} qty {qty_units}")
        if s.n_restore == MAX_RESTORE:
            raise ValueError(f"more than {MAX_RESTORE} open orders to restore for one instrument")
        cdef RestoredOrder *o = &s.restore[s.n_restore]
        o.side = side
        o.kind = kinds[type]
        o.tif = tifs[tif]
        o.price = price_ticks
        o.qty = qty_units
        o.client_id = client_id
        o.expire_at = expire_at
        s.n_restore += 1

    def _slot(self, int slot):
        if not 0 <= slot < self.n_slots:
            raise IndexError(f"no slot {slot}")

    def _enter(self):
        done = []
        try:
            for sim, *_ in self._keep:
                (<ExecutionSim>sim).book._enter_write()
                done.append(sim)
        except BaseException:
            for sim in done:
                (<ExecutionSim>sim).book._exit_write()
            raise

    def _exit(self):
        for sim, *_ in self._keep:
            (<ExecutionSim>sim).book._exit_write()

    def _raise_failure(self):
        if self.c.failed == 2:
            self.c.failed = 0
            raise self._keep[self.c.failed_slot][2]._failure()
        if self.c.failed:
            raise MemoryError("the engine ran out of memory; its state is no longer complete")

    def run_array(self, events, bint final=True):
        """Backtest: every record of `events` through core_step in this thread (GIL released);
        the records go to the collection buffer (take_records). final: account records at the end."""
        cdef Event *evs = event_ptr(events, False)
        cdef int64_t n = events.shape[0], i
        cdef Core *c = self.c
        c.out = NULL
        self._enter()
        try:
            with nogil:
                run_events(c, evs, n)
                if final and not c.failed:
                    final_accounts(c)
                publish_stats(c)
        finally:
            self._exit()
        self._raise_failure()

    def final_accounts(self):
        """An account record per instrument (the end of a run fed in pieces)."""
        cdef Core *c = self.c
        c.out = NULL
        with nogil:
            final_accounts(c)
        self._raise_failure()

    def take_records(self):
        """The collected records (OUT_DTYPE), emptying the buffer."""
        cdef int64_t n = self.c.n_buf
        out = np.empty(n, OUT_DTYPE)
        if n:
            memcpy(<void *>array_bytes(out), self.c.buf, n * sizeof(OutRecord))
        self.c.n_buf = 0
        return out

    def run_ring(self, EventRing market not None, EventRing out not None):
        """Strategy thread: until the feed is done and `market` drained (GIL released)."""
        if out.capacity < 2 * OUT_SLOTS:
            raise ValueError("the out ring needs room for two records")
        cdef Core *c = self.c
        c.out = out.state
        self._enter()
        try:
            with nogil:
                strategy_loop(c, market.state)
        finally:
            self._exit()
            c.out = NULL
        self._raise_failure()

    def feed(self, EventRing market not None, events, double speed=0.0, int64_t repeat=1,
             int64_t span_t=0, int64_t span_s=0):
        """Feed thread: push `events` message by message (GIL released); speed > 0 paces
        them to recorded time / speed; repeat > 1 replays them shifted (see feed_loop).
        Returns how many records were pushed."""
        cdef Event *evs = event_ptr(events, False)
        cdef int64_t n = events.shape[0], pushed
        if repeat < 1:
            raise ValueError("repeat must be >= 1")
        with nogil:
            pushed = feed_loop(self.c, market.state, evs, n, speed, repeat, span_t, span_s)
        return pushed

    def push_received(self, EventRing market not None, EventBuffer buf not None, int64_t stamp):
        """Live feed thread: push `buf`'s records (one received frame, whole messages) stamped
        with its receive time (ns, monotonic clock), waiting while the ring is full; empties
        `buf`. Returns the records pushed (fewer only if the strategy has ended)."""
        cdef int64_t n = buf.n
        if ring_room(market.state, n) >= n:
            # room: ~100 ns with the GIL held. Releasing it here would let another Python
            # thread (persistence, metrics) take it, and the feed wait for it with a frame
            # in hand (measured: tens of us at the median for depth diffs)
            n = push_received(self.c, market.state, buf.p, n, stamp)
        else:
            with nogil:
                n = push_received(self.c, market.state, buf.p, n, stamp)
        buf.n = 0
        return n

    @property
    def wire_stamps(self):
        """True when the market ring's stamps are frame receive stamps (a live feed): the
        stamp-to-order time then goes to the "wire" histogram instead of "ingress"."""
        return bool(self.c.wire_stamps)

    @wire_stamps.setter
    def wire_stamps(self, value):
        self.c.wire_stamps = 1 if value else 0

    def pop_out(self, EventRing out not None, int64_t max_records=4096):
        """Persistence thread: up to max_records OutRecords from the out ring (GIL released)."""
        cdef int64_t avail = ring_size(out.state) // OUT_SLOTS, n
        if avail > max_records:
            avail = max_records
        arr = np.empty(avail, OUT_DTYPE)
        if avail == 0:
            return arr
        cdef Event *dst = <Event *>array_bytes(arr)
        with nogil:
            n = ring_pop_n(out.state, dst, avail * OUT_SLOTS)
        return arr[:n // OUT_SLOTS]

    def reset_control(self):
        """Before a new threaded run."""
        ORP_store_release(&self.c.ctl.feed_stop, 0)
        ORP_store_release(&self.c.ctl.feed_done, 0)
        ORP_store_release(&self.c.ctl.abort, 0)
        ORP_store_release(&self.c.ctl.strategy_done, 0)
        for i in range(self.n_slots):
            ctx_init(&self.c.slots[i].ctx)

    def stop_feed(self):
        ORP_store_release(&self.c.ctl.feed_stop, 1)

    def mark_feed_done(self):
        """For a feed that is not feed() (nothing more will be pushed)."""
        ORP_store_release(&self.c.ctl.feed_done, 1)

    def abort_out(self):
        """The out consumer is gone: the strategy stops waiting for room (and counts losses)."""
        ORP_store_release(&self.c.ctl.abort, 1)

    @property
    def spin_ns(self):
        """How long the idle strategy thread spins before it sleeps (ns)."""
        return self.c.spin_ns

    @spin_ns.setter
    def spin_ns(self, int64_t value):
        if value < 0:
            raise ValueError("spin_ns must be >= 0")
        self.c.spin_ns = value

    @property
    def measure(self):
        return bool(self.c.measure)

    @measure.setter
    def measure(self, value):
        self.c.measure = 1 if value else 0

    def counters(self):
        """The engine's counters (any thread; each value is whole, the set is not atomic)."""
        cdef int64_t *p = &self.c.c.events
        return {name: ORP_load_relaxed(&p[i]) for i, name in enumerate(COUNTER_NAMES)}

    def slot_stats(self, int slot):
        """One instrument's book, risk and venue counters as the strategy thread last published
        them (any thread, lock-free: when it went idle, every 4096 events, at the end):
        {"events": the engine's event count then, "book": book counters,
        "book_rejected_by_reason": {reason name: records}, "decisions": {code: n},
        "venue": {code: n}, "trips": {breaker: n}, "breakers": [tripped now]}."""
        from orpflow._core.types import REASONS
        from orpflow._core.risk import BREAKERS
        cdef SlotStats d
        if not 0 <= slot < self.n_slots:
            raise IndexError(f"no instrument slot {slot}")
        with nogil:
            ORP_seqlock_read(&self.c.slots[slot].stats.seq, <int64_t *>&d,
                             <const int64_t *>&self.c.slots[slot].stats.data, sizeof(SlotStats) // 8)
        return {
            "events": d.events,
            "book": d.book,
            "book_rejected_by_reason": {name: d.book_rejects[code] for name, code in REASONS.items()
                                        if code and d.book_rejects[code]},
            "decisions": {k: d.decisions[k] for k in range(R_COUNT) if d.decisions[k]},
            "venue": {k: d.venue[k] for k in range(R_COUNT) if d.venue[k]},
            "trips": {k: d.trips[i] for i, k in enumerate(BREAKERS) if d.trips[i]},
            "breakers": [k for k, bit in BREAKERS.items() if d.breakers & bit],
        }

    def histogram(self, name):
        """(counts per bucket, n, total ns, max ns) of "incore", "ingress", "feature",
        "handoff", "wire" or "decode"."""
        cdef Histogram *h
        if name == "incore":
            h = &self.c.incore
        elif name == "ingress":
            h = &self.c.ingress
        elif name == "feature":
            h = &self.c.feature
        elif name == "handoff":
            h = &self.c.handoff
        elif name == "wire":
            h = &self.c.wire
        elif name == "decode":
            h = &self.c.decode
        else:
            raise ValueError(f"no histogram {name!r}")
        counts = np.empty(HIST_BUCKETS, np.int64)
        cdef int64_t[::1] v = counts
        for i in range(HIST_BUCKETS):
            v[i] = ORP_load_relaxed(&h.counts[i])
        return counts, ORP_load_relaxed(&h.n), ORP_load_relaxed(&h.total), ORP_load_relaxed(&h.max)


def hist_bucket_bounds():
    """(lower, upper) inclusive ns bounds of every histogram bucket."""
    lo = np.empty(HIST_BUCKETS, np.float64)
    hi = np.empty(HIST_BUCKETS, np.float64)
    for i in range(HIST_BUCKETS):
        if i < HIST_SUB:
            lo[i] = hi[i] = i
        else:
            e = i // HIST_SUB + 3
            sub = i % HIST_SUB
            lo[i] = float((HIST_SUB + sub) << (e - 4))
            hi[i] = lo[i] + float(1 << (e - 4)) - 1
    return lo, hi


def _hist_index(int64_t v):
    return hist_bucket(v)
