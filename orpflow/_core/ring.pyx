"""SPSC lock-free ring of 64-byte Event records.

The C API (ring_push / ring_pop and their _n forms) is what the engine's nogil loops use.
The Python API moves whole numpy arrays of EVENT_DTYPE with the GIL released during the copy.
Only acquire/release ordering: the producer publishes slots with a release store of `head`,
the consumer frees them with a release store of `tail`; each reads the other's counter with
acquire. No locks, no CAS: one writer per counter.
"""
from cpython.mem cimport PyMem_RawMalloc, PyMem_RawFree
from libc.stdint cimport int64_t, uintptr_t
from libc.string cimport memcpy, memset

import numpy as np

from orpflow._core.types cimport Event, debug_count_alloc, event_ptr


cdef inline int64_t _min(int64_t a, int64_t b) noexcept nogil:
    return a if a < b else b


cdef int64_t ring_room(RingState *r, int64_t want) noexcept nogil:
    """Free slots for the producer; re-reads the consumer's tail only if the cached copy says
    fewer than `want` are free."""
    cdef int64_t free_slots = r.capacity - (r.head - r.tail_cache)
    if free_slots < want:
        r.tail_cache = ORP_load_acquire(&r.tail)
        free_slots = r.capacity - (r.head - r.tail_cache)
    return free_slots


cdef inline int64_t available(RingState *r, int64_t want) noexcept nogil:
    """Records ready for the consumer; re-reads the producer's head only if the cached copy
    says fewer than `want` are there."""
    cdef int64_t avail = r.head_cache - r.tail
    if avail < want:
        r.head_cache = ORP_load_acquire(&r.head)
        avail = r.head_cache - r.tail
    return avail


cdef int ring_push(RingState *r, const Event *ev) noexcept nogil:
    """Push one record; 1 if pushed, 0 if full."""
    cdef int64_t h = r.head
    if h - r.tail_cache >= r.capacity:
        r.tail_cache = ORP_load_acquire(&r.tail)
        if h - r.tail_cache >= r.capacity:
            return 0
    r.slots[h & r.mask] = ev[0]
    ORP_store_release(&r.head, h + 1)
    return 1


cdef int64_t ring_push_n(RingState *r, const Event *evs, int64_t n) noexcept nogil:
    """Push up to n records (as many as fit); returns how many were pushed."""
    cdef int64_t h = r.head
    n = _min(n, ring_room(r, n))
    if n <= 0:
        return 0
    cdef int64_t start = h & r.mask
    cdef int64_t first = _min(n, r.capacity - start)   # up to the end of the slot array
    memcpy(&r.slots[start], evs, <size_t>first * sizeof(Event))
    if n > first:
        memcpy(&r.slots[0], &evs[first], <size_t>(n - first) * sizeof(Event))
    ORP_store_release(&r.head, h + n)
    return n


cdef int ring_pop(RingState *r, Event *out) noexcept nogil:
    """Pop one record into out; 1 if popped, 0 if empty."""
    cdef int64_t t = r.tail
    if t >= r.head_cache:
        r.head_cache = ORP_load_acquire(&r.head)
        if t >= r.head_cache:
            return 0
    out[0] = r.slots[t & r.mask]
    ORP_store_release(&r.tail, t + 1)
    return 1


cdef int64_t ring_pop_n(RingState *r, Event *out, int64_t max_n) noexcept nogil:
    """Pop up to max_n records into out; returns how many were popped."""
    cdef int64_t t = r.tail
    cdef int64_t n = _min(max_n, available(r, max_n))
    if n <= 0:
        return 0
    cdef int64_t start = t & r.mask
    cdef int64_t first = _min(n, r.capacity - start)
    memcpy(out, &r.slots[start], <size_t>first * sizeof(Event))
    if n > first:
        memcpy(&out[first], &r.slots[0], <size_t>(n - first) * sizeof(Event))
    ORP_store_release(&r.tail, t + n)
    return n


cdef int64_t ring_push_n_stamped(RingState *r, const Event *evs, int64_t n, int64_t stamp) noexcept nogil:
    """ring_push_n, also writing `stamp` (the push time) beside every record pushed. The stamps
    are written before head is published, so the consumer sees them with the records."""
    cdef int64_t h = r.head, i
    n = _min(n, ring_room(r, n))
    if n <= 0:
        return 0
    for i in range(n):
        r.stamps[(h + i) & r.mask] = stamp
    return ring_push_n(r, evs, n)


cdef int64_t ring_pop_n_stamped(RingState *r, Event *out, int64_t *stamps, int64_t max_n) noexcept nogil:
    """ring_pop_n, also copying each record's push stamp into `stamps`."""
    cdef int64_t t = r.tail, i
    cdef int64_t n = _min(max_n, available(r, max_n))
    if n <= 0:
        return 0
    for i in range(n):
        stamps[i] = r.stamps[(t + i) & r.mask]
    return ring_pop_n(r, out, n)


cdef int64_t ring_size(RingState *r) noexcept nogil:
    """Records in the ring: exact from the producer's or the consumer's thread; from any
    other thread (stats, metrics) an estimate, always within [0, capacity]. The consumer's
    index is read first: it never passes head, and head only grows, so the head read after it
    is at least as large; the difference can overstate when the consumer moved on in between."""
    cdef int64_t t = ORP_load_acquire(&r.tail)
    cdef int64_t n = ORP_load_acquire(&r.head) - t
    if n < 0:
        return 0
    return n if n < r.capacity else r.capacity



cdef class EventRing:
    """Single-producer single-consumer ring of Event records.

    Parameters
    ----------
    capacity : int
        Number of records; rounded up to a power of two (minimum 2).

    Notes
    -----
    Exactly one thread may push and exactly one (other) thread may pop. Neither ever blocks:
    ``push`` returns how many records fit, ``pop`` returns what is there.
    """

    def __cinit__(self, int64_t capacity=65536):
        if capacity < 2:
            raise ValueError(f"capacity must be >= 2, got {capacity}")
        if capacity > (1 << 40):
            raise ValueError(f"capacity {capacity} is too large")
        cdef int64_t cap = 2
        while cap < capacity:
            cap <<= 1
        # One block: [align slack][RingState][slots][stamps], RingState and slots 64-byte aligned.
        cdef size_t nbytes = 64 + sizeof(RingState) + <size_t>cap * (sizeof(Event) + sizeof(int64_t))
        self._block = PyMem_RawMalloc(nbytes)
        if self._block == NULL:
            raise MemoryError()
        debug_count_alloc(1)
        memset(self._block, 0, nbytes)
        cdef uintptr_t base = (<uintptr_t>self._block + 63) & ~(<uintptr_t>63)
        self.state = <RingState *>base
        self.state.capacity = cap
        self.state.mask = cap - 1
        self.state.slots = <Event *>(base + sizeof(RingState))
        self.state.stamps = <int64_t *>(base + sizeof(RingState) + <size_t>cap * sizeof(Event))

    def __dealloc__(self):
        if self._block != NULL:
            PyMem_RawFree(self._block)
            debug_count_alloc(-1)
            self._block = NULL

    @property
    def capacity(self):
        return self.state.capacity

    def __len__(self):
        return ring_size(self.state)

    def push(self, events):
        """Push records from an EVENT_DTYPE array (GIL released); returns how many fit."""
        cdef Event *src = event_ptr(events, False)
        cdef int64_t n = events.shape[0], pushed
        if n == 0:
            return 0
        with nogil:
            pushed = ring_push_n_stamped(self.state, src, n, 0)     # 0: no push time taken
        return pushed

    def pop(self, int64_t max_records=4096):
        """Pop up to max_records records into a new EVENT_DTYPE array (GIL released)."""
        from orpflow.events import EVENT_DTYPE
        if max_records < 0:
            raise ValueError("max_records must be >= 0")
        avail = _min(max_records, ring_size(self.state))
        out = np.empty(avail, dtype=EVENT_DTYPE)
        n = self.pop_into(out)
        return out[:n]

    def pop_into(self, out):
        """Pop into a preallocated EVENT_DTYPE array (GIL released); returns records written."""
        cdef Event *dst = event_ptr(out, True)
        cdef int64_t max_n = out.shape[0], n
        if max_n == 0:
            return 0
        with nogil:
            n = ring_pop_n(self.state, dst, max_n)
        return n


# ---- stress and latency drivers: whole loops in C, run from Python threads without the GIL ----

cdef int64_t BACKOFF_SPINS = 256       # pauses on a full/empty ring before a driver sleeps
cdef int64_t BACKOFF_SLEEP_NS = 20000  # so two drivers sharing a core (a loaded machine) both run


cdef inline void _back_off(int64_t *spins) noexcept nogil:
    spins[0] += 1
    if spins[0] % BACKOFF_SPINS == 0:
        ORP_sleep_ns(BACKOFF_SLEEP_NS)
    else:
        ORP_pause()

def _produce_sequence(EventRing ring not None, int64_t n, int64_t spacing_ns=0):
    """Push n records one by one with seq = 0..n-1 and ts_local = now; spins (then sleeps)
    while full; returns how often it found the ring full.
    spacing_ns > 0 paces pushes (for hand-off latency, not queueing delay)."""
    cdef Event ev
    cdef int64_t i = 0, full_spins = 0, next_t = 0
    memset(&ev, 0, sizeof(Event))
    with nogil:
        while i < n:
            if spacing_ns > 0:
                while ORP_now_ns() < next_t:
                    ORP_pause()
                next_t = ORP_now_ns() + spacing_ns
            ev.seq = i
            ev.price = i * 7
            ev.ts_local = ORP_now_ns()
            if ring_push(ring.state, &ev):
                i += 1
            else:
                _back_off(&full_spins)
    return full_spins


def _consume_check(EventRing ring not None, int64_t n, int64_t[::1] latencies=None):
    """Pop n records one by one; returns how many broke the sequence (lost, duplicated,
    reordered or torn). With `latencies`, stores pop time - push time of each record (ns)."""
    cdef Event ev
    cdef int64_t i = 0, errors = 0, nlat = 0, empty_spins = 0
    cdef int64_t *lat = NULL
    if latencies is not None:
        nlat = latencies.shape[0]
        if nlat > 0:
            lat = &latencies[0]
    with nogil:
        while i < n:
            if ring_pop(ring.state, &ev):
                if ev.seq != i or ev.price != i * 7:
                    errors += 1
                if i < nlat:
                    lat[i] = ORP_now_ns() - ev.ts_local
                i += 1
            else:
                _back_off(&empty_spins)
    return errors
