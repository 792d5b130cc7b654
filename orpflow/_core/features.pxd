# Incremental microstructure features: O(1) per event, no allocation in steady state, nogil.
from libc.stdint cimport int32_t, int64_t
from orpflow._core.types cimport Event, orp_i128
from orpflow._core.book cimport Book, OrderBook

cdef enum:
    FEATURE_COUNT = 22            # built-in feature columns (FEATURE_NAMES)
    FEATURE_EXTRA_MAX = 8         # columns a FeatureExtension may add
    FEATURE_TOP_MAX = 256         # most book levels any window may read
    ROW_BOOK = 0                  # row made by a complete book message
    ROW_TRADE = 1                 # row made by a trade

# Feature groups, switchable as a bit mask. A group that is off leaves its columns NaN.
cdef enum:
    G_BOOK = 1                    # instantaneous book state and OFI
    G_HISTORY = 2                 # count-based: volatility, z-scores, momentum
    G_TRADES = 4                  # time windows over trades: vwap, trade_flow, volume_surge
    G_WINDOWS = 8                 # time windows over book rows: ofi_window, imbalance_twa, acceleration
    G_TOXICITY = 16               # VPIN over volume buckets
    G_ALL = 31
    G_EXTENSION = 32              # not a group: the extension's columns (SignalGenerator.feature_reads)

# One row. The layout is mirrored by FEATURE_DTYPE (checked at import).
cdef struct FeatureVector:
    int64_t ts_exch               # exchange time of the event that made the row
    int64_t seq                   # book message final update id (Binance u) or trade id
    int32_t kind                  # ROW_BOOK or ROW_TRADE
    int32_t book_ok               # 1 if the book was in sync, uncrossed and two-sided
    # book state (after the last complete book message)
    double mid
    double spread_bps
    double imbalance
    double weighted_imbalance
    double depth_ratio
    double bid_pressure
    double ask_pressure
    double book_pressure
    double weighted_mid
    double ofi                    # CKS e_n of this event (0 on a trade row: quotes unchanged)
    # count-based, per book message
    double volatility
    double volatility_z
    double momentum
    double imbalance_momentum
    double imbalance_z
    # time windows (exchange time)
    double vwap
    double trade_flow
    double ofi_window
    double imbalance_twa
    double price_acceleration
    double volume_surge
    double toxicity
    double extra[FEATURE_EXTRA_MAX]

cdef struct FeatureParams:
    int64_t window_ns             # feature_window_ms in ns
    int64_t volatility_window     # mids (returns = mids - 1)
    int64_t zscore_window
    int64_t zscore_min
    int64_t momentum_window
    int64_t imbalance_momentum_window
    int64_t imbalance_levels
    int64_t weighted_levels
    double weighted_decay
    int64_t depth_ratio_levels
    int64_t pressure_levels
    int64_t surge_windows         # volume_surge compares with the mean over this many windows
    int64_t vpin_bucket           # bucket volume in size units; 0 = toxicity off
    int64_t vpin_buckets
    int32_t groups
    double px_num                 # price = ticks * px_num / px_den
    double px_den
    double qty_num                # size = units * qty_num / qty_den
    double qty_den

# Mean and population variance of the last `cap` values, O(1) per push. Sums are of
# (x - shift) with the shift re-anchored to a window member at every wrap, when the sums are
# also recomputed exactly: rounding error stays that of a fresh sum of `cap` terms.
cdef struct RollingStats:
    double *buf
    int64_t cap
    int64_t n
    int64_t pos
    double shift
    double s1
    double s2
    int64_t same                  # how many of the latest pushes equal `last`
    double last

# Neumaier-compensated running sum: window sums that add and subtract forever without drift.
cdef struct CompensatedSum:
    double s
    double c

cdef struct TradeItem:
    int64_t t
    int64_t price
    int64_t qty
    int64_t side                  # +1 buy aggressor, -1 sell, 0 unknown

# A book row starts a segment that lasts until the next book row.
cdef struct Segment:
    int64_t t
    double imbalance              # NaN when the book was not usable
    double mid
    orp_i128 ofi                  # e_n in size units
    int64_t has_ofi

cdef struct FeatureState:
    FeatureParams p
    FeatureVector fv              # the current state; a row is a copy of it
    int64_t clock                 # running max of exchange time: windows never run backwards
    int64_t first_clock
    int64_t started
    int64_t rows
    int64_t bad_trades            # trade records skipped (size/price <= 0, both sides, other instrument)
    int64_t truncated             # window items dropped because memory could not grow
    # best quotes of the previous usable book row (OFI)
    int64_t has_prev
    int64_t prev_bid
    int64_t prev_bid_qty
    int64_t prev_ask
    int64_t prev_ask_qty
    orp_i128 prev_mid2            # bid + ask ticks of the previous usable row (log returns)
    orp_i128 ofi_units            # e_n of the last book row in size units, if has_ofi
    int64_t has_ofi
    int64_t top_n                 # most levels any book-state window reads
    int64_t *top_qty              # scratch: sizes of the top_n best levels of one side
    double *decay_weights         # weighted_decay**i, i < top_n
    # count-based histories
    double *mids
    int64_t mids_n
    int64_t mids_pos
    double *imbs
    int64_t imbs_n
    int64_t imbs_pos
    double imbs_sxx               # OLS denominator for the imbalance_momentum window
    RollingStats returns
    RollingStats vols
    RollingStats imbz
    # trades: [t60, end) within surge_windows*W, [tw, end) within W; size sums are 128-bit
    TradeItem *trades
    int64_t trades_mask
    int64_t t60
    int64_t tw
    int64_t tend
    orp_i128 qty_w
    orp_i128 buy_w
    orp_i128 sell_w
    orp_i128 notional_w
    orp_i128 qty_long
    # book segments: [sh, send); [sh+1, send-1) are summed in inner_*; so = first with t > clock-W
    Segment *segs
    int64_t segs_mask
    int64_t sh
    int64_t sm
    int64_t so
    int64_t send
    CompensatedSum inner_vd
    int64_t inner_d
    orp_i128 ofi_sum
    int64_t ofi_n
    # VPIN buckets
    int64_t *buckets
    int64_t buckets_n
    int64_t buckets_pos
    int64_t bucket_fill
    int64_t bucket_buy
    int64_t bucket_sell
    orp_i128 buckets_sum
    orp_i128 row_mid2             # bid + ask ticks of this book row (0: unusable), for a late history

cdef int features_init(FeatureState *s, const FeatureParams *p) noexcept nogil
cdef void features_free(FeatureState *s) noexcept nogil
# After `e` was applied to the book: update the state; 1 if `e` made a row (in s.fv).
cdef int features_update(FeatureState *s, const Book *b, const Event *e) noexcept nogil
# The same in two phases (the engine decides between them): features_begin does the row's
# bookkeeping and every group outside `late`, features_finish (only after a begin that made a
# row, for the same record) the groups in `late`. Same values as features_update, provided
# `late` comes from features_late.
cdef int features_begin(FeatureState *s, const Book *b, const Event *e, int32_t late) noexcept nogil
cdef void features_finish(FeatureState *s, const Event *e, int32_t late) noexcept nogil
# The groups that may be left for after the decision when it reads only `first`.
cdef int32_t features_late(const FeatureParams *p, int32_t first) noexcept nogil

# The group that computes built-in column i (FEATURE_GROUP); G_EXTENSION for extension columns.
cdef inline int32_t column_group(int64_t i) noexcept nogil:
    if i < 10:
        return G_BOOK
    if i < 15:
        return G_HISTORY
    if i == 15 or i == 16 or i == 20:
        return G_TRADES
    if i < 20:
        return G_WINDOWS
    if i == 21:
        return G_TOXICITY
    return G_EXTENSION

# Subclass in your own .pyx to add columns (see examples/custom_cython/). compute() runs on
# every row after the built-in features and writes n_outputs values to out.
cdef class FeatureExtension:
    cdef readonly tuple names
    cdef void compute(self, const FeatureState *s, const Book *b, const Event *e,
                      double *out) noexcept nogil


# Book + features for one instrument; advance() is the kernel the signal loop reuses.
cdef class FeatureEngine:
    cdef FeatureState st
    cdef int initialised
    cdef readonly OrderBook book
    cdef readonly FeatureExtension extension
    cdef readonly object dtype
    cdef bint has_extension
    cdef int32_t late             # groups advance() computes in a second phase (tests: same rows)
    cdef int64_t advance(self, const Event *evs, int64_t n, int *row) noexcept nogil
    cdef object run_rows(self, events)
