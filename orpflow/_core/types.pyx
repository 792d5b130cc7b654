"""Flags, reason codes and the Event layout, exported from the C definitions in types.pxd."""

from libc.stdint cimport int64_t, uint64_t

import numpy as np

FLAGS = {
    "DEPTH": F_DEPTH, "TRADE": F_TRADE, "BBO": F_BBO, "SNAPSHOT": F_SNAPSHOT, "CLEAR": F_CLEAR,
    "BID": F_BID, "ASK": F_ASK, "BUY": F_BUY, "SELL": F_SELL, "LAST": F_LAST,
}

REASONS = {
    "OK": R_OK, "MALFORMED": R_MALFORMED, "BAD_NUMBER": R_BAD_NUMBER, "NEGATIVE": R_NEGATIVE,
    "OFF_TICK": R_OFF_TICK, "OFF_SIZE_INCREMENT": R_OFF_SIZE_INCREMENT, "OVERFLOW": R_OVERFLOW,
    "WRONG_SYMBOL": R_WRONG_SYMBOL, "UNSUPPORTED": R_UNSUPPORTED,
    "WRONG_INSTRUMENT": R_WRONG_INSTRUMENT, "BAD_FLAGS": R_BAD_FLAGS, "BAD_PRICE": R_BAD_PRICE,
    "STALE": R_STALE, "BUFFER_OVERFLOW": R_BUFFER_OVERFLOW, "NO_SNAPSHOT": R_NO_SNAPSHOT,
    "STALE_SNAPSHOT": R_STALE_SNAPSHOT, "OUT_OF_SYNC": R_OUT_OF_SYNC,
    "SIG_ENTER": R_SIG_ENTER, "SIG_ADD": R_SIG_ADD, "SIG_REVERSE": R_SIG_REVERSE,
    "SIG_EXIT_HOLDING": R_SIG_EXIT_HOLDING, "SIG_EXIT_OPPOSITE": R_SIG_EXIT_OPPOSITE,
    "SIG_BOOK_UNUSABLE": R_SIG_BOOK_UNUSABLE, "SIG_SPREAD": R_SIG_SPREAD,
    "SIG_BELOW_THRESHOLD": R_SIG_BELOW_THRESHOLD, "SIG_PERSISTENCE": R_SIG_PERSISTENCE,
    "SIG_LOW_CONFIDENCE": R_SIG_LOW_CONFIDENCE, "SIG_NO_MOMENTUM": R_SIG_NO_MOMENTUM,
    "SIG_DIVERGENCE": R_SIG_DIVERGENCE, "SIG_SIZE_ZERO": R_SIG_SIZE_ZERO,
    "SIG_MIN_INTERVAL": R_SIG_MIN_INTERVAL, "SIG_TRADE_ROW": R_SIG_TRADE_ROW,
    "SIG_FEATURE_NAN": R_SIG_FEATURE_NAN, "SIG_WEAK": R_SIG_WEAK,
    "SIG_USER_NONE": R_SIG_USER_NONE, "SIG_ERROR": R_SIG_ERROR,
    "RISK_KILL_SWITCH": R_RISK_KILL_SWITCH,
    "RISK_BOOK_NOT_SYNCED": R_RISK_BOOK_NOT_SYNCED,
    "RISK_BREAKER": R_RISK_BREAKER,
    "RISK_RATE_SECOND": R_RISK_RATE_SECOND,
    "RISK_RATE_MINUTE": R_RISK_RATE_MINUTE,
    "RISK_RATE_HOUR": R_RISK_RATE_HOUR,
    "RISK_ORDER_QTY": R_RISK_ORDER_QTY,
    "RISK_ORDER_NOTIONAL": R_RISK_ORDER_NOTIONAL,
    "RISK_POSITION": R_RISK_POSITION,
    "RISK_GROSS_EXPOSURE": R_RISK_GROSS_EXPOSURE,
    "RISK_PRICE_BAND": R_RISK_PRICE_BAND,
    "RISK_OPEN_ORDERS": R_RISK_OPEN_ORDERS,
    "RISK_MIN_BALANCE": R_RISK_MIN_BALANCE,
    "RISK_NO_PRICE": R_RISK_NO_PRICE,
    "ORDER_BAD_QTY": R_ORDER_BAD_QTY,
    "ORDER_BAD_PRICE": R_ORDER_BAD_PRICE,
    "ORDER_BAD_EXPIRY": R_ORDER_BAD_EXPIRY,
    "VENUE_BOOK_NOT_SYNCED": R_VENUE_BOOK_NOT_SYNCED,
    "POST_ONLY_CROSS": R_POST_ONLY_CROSS,
    "FOK_UNFILLABLE": R_FOK_UNFILLABLE,
    "IOC_REMAINDER": R_IOC_REMAINDER,
    "NO_LIQUIDITY": R_NO_LIQUIDITY,
    "GTD_EXPIRED": R_GTD_EXPIRED,
    "CANCELLED": R_CANCELLED,
    "CANCEL_REJECTED": R_CANCEL_REJECTED,
    "MODIFY_REJECTED": R_MODIFY_REJECTED,
    "RISK_CLIPPED": R_RISK_CLIPPED,
    "RISK_BREAKER_REDUCE_ONLY": R_RISK_BREAKER_REDUCE_ONLY,
    "SIG_MODEL_FLAT": R_SIG_MODEL_FLAT, "SIG_MODEL_BAD_OUTPUT": R_SIG_MODEL_BAD_OUTPUT,
    "ORDER_BAD_TYPE": R_ORDER_BAD_TYPE,
}

REASON_COUNT = R_COUNT


def event_layout():
    """(name, byte offset, byte size) of every Event field, as the C compiler laid it out."""
    cdef Event e
    cdef char *base = <char *>&e
    return [
        ("ts_exch", <char *>&e.ts_exch - base, sizeof(e.ts_exch)),
        ("ts_local", <char *>&e.ts_local - base, sizeof(e.ts_local)),
        ("seq", <char *>&e.seq - base, sizeof(e.seq)),
        ("seq_first", <char *>&e.seq_first - base, sizeof(e.seq_first)),
        ("seq_prev", <char *>&e.seq_prev - base, sizeof(e.seq_prev)),
        ("price", <char *>&e.price - base, sizeof(e.price)),
        ("qty", <char *>&e.qty - base, sizeof(e.qty)),
        ("flags", <char *>&e.flags - base, sizeof(e.flags)),
        ("instrument", <char *>&e.instrument - base, sizeof(e.instrument)),
    ]


def event_size():
    return sizeof(Event)


cdef Event *event_ptr(object arr, bint writable) except NULL:
    from orpflow.events import check_event_array
    check_event_array(arr, writable)
    if arr.shape[0] == 0:
        return <Event *>8   # a non-NULL placeholder, never dereferenced: callers pass n == 0
    cdef unsigned char[::1] wbytes
    cdef const unsigned char[::1] rbytes
    if writable:
        wbytes = arr.view(np.uint8)
        return <Event *>&wbytes[0]
    rbytes = arr.view(np.uint8)
    return <Event *>&rbytes[0]


cdef unsigned char *array_bytes(object arr) except NULL:
    cdef unsigned char[::1] raw = arr.view(np.uint8).reshape(-1)
    return &raw[0]


cdef extern from "orp_debug.h":
    const bint ORP_DEBUG_ENABLED
    void ORP_DEBUG_ADD(int64_t counter, int64_t v) noexcept nogil

cdef int64_t _debug_live = 0      # live C allocations of ring, snapshot and book objects


cdef void debug_count_alloc(int64_t delta) noexcept nogil:
    ORP_DEBUG_ADD(_debug_live, delta)


def debug_live_allocations():
    """Live C allocations of the compiled core, or -1 in a release build (not counted)."""
    return _debug_live if ORP_DEBUG_ENABLED else -1


cdef orp_i128 i128_from_py(object v) except? -1:
    v = int(v)
    if not -(1 << 127) <= v < (1 << 127):
        raise OverflowError(f"{v} does not fit a 128-bit integer")
    return orp_i128_make(<int64_t>(v >> 64), <uint64_t>(v & 0xFFFFFFFFFFFFFFFF))


cdef object i128_to_py(orp_i128 x):
    return (<object>orp_i128_hi(x) << 64) | <object>orp_i128_lo(x)
