"""ORPFlow's signal path, built on the strategy API like any user strategy.

On every feature row (``on_book`` / ``on_trade``): the signal generator proposes, the position
rules decide (sizing, entries, exits, holding periods), and at most one order brings position
plus open orders to the signal's target: a market order, or an IOC limit at the opposite best
+- slippage. Every emitted signal is written as a signal record with the order it led to, or
why none.
"""
from libc.stdint cimport int32_t, int64_t
from libc.string cimport memcpy

cimport cython

from orpflow._core.types cimport Event, R_OK
from orpflow._core.broker cimport Broker, OT_MARKET, OT_LIMIT, TIF_IOC
from orpflow._core.engine cimport OUT_SIGNAL, OUT_FIELDS
from orpflow._core.signals cimport (
    SignalGenerator, SignalCandidate, SignalRow, signal_decide, position_params as set_position_params,
)
from orpflow._core.strategy cimport ctx_send, taker_price

# Why a signal placed no order (v[9] of its signal record).
cdef enum:
    NO_ORDER_PLACED = 0
    NO_ORDER_WARMUP = 1        # fewer feature rows than warmup_rows since the start
    NO_ORDER_AT_TARGET = 2     # position + open orders already at (or beyond) the target
    NO_ORDER_NO_PRICE = 3      # IOC limit: the opposite side of the book is empty


cdef inline int64_t pack_double(double d) noexcept nogil:
    cdef int64_t v
    memcpy(&v, &d, 8)
    return v


@cython.auto_pickle(False)
cdef class SignalStrategy(CStrategy):
    """The config's [signal] generator and position rules, and [execution]'s order type."""

    def __init__(self, SignalGenerator generator not None, dict position_params not None,
                 dict exec_params not None):
        self.generator = generator
        self.gen = <void *>generator
        set_position_params(&self.pp, position_params)
        self.order_kind = OT_LIMIT if exec_params["order_type"] == "ioc" else OT_MARKET
        self.slippage_ticks = exec_params["slippage_ticks"]
        self.warmup_rows = exec_params["warmup_rows"]
        generator.reset()

    @property
    def signal_generator(self):
        return self.generator

    def feature_reads(self):
        return self.generator.feature_reads()

    def _restore_position(self, int64_t position):
        self.ps.position = position

    def _failure(self):
        err = getattr(self.generator, "error", None)
        if err is not None:
            self.generator.error = None
            return err
        return RuntimeError("signal generator failed")

    cdef int on_book(self, StrategyContext *ctx) noexcept nogil:
        return self.decide(ctx)

    cdef int on_trade(self, StrategyContext *ctx, const Event *e) noexcept nogil:
        return self.decide(ctx)

    cdef int decide(self, StrategyContext *ctx) noexcept nogil:
        """The generator, the position rules, the order, the signal record."""
        cdef SignalCandidate cand
        cdef SignalRow row
        cdef int64_t result = 0, why = NO_ORDER_WARMUP
        cdef int64_t v[OUT_FIELDS]
        if (<SignalGenerator>self.gen).evaluate(&ctx.st.fv, &cand) != 0:
            return -1
        signal_decide(&self.ps, &self.pp, &ctx.st.fv, &cand, &row)
        if row.side == 0:
            return 0
        if ctx.rows > self.warmup_rows:
            result = self.place(ctx, &row, &why)
        v[0] = row.seq
        v[1] = row.side
        v[2] = row.reason
        v[3] = row.size_units
        v[4] = row.position_units
        v[5] = pack_double(row.strength)
        v[6] = pack_double(row.confidence)
        v[7] = pack_double(row.holding_ms)
        v[8] = result
        v[9] = why
        v[10] = ctx.rows
        v[11] = 0
        ctx.record(ctx, OUT_SIGNAL, row.ts_exch, v)
        return 0

    cdef int64_t place(self, StrategyContext *ctx, const SignalRow *row, int64_t *why) noexcept nogil:
        """The order that brings position + open orders to the signal's target, if the target
        lies on the signal's side; its id, -reason if risk rejected it, 0 if none was sent."""
        cdef Broker *b = ctx.x.b
        cdef int64_t have = b.acct.position + b.open_buy - b.open_sell
        cdef int64_t delta = row.position_units - have
        cdef int32_t side
        cdef int64_t price = 0
        if delta == 0 or (delta > 0) != (row.side > 0):
            why[0] = NO_ORDER_AT_TARGET
            return 0
        side = 1 if delta > 0 else -1
        if self.order_kind == OT_LIMIT:
            price = taker_price(ctx.x, side, self.slippage_ticks)
            if price == 0:
                why[0] = NO_ORDER_NO_PRICE
                return 0
        why[0] = NO_ORDER_PLACED
        return ctx_send(ctx, side, self.order_kind, TIF_IOC, price, delta if delta > 0 else -delta,
                        0, ctx.event_no[0], R_OK)
