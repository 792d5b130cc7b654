# Converters append Event records to an EventBuffer through a C pointer; the live feed hands
# the buffer's records to the market ring without a Python object per record.
from libc.stdint cimport int64_t
from orpflow._core.types cimport Event

cimport cython


@cython.final
cdef class EventBuffer:
    cdef object arr
    cdef Event *p
    cdef int64_t n                 # records held (p[0:n])
    cdef int64_t cap
    cdef int _grow(self, int64_t cap) except -1
    cdef Event *add(self) except NULL

# Exact decimal text -> units; shared with the nogil JSON fast path (binance_json.pyx).
cdef int parse_units(const char *s, Py_ssize_t n, int64_t unit_mant, int unit_exp,
                     int off_grid, int64_t *out) noexcept nogil
