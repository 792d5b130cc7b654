"""The paper broker's latency model: how long an order takes to reach the venue and a response
to come back (see latency.pxd; rules: docs/broker.md). Recorded latency rows are interpolated
in request time; jitter comes from a seeded splitmix64, identical in the twin
(orpflow/reference/broker.py).
"""
from libc.stdint cimport int64_t, uint64_t

from orpflow._core.types cimport orp_i128
from orpflow._core.broker_state cimport Broker


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


cdef uint64_t next_random(Broker *b) noexcept nogil:
    """splitmix64: small, seedable, identical in the twin."""
    cdef uint64_t z
    b.rng += <uint64_t>0x9E3779B97F4A7C15
    z = b.rng
    z = (z ^ (z >> 30)) * <uint64_t>0xBF58476D1CE4E5B9
    z = (z ^ (z >> 27)) * <uint64_t>0x94D049BB133111EB
    return z ^ (z >> 31)

