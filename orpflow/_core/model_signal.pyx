"""An ONNX model as a signal generator: features in, model out, a candidate for the position rules.

Per row, without the GIL on the native evaluator: the configured feature columns are read,
checked (an undefined or infinite one skips the row: SIG_FEATURE_NAN, so NaN never reaches the
model), normalised in double as (x - shift) * mul and rounded to float32 (the model's type), the
model runs, and its output becomes a candidate: a score (strength = clip(score * scale, -1, 1),
a side when |strength| >= entry_threshold) or class probabilities (the most probable class;
buy/sell with probability >= min_probability). The onnxruntime evaluator takes the GIL per row.
Twin: orpflow/reference/signals.py (ModelRule).
"""

from libc.stdint cimport int32_t
from libc.math cimport fabs, isfinite
from libc.float cimport FLT_MAX

from orpflow._core.types cimport (
    R_SIG_BOOK_UNUSABLE, R_SIG_FEATURE_NAN, R_SIG_WEAK, R_SIG_ERROR, R_SIG_MODEL_FLAT,
    R_SIG_MODEL_BAD_OUTPUT,
)
from orpflow._core.features cimport FeatureVector, FEATURE_COUNT, FEATURE_EXTRA_MAX, G_BOOK, column_group
from orpflow._core.signals cimport SignalCandidate, candidate_none, reads_if_exact

cimport cython

import numpy as np


cdef inline void candidate(SignalCandidate *c, int32_t side, double strength, double confidence,
                           double holding_ms, double size_mult) noexcept nogil:
    c.side = side
    c.reason = 0
    c.strength = strength
    c.confidence = confidence
    c.holding_ms = holding_ms
    c.size_mult = size_mult


@cython.auto_pickle(False)     # holds a compiled model: not picklable
cdef class ModelSignal(SignalGenerator):
    """The ``generator = "onnx"`` signal generator; built by the engine from an OnnxSignal."""

    def __init__(self, loaded, cols, shift, mul, str mode, double scale, double entry_threshold,
                 double min_probability, double holding_ms, bint size_by_strength, class_side=()):
        cdef int i
        n = len(cols)
        if not 1 <= n <= MODEL_MAX_INPUTS or len(shift) != n or len(mul) != n:
            raise ValueError(f"a model reads 1 to {MODEL_MAX_INPUTS} features")
        if loaded.n_inputs != n:
            raise ValueError(f"the model takes {loaded.n_inputs} features, not {n}")
        if not 1 <= loaded.n_outputs <= MODEL_MAX_OUTPUTS:
            raise ValueError(f"the model has {loaded.n_outputs} outputs; at most {MODEL_MAX_OUTPUTS}")
        self.n_in = n
        self.n_out = loaded.n_outputs
        for i in range(n):
            c = int(cols[i])
            if not 0 <= c < FEATURE_COUNT + FEATURE_EXTRA_MAX:
                raise ValueError(f"feature column {c} out of range")
            self.cols[i] = c
            self.shift[i] = shift[i]
            self.mul[i] = mul[i]
        if mode == "score":
            if self.n_out != 1:
                raise ValueError("mode 'score' reads one output value")
            self.mode = MODE_SCORE
        elif mode == "classes":
            if len(class_side) != self.n_out:
                raise ValueError(f"{len(class_side)} classes for {self.n_out} probabilities")
            self.mode = MODE_CLASSES
            for i in range(self.n_out):
                self.class_side[i] = class_side[i]
        else:
            raise ValueError(f"unknown mode {mode!r}")
        self.scale = scale
        self.entry_threshold = entry_threshold
        self.min_probability = min_probability
        self.holding_ms = holding_ms
        self.size_by_strength = size_by_strength
        self.loaded = loaded
        self.error = None
        if loaded.native is not None:
            self.native = loaded.native
        else:
            self.native = None
            self.ort = loaded.ort
            self.ort_run = loaded.ort.run
            self.ort_x = loaded.ort.flat_x
            self.ort_y = loaded.ort.flat_y
            if self.ort_x.shape[0] != n or self.ort_y.shape[0] != self.n_out:
                raise ValueError("onnxruntime buffers do not match the model's widths")

    def feature_reads(self):
        """book_ok and the groups of the model's input columns."""
        cdef int32_t reads = G_BOOK
        for i in range(self.n_in):
            reads |= column_group(self.cols[i])
        return reads_if_exact(self, ModelSignal, reads)

    @property
    def evaluator(self):
        """"native" or "onnxruntime"."""
        return self.loaded.evaluator

    cdef int run_model(self) noexcept nogil:
        cdef int32_t i
        if self.native is not None:
            return self.native.run(self.x, self.y)
        with gil:
            try:
                for i in range(self.n_in):
                    self.ort_x[i] = self.x[i]
                self.ort_run()
                for i in range(self.n_out):
                    self.y[i] = self.ort_y[i]
            except BaseException as exc:
                self.error = exc
                return -1
        return 0

    cdef int evaluate(self, const FeatureVector *fv, SignalCandidate *out) noexcept nogil:
        cdef const double *col = &fv.mid
        cdef double v, s, p
        cdef int32_t i, best, side
        if not fv.book_ok:
            candidate_none(out, R_SIG_BOOK_UNUSABLE)
            return 0
        for i in range(self.n_in):
            v = (col[self.cols[i]] - self.shift[i]) * self.mul[i]
            if not (fabs(v) <= FLT_MAX):   # undefined, infinite, or beyond float32
                candidate_none(out, R_SIG_FEATURE_NAN)
                return 0
            self.x[i] = <float>v
        if self.run_model() != 0:
            candidate_none(out, R_SIG_ERROR)
            return -1
        if self.mode == MODE_SCORE:
            s = self.y[0]
            if not isfinite(s):
                candidate_none(out, R_SIG_MODEL_BAD_OUTPUT)
                return 0
            s = s * self.scale
            if s > 1.0:
                s = 1.0
            elif s < -1.0:
                s = -1.0
            if not (fabs(s) >= self.entry_threshold) or s == 0.0:
                candidate_none(out, R_SIG_WEAK)
                return 0
            candidate(out, 1 if s > 0 else -1, s, fabs(s), self.holding_ms,
                      fabs(s) if self.size_by_strength else 1.0)
            return 0
        best = 0
        for i in range(self.n_out):
            if not isfinite(self.y[i]):
                candidate_none(out, R_SIG_MODEL_BAD_OUTPUT)
                return 0
            if self.y[i] > self.y[best]:
                best = i
        side = self.class_side[best]
        p = self.y[best]
        if side == 0:
            candidate_none(out, R_SIG_MODEL_FLAT)
            return 0
        if not (p >= self.min_probability):
            candidate_none(out, R_SIG_WEAK)
            return 0
        candidate(out, side, side * p, p, self.holding_ms, p if self.size_by_strength else 1.0)
        return 0
