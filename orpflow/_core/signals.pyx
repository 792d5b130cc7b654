"""Signal generators over feature rows and the position rules they share, nogil.

A generator looks at one FeatureVector and proposes a candidate (side, strength, confidence,
holding period, size multiplier) or says why not; ``signal_decide`` then applies the rules
every generator shares: sizing to whole lots, adds at half size, reversals, the minimum
interval between entries, and exits when a holding period lapses. Rules: docs/signals.md.
The plain-Python twin is orpflow/reference/signals.py.
"""

from libc.stdint cimport int32_t, int64_t
from libc.string cimport memcpy, memset
from libc.math cimport fabs, floor, tanh

from orpflow._core.types cimport (
    Event, array_bytes, event_ptr, R_SIG_ENTER, R_SIG_ADD, R_SIG_REVERSE, R_SIG_EXIT_HOLDING,
    R_SIG_EXIT_OPPOSITE, R_SIG_BOOK_UNUSABLE, R_SIG_SPREAD, R_SIG_BELOW_THRESHOLD,
    R_SIG_PERSISTENCE, R_SIG_LOW_CONFIDENCE, R_SIG_NO_MOMENTUM, R_SIG_DIVERGENCE,
    R_SIG_SIZE_ZERO, R_SIG_MIN_INTERVAL, R_SIG_TRADE_ROW, R_SIG_FEATURE_NAN, R_SIG_WEAK,
    R_SIG_USER_NONE, R_SIG_ERROR,
)
from orpflow._core.features cimport (
    FeatureVector, FeatureEngine, FEATURE_COUNT, FEATURE_EXTRA_MAX, ROW_BOOK, G_ALL, G_BOOK,
    G_HISTORY, G_EXTENSION, column_group,
)

cimport cython

import numpy as np

# Sizes within this many lots below a lot boundary count as reaching it: equity*pct/mid is
# a float, and 0.3/0.1 must give 3 lots, not 2.
cdef double LOT_EPS = 1e-9
# Largest order in lots: keeps size_units far from int64 overflow.
cdef double MAX_LOTS = 4503599627370496.0     # 2**52
# volatility_z comes from running sums (the twin: a fresh two-pass std); a z of exactly +-1
# (two distinct values, half each) can come out one ulp either side. Values within this band
# of +-1 count as on the boundary, so both give the same decision.
cdef double Z_BAND = 1e-9


cdef inline double clamp(double x, double lo, double hi) noexcept nogil:
    return lo if x < lo else (hi if x > hi else x)


cdef inline void strength_candidate(double strength, double entry_threshold, double holding_ms,
                                    SignalCandidate *c) noexcept nogil:
    """Linear and callable generators: a side when |strength| reaches the threshold."""
    if not (fabs(strength) >= entry_threshold) or strength == 0.0:
        candidate_none(c, R_SIG_WEAK)
        return
    c.side = 1 if strength > 0 else -1
    c.reason = 0
    c.strength = strength
    c.confidence = fabs(strength)
    c.holding_ms = holding_ms
    c.size_mult = 1.0


# ------------------------------------------------------------------------------------------
# position rules


cdef int64_t size_units(const PositionParams *p, double mid, double mult) noexcept nogil:
    """equity * base_position_pct * mult / mid, rounded down to whole lots, in size units."""
    cdef double qty, lot_qty, lots
    if not (mid > 0.0):
        return 0
    qty = p.equity * p.base_position_pct * mult / mid
    lot_qty = p.lot_units * p.qty_num / p.qty_den
    lots = floor(qty / lot_qty + LOT_EPS)
    if not (lots >= 1.0):
        return 0
    if lots > MAX_LOTS:
        lots = MAX_LOTS
    return (<int64_t>lots) * p.lot_units


cdef inline void row_emit(SignalRow *out, const PositionParams *p, int32_t side, int32_t reason,
                          int64_t units) noexcept nogil:
    out.side = side
    out.reason = reason
    out.size_units = units
    out.size = units * p.qty_num / p.qty_den


cdef void signal_decide(PositionState *ps, const PositionParams *p, const FeatureVector *fv,
                        const SignalCandidate *c, SignalRow *out) noexcept nogil:
    cdef int64_t t, pos = ps.position, units, holding_ns
    cdef bint same, opposite
    if fv.ts_exch > ps.clock:
        ps.clock = fv.ts_exch
    t = ps.clock
    memset(out, 0, sizeof(SignalRow))
    out.ts_exch = fv.ts_exch
    out.seq = fv.seq
    out.reason = c.reason
    if c.side != 0:
        same = pos != 0 and (pos > 0) == (c.side > 0)
        opposite = pos != 0 and not same
        holding_ns = <int64_t>(c.holding_ms * 1e6)
        if same and t + holding_ns > ps.deadline:
            ps.deadline = t + holding_ns          # a renewing signal extends the holding period
        if not opposite and ps.has_entry and t - ps.last_entry < p.min_interval_ns:
            out.reason = R_SIG_MIN_INTERVAL
        else:
            units = size_units(p, fv.mid, c.size_mult * (0.5 if same else 1.0))
            if opposite:
                row_emit(out, p, c.side, R_SIG_REVERSE if units > 0 else R_SIG_EXIT_OPPOSITE,
                         (pos if pos > 0 else -pos) + units)
                ps.position = c.side * units
                ps.deadline = t + holding_ns
            elif units > 0:
                row_emit(out, p, c.side, R_SIG_ADD if same else R_SIG_ENTER, units)
                ps.position = pos + c.side * units
                if not same:
                    ps.deadline = t + holding_ns
            else:
                out.reason = R_SIG_SIZE_ZERO
            if out.side != 0 and units > 0:
                ps.last_entry = t
                ps.has_entry = 1
                out.strength = c.strength
                out.confidence = c.confidence
                out.holding_ms = c.holding_ms
    elif p.exit_on_holding and pos != 0 and t >= ps.deadline:
        row_emit(out, p, -1 if pos > 0 else 1, R_SIG_EXIT_HOLDING, pos if pos > 0 else -pos)
        ps.position = 0
    out.position_units = ps.position


# ------------------------------------------------------------------------------------------
# generators


cdef int32_t reads_if_exact(object gen, type cls, int32_t reads):
    """A built-in generator's feature_reads(): a subclass may override evaluate(), so what it
    reads is unknown (everything)."""
    return reads if type(gen) is cls else G_ALL | G_EXTENSION


@cython.auto_pickle(False)     # C state: not picklable
cdef class SignalGenerator:
    """Base class of signal generators; subclass it in Cython for a nogil generator.

    Override ``cdef int evaluate(self, const FeatureVector *fv, SignalCandidate *out)
    noexcept nogil``: set ``out.side`` (+1, -1 or 0), ``strength``, ``confidence``,
    ``holding_ms``, ``size_mult`` (1.0 = equity * base_position_pct) or, for no signal,
    ``side = 0`` and a ``reason``. Return 0. ``reset()`` clears any state between runs.
    Override ``feature_reads()`` to let the engine compute the other feature groups after
    the order.
    """

    cdef int evaluate(self, const FeatureVector *fv, SignalCandidate *out) noexcept nogil:
        candidate_none(out, R_SIG_USER_NONE)
        return 0

    cpdef reset(self):
        pass

    def feature_reads(self):
        """The feature groups evaluate() reads, as bits of orpflow._core.features.FEATURE_GROUPS
        (| READS_EXTENSION for the extension's columns). The engine asks once, when it is built,
        and computes the groups outside it after the order (same rows). Default: everything."""
        return G_ALL | G_EXTENSION


@cython.auto_pickle(False)     # C state: not picklable
cdef class ImbalanceSignal(SignalGenerator):
    """ORPFlow's order-book imbalance rules, in order (docs/signals.md)."""

    def __init__(self, dict params not None):
        self.p.max_spread_bps = params["max_spread_bps"]
        self.p.threshold = params["threshold"]
        self.p.persistence = params["persistence"]
        self.p.min_confidence = params["min_confidence"]
        self.p.momentum_confirmation = params["momentum_confirmation"]
        self.p.momentum_threshold = params["momentum_threshold"]
        self.reset()

    cpdef reset(self):
        self.streak = 0
        self.last_sign = 0

    def feature_reads(self):
        """book (book_ok, mid, spread_bps, imbalance, weighted_imbalance) and history
        (volatility_z, momentum, imbalance_momentum)."""
        return reads_if_exact(self, ImbalanceSignal, G_BOOK | G_HISTORY)

    cdef int evaluate(self, const FeatureVector *fv, SignalCandidate *out) noexcept nogil:
        cdef double imb = fv.imbalance, conf, a
        cdef int32_t sign
        cdef bint calm, volatile
        if fv.kind != ROW_BOOK:
            candidate_none(out, R_SIG_TRADE_ROW)
            return 0
        # 1. defined, in sync
        if not fv.book_ok or imb != imb or fv.mid != fv.mid:
            candidate_none(out, R_SIG_BOOK_UNUSABLE)
            return 0
        # 2. spread filter, before the streak sees this message
        if fv.spread_bps > self.p.max_spread_bps:
            candidate_none(out, R_SIG_SPREAD)
            return 0
        # 3. persistence streak
        sign = (imb > 0) - (imb < 0)
        if sign == 0:
            self.streak = 0
        elif sign == self.last_sign:
            self.streak += 1
        else:
            self.streak = 1
        self.last_sign = sign
        a = fabs(imb)
        # 4. threshold
        if a < self.p.threshold:
            candidate_none(out, R_SIG_BELOW_THRESHOLD)
            return 0
        # 5. persistence
        if self.streak < self.p.persistence:
            candidate_none(out, R_SIG_PERSISTENCE)
            return 0
        # 6. confidence
        calm = fv.volatility_z < -1.0 - Z_BAND
        volatile = fv.volatility_z > 1.0 + Z_BAND
        conf = 0.4 * min(a, 1.0)
        conf += 0.2 * min(fabs(fv.weighted_imbalance), 1.0)
        conf += 0.2 * min(self.streak / 10.0, 1.0)
        if calm:
            conf += 0.1
        if volatile:
            conf -= 0.1
        if fv.imbalance_momentum * sign > 0.0:
            conf += 0.1
        conf = clamp(conf, 0.0, 1.0)
        if conf < self.p.min_confidence:
            candidate_none(out, R_SIG_LOW_CONFIDENCE)
            return 0
        # 7. momentum confirms the side (undefined momentum does not)
        if self.p.momentum_confirmation and not (fv.momentum * sign >= self.p.momentum_threshold):
            candidate_none(out, R_SIG_NO_MOMENTUM)
            return 0
        # 8. imbalance momentum must not diverge (undefined is no evidence of divergence)
        if fv.imbalance_momentum * sign < 0.0:
            candidate_none(out, R_SIG_DIVERGENCE)
            return 0
        # 9-10. the candidate; signal_decide sizes it
        out.side = sign
        out.reason = 0
        out.strength = clamp(imb / self.p.threshold, -1.0, 1.0)
        out.confidence = conf
        out.holding_ms = clamp(1000.0 / max(a, 0.01), 100.0, 10000.0)
        out.size_mult = 1.5 if calm else (0.5 if volatile else 1.0)
        return 0


@cython.auto_pickle(False)     # C state: not picklable
cdef class LinearSignal(SignalGenerator):
    """strength = tanh(bias + sum w_i * feature_i); a signal when |strength| >= threshold."""

    def __init__(self, weights, double bias=0.0, double entry_threshold=0.5,
                 double holding_ms=1000.0):
        w = [float(x) for x in weights]
        if len(w) > 64:
            raise ValueError("at most 64 weights")
        self.n = len(w)
        self.n_used = 0
        for i in range(self.n):
            self.weights[i] = w[i]
            if w[i] != 0.0:
                self.used[self.n_used] = i
                self.n_used += 1
        self.bias = bias
        self.entry_threshold = entry_threshold
        self.holding_ms = holding_ms

    def feature_reads(self):
        """book_ok and the groups of the columns with a non-zero weight."""
        cdef int32_t reads = G_BOOK
        for i in range(self.n):
            if self.weights[i] != 0.0:
                reads |= column_group(i)
        return reads_if_exact(self, LinearSignal, reads)

    cdef int evaluate(self, const FeatureVector *fv, SignalCandidate *out) noexcept nogil:
        cdef const double *x = &fv.mid
        cdef double z = self.bias
        cdef int64_t k, i
        if not fv.book_ok:
            candidate_none(out, R_SIG_BOOK_UNUSABLE)
            return 0
        for k in range(self.n_used):            # same columns, same order as all with w != 0
            i = self.used[k]
            if x[i] != x[i]:
                candidate_none(out, R_SIG_FEATURE_NAN)
                return 0
            z += self.weights[i] * x[i]
        strength_candidate(tanh(z), self.entry_threshold, self.holding_ms, out)
        return 0


@cython.auto_pickle(False)     # C state: not picklable
cdef class PythonSignal(SignalGenerator):
    """A Python callable ``f(row: dict) -> strength in [-1, 1], or None / NaN for no signal``.

    Takes the GIL on every row: for prototyping. A value outside [-1, 1] raises ValueError.
    """

    def __init__(self, fn, names, double entry_threshold=0.5, double holding_ms=1000.0):
        if not callable(fn):
            raise TypeError("fn must be callable")
        self.fn = fn
        self.names = tuple(names)
        self.entry_threshold = entry_threshold
        self.holding_ms = holding_ms
        self.error = None

    cdef int evaluate(self, const FeatureVector *fv, SignalCandidate *out) noexcept nogil:
        cdef const double *x = &fv.mid
        cdef double s = 0.0
        cdef bint none = False
        with gil:
            try:
                row = {"ts_exch": fv.ts_exch, "seq": fv.seq, "kind": fv.kind,
                       "book_ok": fv.book_ok}
                for i, name in enumerate(self.names):
                    row[name] = x[i]
                r = self.fn(row)
                if r is None:
                    none = True
                else:
                    s = float(r)
                    none = s != s                   # NaN: undefined, no signal
                    if not none and not -1.0 <= s <= 1.0:
                        raise ValueError(f"signal callable returned {r!r}; expected a strength "
                                         "in [-1, 1] or None")
            except BaseException as exc:
                self.error = exc
                candidate_none(out, R_SIG_ERROR)
                return -1
        if none:
            candidate_none(out, R_SIG_USER_NONE)
        elif not fv.book_ok:
            candidate_none(out, R_SIG_BOOK_UNUSABLE)
        else:
            strength_candidate(s, self.entry_threshold, self.holding_ms, out)
        return 0


# ------------------------------------------------------------------------------------------
# Python surface


def row_layout():
    """(name, byte offset) of every SignalRow field, and its size."""
    cdef SignalRow r
    cdef char *b = <char *>&r
    return [("ts_exch", <char *>&r.ts_exch - b), ("seq", <char *>&r.seq - b),
            ("side", <char *>&r.side - b), ("reason", <char *>&r.reason - b),
            ("strength", <char *>&r.strength - b), ("confidence", <char *>&r.confidence - b),
            ("size", <char *>&r.size - b), ("holding_ms", <char *>&r.holding_ms - b),
            ("size_units", <char *>&r.size_units - b),
            ("position_units", <char *>&r.position_units - b)], sizeof(SignalRow)


cdef void position_params(PositionParams *p, dict d):
    p.base_position_pct = d["base_position_pct"]
    p.equity = d["equity"]
    p.min_interval_ns = d["min_interval_ns"]
    p.exit_on_holding = d["exit_on_holding"]
    p.lot_units = d["lot_units"]
    p.qty_num = d["qty_num"]
    p.qty_den = d["qty_den"]


cdef class SignalEngine:
    """Features, one generator and the position rules over event arrays, in one nogil loop.

    Keeps its state between calls, so a recording can be fed in pieces.
    """
    cdef FeatureEngine features
    cdef SignalGenerator generator
    cdef PositionParams p
    cdef PositionState ps
    cdef readonly object dtype

    def __init__(self, FeatureEngine features, SignalGenerator generator not None,
                 dict params not None, object dtype):
        self.features = features
        self.generator = generator
        position_params(&self.p, params)
        memset(&self.ps, 0, sizeof(PositionState))
        if dtype.itemsize != sizeof(SignalRow):
            raise ValueError("signal dtype does not match the SignalRow layout")
        self.dtype = dtype
        generator.reset()

    def _raise_generator_error(self):
        err = getattr(self.generator, "error", None)
        if err is not None:
            self.generator.error = None
            raise err
        raise RuntimeError("signal generator failed")

    def run(self, events, bint with_features=False):
        """Signal rows for `events` (one per feature row); with_features: (features, signals)."""
        if self.features is None:
            raise RuntimeError("this SignalEngine has no FeatureEngine; use run_rows()")
        cdef FeatureEngine fe = self.features
        cdef SignalGenerator gen = self.generator
        cdef Event *evs = event_ptr(events, False)
        cdef int64_t n = events.shape[0], i = 0, rows = 0
        cdef size_t fsize = sizeof(FeatureVector), ssize = sizeof(SignalRow)
        cdef SignalCandidate cand
        cdef int failed = 0, row = 0
        sig = np.zeros(max(n, 1), dtype=self.dtype)
        feats = np.zeros(max(n, 1) if with_features else 1, dtype=fe.dtype)
        cdef unsigned char *sdst = array_bytes(sig)
        cdef unsigned char *fdst = array_bytes(feats)
        fe.book._enter_write()
        try:
            with nogil:
                while i < n:
                    i += fe.advance(&evs[i], n - i, &row)
                    if row:
                        if gen.evaluate(&fe.st.fv, &cand) != 0:
                            failed = 1
                            break
                        signal_decide(&self.ps, &self.p, &fe.st.fv, &cand,
                                      <SignalRow *>(sdst + rows * ssize))
                        if with_features:
                            memcpy(fdst + rows * fsize, &fe.st.fv, fsize)
                        rows += 1
        finally:
            fe.book._exit_write()
        if failed:
            self._raise_generator_error()
        if with_features:
            return feats[:rows], sig[:rows]
        return sig[:rows]

    def run_rows(self, rows):
        """Signal rows for feature rows already computed (raw FeatureVector layout)."""
        cdef int64_t n = rows.shape[0], i
        cdef size_t fsize = sizeof(FeatureVector), ssize = sizeof(SignalRow)
        cdef SignalCandidate cand
        cdef SignalGenerator gen = self.generator
        cdef int failed = 0
        if rows.dtype.itemsize != fsize or not rows.flags.c_contiguous:
            raise ValueError("rows must be a C-contiguous array in the raw FeatureVector layout")
        sig = np.zeros(max(n, 1), dtype=self.dtype)
        cdef unsigned char *sdst = array_bytes(sig)
        cdef unsigned char *src = array_bytes(rows) if n > 0 else NULL
        with nogil:
            for i in range(n):
                if gen.evaluate(<FeatureVector *>(src + i * fsize), &cand) != 0:
                    failed = 1
                    break
                signal_decide(&self.ps, &self.p, <FeatureVector *>(src + i * fsize), &cand,
                              <SignalRow *>(sdst + i * ssize))
        if failed:
            self._raise_generator_error()
        return sig[:n]

    def position(self):
        """The signal-implied position in size units."""
        return self.ps.position
