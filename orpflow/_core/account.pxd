# The paper broker's account: cash, position and cost basis exact in 128-bit money units
# (tick x size unit x 1e-8), realised PnL, round trips, the mark and drawdown (docs/broker.md).
# Declarations and inline functions only: every fill and every complete book message runs this
# code, so it is compiled into the matching loop (venue.pyx) rather than called across modules.
from libc.stdint cimport int64_t
from orpflow._core.types cimport orp_i128, MONEY_PER_TICK_UNIT, orp_i128_to_double
from orpflow._core.book cimport Book
from orpflow._core.risk cimport risk_on_mark, risk_on_round_trip
from orpflow._core.broker_state cimport Account, Broker, best_price


cdef inline orp_i128 mul_div_half_even(orp_i128 c, int64_t q, int64_t p) noexcept nogil:
    """c * q / p rounded half to even, for c >= 0 and q, p > 0, without overflowing 128 bits."""
    cdef orp_i128 a = c / p, t = (c % p) * q, res, rem
    res = a * q + t / p
    rem = t % p
    if 2 * rem > p or (2 * rem == p and (res & 1)):
        res += 1
    return res


cdef inline void end_round_trip(Broker *b) noexcept nogil:
    b.acct.round_trips += 1
    if b.acct.rt_pnl < 0:
        b.acct.losing_round_trips += 1
    if b.risk != NULL:
        risk_on_round_trip(b.risk, b.acct.rt_pnl, b.clock)


cdef inline orp_i128 account_fill(Broker *b, int side, int64_t price, int64_t qty, orp_i128 fee) noexcept nogil:
    """Apply a fill to cash, position and cost basis; returns the gross PnL it realised.
    The entry price (cost / |position|) moves only when the position grows; a reduction takes
    its share of the cost basis (rounded half-even to the money unit); a flip reopens the rest
    at the fill price."""
    cdef Account *a = &b.acct
    cdef orp_i128 notional = <orp_i128>price * qty * MONEY_PER_TICK_UNIT, removed, realised
    cdef int64_t pos = a.position, close, rest
    a.cash -= notional * side + fee
    a.fees += fee
    if pos == 0 or (pos > 0) == (side > 0):
        if pos == 0:
            a.rt_pnl = 0
        a.cost += notional
        a.position = pos + side * qty
        a.rt_pnl -= fee
        return 0
    close = qty if qty < (pos if pos > 0 else -pos) else (pos if pos > 0 else -pos)
    removed = mul_div_half_even(a.cost, close, pos if pos > 0 else -pos)
    realised = <orp_i128>price * close * MONEY_PER_TICK_UNIT - removed
    if pos < 0:
        realised = -realised
    a.cost -= removed
    a.position = pos + side * close
    a.realised += realised
    a.rt_pnl += realised - fee
    if a.position == 0:
        end_round_trip(b)
    rest = qty - close
    if rest > 0:
        a.cost = <orp_i128>price * rest * MONEY_PER_TICK_UNIT
        a.position = side * rest
        a.rt_pnl = 0
    return realised


cdef inline orp_i128 equity_money(const Broker *b, int64_t mid2) noexcept nogil:
    """cash + position x mid (mid2 = bid + ask in ticks); exact: 1e8 is even."""
    return b.acct.cash + <orp_i128>b.acct.position * mid2 * MONEY_PER_TICK_UNIT / 2


cdef inline void mark(Broker *b, const Book *book, int64_t now) noexcept nogil:
    cdef int64_t bid = best_price(&book.bid, 0), ask = best_price(&book.ask, 1)
    cdef orp_i128 eq
    cdef double dd
    if bid == 0 or ask == 0:
        return
    b.acct.mark_mid2 = bid + ask
    eq = equity_money(b, b.acct.mark_mid2)
    if not b.acct.peak_set or eq > b.acct.peak:
        b.acct.peak = eq
        b.acct.peak_set = 1
    if b.acct.peak > 0:
        dd = orp_i128_to_double(b.acct.peak - eq) / orp_i128_to_double(b.acct.peak)
        if dd > b.acct.max_drawdown:
            b.acct.max_drawdown = dd
    if b.risk != NULL:
        risk_on_mark(b.risk, eq, now)
