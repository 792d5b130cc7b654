# Our resting orders (resting.pyx): per side, a sorted array of our price levels (best last,
# like the book) with an intrusive FIFO of order indices each, and each order's place in the
# venue's queue there, advanced by trades and by depth decreases (the queue models).
from libc.stdint cimport int64_t
from orpflow._core.book cimport Book
from orpflow._core.broker_state cimport Broker, RestLevel, RestSide

# Queue the order at the back of its level / take it out (no-op if it does not rest).
cdef void rest(Broker *b, const Book *book, int64_t oi) noexcept nogil
cdef void unrest(Broker *b, int64_t oi) noexcept nogil
# The book's size at one of our levels changed to `new`: move the queue of each order there.
cdef void level_changed(Broker *b, RestLevel *lv, int64_t new) noexcept nogil


# Inline: the per-depth-record check of whether we rest at that price.
cdef inline int64_t rest_find(const RestSide *rs, int64_t key) noexcept nogil:
    """Index of key, or -(insertion point) - 1."""
    cdef int64_t lo = 0, hi = rs.n, mid
    while lo < hi:
        mid = (lo + hi) >> 1
        if rs.lv[mid].key < key:
            lo = mid + 1
        else:
            hi = mid
    if lo < rs.n and rs.lv[lo].key == key:
        return lo
    return -lo - 1
