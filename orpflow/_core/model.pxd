# The native model evaluator: an ONNX graph lowered (by orpflow.ml.native) into a flat program
# of ops over one float32 arena. run() is nogil, allocation-free and Python-free.
from libc.stdint cimport int32_t, int64_t

# One op of the program; the meaning of p[] per kind is documented in model.pyx. The pointers
# are resolved (and every range checked) once, when the model is built.
cdef struct ModelOp:
    int32_t kind
    int32_t sub
    int64_t p[20]
    float f0
    float f1
    float *a                  # first input (or the tree ensemble's feature vector)
    float *b                  # second input / weights
    float *c                  # bias / tree float block
    float *out
    const int32_t *ia         # gather maps / tree int block
    const int32_t *ib

cdef class NativeModel:
    cdef readonly int n_inputs
    cdef readonly int n_outputs
    cdef float *mem           # [arena (writable, zeroed) | constants]
    cdef int32_t *imem        # integer parameters (gather maps, tree structure)
    cdef ModelOp *ops
    cdef int64_t n_ops
    cdef int64_t mem_size
    cdef int64_t arena_size
    cdef int64_t imem_size
    cdef float *x_in
    cdef const float *y_out
    # One row: x has n_inputs float32 values, out receives n_outputs float32 values.
    # nogil, no allocation, no Python objects; returns 0.
    cdef int run(self, const float *x, float *out) noexcept nogil
