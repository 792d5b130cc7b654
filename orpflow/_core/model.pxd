# STAND-IN until the native evaluator lands (replaced by the real one on merge).
cdef class NativeModel:
    cdef readonly int n_inputs
    cdef readonly int n_outputs
    cdef int run(self, const float *x, float *out) noexcept nogil
