"""Incremental microstructure features over the order book and trades, nogil.

Every feature is updated in O(1) per event (amortised; ring buffers grow by doubling, never per
event) from integer book and trade data. The formulas are in docs/features.md; the plain-Python
twin is orpflow/reference/features.py.
"""

from libc.stdint cimport int32_t, int64_t, uint32_t
from libc.stdlib cimport malloc, calloc, free
from libc.string cimport memcpy, memset
from libc.math cimport NAN, log, sqrt, fabs

from orpflow._core.types cimport (
    Event, F_BOOK_KINDS, F_TRADE, F_LAST, F_BUY, F_SELL, array_bytes, debug_count_alloc, event_ptr,
    orp_i128, orp_i128_to_double,
)
from orpflow._core.book cimport (
    Book, BookSide, Level, OrderBook, SideIter, TOP_CACHE, book_apply, book_top, book_usable, side_best,
    side_iter_begin, side_iter_next,
)

cimport cython

import numpy as np


# Feature clock bounds (ns): [0, 2**62] keeps every clock - window difference in int64.
cdef int64_t CLOCK_MAX = 1 << 62

# ------------------------------------------------------------------------------------------
# small building blocks


cdef inline void csum_add(CompensatedSum *k, double x) noexcept nogil:
    """Neumaier: the low-order bits lost by each addition are kept in k.c."""
    cdef double t = k.s + x
    if fabs(k.s) >= fabs(x):
        k.c += (k.s - t) + x
    else:
        k.c += (x - t) + k.s
    k.s = t


cdef inline double csum_value(const CompensatedSum *k) noexcept nogil:
    return k.s + k.c


cdef void *counted_alloc(size_t n) noexcept nogil:
    """calloc, counted in the debug build's live-allocation counter."""
    cdef void *p = calloc(n, 1)
    if p != NULL:
        debug_count_alloc(1)
    return p


cdef int stats_init(RollingStats *r, int64_t cap) noexcept nogil:
    """A window of `cap` values; r must be zeroed (features_init zeroes the whole state)."""
    r.buf = <double *>counted_alloc(<size_t>max(cap, 1) * sizeof(double))
    r.cap = cap
    return -1 if r.buf == NULL else 0


cdef void stats_free(RollingStats *r) noexcept nogil:
    if r.buf != NULL:
        free(r.buf)
        debug_count_alloc(-1)
        r.buf = NULL


cdef void stats_push(RollingStats *r, double x) noexcept nogil:
    cdef double d, old
    cdef int64_t i
    if r.n == r.cap:
        old = r.buf[r.pos] - r.shift
        r.s1 -= old
        r.s2 -= old * old
    else:
        r.n += 1
    r.same = r.same + 1 if r.n > 1 and x == r.last else 1
    r.last = x
    r.buf[r.pos] = x
    r.pos += 1
    if r.pos == r.cap:
        r.pos = 0
    if r.n == 1 or r.pos == 0:
        # re-anchor: the shift becomes a window member, the sums are recomputed exactly
        r.shift = x
        r.s1 = 0.0
        r.s2 = 0.0
        for i in range(r.n):
            d = r.buf[i] - x
            r.s1 += d
            r.s2 += d * d
    else:
        d = x - r.shift
        r.s1 += d
        r.s2 += d * d


cdef inline double stats_mean(const RollingStats *r) noexcept nogil:
    if r.same >= r.n:
        return r.last                    # a flat window: exact, whatever the sums' residue
    return r.shift + r.s1 / r.n


cdef inline double stats_std(const RollingStats *r) noexcept nogil:
    if r.same >= r.n:
        return 0.0
    cdef double m = r.s1 / r.n
    cdef double v = r.s2 / r.n - m * m
    return sqrt(v) if v > 0.0 else 0.0


cdef inline int64_t ring_slot(int64_t pos, int64_t cap) noexcept nogil:
    return pos - cap if pos >= cap else pos


cdef int ring_grow(void **buf, int64_t *mask, int64_t lo, int64_t hi, size_t item) noexcept nogil:
    """Double a power-of-two ring of `item`-byte entries, keeping the live entries [lo, hi)
    at the same absolute indices (so every cursor stays valid). -1 if out of memory."""
    cdef int64_t cap = (mask[0] + 1) * 2, i
    cdef char *nb = <char *>malloc(<size_t>cap * item)
    cdef const char *old = <const char *>buf[0]
    if nb == NULL:
        return -1
    for i in range(lo, hi):
        memcpy(nb + (i & (cap - 1)) * item, old + (i & mask[0]) * item, item)
    free(buf[0])
    buf[0] = nb
    mask[0] = cap - 1
    return 0


# ------------------------------------------------------------------------------------------
# state


cdef void features_reset_vector(FeatureVector *fv) noexcept nogil:
    cdef double *d = &fv.mid
    cdef int i
    for i in range(FEATURE_COUNT + FEATURE_EXTRA_MAX):
        d[i] = NAN


cdef int features_init(FeatureState *s, const FeatureParams *p) noexcept nogil:
    cdef double w
    cdef int64_t i
    memset(s, 0, sizeof(FeatureState))
    s.p = p[0]
    features_reset_vector(&s.fv)
    s.top_n = max(max(p.imbalance_levels, p.weighted_levels),
                  max(p.depth_ratio_levels, p.pressure_levels))
    s.mids = <double *>counted_alloc(<size_t>p.momentum_window * sizeof(double))
    s.imbs = <double *>counted_alloc(<size_t>p.imbalance_momentum_window * sizeof(double))
    s.trades = <TradeItem *>counted_alloc(64 * sizeof(TradeItem))
    s.segs = <Segment *>counted_alloc(64 * sizeof(Segment))
    s.buckets = <int64_t *>counted_alloc(<size_t>max(p.vpin_buckets, 1) * sizeof(int64_t))
    s.decay_weights = <double *>counted_alloc(<size_t>s.top_n * sizeof(double))
    s.top_qty = <int64_t *>counted_alloc(<size_t>s.top_n * sizeof(int64_t))
    if (s.mids == NULL or s.imbs == NULL or s.trades == NULL or s.segs == NULL
            or s.buckets == NULL or s.decay_weights == NULL or s.top_qty == NULL):
        features_free(s)
        return -1
    w = 1.0
    for i in range(s.top_n):
        s.decay_weights[i] = w          # decay**i by repeated multiplication, as the book does
        w *= p.weighted_decay
    s.imbs_sxx = ols_sxx(p.imbalance_momentum_window)
    s.trades_mask = 63
    s.segs_mask = 63
    if (stats_init(&s.returns, p.volatility_window - 1) != 0
            or stats_init(&s.vols, p.zscore_window) != 0
            or stats_init(&s.imbz, p.zscore_window) != 0):
        features_free(s)
        return -1
    return 0


cdef void features_free(FeatureState *s) noexcept nogil:
    cdef void *ptrs[7]
    cdef int i
    ptrs[0] = s.decay_weights; ptrs[1] = s.mids; ptrs[2] = s.imbs
    ptrs[3] = s.trades; ptrs[4] = s.segs; ptrs[5] = s.buckets; ptrs[6] = s.top_qty
    for i in range(7):
        if ptrs[i] != NULL:
            free(ptrs[i])
            debug_count_alloc(-1)
    s.decay_weights = NULL; s.mids = NULL; s.imbs = NULL
    s.trades = NULL; s.segs = NULL; s.buckets = NULL; s.top_qty = NULL
    stats_free(&s.returns)
    stats_free(&s.vols)
    stats_free(&s.imbz)


# ------------------------------------------------------------------------------------------
# book rows


cdef inline double to_px(const FeatureState *s, double ticks) noexcept nogil:
    return ticks * s.p.px_num / s.p.px_den


cdef inline double to_qty(const FeatureState *s, double units) noexcept nogil:
    return units * s.p.qty_num / s.p.qty_den


cdef struct SideSums:
    int64_t best_key              # key of the best level (price, or -price for asks)
    int64_t best_qty
    orp_i128 imbalance            # sum of sizes, top imbalance_levels
    orp_i128 depth                # sum of sizes, top depth_ratio_levels
    double weighted               # sum decay**i * q_i, top weighted_levels
    double pressure               # sum q_i / (i + 1), top pressure_levels


cdef inline int64_t top_sizes(const Book *b, bint is_ask, int64_t n, int64_t *q) noexcept nogil:
    """Sizes of the n best levels, best first; returns how many. From the book's top-level
    cache (read once per book change, shared with the metrics and the snapshot), or a walk
    when n is beyond it."""
    cdef SideIter it
    cdef Level lv
    cdef const Level *top
    cdef int64_t k = 0
    if n <= TOP_CACHE:
        n = book_top(b, is_ask, n, &top)
        for k in range(n):
            q[k] = top[k].qty
        return n
    side_iter_begin(&it, &b.ask if is_ask else &b.bid)
    while k < n and side_iter_next(&it, &lv):
        q[k] = lv.qty
        k += 1
    return k


cdef inline orp_i128 int_sum(const int64_t *q, int64_t n) noexcept nogil:
    cdef orp_i128 t = 0
    cdef int64_t i
    for i in range(n):
        t += q[i]
    return t


cdef bint side_sums(const FeatureState *s, const Book *b, bint is_ask, int64_t *q,
                    SideSums *out) noexcept nogil:
    """Every level window of one side (each sum in level order, as the twin); False if empty."""
    cdef const FeatureParams *p = &s.p
    cdef const BookSide *side = &b.ask if is_ask else &b.bid
    cdef int64_t n = top_sizes(b, is_ask, s.top_n, q), i
    cdef double w = 0.0, pr = 0.0
    cdef const Level *best
    if n == 0:
        return False
    best = side_best(side)
    out.best_key = best.key
    out.best_qty = best.qty
    out.imbalance = int_sum(q, min(n, p.imbalance_levels))
    out.depth = int_sum(q, min(n, p.depth_ratio_levels))
    for i in range(min(n, p.weighted_levels)):
        w += s.decay_weights[i] * q[i]
    for i in range(min(n, p.pressure_levels)):
        pr += q[i] / (i + 1.0)
    out.weighted = w
    out.pressure = pr
    return True


cdef inline orp_i128 ofi_contribution(int64_t pb, int64_t qb, int64_t pa, int64_t qa,
                                      int64_t pb0, int64_t qb0, int64_t pa0,
                                      int64_t qa0) noexcept nogil:
    """Cont, Kukanov & Stoikov (2014) e_n over best quotes (prices in ticks, sizes in units)."""
    cdef orp_i128 e = 0
    if pb >= pb0:
        e += qb
    if pb <= pb0:
        e -= qb0
    if pa <= pa0:
        e -= qa
    if pa >= pa0:
        e += qa0
    return e


cdef void book_state_nan(FeatureVector *fv) noexcept nogil:
    fv.mid = NAN; fv.spread_bps = NAN; fv.imbalance = NAN; fv.weighted_imbalance = NAN
    fv.depth_ratio = NAN; fv.bid_pressure = NAN; fv.ask_pressure = NAN
    fv.book_pressure = NAN; fv.weighted_mid = NAN; fv.ofi = NAN


cdef void history_nan(FeatureVector *fv) noexcept nogil:
    fv.volatility = NAN; fv.volatility_z = NAN; fv.momentum = NAN
    fv.imbalance_momentum = NAN; fv.imbalance_z = NAN


cdef orp_i128 book_state(FeatureState *s, const Book *b) noexcept nogil:
    """Book-state columns and OFI from the top levels; returns bid+ask ticks (0 if undefined)."""
    cdef FeatureVector *fv = &s.fv
    cdef int64_t pb, pa, qb, qa
    cdef double bid_px, ask_px, stoikov
    cdef SideSums sb, sa
    if not side_sums(s, b, False, s.top_qty, &sb) or not side_sums(s, b, True, s.top_qty, &sa):
        book_state_nan(fv)
        s.has_prev = 0
        return 0
    pb = sb.best_key
    pa = -sa.best_key
    qb = sb.best_qty
    qa = sa.best_qty
    bid_px = to_px(s, <double>pb)
    ask_px = to_px(s, <double>pa)
    fv.mid = (bid_px + ask_px) / 2.0
    fv.spread_bps = (ask_px - bid_px) / fv.mid * 1e4
    fv.imbalance = (orp_i128_to_double(sb.imbalance - sa.imbalance)
                    / orp_i128_to_double(sb.imbalance + sa.imbalance))
    fv.weighted_imbalance = (sb.weighted - sa.weighted) / (sb.weighted + sa.weighted)
    fv.depth_ratio = orp_i128_to_double(sb.depth) / orp_i128_to_double(sa.depth)
    fv.bid_pressure = to_qty(s, sb.pressure)
    fv.ask_pressure = to_qty(s, sa.pressure)
    fv.book_pressure = (sb.pressure - sa.pressure) / (sb.pressure + sa.pressure)
    stoikov = (<double>qb) / orp_i128_to_double(<orp_i128>qb + qa)
    fv.weighted_mid = bid_px * (1.0 - stoikov) + ask_px * stoikov
    if s.has_prev:
        s.ofi_units = ofi_contribution(pb, qb, pa, qa, s.prev_bid, s.prev_bid_qty,
                                       s.prev_ask, s.prev_ask_qty)
        s.has_ofi = 1
        fv.ofi = to_qty(s, orp_i128_to_double(s.ofi_units))
    else:
        fv.ofi = NAN
    s.has_prev = 1
    s.prev_bid = pb; s.prev_bid_qty = qb; s.prev_ask = pa; s.prev_ask_qty = qa
    return (<orp_i128>pb) + pa


cdef inline void window_push(double *buf, int64_t cap, int64_t *n, int64_t *pos,
                           double x) noexcept nogil:
    buf[pos[0]] = x
    pos[0] = ring_slot(pos[0] + 1, cap)
    if n[0] < cap:
        n[0] += 1


cdef double ols_sxx(int64_t cap) noexcept nogil:
    """sum (k - c)**2 over k = 0..cap-1, c the mean index: the OLS slope's denominator."""
    cdef double sxx = 0.0, c = (cap - 1) / 2.0
    cdef int64_t k
    for k in range(cap):
        sxx += (k - c) * (k - c)
    return sxx


cdef double ols_slope(const double *buf, int64_t cap, int64_t pos, double sxx) noexcept nogil:
    """OLS slope of the window (oldest first) against 0..cap-1, summed over symmetric pairs
    (y[cap-1-k] - y[k]) so that a flat window gives exactly 0."""
    cdef double num = 0.0, c = (cap - 1) / 2.0
    cdef int64_t k
    for k in range(cap // 2):
        num += (c - k) * (buf[ring_slot(pos + cap - 1 - k, cap)] - buf[ring_slot(pos + k, cap)])
    return num / sxx


cdef void history_update(FeatureState *s, orp_i128 mid2) noexcept nogil:
    """Count-based features after a usable book row (mid2 = bid + ask in ticks)."""
    cdef FeatureVector *fv = &s.fv
    cdef const FeatureParams *p = &s.p
    cdef double vol, first
    if s.prev_mid2 > 0:
        stats_push(&s.returns, log(orp_i128_to_double(mid2) / orp_i128_to_double(s.prev_mid2)))
    s.prev_mid2 = mid2
    if s.returns.n == s.returns.cap:
        vol = stats_std(&s.returns)
        fv.volatility = vol
        stats_push(&s.vols, vol)
        if s.vols.n >= p.zscore_min:
            fv.volatility_z = (vol - stats_mean(&s.vols)) / max(stats_std(&s.vols), 1e-4)
        else:
            fv.volatility_z = NAN
    else:
        fv.volatility = NAN
        fv.volatility_z = NAN
    window_push(s.mids, p.momentum_window, &s.mids_n, &s.mids_pos, fv.mid)
    if s.mids_n == p.momentum_window:
        first = s.mids[s.mids_pos]      # the oldest, once the ring is full
        fv.momentum = (fv.mid - first) / first
    else:
        fv.momentum = NAN
    window_push(s.imbs, p.imbalance_momentum_window, &s.imbs_n, &s.imbs_pos, fv.imbalance)
    if s.imbs_n == p.imbalance_momentum_window:
        fv.imbalance_momentum = ols_slope(s.imbs, p.imbalance_momentum_window, s.imbs_pos,
                                          s.imbs_sxx)
    else:
        fv.imbalance_momentum = NAN
    stats_push(&s.imbz, fv.imbalance)
    if s.imbz.n >= p.zscore_min:
        fv.imbalance_z = (fv.imbalance - stats_mean(&s.imbz)) / max(stats_std(&s.imbz), 0.001)
    else:
        fv.imbalance_z = NAN


# ------------------------------------------------------------------------------------------
# book segments: imbalance_twa, ofi_window, price_acceleration


cdef inline Segment *seg_at(const FeatureState *s, int64_t i) noexcept nogil:
    return &s.segs[i & s.segs_mask]


cdef inline void inner_add(FeatureState *s, const Segment *g, int64_t dur, double sign) noexcept nogil:
    if g.imbalance == g.imbalance:      # not NaN
        csum_add(&s.inner_vd, sign * g.imbalance * dur)
        s.inner_d += <int64_t>sign * dur


cdef void segments_push(FeatureState *s, double imbalance, double mid, int64_t has_ofi,
                        orp_i128 ofi) noexcept nogil:
    cdef Segment *g
    cdef int64_t last = s.send - 1
    if s.send - s.sh == s.segs_mask + 1 and ring_grow(<void **>&s.segs, &s.segs_mask, s.sh, s.send,
                                                       sizeof(Segment)) != 0:
        s.truncated += 1
        return
    if s.send - s.sh >= 2:
        # the previous last segment closes now; the head is clipped at query time instead
        inner_add(s, seg_at(s, last), s.clock - seg_at(s, last).t, 1.0)
    g = seg_at(s, s.send)
    g.t = s.clock
    g.imbalance = imbalance
    g.mid = mid
    g.has_ofi = has_ofi
    g.ofi = ofi
    s.send += 1
    if has_ofi:
        s.ofi_sum += ofi
        s.ofi_n += 1


cdef void segments_evict(FeatureState *s) noexcept nogil:
    cdef int64_t left = s.clock - s.p.window_ns, half = s.clock - s.p.window_ns // 2
    cdef Segment *g
    # OFI first: every segment at or before the window start leaves the sum exactly once
    while s.so < s.send and seg_at(s, s.so).t <= left:
        g = seg_at(s, s.so)
        if g.has_ofi:
            s.ofi_sum -= g.ofi
            s.ofi_n -= 1
        s.so += 1
    # keep the segment in force at the window start as the head (clipped at query time)
    while s.send - s.sh >= 2 and seg_at(s, s.sh + 1).t <= left:
        s.sh += 1
        if s.sh < s.send - 1:           # the new head was an inner (closed) segment
            g = seg_at(s, s.sh)
            inner_add(s, g, seg_at(s, s.sh + 1).t - g.t, -1.0)
            if s.inner_d == 0:
                s.inner_vd.s = 0.0
                s.inner_vd.c = 0.0
    if s.sm < s.sh:
        s.sm = s.sh
    while s.sm + 1 < s.send and seg_at(s, s.sm + 1).t <= half:
        s.sm += 1


cdef void segments_features(FeatureState *s) noexcept nogil:
    cdef FeatureVector *fv = &s.fv
    cdef int64_t left = s.clock - s.p.window_ns, half = s.clock - s.p.window_ns // 2
    cdef int64_t d, start, end
    cdef double vd
    cdef Segment *h
    cdef Segment *last
    cdef double m_full, m_half
    if s.send == s.sh:
        fv.ofi_window = NAN; fv.imbalance_twa = NAN; fv.price_acceleration = NAN
        return
    fv.ofi_window = to_qty(s, orp_i128_to_double(s.ofi_sum)) if s.ofi_n > 0 else NAN
    # imbalance_twa: head segment clipped at the window start, inner sum, open last segment
    vd = csum_value(&s.inner_vd)
    d = s.inner_d
    h = seg_at(s, s.sh)
    start = max(h.t, left)
    end = seg_at(s, s.sh + 1).t if s.send - s.sh >= 2 else s.clock
    if h.imbalance == h.imbalance and end > start:
        vd += h.imbalance * (end - start)
        d += end - start
    if s.send - s.sh >= 2:
        last = seg_at(s, s.send - 1)
        if last.imbalance == last.imbalance and s.clock > last.t:
            vd += last.imbalance * (s.clock - last.t)
            d += s.clock - last.t
    fv.imbalance_twa = vd / d if d > 0 else NAN
    # price_acceleration: mids in force at t-W and t-W/2
    fv.price_acceleration = NAN
    if h.t <= left and seg_at(s, s.sm).t <= half:
        m_full = h.mid
        m_half = seg_at(s, s.sm).mid
        if m_full == m_full and m_half == m_half and fv.mid == fv.mid:
            fv.price_acceleration = log(fv.mid / m_half) - log(m_half / m_full)


# ------------------------------------------------------------------------------------------
# trades: vwap, trade_flow, volume_surge, toxicity


cdef void trades_push(FeatureState *s, const Event *e, int64_t side) noexcept nogil:
    cdef TradeItem *it
    if s.tend - s.t60 == s.trades_mask + 1 and ring_grow(<void **>&s.trades, &s.trades_mask, s.t60,
                                                         s.tend, sizeof(TradeItem)) != 0:
        s.truncated += 1
        return
    it = &s.trades[s.tend & s.trades_mask]
    it.t = s.clock
    it.price = e.price
    it.qty = e.qty
    it.side = side
    s.tend += 1
    s.qty_w += e.qty
    s.qty_long += e.qty
    s.notional_w += (<orp_i128>e.price) * e.qty
    if side > 0:
        s.buy_w += e.qty
    elif side < 0:
        s.sell_w += e.qty


cdef void trades_evict(FeatureState *s) noexcept nogil:
    cdef int64_t left = s.clock - s.p.window_ns
    cdef int64_t left_long = s.clock - s.p.surge_windows * s.p.window_ns
    cdef TradeItem *it
    while s.tw < s.tend and s.trades[s.tw & s.trades_mask].t <= left:
        it = &s.trades[s.tw & s.trades_mask]
        s.qty_w -= it.qty
        s.notional_w -= (<orp_i128>it.price) * it.qty
        if it.side > 0:
            s.buy_w -= it.qty
        elif it.side < 0:
            s.sell_w -= it.qty
        s.tw += 1
    while s.t60 < s.tw and s.trades[s.t60 & s.trades_mask].t <= left_long:
        s.qty_long -= s.trades[s.t60 & s.trades_mask].qty
        s.t60 += 1


cdef void trades_features(FeatureState *s) noexcept nogil:
    cdef FeatureVector *fv = &s.fv
    cdef int64_t dur
    if s.qty_w > 0:
        fv.vwap = to_px(s, orp_i128_to_double(s.notional_w) / orp_i128_to_double(s.qty_w))
        fv.trade_flow = orp_i128_to_double(s.buy_w - s.sell_w) / orp_i128_to_double(s.qty_w)
    else:
        fv.vwap = NAN
        fv.trade_flow = NAN
    # mean volume per window over the lookback actually observed (at most surge_windows*W)
    dur = min(s.clock - s.first_clock, s.p.surge_windows * s.p.window_ns)
    if dur >= s.p.window_ns and s.qty_long > 0:
        fv.volume_surge = ((orp_i128_to_double(s.qty_w) * <double>dur)
                           / (orp_i128_to_double(s.qty_long) * <double>s.p.window_ns))
    else:
        fv.volume_surge = NAN


cdef inline void bucket_close(FeatureState *s, int64_t imb) noexcept nogil:
    if s.buckets_n == s.p.vpin_buckets:
        s.buckets_sum -= s.buckets[s.buckets_pos]
    else:
        s.buckets_n += 1
    s.buckets[s.buckets_pos] = imb
    s.buckets_sum += imb
    s.buckets_pos = ring_slot(s.buckets_pos + 1, s.p.vpin_buckets)


cdef void vpin_trade(FeatureState *s, int64_t qty, int64_t side) noexcept nogil:
    """Fill volume buckets of exactly vpin_bucket units; a trade is split across boundaries."""
    cdef int64_t V = s.p.vpin_bucket, take, full, k
    while qty > 0:
        if s.bucket_fill == 0 and qty >= V:
            # whole buckets of one side at once; only the last vpin_buckets of them can matter
            full = qty // V
            for k in range(min(full, s.p.vpin_buckets)):
                bucket_close(s, V if side != 0 else 0)
            qty -= full * V
            continue
        take = min(qty, V - s.bucket_fill)
        s.bucket_fill += take
        if side > 0:
            s.bucket_buy += take
        elif side < 0:
            s.bucket_sell += take
        qty -= take
        if s.bucket_fill == V:
            bucket_close(s, s.bucket_buy - s.bucket_sell if s.bucket_buy >= s.bucket_sell
                         else s.bucket_sell - s.bucket_buy)
            s.bucket_fill = 0
            s.bucket_buy = 0
            s.bucket_sell = 0
    if s.buckets_n == s.p.vpin_buckets:
        s.fv.toxicity = orp_i128_to_double(s.buckets_sum) / (<double>s.p.vpin_buckets * <double>V)


# ------------------------------------------------------------------------------------------
# one event


cdef inline void advance_clock(FeatureState *s, int64_t ts) noexcept nogil:
    # clamped so that clock - window arithmetic can never overflow, whatever the data say
    if ts < 0:
        ts = 0
    elif ts > CLOCK_MAX:
        ts = CLOCK_MAX
    if not s.started:
        s.started = 1
        s.clock = ts
        s.first_clock = ts
    elif ts > s.clock:
        s.clock = ts


cdef void history_row(FeatureState *s) noexcept nogil:
    if s.p.groups & G_HISTORY and s.row_mid2 > 0:
        history_update(s, s.row_mid2)
    else:
        history_nan(&s.fv)


cdef void on_book_row(FeatureState *s, const Book *b, int32_t late) noexcept nogil:
    cdef FeatureVector *fv = &s.fv
    cdef int32_t g = s.p.groups
    cdef orp_i128 mid2 = 0
    fv.book_ok = book_usable(b) and not b.crossed_now and b.bid.n > 0 and b.ask.n > 0
    s.has_ofi = 0
    if fv.book_ok and (g & (G_BOOK | G_HISTORY | G_WINDOWS)):
        mid2 = book_state(s, b)
    else:
        book_state_nan(fv)
        s.has_prev = 0
    s.row_mid2 = mid2
    if not (late & G_HISTORY):
        history_row(s)
    if g & G_WINDOWS and not (late & G_WINDOWS):
        segments_push(s, fv.imbalance, fv.mid, s.has_ofi, s.ofi_units)
    if not (g & G_BOOK):
        book_state_nan(fv)


cdef int32_t features_late(const FeatureParams *p, int32_t first) noexcept nogil:
    # The book group is never late: history and windows read this row's book state, and
    # signal_decide sizes with mid. Without it the book columns are NaN-ed after history and
    # windows read them, so nothing is split then.
    if not (p.groups & G_BOOK):
        return 0
    return p.groups & G_ALL & ~(first | G_BOOK)


cdef inline void window_columns(FeatureState *s, int32_t groups) noexcept nogil:
    """Every row, of the given groups: drop what left the time windows, recompute their columns."""
    if groups & G_TRADES:
        trades_evict(s)
        trades_features(s)
    if groups & G_WINDOWS:
        segments_evict(s)
        segments_features(s)


cdef int features_update(FeatureState *s, const Book *b, const Event *e) noexcept nogil:
    return features_begin(s, b, e, 0)


cdef int features_begin(FeatureState *s, const Book *b, const Event *e, int32_t late) noexcept nogil:
    cdef uint32_t f = e.flags
    cdef int64_t side
    cdef int32_t g = s.p.groups & ~late
    cdef FeatureVector *fv = &s.fv
    # a record without exchange time (ts_exch 0: a REST snapshot) is stamped with its receive
    # time, so its row does not sit at 1970 on a time axis
    cdef int64_t ts = e.ts_exch if e.ts_exch != 0 else e.ts_local
    if f & F_TRADE:
        if (f & ~(F_TRADE | F_BUY | F_SELL | F_LAST)) or (f & F_BUY and f & F_SELL) \
                or e.qty <= 0 or e.price <= 0 \
                or e.instrument != b.instrument:
            s.bad_trades += 1
            return 0
        advance_clock(s, ts)
        side = 1 if f & F_BUY else (-1 if f & F_SELL else 0)
        if g & G_TRADES:
            trades_push(s, e, side)
        if g & G_TOXICITY and s.p.vpin_bucket > 0:
            vpin_trade(s, e.qty, side)
        fv.kind = ROW_TRADE
        if fv.ofi == fv.ofi:
            fv.ofi = 0.0                 # a trade leaves the quotes as they were
    elif f & F_BOOK_KINDS and f & F_LAST and e.instrument == b.instrument and not b.msg_open:
        advance_clock(s, ts)
        fv.kind = ROW_BOOK
        on_book_row(s, b, late)
    else:
        return 0
    fv.ts_exch = ts
    fv.seq = e.seq
    window_columns(s, g)
    s.rows += 1
    return 1


cdef void features_finish(FeatureState *s, const Event *e, int32_t late) noexcept nogil:
    # Each late group reads only its own state, the clock and this row's book columns, which
    # nothing between the two phases writes: the values are those of one features_update.
    cdef uint32_t f = e.flags
    cdef int64_t side
    if late == 0:
        return
    if f & F_TRADE:
        side = 1 if f & F_BUY else (-1 if f & F_SELL else 0)
        if late & G_TRADES:
            trades_push(s, e, side)
        if late & G_TOXICITY and s.p.vpin_bucket > 0:
            vpin_trade(s, e.qty, side)
    else:
        if late & G_HISTORY:
            history_row(s)
        if late & G_WINDOWS:
            segments_push(s, s.fv.imbalance, s.fv.mid, s.has_ofi, s.ofi_units)
    window_columns(s, late)


# ------------------------------------------------------------------------------------------
# Python surface


@cython.auto_pickle(False)     # C state: not picklable
cdef class FeatureExtension:
    """Base class for user features written in Cython (see examples/custom_cython/).

    Subclass it in a ``.pyx``, set ``self.names`` (at most 8 column names) in ``__init__`` and
    override ``cdef void compute(self, const FeatureState *s, const Book *b, const Event *e,
    double *out) noexcept nogil``. It runs on every row after the built-in features, without
    the GIL; ``s.fv`` holds the row so far.
    """

    def __init__(self, names=()):
        self.names = tuple(str(n) for n in names)

    cdef void compute(self, const FeatureState *s, const Book *b, const Event *e,
                      double *out) noexcept nogil:
        pass


def vector_layout():
    """(name, byte offset) of every FeatureVector field, and its size, as C laid it out."""
    cdef FeatureVector v
    cdef char *base = <char *>&v
    cdef double *d = &v.mid
    fields = [("ts_exch", <char *>&v.ts_exch - base), ("seq", <char *>&v.seq - base),
              ("kind", <char *>&v.kind - base), ("book_ok", <char *>&v.book_ok - base)]
    fields += [(i, <char *>&d[i] - base) for i in range(FEATURE_COUNT)]
    return fields, <char *>&v.extra[0] - base, sizeof(FeatureVector)


FEATURE_GROUPS = {"book": G_BOOK, "history": G_HISTORY, "trades": G_TRADES,
                  "windows": G_WINDOWS, "toxicity": G_TOXICITY}
#: SignalGenerator.feature_reads() bits: the extension's columns, and everything.
READS_EXTENSION = G_EXTENSION
READS_ALL = G_ALL | G_EXTENSION


def column_groups():
    """The group bit of every column (built-ins then extension columns), as the engine maps them."""
    return [column_group(i) for i in range(FEATURE_COUNT + FEATURE_EXTRA_MAX)]


cdef class FeatureEngine:
    """Runs the feature state over event arrays; one instance per instrument.

    Used by ``orpflow.compute_features``; keeps its book and state between calls, so a
    recording can be fed in pieces.
    """

    def __cinit__(self):
        self.initialised = 0

    def __init__(self, OrderBook book not None, dict params not None, object dtype,
                 FeatureExtension extension=None):
        cdef FeatureParams p
        memset(&p, 0, sizeof(p))
        p.window_ns = params["window_ns"]
        p.volatility_window = params["volatility_window"]
        p.zscore_window = params["zscore_window"]
        p.zscore_min = params["zscore_min"]
        p.momentum_window = params["momentum_window"]
        p.imbalance_momentum_window = params["imbalance_momentum_window"]
        p.imbalance_levels = params["imbalance_levels"]
        p.weighted_levels = params["weighted_levels"]
        p.weighted_decay = params["weighted_decay"]
        p.depth_ratio_levels = params["depth_ratio_levels"]
        p.pressure_levels = params["pressure_levels"]
        p.surge_windows = params["surge_windows"]
        p.vpin_bucket = params["vpin_bucket"]
        p.vpin_buckets = params["vpin_buckets"]
        p.groups = params["groups"]
        p.px_num, p.px_den = book.instrument.price_scale
        p.qty_num, p.qty_den = book.instrument.size_scale
        if self.initialised:
            features_free(&self.st)
            self.initialised = 0
        if features_init(&self.st, &p) != 0:
            raise MemoryError("feature state")
        self.initialised = 1
        self.book = book
        self.extension = extension
        self.has_extension = extension is not None
        self.dtype = dtype

    def __dealloc__(self):
        if self.initialised:
            features_free(&self.st)

    def run(self, events, int first=G_ALL):
        """Apply `events` to the book and return one feature row per book message or trade.

        first: compute these groups (bits of FEATURE_GROUPS), then the rest, per row, as the
        engine does around its decision; the rows are the same (tests check it)."""
        self.late = features_late(&self.st.p, first)
        try:
            return self.run_rows(events)
        finally:
            self.late = 0

    cdef object run_rows(self, events):
        cdef Event *evs = event_ptr(events, False)
        cdef int64_t n = events.shape[0], i = 0, rows = 0
        cdef int row = 0
        cdef size_t row_size = sizeof(FeatureVector)
        if self.dtype.itemsize != row_size:
            raise ValueError("feature dtype does not match the FeatureVector layout")
        out = np.zeros(max(n, 1), dtype=self.dtype)
        cdef unsigned char *dst = array_bytes(out)
        self.book._enter_write()
        try:
            with nogil:
                while i < n:
                    i += self.advance(&evs[i], n - i, &row)
                    if row:
                        memcpy(dst + rows * row_size, &self.st.fv, row_size)
                        rows += 1
        finally:
            self.book._exit_write()
        return out[:rows]

    cdef int64_t advance(self, const Event *evs, int64_t n, int *row) noexcept nogil:
        """Apply events to the book up to and including the first that can make a row (a
        trade or the last record of a book message), in one batch, then update the features
        on it. Returns how many events were consumed; *row is 1 if st.fv holds a new row."""
        cdef int64_t j = 0
        cdef uint32_t f
        while j < n:
            f = evs[j].flags
            if f & F_TRADE or (f & F_LAST and f & F_BOOK_KINDS):
                break
            j += 1
        if j == n:
            book_apply(self.book.book, evs, n)
            row[0] = 0
            return n
        book_apply(self.book.book, evs, j + 1)
        row[0] = features_begin(&self.st, self.book.book, &evs[j], self.late)
        if row[0] and self.late:
            features_finish(&self.st, &evs[j], self.late)
        if row[0] and self.has_extension:
            self.extension.compute(&self.st, self.book.book, &evs[j], self.st.fv.extra)
        return j + 1

    def stats(self):
        """Counters: rows, bad_trades, truncated (window items dropped for lack of memory)."""
        return {"rows": self.st.rows, "bad_trades": self.st.bad_trades,
                "truncated": self.st.truncated}
