# The single source of widths, the Event record, flag bits and reason codes.
# Everything in the hot path is an integer: prices in ticks, sizes in size units, times in ns.
from libc.stdint cimport int64_t, uint32_t, int32_t, uint64_t

ctypedef int64_t price_t     # price in ticks of the instrument's tick_size
ctypedef int64_t qty_t       # size in units of the instrument's size_increment
ctypedef int64_t ts_t        # nanoseconds since the epoch (exchange) or any monotonic origin
ctypedef int64_t seq_t       # venue sequence number (Binance update id)

# One cache line, laid out in orp_event.h (which static-asserts the size and offsets).
# Field order and names are mirrored by orpflow.EVENT_DTYPE; events.py checks the offsets at import.
cdef extern from "orp_event.h":
    ctypedef struct Event "orp_event":
        ts_t ts_exch         # exchange timestamp
        ts_t ts_local        # local receive timestamp
        seq_t seq            # venue final update id (Binance u, lastUpdateId, trade id)
        seq_t seq_first      # Binance U
        seq_t seq_prev       # Binance futures pu
        price_t price
        qty_t qty
        uint32_t flags
        uint32_t instrument

cdef enum:
    # kind (exactly one of DEPTH/SNAPSHOT/TRADE/BBO, or CLEAR alone)
    F_DEPTH = 1 << 0
    F_TRADE = 1 << 1
    F_BBO = 1 << 2
    F_SNAPSHOT = 1 << 3
    F_CLEAR = 1 << 4
    # side of a book level (or of a BBO record)
    F_BID = 1 << 5
    F_ASK = 1 << 6
    # aggressor side of a trade
    F_BUY = 1 << 7
    F_SELL = 1 << 8
    # final record of one venue message: consumers act on a message only after it
    F_LAST = 1 << 9

    F_BOOK_KINDS = F_DEPTH | F_SNAPSHOT | F_CLEAR
    F_SIDES = F_BID | F_ASK

# Why a record, message or order was refused. Stable numbers: they are persisted and exported.
cdef enum:
    R_OK = 0
    # -- parsing (feeds) --
    R_MALFORMED = 1            # not valid JSON / CSV, or a required field is missing or mistyped
    R_BAD_NUMBER = 2           # not a plain decimal string (NaN, inf, exponent, empty, ...)
    R_NEGATIVE = 3             # negative price or size
    R_OFF_TICK = 4             # price not a whole number of ticks
    R_OFF_SIZE_INCREMENT = 5   # size finer than the instrument's size_increment
    R_OVERFLOW = 6             # does not fit int64 in the instrument's units
    R_WRONG_SYMBOL = 7         # message for another symbol
    R_UNSUPPORTED = 8          # a message kind this reader does not convert (kline, ...)
    # -- book --
    R_WRONG_INSTRUMENT = 9     # record's instrument id is not the book's
    R_BAD_FLAGS = 10           # no kind, two kinds, two sides, or a kind change inside a message
    R_BAD_PRICE = 11           # level price <= 0
    R_STALE = 12               # diff already contained in the book (u below the book's id)
    R_BUFFER_OVERFLOW = 13     # pre-snapshot buffer full: oldest buffered message discarded
    R_NO_SNAPSHOT = 14         # generic venue: diff before any snapshot
    R_STALE_SNAPSHOT = 15      # snapshot older than the synced book
    R_OUT_OF_SYNC = 16         # record of a message that could not be applied (book desynced)
    # -- signals: what a signal row is, or why it is none --
    R_SIG_ENTER = 17           # open a position
    R_SIG_ADD = 18             # add to a same-side position (at half size)
    R_SIG_REVERSE = 19         # close the position and open the opposite one
    R_SIG_EXIT_HOLDING = 20    # close: the holding period lapsed without a renewing signal
    R_SIG_EXIT_OPPOSITE = 21   # close: an opposite signal whose own size rounds to zero
    R_SIG_BOOK_UNUSABLE = 22   # none: imbalance or mid undefined, or the book not in sync
    R_SIG_SPREAD = 23          # none: spread_bps > max_spread_bps
    R_SIG_BELOW_THRESHOLD = 24 # none: |imbalance| < threshold
    R_SIG_PERSISTENCE = 25     # none: streak < persistence
    R_SIG_LOW_CONFIDENCE = 26  # none: confidence < min_confidence
    R_SIG_NO_MOMENTUM = 27     # none: momentum does not confirm the side
    R_SIG_DIVERGENCE = 28      # none: imbalance momentum against the side
    R_SIG_SIZE_ZERO = 29       # none: size rounds down to zero lots
    R_SIG_MIN_INTERVAL = 30    # none: an entry signal fired less than min_interval ago
    R_SIG_TRADE_ROW = 31       # none: the imbalance rules act on book messages only
    R_SIG_FEATURE_NAN = 32     # none: a feature the generator reads is undefined (linear, onnx)
    R_SIG_WEAK = 33            # none: |strength| < entry_threshold
    R_SIG_USER_NONE = 34       # none: a user generator returned no signal
    R_SIG_ERROR = 35           # none: a Python generator raised (the run re-raises it)
    # -- orders: pre-trade risk, checked in this order, first failure wins --
    R_RISK_KILL_SWITCH = 36    # the kill switch is set
    R_RISK_BOOK_NOT_SYNCED = 37  # the instrument's book is not in sync (or mid-message)
    R_RISK_BREAKER = 38        # a circuit breaker is tripped (until reset), on_breaker = "halt"
    R_RISK_RATE_SECOND = 39    # order rate limit: per-second bucket empty
    R_RISK_RATE_MINUTE = 40    # ... per-minute bucket
    R_RISK_RATE_HOUR = 41      # ... per-hour bucket
    R_RISK_ORDER_QTY = 42      # quantity above max_order_qty
    R_RISK_ORDER_NOTIONAL = 43 # quantity x price above max_order_notional
    R_RISK_POSITION = 44       # position + open orders + this order beyond max_position
    R_RISK_GROSS_EXPOSURE = 45 # the same, valued at the order price, beyond max_gross_exposure
    R_RISK_PRICE_BAND = 46     # limit price further from mid than price_band_bps (fat finger)
    R_RISK_OPEN_ORDERS = 47    # max_open_orders already open or in flight
    R_RISK_MIN_BALANCE = 48    # equity, or cash after a buy, below min_balance
    R_RISK_NO_PRICE = 49       # no reference price (empty side) for a market order or the band
    # -- orders: malformed, or refused / ended by the simulated venue --
    R_ORDER_BAD_QTY = 50       # quantity <= 0, or not a whole number of lots
    R_ORDER_BAD_PRICE = 51     # limit price missing, <= 0 or off the tick grid
    R_ORDER_BAD_EXPIRY = 52    # GTD without expire_at (or expire_at on a non-GTD order)
    R_VENUE_BOOK_NOT_SYNCED = 53  # reached the venue while the simulated book was out of sync
    R_POST_ONLY_CROSS = 54     # post-only order would have taken liquidity
    R_FOK_UNFILLABLE = 55      # fill-or-kill: the depth up to its limit was short; expired
    R_IOC_REMAINDER = 56       # IOC / market: the unfilled rest expired
    R_NO_LIQUIDITY = 57        # IOC / market: nothing to take at all; expired
    R_GTD_EXPIRED = 58         # good-till-date reached its expiry
    R_CANCELLED = 59           # cancelled on request
    R_CANCEL_REJECTED = 60     # cancel for an order the venue does not hold open (unknown or done)
    R_MODIFY_REJECTED = 61     # modify for an order not open, to a qty <= filled, or post-only crossing
    R_RISK_CLIPPED = 62        # accepted with its quantity clipped (qty_policy="clip" or reduce-only)
    R_RISK_BREAKER_REDUCE_ONLY = 63  # a breaker is tripped and the order cannot reduce the position
    # -- signals from a model (generator = "onnx") --
    R_SIG_MODEL_FLAT = 64      # none: the model's most probable class is "flat"
    R_SIG_MODEL_BAD_OUTPUT = 65  # none: the model's output is NaN or infinite
    R_ORDER_BAD_TYPE = 66      # side not +-1, unknown type or tif, or a type/tif pair the venue refuses
    R_COUNT = 67               # size of per-reason counter arrays (codes stay below it)

# The account's money unit (config.MoneyScale): 1 tick x 1 size unit = 1e8 money, so fees at
# rates that are multiples of 1e-8 are whole numbers.
cdef enum:
    MONEY_PER_TICK_UNIT = 100000000

# 128-bit integer (GCC/Clang __int128; orp_wide.h): exact sums of sizes and of price*size,
# whatever the instrument's units (a low-priced coin at 1e-8 reaches 1e18 units per level).
cdef extern from "orp_wide.h":
    ctypedef long long orp_i128
    double orp_i128_to_double(orp_i128 x) nogil
    int64_t orp_i128_hi(orp_i128 x) nogil
    uint64_t orp_i128_lo(orp_i128 x) nogil
    orp_i128 orp_i128_make(int64_t hi, uint64_t lo) nogil

# Exact Python int <-> orp_i128 (Cython would truncate a direct conversion to long long).
cdef orp_i128 i128_from_py(object v) except? -1
cdef object i128_to_py(orp_i128 x)

# Address of the first byte of a non-empty C-contiguous numpy array (output rows of the core).
cdef unsigned char *array_bytes(object arr) except NULL

# Pointer to the records of a C-contiguous EVENT_DTYPE array (validated; raises otherwise).
cdef Event *event_ptr(object arr, bint writable) except NULL

# Debug counter of live C allocations across the compiled core (ORP_DEBUG builds; a no-op else).
cdef void debug_count_alloc(int64_t delta) noexcept nogil
