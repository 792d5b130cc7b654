# Paper broker: simulated venue (latency, taker walk, queue position), account, nogil.
# The C state is declared in broker_state.pxd and the venue's entry points in venue.pxd; every
# name is re-exported here, so `from orpflow._core.broker cimport ...` reaches all of them.
from libc.stdint cimport int32_t, int64_t, uint64_t
from orpflow._core.types cimport Event, orp_i128, R_COUNT
from orpflow._core.book cimport Book, OrderBook
from orpflow._core.risk cimport RiskState, RiskGate
from orpflow._core.broker_state cimport (
    OrderStatus, OS_PENDING, OS_ACCEPTED, OS_PARTIALLY_FILLED, OS_FILLED, OS_CANCELLED,
    OS_REJECTED, OS_EXPIRED,
    OrderKind, OT_MARKET, OT_LIMIT, OT_POST_ONLY,
    TimeInForce, TIF_GTC, TIF_IOC, TIF_FOK, TIF_GTD,
    QueueModel, QM_RISK_AVERSE, QM_PROB_POWER, QM_PROB_POWER2, QM_PROB_POWER3, QM_PROB_LOG,
    QM_PROB_LOG2,
    ORDER_CHUNK_SHIFT, ORDER_CHUNK,
    RequestKind, RQ_NEW, RQ_CANCEL, RQ_MODIFY,
    SimOrder, RestLevel, RestSide, Request, Consumed, SimFill, Account, Broker, ExecState,
    order_at,
)
# broker_trim: free the oldest chunks whose orders are all final (the engine without keep_history).
from orpflow._core.venue cimport (
    broker_trim, exec_apply, exec_run_until, exec_submit, exec_modify, exec_send,
)

cdef class PaperBroker:
    cdef Broker *b
    cdef readonly object instrument
    cdef readonly object scale
    cdef bint bound

cdef class ExecutionSim:
    cdef ExecState x
    cdef readonly OrderBook book
    cdef readonly PaperBroker broker
    cdef readonly RiskGate risk
    cdef readonly object instrument
