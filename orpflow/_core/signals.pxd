# Signal generators over feature rows, and the position rules shared by all of them. nogil.
from libc.stdint cimport int32_t, int64_t
from orpflow._core.features cimport FeatureVector, FeatureEngine

# The position rules every generator shares (sizing, entries, exits).
cdef struct PositionParams:
    double base_position_pct
    double equity
    int64_t min_interval_ns
    int32_t exit_on_holding
    int64_t lot_units
    double qty_num                # size = units * qty_num / qty_den
    double qty_den

# The imbalance generator's rule thresholds.
cdef struct ImbalanceRules:
    double max_spread_bps
    double threshold
    int64_t persistence
    double min_confidence
    int32_t momentum_confirmation
    double momentum_threshold

# What a generator proposes for one row; the position rules turn it into a SignalRow.
cdef struct SignalCandidate:
    int32_t side                  # +1 buy, -1 sell, 0 none
    int32_t reason                # R_SIG_* why none
    double strength               # in [-1, 1]
    double confidence             # in [0, 1]
    double holding_ms
    double size_mult              # scales equity * base_position_pct (volatility adjustment)

# One output row (mirrored by SIGNAL_DTYPE).
cdef struct SignalRow:
    int64_t ts_exch
    int64_t seq
    int32_t side                  # +1 buy, -1 sell, 0 none
    int32_t reason                # R_SIG_*: the kind of signal, or why there is none
    double strength
    double confidence
    double size                   # in the instrument's size (size_units * size_increment)
    double holding_ms
    int64_t size_units
    int64_t position_units        # signal-implied position after this row

# The position the signals imply (as if every signal filled at once).
cdef struct PositionState:
    int64_t clock                 # running max of row time
    int64_t position              # signed, size units
    int64_t deadline              # exit time of the position (ns)
    int64_t last_entry            # time of the last entry signal (enter/add/reverse)
    int32_t has_entry

# No signal for this row, with the reason (every generator).
cdef inline void candidate_none(SignalCandidate *c, int32_t reason) noexcept nogil:
    c.side = 0
    c.reason = reason
    c.strength = 0.0
    c.confidence = 0.0
    c.holding_ms = 0.0
    c.size_mult = 0.0

cdef void position_params(PositionParams *p, dict d)
cdef int32_t reads_if_exact(object gen, type cls, int32_t reads)
cdef void signal_decide(PositionState *ps, const PositionParams *p, const FeatureVector *fv,
                        const SignalCandidate *c, SignalRow *out) noexcept nogil

# Subclass in your own .pyx (see examples/custom_cython/) and override evaluate().
cdef class SignalGenerator:
    # Fill `out` for this row; return 0, or -1 to stop the run with an error (Python generators).
    cdef int evaluate(self, const FeatureVector *fv, SignalCandidate *out) noexcept nogil
    cpdef reset(self)

cdef class ImbalanceSignal(SignalGenerator):
    cdef ImbalanceRules p
    cdef int64_t streak
    cdef int32_t last_sign

cdef class LinearSignal(SignalGenerator):
    cdef double weights[64]       # one per feature column (built-ins then extension columns)
    cdef int64_t n
    cdef int32_t used[64]         # the columns with a non-zero weight, ascending: the only ones read
    cdef int64_t n_used
    cdef double bias
    cdef double entry_threshold
    cdef double holding_ms

cdef class PythonSignal(SignalGenerator):
    cdef object fn
    cdef tuple names
    cdef double entry_threshold
    cdef double holding_ms
    cdef public object error
