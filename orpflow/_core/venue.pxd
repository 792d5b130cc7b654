# The simulated venue (venue.pyx): requests in flight, matching, fills and the order states,
# and the per-record and per-order entry points the engine and ExecutionSim call. broker.pxd
# re-exports these names (cimport them from orpflow._core.broker).
from libc.stdint cimport int32_t, int64_t
from orpflow._core.types cimport Event
from orpflow._core.broker_state cimport Broker, ExecState

# Free the oldest chunks whose orders are all final (the engine without keep_history).
cdef void broker_trim(Broker *b) noexcept nogil
cdef void exec_apply(ExecState *x, const Event *e) noexcept nogil
cdef void exec_run_until(ExecState *x, int64_t t) noexcept nogil
cdef int64_t exec_submit(ExecState *x, int32_t side, int32_t kind, int32_t tif, int64_t price,
                         int64_t qty, int64_t client_id, int64_t expire_at, int64_t t,
                         int reason) noexcept nogil
cdef int exec_modify(ExecState *x, int64_t oi, int64_t price, int64_t qty, int64_t t) noexcept nogil
cdef int exec_send(ExecState *x, int32_t kind, int64_t order, int64_t t, int64_t price,
                   int64_t qty) noexcept nogil

