# The paper broker's C state: orders, our resting levels, requests in flight, fills, the
# account (the Broker), and one instrument's ExecState; small helpers every broker module uses.
# Declarations and inline functions only (no module of its own): the code that works on this
# state is in latency.pyx, account.pxd, resting.pyx and venue.pyx, the Python API in broker.pyx,
# whose broker.pxd re-exports every name here.
from libc.stdint cimport int32_t, int64_t, uint64_t
from libc.stdlib cimport free, realloc
from orpflow._core.types cimport orp_i128, R_COUNT, debug_count_alloc
from orpflow._core.book cimport Book, BookSide, Level, side_best, side_qty_at
from orpflow._core.risk cimport RiskState

cdef extern from "<stdint.h>":
    const int64_t NEVER "INT64_MAX"    # the end of time: later than any venue clock

cdef enum OrderStatus:
    OS_PENDING = 0
    OS_ACCEPTED = 1
    OS_PARTIALLY_FILLED = 2
    OS_FILLED = 3
    OS_CANCELLED = 4
    OS_REJECTED = 5
    OS_EXPIRED = 6

cdef enum OrderKind:
    OT_MARKET = 0
    OT_LIMIT = 1
    OT_POST_ONLY = 2

cdef enum TimeInForce:
    TIF_GTC = 0
    TIF_IOC = 1
    TIF_FOK = 2
    TIF_GTD = 3

cdef enum QueueModel:
    QM_RISK_AVERSE = 0
    QM_PROB_POWER = 1
    QM_PROB_POWER2 = 2
    QM_PROB_POWER3 = 3
    QM_PROB_LOG = 4
    QM_PROB_LOG2 = 5

cdef enum:
    ORDER_CHUNK_SHIFT = 10
    ORDER_CHUNK = 1024         # orders per chunk (160 KB)

cdef enum RequestKind:
    RQ_NEW = 0
    RQ_CANCEL = 1
    RQ_MODIFY = 2

cdef struct SimOrder:
    int64_t id                 # 1, 2, ... (index + 1)
    int64_t client_id
    int64_t price              # ticks (0: market)
    int64_t qty                # size units
    int64_t filled
    int64_t ts_request         # local clock
    int64_t ts_arrival         # venue clock
    int64_t ts_ack             # local clock: arrival + response latency
    int64_t ts_done            # venue clock of the final state
    int64_t expire_at          # GTD, venue clock
    int64_t ahead              # queue ahead at its level (size units)
    int64_t cum_trade          # traded at its level since the last depth change
    int64_t prev               # neighbours in its level's FIFO (order indices, -1: none)
    int64_t next
    orp_i128 fees              # money units
    int32_t side               # +1 buy, -1 sell
    int32_t kind               # OrderKind
    int32_t tif
    int32_t status
    int32_t reason

# Our resting orders at one price of one side. Like the book, a side is sorted by key
# ascending with the best level LAST (key = price for bids, -price for asks).
cdef struct RestLevel:
    int64_t key
    int64_t level_qty          # the book's size at this price when last seen
    int64_t head               # FIFO of order indices
    int64_t tail

cdef struct RestSide:
    RestLevel *lv
    int64_t n
    int64_t cap

cdef struct Request:
    int64_t arrival            # venue time
    int64_t seq                # tie-break: send order
    int64_t order
    int64_t price
    int64_t qty
    int32_t kind

cdef struct Consumed:          # visible liquidity our takers used, until its level updates
    int64_t side
    int64_t price
    int64_t qty

cdef struct SimFill:
    int64_t order_id
    int64_t client_id
    int64_t price
    int64_t qty
    int64_t position           # after the fill
    int64_t ts_exch
    int64_t ts_local
    orp_i128 fee
    orp_i128 realised
    int32_t side
    int32_t liquidity          # 0 maker, 1 taker

cdef struct Account:
    orp_i128 cash
    orp_i128 cost              # cost basis of the open position (money)
    orp_i128 realised
    orp_i128 fees
    orp_i128 rt_pnl            # the open round trip's realised PnL net of fees
    orp_i128 peak
    int64_t position
    int64_t round_trips
    int64_t losing_round_trips
    int64_t mark_mid2          # bid + ask (ticks) at the last mark, 0 before one
    int peak_set
    double max_drawdown

cdef struct Broker:
    int64_t lot
    int64_t maker_e8
    int64_t taker_e8
    int64_t entry_ns
    int64_t response_ns
    int64_t jitter_ns
    int64_t *lat_req           # recorded latency rows (NULL: constant)
    int64_t *lat_entry
    int64_t *lat_resp
    int64_t lat_n
    uint64_t rng
    int queue_model
    double queue_power
    SimOrder **chunks          # orders in chunks of ORDER_CHUNK: an index never moves, and a
    int64_t n_orders           # chunk of final orders can be freed (broker_trim)
    int64_t chunks_cap
    int64_t live_chunk         # chunks below it were trimmed (their orders were all final)
    int64_t trim_scan          # orders below it are known final
    SimFill *fills
    int64_t n_fills
    int64_t fills_cap
    Request *heap
    int64_t n_req
    int64_t req_cap
    int64_t seq
    RestSide rest[2]           # [0] bids, [1] asks
    Consumed *consumed
    int64_t n_consumed
    int64_t consumed_cap
    int64_t clock              # venue clock: running max of ts_exch and arrivals
    int64_t open_buy           # leaves of pending + open orders
    int64_t open_sell
    int64_t open_count
    int64_t gtd_resting
    int64_t gtd_next
    int gtd_dirty
    int64_t counts[R_COUNT]    # venue outcomes by reason (R_OK: modifies applied)
    int failed                 # an allocation failed: the broker stops (see broker_ok)
    SimOrder *journal          # copies of orders as their state changes (while journal_on;
    int64_t n_journal          # the engine drains it into its output after every record)
    int64_t journal_cap
    int journal_on
    Account acct
    RiskState *risk

# One instrument's book + broker + risk, driven record by record (the engine's per-event call).
cdef struct ExecState:
    Book *book
    Broker *b
    RiskState *risk
    int64_t now                # local clock: running max of ts_local
    int dirty                  # levels changed wholesale: re-read our levels at message end

cdef inline SimOrder *order_at(const Broker *b, int64_t oi) noexcept nogil:
    return &b.chunks[oi >> ORDER_CHUNK_SHIFT][oi & (ORDER_CHUNK - 1)]


cdef inline bint is_open(const SimOrder *o) noexcept nogil:
    return o.status == OS_ACCEPTED or o.status == OS_PARTIALLY_FILLED


cdef inline void open_leaves_add(Broker *b, int side, int64_t d) noexcept nogil:
    if side > 0:
        b.open_buy += d
    else:
        b.open_sell += d


cdef inline int64_t later(int64_t t, int64_t delay) noexcept nogil:
    """t + delay (delay >= 0), saturating at the end of time instead of wrapping."""
    return NEVER if t > NEVER - delay else t + delay


# ------------------------------------------------------------------ storage
# (inline: every growth check sits on a per-fill or per-request path)

cdef inline int grow(void **p, int64_t *cap, int64_t need, size_t item) noexcept nogil:
    """Make room for `need` items (doubling); -1 if memory ran out (nothing changed)."""
    cdef int64_t c = cap[0]
    cdef void *q
    if need <= c:
        return 0
    if c < 16:
        c = 16
    while c < need:
        c *= 2
    q = realloc(p[0], c * item)
    if q == NULL:
        return -1
    if p[0] == NULL:
        debug_count_alloc(1)
    p[0] = q
    cap[0] = c
    return 0


cdef inline void release(void *p) noexcept nogil:
    if p != NULL:
        free(p)
        debug_count_alloc(-1)


# ------------------------------------------------------------------ book views

cdef inline int64_t book_qty(const Book *book, int side, int64_t price) noexcept nogil:
    return side_qty_at(&book.bid, price) if side > 0 else side_qty_at(&book.ask, -price)


cdef inline int64_t best_price(const BookSide *s, int is_ask) noexcept nogil:
    cdef const Level *lv = side_best(s)
    if lv == NULL:
        return 0
    return -lv.key if is_ask else lv.key


cdef inline RestSide *rest_side(Broker *b, int side) noexcept nogil:
    return &b.rest[0] if side > 0 else &b.rest[1]
