# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Your own features and signal generator in Cython, running nogil inside orpflow's loop.

Build:  python setup.py build_ext --inplace
Use:    see README.md in this directory.
"""
from libc.math cimport NAN, fabs
from libc.stdint cimport int64_t

from orpflow._core.types cimport Event, F_TRADE, R_SIG_USER_NONE
from orpflow._core.book cimport Book, side_top
from orpflow._core.features cimport FeatureExtension, FeatureState, FeatureVector, ROW_TRADE
from orpflow._core.signals cimport SignalGenerator, SignalCandidate


cdef class SpreadAndLastTrade(FeatureExtension):
    """Two extra columns: the spread in ticks and the size of the last trade (size units)."""

    def __init__(self):
        super().__init__(("spread_ticks", "last_trade_units"))

    cdef void compute(self, const FeatureState *s, const Book *b, const Event *e,
                      double *out) noexcept nogil:
        cdef int64_t bid_key, bid_qty, ask_key, ask_qty
        if side_top(&b.bid, 1, &bid_key, &bid_qty) == 1 and side_top(&b.ask, 1, &ask_key, &ask_qty) == 1:
            out[0] = -ask_key - bid_key      # ask keys are -price (see book.pxd)
        else:
            out[0] = NAN
        if e.flags & F_TRADE:
            out[1] = e.qty                   # out[] keeps its value between rows


cdef class FadeTheFlow(SignalGenerator):
    """Trade against one-sided aggressor flow when the spread is one tick wide."""
    cdef double min_flow

    def __init__(self, double min_flow=0.8):
        self.min_flow = min_flow

    cdef int evaluate(self, const FeatureVector *fv, SignalCandidate *out) noexcept nogil:
        cdef double flow = fv.trade_flow
        out.side = 0
        out.reason = R_SIG_USER_NONE
        if fv.kind != ROW_TRADE or not fv.book_ok or fv.extra[0] != 1.0 or not (fabs(flow) >= self.min_flow):
            return 0
        out.side = -1 if flow > 0 else 1
        out.reason = 0
        out.strength = -flow
        out.confidence = fabs(flow)
        out.holding_ms = 500.0
        out.size_mult = 1.0
        return 0
