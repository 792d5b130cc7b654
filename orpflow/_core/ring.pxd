# SPSC lock-free ring of Event records: one producer thread, one consumer thread.
from libc.stdint cimport int64_t
from orpflow._core.types cimport Event

cdef extern from "orp_atomic.h":
    int64_t ORP_load_acquire(const int64_t *p) noexcept nogil
    int64_t ORP_load_relaxed(const int64_t *p) noexcept nogil
    void ORP_store_release(int64_t *p, int64_t v) noexcept nogil
    void ORP_store_relaxed(int64_t *p, int64_t v) noexcept nogil
    int64_t ORP_fetch_add_relaxed(int64_t *p, int64_t v) noexcept nogil
    void ORP_fence_acquire() noexcept nogil
    void ORP_fence_release() noexcept nogil
    void ORP_pause() noexcept nogil
    int64_t ORP_now_ns() noexcept nogil
    void ORP_sleep_ns(int64_t ns) noexcept nogil

# head/tail are free-running counters (never wrapped); slot = counter & mask.
# Each side's hot fields share one cache line that only that side writes; the other side's
# counter is read through a cached copy, refreshed (acquire) only when the cache says full/empty.
cdef struct RingState:
    # producer's line
    int64_t head
    int64_t tail_cache
    char _pad0[48]
    # consumer's line
    int64_t tail
    int64_t head_cache
    char _pad1[48]
    # read-only after creation
    int64_t capacity
    int64_t mask
    Event *slots
    int64_t *stamps            # per slot: producer's push time (ns), for ingress latency
    char _pad2[32]

cdef int ring_push(RingState *r, const Event *ev) noexcept nogil
cdef int64_t ring_push_n(RingState *r, const Event *evs, int64_t n) noexcept nogil
cdef int ring_pop(RingState *r, Event *out) noexcept nogil
cdef int64_t ring_pop_n(RingState *r, Event *out, int64_t max_n) noexcept nogil
cdef int64_t ring_push_n_stamped(RingState *r, const Event *evs, int64_t n, int64_t stamp) noexcept nogil
cdef int64_t ring_pop_n_stamped(RingState *r, Event *out, int64_t *stamps, int64_t max_n) noexcept nogil
# Free slots, re-reading the consumer's tail only if the cached copy shows fewer than `want`.
cdef int64_t ring_room(RingState *r, int64_t want) noexcept nogil
cdef int64_t ring_size(RingState *r) noexcept nogil

cdef class EventRing:
    cdef RingState *state
    cdef void *_block          # the allocation state/slots live in (aligned inside it)
