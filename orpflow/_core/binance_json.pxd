# The nogil fast path of the Binance converter: see binance_json.pyx.
from libc.stdint cimport int64_t, uint32_t
from orpflow._core.types cimport Event, R_COUNT
from orpflow._core.convert cimport EventBuffer

cdef enum:
    FAST_UNSURE = -1       # not a shape the fast path fully validated: use the orjson path
    # opts bits of fast_convert
    FAST_ROUTE = 1         # several instruments: pick one by stream name (else data "s")
    FAST_ENVELOPE = 2      # the orjson path converts {"stream":"<sym>@depthSnapshot","data":<snapshot>}

# One instrument as the fast path needs it (filled from an Instrument, with the GIL).
cdef struct FastInstrument:
    char symbol[32]        # upper-case ASCII, not NUL-terminated
    int symbol_len         # 0: unusable symbol (non-ASCII or too long): always FAST_UNSURE
    int64_t tick_mant
    int64_t size_mant
    int tick_exp
    int size_exp
    uint32_t instrument

cdef int fill_instrument(FastInstrument *fi, object instrument) except -1

cdef Py_ssize_t fast_bound(Py_ssize_t n) noexcept nogil

cdef int fast_convert(const char *p, Py_ssize_t n, const FastInstrument *ins, Py_ssize_t n_ins,
                      int opts, int64_t ts_local, Event *out, Py_ssize_t cap,
                      Py_ssize_t *n_out) noexcept nogil


cdef class FastBinanceConverter:
    cdef readonly EventBuffer out
    cdef FastInstrument *ins
    cdef Py_ssize_t n_ins
    cdef int opts
    cdef dict by_symbol            # upper-case symbol -> fallback BinanceConverter
    cdef object stream_fallback    # a BinanceStreamConverter when convert.pyx has one
    cdef int64_t rejects[R_COUNT]
    cdef public int64_t lines
    cdef public int64_t messages
    cdef public int64_t fast
    cdef public int64_t fallback
    cdef int _fallback(self, payload, int64_t ts_local) except -2
