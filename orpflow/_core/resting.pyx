"""Our resting orders: per-side sorted arrays of our price levels with an intrusive FIFO each,
and every order's queue position at its level (see resting.pxd). Trades advance a queue in
venue.pyx (on_trade); a depth decrease at our level advances it here by the queue model:
risk-averse (only when the level shrinks below what was ahead) or hftbacktest's probabilistic
models, which attribute the decrease to the front or the back of the queue (docs/broker.md).
"""
from libc.stdint cimport int64_t
from libc.string cimport memmove
from libc.math cimport ceil, fmin, isfinite, log, pow

from orpflow._core.book cimport Book
from orpflow._core.broker_state cimport (
    Broker, SimOrder, RestLevel, RestSide, order_at, rest_side, grow, book_qty,
    TIF_GTD, QM_RISK_AVERSE, QM_PROB_POWER, QM_PROB_POWER2, QM_PROB_POWER3, QM_PROB_LOG,
)


cdef void rest(Broker *b, const Book *book, int64_t oi) noexcept nogil:
    """Queue the order at the back of its level: ahead = the visible size there now."""
    cdef SimOrder *o = order_at(b, oi)
    cdef RestSide *rs = rest_side(b, o.side)
    cdef int64_t key = o.price if o.side > 0 else -o.price
    cdef int64_t i = rest_find(rs, key)
    cdef int64_t q = book_qty(book, o.side, o.price)
    cdef RestLevel *lv
    if i < 0:
        i = -i - 1
        if grow(<void **>&rs.lv, &rs.cap, rs.n + 1, sizeof(RestLevel)) != 0:
            b.failed = 1
            return
        memmove(&rs.lv[i + 1], &rs.lv[i], (rs.n - i) * sizeof(RestLevel))
        rs.n += 1
        lv = &rs.lv[i]
        lv.key = key
        lv.level_qty = q
        lv.head = -1
        lv.tail = -1
    lv = &rs.lv[i]
    o.ahead = q
    o.cum_trade = 0
    o.prev = lv.tail
    o.next = -1
    if lv.tail >= 0:
        order_at(b, lv.tail).next = oi
    else:
        lv.head = oi
    lv.tail = oi
    if o.tif == TIF_GTD:
        b.gtd_resting += 1
        if o.expire_at < b.gtd_next:
            b.gtd_next = o.expire_at


cdef void unrest(Broker *b, int64_t oi) noexcept nogil:
    """Take a resting order out of its level (no-op if it does not rest)."""
    cdef SimOrder *o = order_at(b, oi)
    cdef RestSide *rs = rest_side(b, o.side)
    cdef int64_t i = rest_find(rs, o.price if o.side > 0 else -o.price)
    cdef RestLevel *lv
    if i < 0:
        return
    lv = &rs.lv[i]
    if o.prev < 0 and lv.head != oi:
        return                              # not in this level's FIFO
    if o.prev >= 0:
        order_at(b, o.prev).next = o.next
    else:
        lv.head = o.next
    if o.next >= 0:
        order_at(b, o.next).prev = o.prev
    else:
        lv.tail = o.prev
    o.prev = -1
    o.next = -1
    if o.tif == TIF_GTD:
        b.gtd_resting -= 1
        b.gtd_dirty = 1
    if lv.head < 0:
        memmove(&rs.lv[i], &rs.lv[i + 1], (rs.n - i - 1) * sizeof(RestLevel))
        rs.n -= 1


cdef double queue_prob(int model, double n, double front, double back) noexcept nogil:
    """Probability that a depth decrease happened behind the order (hftbacktest's functions)."""
    if model == QM_PROB_POWER:
        return pow(back, n) / (pow(back, n) + pow(front, n))
    if model == QM_PROB_POWER2:
        return pow(back, n) / pow(back + front, n)
    if model == QM_PROB_POWER3:
        return 1.0 - pow(front / (front + back), n)
    if model == QM_PROB_LOG:
        return log(1.0 + back) / (log(1.0 + back) + log(1.0 + front))
    return log(1.0 + back) / log(1.0 + back + front)


cdef void queue_depth(const Broker *b, SimOrder *o, int64_t prev, int64_t new) noexcept nogil:
    """A depth change at the order's level: attribute the decrease ahead/behind."""
    cdef int64_t chg
    cdef double front, back, ch, prob, est
    if b.queue_model == QM_RISK_AVERSE:
        if new < o.ahead:
            o.ahead = new
        return
    chg = prev - new - o.cum_trade         # trades already advanced the queue: no double count
    o.cum_trade = 0
    if chg < 0:
        if new < o.ahead:
            o.ahead = new
        return
    front = <double>o.ahead
    back = <double>(prev - o.ahead)
    ch = <double>chg
    prob = queue_prob(b.queue_model, b.queue_power, front, back)
    if not isfinite(prob):
        prob = 1.0
    prob = 0.0 if prob < 0.0 else (1.0 if prob > 1.0 else prob)
    est = (front - (1.0 - prob) * ch) + fmin(back - prob * ch, 0.0)
    o.ahead = 0 if est <= 0.0 else <int64_t>ceil(est)
    if new < o.ahead:
        o.ahead = new


cdef void level_changed(Broker *b, RestLevel *lv, int64_t new) noexcept nogil:
    cdef int64_t oi = lv.head
    while oi >= 0:
        queue_depth(b, order_at(b, oi), lv.level_qty, new)
        oi = order_at(b, oi).next
    lv.level_qty = new
