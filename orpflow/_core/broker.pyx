"""Paper broker, the Python API: ``PaperBroker`` (a simulated venue and an exact account for one
instrument) and ``ExecutionSim`` (one book, one broker and one risk gate driven by event records
in event time). Rules: docs/broker.md. Twin: orpflow/reference/broker.py.

The nogil core lives beside it: the state in broker_state.pxd, the latency model in latency.pyx,
the account in account.pxd, our resting orders and their queue positions in resting.pyx, and the
venue (requests, matching, fills, ``exec_apply``, the engine's per-record call) in venue.pyx.
"""

from libc.stdint cimport int64_t, uint64_t
from libc.stdlib cimport calloc, free
from libc.string cimport memset

from orpflow._core.types cimport (
    Event, event_ptr, orp_i128, i128_from_py, i128_to_py, debug_count_alloc, R_COUNT, R_OK,
)
from orpflow._core.book cimport OrderBook, book_in_sync
from orpflow._core.risk cimport OrderContext, risk_check
from orpflow._core.broker_state cimport NEVER, is_open, release, best_price

cimport cython

import numpy as np


# ------------------------------------------------------------------ Python API

ORDER_CHUNK_SIZE = ORDER_CHUNK

@cython.auto_pickle(False)
cdef class PaperBroker:
    """Simulated venue and account for one instrument (event time, deterministic).

    Parameters
    ----------
    inst : Instrument
    cash : decimal-like
        Starting cash in quote currency (exact on the tick x size grid).
    fees : Fees, (maker, taker) or dict
        Rates as fractions of notional; a negative maker rate is a rebate.
    latency : Latency, int ns or (entry_ns, response_ns)
    queue_model : str
        "risk_averse", or hftbacktest's probabilistic "prob_power" / "prob_power2" /
        "prob_power3" / "prob_log" / "prob_log2" (docs/broker.md).
    queue_power : float
        The exponent n of the power models.
    seed : int
        Seeds the latency jitter.
    """

    def __cinit__(self, inst, *, cash=10_000, fees=None, latency=0, queue_model="prob_power2",
                  double queue_power=3.0, seed=0):
        from orpflow.config import MoneyScale, broker_params
        p = broker_params(inst, cash=cash, fees=fees, latency=latency, queue_model=queue_model,
                          queue_power=queue_power, seed=seed)
        self.instrument = inst
        self.scale = MoneyScale(inst)
        self.b = <Broker *>calloc(1, sizeof(Broker))
        if self.b == NULL:
            raise MemoryError()
        debug_count_alloc(1)
        cdef Broker *b = self.b
        b.lot = p["lot_units"]
        b.maker_e8 = p["maker_e8"]
        b.taker_e8 = p["taker_e8"]
        b.entry_ns = p["entry_ns"]
        b.response_ns = p["response_ns"]
        b.jitter_ns = p["jitter_ns"]
        b.rng = <uint64_t>p["seed"]
        b.queue_model = p["queue_model"]
        b.queue_power = p["queue_power"]
        b.gtd_next = NEVER
        b.acct.cash = i128_from_py(p["cash"])
        n = len(p["lat_request"])
        if n:
            b.lat_req = <int64_t *>calloc(n, sizeof(int64_t))
            b.lat_entry = <int64_t *>calloc(n, sizeof(int64_t))
            b.lat_resp = <int64_t *>calloc(n, sizeof(int64_t))
            debug_count_alloc((b.lat_req != NULL) + (b.lat_entry != NULL) + (b.lat_resp != NULL))
            if b.lat_req == NULL or b.lat_entry == NULL or b.lat_resp == NULL:
                raise MemoryError()
            for i in range(n):
                b.lat_req[i] = p["lat_request"][i]
                b.lat_entry[i] = p["lat_exchange"][i] - p["lat_request"][i]
                b.lat_resp[i] = p["lat_response"][i] - p["lat_exchange"][i]
            b.lat_n = n

    def __dealloc__(self):
        cdef Broker *b = self.b
        cdef int64_t i
        if b == NULL:
            return
        release(b.lat_req)
        release(b.lat_entry)
        release(b.lat_resp)
        for i in range(b.live_chunk, (b.n_orders + ORDER_CHUNK - 1) >> ORDER_CHUNK_SHIFT):
            release(b.chunks[i])
        release(b.chunks)
        release(b.fills)
        release(b.heap)
        release(b.consumed)
        release(b.journal)
        release(b.rest[0].lv)
        release(b.rest[1].lv)
        free(b)
        debug_count_alloc(-1)
        self.b = NULL


cdef object _decimal(object scale, orp_i128 money):
    return scale.to_decimal(i128_to_py(money))


@cython.auto_pickle(False)
cdef class ExecutionSim:
    """One instrument's book, PaperBroker and risk gate, driven by event records in event
    time. For notebooks and tests; the engine runs the same per-record function.

    ``submit`` returns the order id, or the ``Reason`` it was rejected for (the rejected order
    is recorded too). Times default to the local clock of the last applied record.
    """

    def __cinit__(self, inst, broker=None, risk=None, **book_options):
        from orpflow.config import RiskLimits
        if broker is None:
            broker = PaperBroker(inst)
        if not isinstance(broker, PaperBroker):
            raise TypeError("broker must be an orpflow.PaperBroker")
        if broker.instrument != inst:
            raise ValueError("broker was made for another instrument")
        if (<PaperBroker>broker).bound:
            raise ValueError("this broker already belongs to an ExecutionSim")
        self.instrument = inst
        self.book = OrderBook(inst, **book_options)
        self.risk = RiskGate(risk if risk is not None else RiskLimits(), inst)
        self.broker = broker
        self.broker.bound = True
        self.x.book = self.book.book
        self.x.b = self.broker.b
        self.x.risk = self.risk.r
        self.x.b.risk = self.risk.r

    def _t(self, ts):
        return self.x.now if ts is None else max(int(ts), self.x.now)

    def _check(self):
        if self.x.b.failed:
            raise MemoryError("the broker ran out of memory; its state is no longer complete")

    def submit(self, side, qty, type="limit", price=None, tif=None, *, client_id=0,
               expire_at=None, ts=None):
        """Send an order: side "buy"/"sell", type "market"/"limit"/"post_only"/"ioc"/"fok",
        tif "GTC"/"IOC"/"FOK"/"GTD" (GTD needs expire_at, venue ns). Returns the order id,
        or the Reason it was rejected for."""
        from orpflow.events import Reason
        from orpflow.orders import parse_order
        s, ty, tf, ticks, units, exp, reason = parse_order(self.instrument, side, qty, type, price, tif,
                                                           expire_at)
        cdef int64_t r = exec_submit(&self.x, s, ty, tf, ticks, units, int(client_id), exp,
                                     self._t(ts), reason)
        self._check()
        return r if r > 0 else Reason(-r)

    def _open_order(self, order_id, bint modifiable):
        if isinstance(order_id, bool) or not isinstance(order_id, int):
            raise TypeError("order_id must be an int")
        if not (self.x.b.live_chunk << ORDER_CHUNK_SHIFT) < order_id <= self.x.b.n_orders:
            return None                     # unknown, or trimmed (trimmed orders were final)
        cdef SimOrder *o = order_at(self.x.b, order_id - 1)
        if not (o.status == OS_PENDING or is_open(o)) or (modifiable and o.kind == OT_MARKET):
            return None
        return order_id - 1

    def cancel(self, order_id, *, ts=None):
        """Send a cancel (it races fills: it acts when it reaches the venue). False if the
        order is unknown or already final here."""
        oi = self._open_order(order_id, False)
        if oi is None:
            return False
        exec_send(&self.x, RQ_CANCEL, oi, self._t(ts), 0, 0)
        self._check()
        return True

    def modify(self, order_id, *, price=None, qty=None, ts=None):
        """Send a modify of price and/or total quantity. A size cut at the same price keeps
        the queue position; anything else re-queues (and may take liquidity) and is
        risk-checked first. True if sent, False if the order is unknown or final here, or the
        Reason the risk gate rejected it for."""
        oi = self._open_order(order_id, True)
        if oi is None:
            return False
        cdef SimOrder *o = order_at(self.x.b, oi)
        ticks = o.price if price is None else self.instrument.price_to_ticks(price)
        units = o.qty if qty is None else self.instrument.size_to_units(qty)
        if ticks <= 0 or units <= 0 or units % self.instrument.lot_units:
            raise ValueError("modify: price must be > 0 and qty a positive whole number of lots")
        cdef int r = exec_modify(&self.x, oi, ticks, units, self._t(ts))
        self._check()
        if r > 0:
            from orpflow.events import Reason
            return Reason(r)
        return True

    def kill(self):
        self.risk.kill()

    def reset_kill(self):
        self.risk.reset_kill()

    def reset_breakers(self):
        self.risk.reset_breakers()

    def trip_breaker(self):
        """Trip the "manual" breaker (at the current venue time)."""
        self.risk.trip(32, self.x.b.clock)

    @property
    def now(self):
        """Local clock: the latest ts_local applied."""
        return self.x.now

    @property
    def venue_time(self):
        return self.x.b.clock

    def advance(self, ts):
        """Let the venue run to venue time ts (requests and expiries due by then)."""
        cdef int64_t t = ts
        if not self.x.book.msg_open:
            self.book._enter_write()
            try:
                exec_run_until(&self.x, t)
            finally:
                self.book._exit_write()
        self._check()

    def apply(self, events):
        """Drive the book and the venue with EVENT_DTYPE records (nogil)."""
        cdef Event *evs = event_ptr(events, False)
        cdef int64_t n = events.shape[0], i
        self.book._enter_write()
        try:
            with nogil:
                for i in range(n):
                    exec_apply(&self.x, &evs[i])
        finally:
            self.book._exit_write()
        self._check()

    def orders(self):
        """Every order so far as an ORDER_DTYPE array (those still held: an engine run without
        keep_history frees final orders once written)."""
        from orpflow.orders import ORDER_DTYPE
        cdef Broker *b = self.x.b
        cdef SimOrder *o
        cdef int64_t first = b.live_chunk << ORDER_CHUNK_SHIFT, i
        out = np.zeros(b.n_orders - first, ORDER_DTYPE)
        for i in range(first, b.n_orders):
            o = order_at(b, i)
            out[i - first] = (o.id, o.client_id, o.side, o.kind, o.tif, o.status, o.reason, o.price, o.qty,
                      o.filled, o.ts_request, o.ts_arrival, o.ts_ack, o.ts_done, o.expire_at,
                      o.ahead, float(_decimal(self.broker.scale, o.fees)))
        return out

    def fills(self):
        """Every fill so far as a FILL_DTYPE array."""
        from orpflow.orders import FILL_DTYPE
        cdef Broker *b = self.x.b
        cdef SimFill *f
        out = np.zeros(b.n_fills, FILL_DTYPE)
        scale = self.broker.scale
        for i in range(b.n_fills):
            f = &b.fills[i]
            out[i] = (f.order_id, f.client_id, f.side, f.liquidity, f.price, f.qty,
                      float(_decimal(scale, f.fee)), float(_decimal(scale, f.realised)), f.position,
                      f.ts_exch, f.ts_local)
        return out

    def account(self):
        """Cash, position, entry, realised/unrealised PnL, fees, equity, peak and drawdown
        (exact Decimals in quote currency; unrealised and equity at the last mark)."""
        from orpflow.orders import account_view
        cdef Account *a = &self.x.b.acct
        scale = self.broker.scale
        return account_view(self.instrument, cash=_decimal(scale, a.cash), cost=_decimal(scale, a.cost),
                            position=a.position, realised=_decimal(scale, a.realised),
                            fees=_decimal(scale, a.fees), mark_mid2=a.mark_mid2,
                            peak=_decimal(scale, a.peak) if a.peak_set else None,
                            max_drawdown=a.max_drawdown, round_trips=a.round_trips,
                            losing_round_trips=a.losing_round_trips)

    def position(self):
        from orpflow.orders import position_view
        return position_view(self.account())

    def risk_stats(self):
        """Risk decisions by reason, breakers, trips; `venue`: venue outcomes by reason."""
        s = self.risk.stats()
        s["venue"] = {k: self.x.b.counts[k] for k in range(R_COUNT) if self.x.b.counts[k]}
        return s

    def open_exposure(self):
        """(open buy size, open sell size, open order count) in size units, in flight included."""
        return self.x.b.open_buy, self.x.b.open_sell, self.x.b.open_count


# ------------------------------------------------------------------ benchmark kernels

cdef extern from "orp_atomic.h":
    int64_t ORP_now_ns() nogil


def _bench_risk_check(ExecutionSim sim, int64_t n):
    """ns for n pre-trade checks of a 1-lot limit buy at the best bid (the rate buckets and
    the decision counters see every call: switch rates off for a steady figure)."""
    cdef ExecState *x = &sim.x
    cdef OrderContext c
    cdef int64_t i, q, t0, t1
    memset(&c, 0, sizeof(c))
    c.side = 1
    c.bid = best_price(&x.book.bid, 0)
    c.ask = best_price(&x.book.ask, 1)
    c.price = c.bid
    c.book_usable = book_in_sync(x.book)
    c.cash = x.b.acct.cash
    c.equity = x.b.acct.cash
    with nogil:
        t0 = ORP_now_ns()
        for i in range(n):
            q = x.b.lot
            c.now = i
            risk_check(x.risk, &c, &q)
        t1 = ORP_now_ns()
    return t1 - t0


def _bench_taker(ExecutionSim sim, int64_t n):
    """ns for n 1-lot market orders, alternately buy and sell, each risk-checked, sent, matched
    against the book and booked (the liquidity they use is forgotten after each, so every one
    takes the touch)."""
    cdef ExecState *x = &sim.x
    cdef int64_t i, t0, t1, t = x.now
    with nogil:
        t0 = ORP_now_ns()
        for i in range(n):
            exec_submit(x, 1 if i & 1 == 0 else -1, OT_MARKET, TIF_IOC, 0, x.b.lot, 0, 0, t, R_OK)
            exec_run_until(x, t)
            x.b.n_consumed = 0
        t1 = ORP_now_ns()
    sim._check()
    return t1 - t0
