# The ONNX model as a signal generator (orpflow.ml.load chooses its evaluator).
from libc.stdint cimport int32_t
from orpflow._core.signals cimport SignalGenerator
from orpflow._core.model cimport NativeModel

cdef enum:
    MODEL_MAX_INPUTS = 64
    MODEL_MAX_OUTPUTS = 16
    MODE_SCORE = 0
    MODE_CLASSES = 1

cdef class ModelSignal(SignalGenerator):
    cdef int32_t n_in
    cdef int32_t n_out
    cdef int32_t cols[MODEL_MAX_INPUTS]        # feature column of each model input
    cdef double shift[MODEL_MAX_INPUTS]        # normalised input = (x - shift) * mul
    cdef double mul[MODEL_MAX_INPUTS]
    cdef int32_t mode
    cdef double scale
    cdef double entry_threshold
    cdef double min_probability
    cdef double holding_ms
    cdef int32_t size_by_strength
    cdef int32_t class_side[MODEL_MAX_OUTPUTS]  # +1 buy, -1 sell, 0 flat per probability column
    cdef float x[MODEL_MAX_INPUTS]
    cdef float y[MODEL_MAX_OUTPUTS]
    cdef NativeModel native                     # None: onnxruntime through `ort`
    cdef object ort
    cdef object ort_run
    cdef float[::1] ort_x
    cdef float[::1] ort_y
    cdef readonly object loaded                 # orpflow.ml.load.LoadedModel
    cdef public object error
    cdef int run_model(self) noexcept nogil
