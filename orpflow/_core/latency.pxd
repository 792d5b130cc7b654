# The paper broker's latency model (latency.pyx): constant entry/response latencies, or rows
# recorded from a venue interpolated in request time, plus optional seeded jitter on entry.
from libc.stdint cimport int64_t, uint64_t
from orpflow._core.broker_state cimport Broker

cdef int64_t lat_interp(const Broker *b, const int64_t *rows, int64_t t) noexcept nogil
cdef uint64_t next_random(Broker *b) noexcept nogil


# Inline: every order send and every fill asks; the constant case must cost no call.
cdef inline int64_t entry_at(Broker *b, int64_t t) noexcept nogil:
    cdef int64_t base = lat_interp(b, b.lat_entry, t) if b.lat_n else b.entry_ns
    if b.jitter_ns:
        base += <int64_t>(next_random(b) % <uint64_t>(b.jitter_ns + 1))
    return base


cdef inline int64_t response_at(const Broker *b, int64_t t) noexcept nogil:
    return lat_interp(b, b.lat_resp, t) if b.lat_n else b.response_ns
