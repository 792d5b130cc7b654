"""Seqlock-protected MarketSnapshot (docs/architecture.md, Snapshot); the protocol itself is ORP_seqlock_* in
orp_atomic.h.

Writer: seq -> odd (relaxed) + release fence, store the payload word by word (relaxed atomics),
seq -> even (release). Reader: seq (acquire); load the payload word by word (relaxed atomics);
acquire fence; seq again (relaxed); retry unless both reads are the same even number. Readers
never block the writer and never see a mix of two publishes — unlike per-field atomics, where
a reader can pair one update's bid with another's ask. The payload words are atomics, not a
memcpy, so the reader's race with the writer is defined behaviour in the C11 model (Boehm 2012)
and a race detector has nothing to report.
"""
from cpython.mem cimport PyMem_RawMalloc, PyMem_RawFree
from libc.stdint cimport int64_t, uintptr_t
from libc.string cimport memset

import numpy as np

from orpflow._core.types cimport debug_count_alloc
from orpflow._core.book cimport Book, BookMetrics, Level, OrderBook, TOP_CACHE, book_top, book_usable, book_metrics

cdef extern from "orp_atomic.h":
    int64_t ORP_load_acquire(const int64_t *p) noexcept nogil
    void ORP_store_release(int64_t *p, int64_t v) noexcept nogil
    void ORP_pause() noexcept nogil
    int64_t ORP_now_ns() noexcept nogil
    void ORP_sleep_ns(int64_t ns) noexcept nogil
    void ORP_copy_words_load_relaxed(int64_t *dst, const int64_t *src, size_t n) noexcept nogil
    void ORP_seqlock_write(int64_t *seq, int64_t *dst, const int64_t *src, size_t words) noexcept nogil
    int64_t ORP_seqlock_read(const int64_t *seq, int64_t *dst, const int64_t *src, size_t words) noexcept nogil

assert <int>SNAPSHOT_LEVELS <= <int>TOP_CACHE      # the published levels come from the book's top cache

# the payload is copied as int64 words (checked when a MarketSnapshot is made)
cdef size_t PAYLOAD_WORDS = sizeof(SnapshotData) // 8


cdef void snapshot_write(SeqlockSnapshot *s, SnapshotData *d) noexcept nogil:
    """Publish d (its version is set here) as one write section: the only writer's call."""
    d.version = s.data.version + 1        # only this thread writes the payload: exact
    ORP_seqlock_write(&s.seq, <int64_t *>&s.data, <const int64_t *>d, PAYLOAD_WORDS)


cdef inline void _copy_side(const Book *b, bint is_ask, int64_t *px, int64_t *qty,
                            int64_t *n_out) noexcept nogil:
    cdef const Level *lv
    cdef int64_t i, n = book_top(b, is_ask, SNAPSHOT_LEVELS, &lv)
    for i in range(n):
        px[i] = -lv[i].key if is_ask else lv[i].key      # ask keys are negated prices
        qty[i] = lv[i].qty
    for i in range(n, SNAPSHOT_LEVELS):
        px[i] = 0                 # no stale levels past n (the whole payload is published)
        qty[i] = 0
    n_out[0] = n


cdef void snapshot_publish_book(SeqlockSnapshot *s, const Book *b) noexcept nogil:
    """Publish the book's top levels and metrics as one consistent snapshot."""
    cdef SnapshotData d           # built outside the write section keeps the section short
    book_metrics(b, &d.metrics)
    d.book_seq = b.last_update_id
    d.ts_exch = b.ts_exch
    d.ts_local = b.ts_local
    d.in_sync = book_usable(b)
    d.crossed = b.crossed_now
    _copy_side(b, False, d.bid_px, d.bid_qty, &d.n_bid)
    _copy_side(b, True, d.ask_px, d.ask_qty, &d.n_ask)
    snapshot_write(s, &d)


cdef int64_t snapshot_read(const SeqlockSnapshot *s, SnapshotData *out) noexcept nogil:
    """Copy a consistent snapshot into out; returns how many retries it took."""
    return ORP_seqlock_read(&s.seq, <int64_t *>out, <const int64_t *>&s.data, PAYLOAD_WORDS)


cdef class MarketSnapshot:
    """The latest top of book and metrics, readable from any thread without locks.

    One thread publishes (``publish(book)``); any thread may ``read()``.
    """

    def __cinit__(self):
        if sizeof(SnapshotData) % 8 != 0:       # the seqlock copies whole int64 words
            raise SystemError("SnapshotData is not a whole number of 8-byte words")
        cdef size_t nbytes = sizeof(SeqlockSnapshot) + 64
        self._block = PyMem_RawMalloc(nbytes)
        if self._block == NULL:
            raise MemoryError()
        debug_count_alloc(1)
        memset(self._block, 0, nbytes)
        self.snap = <SeqlockSnapshot *>((<uintptr_t>self._block + 63) & ~(<uintptr_t>63))

    def __dealloc__(self):
        if self._block != NULL:
            PyMem_RawFree(self._block)
            debug_count_alloc(-1)

    def publish(self, OrderBook book not None):
        """Publish ``book``'s state (call from the book's writer thread, between applies)."""
        book._enter_read()
        with nogil:
            snapshot_publish_book(self.snap, book.book)
        book._exit_read()

    def read(self):
        """A consistent copy: dict with version, book_seq, timestamps, in_sync, crossed,
        ``bids``/``asks`` (int64 arrays of (ticks, size units), best first) and metrics."""
        cdef SnapshotData d
        cdef int64_t i
        with nogil:
            snapshot_read(self.snap, &d)
        bids = np.empty((d.n_bid, 2), dtype=np.int64)
        asks = np.empty((d.n_ask, 2), dtype=np.int64)
        cdef int64_t[:, ::1] vb = bids
        cdef int64_t[:, ::1] va = asks
        for i in range(d.n_bid):
            vb[i, 0] = d.bid_px[i]
            vb[i, 1] = d.bid_qty[i]
        for i in range(d.n_ask):
            va[i, 0] = d.ask_px[i]
            va[i, 1] = d.ask_qty[i]
        return {
            "version": d.version, "book_seq": d.book_seq, "ts_exch": d.ts_exch,
            "ts_local": d.ts_local, "in_sync": bool(d.in_sync), "crossed": bool(d.crossed),
            "bids": bids, "asks": asks, "metrics": d.metrics,
        }


# ---- stress drivers (tests, benchmarks): whole loops in C, run from Python threads ----

cdef inline void _fill_from_counter(SnapshotData *d, int64_t k) noexcept nogil:
    cdef int64_t i
    d.book_seq = k
    d.ts_exch = 3 * k
    d.ts_local = 5 * k
    d.in_sync = k & 1
    d.crossed = (k >> 1) & 1
    d.n_bid = SNAPSHOT_LEVELS
    d.n_ask = SNAPSHOT_LEVELS
    for i in range(SNAPSHOT_LEVELS):
        d.bid_px[i] = k - i
        d.bid_qty[i] = 2 * k + i
        d.ask_px[i] = k + 1 + i
        d.ask_qty[i] = 7 * k + i
    memset(&d.metrics, 0, sizeof(BookMetrics))
    d.metrics.mid = <double>k + 0.5
    d.metrics.imbalance = <double>k
    d.metrics.weighted_mid = <double>(3 * k)


cdef inline bint _consistent(const SnapshotData *d) noexcept nogil:
    """Every word of d derives from one publish k (its book_seq), or d is the never-published
    all-zero state. (The version word is the writer's own count and is checked by the caller.)"""
    cdef SnapshotData want
    cdef int64_t k = d.book_seq, i
    cdef const int64_t *a = <const int64_t *>d
    cdef const int64_t *b = <const int64_t *>&want
    if k == 0:
        memset(&want, 0, sizeof(SnapshotData))
    else:
        _fill_from_counter(&want, k)
    want.version = d.version
    for i in range(<int64_t>PAYLOAD_WORDS):
        if a[i] != b[i]:
            return False
    return True


def _stress_write(MarketSnapshot snap not None, int64_t n, int64_t gap_pauses=0,
                  int64_t[::1] stop=None, int64_t burst=0, int64_t burst_sleep_ns=0):
    """Publish up to n snapshots whose every word derives from one counter k = 1, 2, ...,
    with gap_pauses pause instructions between publishes (a writer that never pauses starves
    seqlock readers); with burst > 0, sleep burst_sleep_ns after every `burst` publishes (back
    to back within a burst, yet readers get through between bursts whatever the scheduler
    does); ends early once stop[0] != 0. Returns the number published."""
    cdef SnapshotData d
    cdef int64_t k = 0, j
    cdef int64_t *flag = &stop[0] if stop is not None and stop.shape[0] > 0 else NULL
    memset(&d, 0, sizeof(SnapshotData))
    with nogil:
        while k < n:
            if flag != NULL and ORP_load_acquire(flag) != 0:
                break
            k += 1
            _fill_from_counter(&d, k)
            snapshot_write(snap.snap, &d)
            for j in range(gap_pauses):
                ORP_pause()
            if burst > 0 and k % burst == 0:
                ORP_sleep_ns(burst_sleep_ns)
    return k


def _stress_read(MarketSnapshot snap not None, int64_t n, int64_t until_version=-1,
                 int64_t min_distinct=0, double timeout_s=0.0, int64_t[::1] stop=None):
    """Read at least n snapshots; then go on until one shows book_seq == until_version (if
    >= 0) and at least min_distinct distinct versions were seen, or timeout_s (if > 0) passes.
    Sets stop[0] = 1 when done (so a writer given the same flag ends). Returns
    (torn reads, reads that saw a version go backwards, retries, distinct versions, reads)."""
    cdef SnapshotData d
    cdef int64_t i = 0, torn = 0, backwards = 0, retries = 0, last = -1, distinct = 0
    cdef int64_t last_version = -1
    cdef int64_t *flag = &stop[0] if stop is not None and stop.shape[0] > 0 else NULL
    cdef int64_t deadline = ORP_now_ns() + <int64_t>(timeout_s * 1e9) if timeout_s > 0 else 0
    with nogil:
        while (i < n or (until_version >= 0 and last != until_version) or distinct < min_distinct):
            if deadline and (i & 1023) == 0 and ORP_now_ns() > deadline:
                break
            i += 1
            retries += snapshot_read(snap.snap, &d)
            # version counts publishes: with the stress writer it must equal the counter
            if not _consistent(&d) or d.version != d.book_seq:
                torn += 1
            if d.book_seq < last or d.version < last_version:
                backwards += 1
            elif d.book_seq != last:
                distinct += 1
            last = d.book_seq
            last_version = d.version
        if flag != NULL:
            ORP_store_release(flag, 1)
    return torn, backwards, retries, distinct, i


def _bench_read(MarketSnapshot snap not None, int64_t n):
    """n back-to-back reads (benchmark): returns total retries."""
    cdef SnapshotData d
    cdef int64_t i, retries = 0
    with nogil:
        for i in range(n):
            retries += snapshot_read(snap.snap, &d)
    return retries


def _tear_for_test(MarketSnapshot snap not None):
    """Overwrite one payload word without the seqlock protocol (tests the torn-read check)."""
    snap.snap.data.ts_exch += 1


def _stress_read_unprotected(MarketSnapshot snap not None, int64_t n, double timeout_s,
                             int64_t[::1] stop=None):
    """Like _stress_read but copying without the seqlock protocol (no seq check, no retry):
    shows that the stress test's writer and reader really race. Reads until n torn
    snapshots were seen or timeout_s passes; sets stop[0] = 1 when done; returns torn reads."""
    cdef SnapshotData d
    cdef int64_t i = 0, torn = 0
    cdef int64_t *flag = &stop[0] if stop is not None and stop.shape[0] > 0 else NULL
    cdef int64_t deadline = ORP_now_ns() + <int64_t>(timeout_s * 1e9)
    with nogil:
        while torn < n:
            if (i & 1023) == 0 and ORP_now_ns() > deadline:
                break
            i += 1
            ORP_copy_words_load_relaxed(<int64_t *>&d, <const int64_t *>&snap.snap.data, PAYLOAD_WORDS)
            if not _consistent(&d) or d.version != d.book_seq:
                torn += 1
        if flag != NULL:
            ORP_store_release(flag, 1)
    return torn
