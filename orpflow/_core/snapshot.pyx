"""Seqlock-protected MarketSnapshot (DESIGN §5).

Writer: seq -> odd (relaxed) + release fence, write the payload, seq -> even (release).
Reader: seq (acquire); copy; acquire fence; seq again; retry unless both reads are the same
even number. Readers never block the writer and never see a mix of two publishes — unlike
per-field atomics, where a reader can pair one update's bid with another's ask.
"""
from cpython.mem cimport PyMem_RawMalloc, PyMem_RawFree
from libc.stdint cimport int64_t, uintptr_t
from libc.string cimport memcpy, memset

import numpy as np

from orpflow._core.types cimport debug_count_alloc
from orpflow._core.book cimport Book, BookMetrics, BookSide, OrderBook, book_usable, book_metrics, side_top

cdef extern from "orp_atomic.h":
    int64_t ORP_load_acquire(const int64_t *p) noexcept nogil
    int64_t ORP_load_relaxed(const int64_t *p) noexcept nogil
    void ORP_store_release(int64_t *p, int64_t v) noexcept nogil
    void ORP_store_relaxed(int64_t *p, int64_t v) noexcept nogil
    void ORP_fence_acquire() noexcept nogil
    void ORP_fence_release() noexcept nogil
    void ORP_pause() noexcept nogil


cdef void snapshot_write_begin(SeqlockSnapshot *s) noexcept nogil:
    ORP_store_relaxed(&s.seq, s.seq + 1)
    ORP_fence_release()   # the odd seq is visible before any payload store


cdef void snapshot_write_end(SeqlockSnapshot *s) noexcept nogil:
    s.data.version += 1
    ORP_store_release(&s.seq, s.seq + 1)


cdef inline void _copy_side(const BookSide *side, bint is_ask, int64_t *px, int64_t *qty,
                            int64_t *n_out) noexcept nogil:
    cdef int64_t i, n = side_top(side, SNAPSHOT_LEVELS, px, qty)
    if is_ask:
        for i in range(n):
            px[i] = -px[i]        # ask keys are negated prices
    n_out[0] = n


cdef void snapshot_publish_book(SeqlockSnapshot *s, const Book *b) noexcept nogil:
    """Publish the book's top levels and metrics as one consistent snapshot."""
    cdef BookMetrics m
    book_metrics(b, &m)           # computed before the write section keeps it short
    snapshot_write_begin(s)
    s.data.book_seq = b.last_update_id
    s.data.ts_exch = b.ts_exch
    s.data.ts_local = b.ts_local
    s.data.in_sync = book_usable(b)
    s.data.crossed = b.crossed_now
    _copy_side(&b.bid, False, s.data.bid_px, s.data.bid_qty, &s.data.n_bid)
    _copy_side(&b.ask, True, s.data.ask_px, s.data.ask_qty, &s.data.n_ask)
    s.data.metrics = m
    snapshot_write_end(s)


cdef int64_t snapshot_read(const SeqlockSnapshot *s, SnapshotData *out) noexcept nogil:
    """Copy a consistent snapshot into out; returns how many retries it took."""
    cdef int64_t s1, s2, retries = 0
    while True:
        s1 = ORP_load_acquire(&s.seq)
        if s1 & 1:
            retries += 1
            ORP_pause()
            continue
        memcpy(out, &s.data, sizeof(SnapshotData))
        ORP_fence_acquire()      # the payload loads complete before seq is read again
        s2 = ORP_load_relaxed(&s.seq)
        if s1 == s2:
            return retries
        retries += 1



cdef class MarketSnapshot:
    """The latest top of book and metrics, readable from any thread without locks.

    One thread publishes (``publish(book)``); any thread may ``read()``.
    """

    def __cinit__(self):
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
    d.n_bid = SNAPSHOT_LEVELS
    d.n_ask = SNAPSHOT_LEVELS
    for i in range(SNAPSHOT_LEVELS):
        d.bid_px[i] = k - i
        d.bid_qty[i] = 2 * k + i
        d.ask_px[i] = k + 1 + i
        d.ask_qty[i] = 7 * k + i
    d.metrics.mid = <double>k + 0.5
    d.metrics.imbalance = <double>k


cdef inline bint _consistent(const SnapshotData *d) noexcept nogil:
    cdef int64_t i, k = d.book_seq
    if d.ts_exch != 3 * k or d.ts_local != 5 * k:
        return False
    if d.metrics.mid != <double>k + 0.5 or d.metrics.imbalance != <double>k:
        return False
    if k == 0:
        return True          # never published: all zero
    if d.n_bid != SNAPSHOT_LEVELS or d.n_ask != SNAPSHOT_LEVELS:
        return False
    for i in range(SNAPSHOT_LEVELS):
        if d.bid_px[i] != k - i or d.bid_qty[i] != 2 * k + i:
            return False
        if d.ask_px[i] != k + 1 + i or d.ask_qty[i] != 7 * k + i:
            return False
    return True


def _stress_write(MarketSnapshot snap not None, int64_t n, int64_t gap_pauses=0):
    """Publish n snapshots whose every field derives from one counter, with gap_pauses pause
    instructions between publishes (a writer that never pauses starves seqlock readers)."""
    cdef int64_t k, j
    with nogil:
        for k in range(1, n + 1):
            snapshot_write_begin(snap.snap)
            _fill_from_counter(&snap.snap.data, k)
            snapshot_write_end(snap.snap)
            for j in range(gap_pauses):
                ORP_pause()


def _stress_read(MarketSnapshot snap not None, int64_t n, int64_t until_version=-1):
    """Read at least n snapshots, and (if until_version >= 0) on until one shows
    book_seq == until_version; returns
    (torn reads, reads that saw the version go backwards, retries, distinct versions seen)."""
    cdef SnapshotData d
    cdef int64_t i = 0, torn = 0, backwards = 0, retries = 0, last = -1, distinct = 0
    with nogil:
        while i < n or (until_version >= 0 and last != until_version):
            i += 1
            retries += snapshot_read(snap.snap, &d)
            if not _consistent(&d):
                torn += 1
            if d.book_seq < last:
                backwards += 1
            elif d.book_seq != last:
                distinct += 1
            last = d.book_seq
    return torn, backwards, retries, distinct


def _bench_read(MarketSnapshot snap not None, int64_t n):
    """n back-to-back reads (benchmark): returns total retries."""
    cdef SnapshotData d
    cdef int64_t i, retries = 0
    with nogil:
        for i in range(n):
            retries += snapshot_read(snap.snap, &d)
    return retries


def _tear_for_test(MarketSnapshot snap not None):
    """Overwrite half the payload without the seqlock protocol (tests the torn-read check)."""
    snap.snap.data.ts_exch += 1


def _stress_read_unprotected(MarketSnapshot snap not None, int64_t n, int64_t until_version):
    """Like _stress_read but copying without the seqlock protocol: shows that the stress
    test's writer and reader really race (this one is expected to see torn snapshots)."""
    cdef SnapshotData d
    cdef int64_t i = 0, torn = 0, last = -1
    with nogil:
        while i < n or last != until_version:
            i += 1
            memcpy(&d, &snap.snap.data, sizeof(SnapshotData))
            if not _consistent(&d):
                torn += 1
            last = d.book_seq
    return torn
