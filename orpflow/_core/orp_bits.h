/* Bit scans for the order book's level bitmaps (one bit per price tick in the window). */
#ifndef ORP_BITS_H
#define ORP_BITS_H

#include <stdint.h>

#if defined(_MSC_VER) && !defined(__clang__)
#include <intrin.h>
/* index of the highest / lowest set bit of x; x must not be 0 */
static inline int64_t orp_top_bit(uint64_t x) { unsigned long i; _BitScanReverse64(&i, x); return (int64_t)i; }
static inline int64_t orp_low_bit(uint64_t x) { unsigned long i; _BitScanForward64(&i, x); return (int64_t)i; }
#else
static inline int64_t orp_top_bit(uint64_t x) { return 63 - __builtin_clzll(x); }
static inline int64_t orp_low_bit(uint64_t x) { return __builtin_ctzll(x); }
#endif

/* max without a branch: for clocks that move forward on most records but not all (ties and
 * out-of-order stamps), where a branch would mispredict */
static inline int64_t orp_max_i64(int64_t a, int64_t b) {
    int64_t m = -(int64_t)(a > b);
    return (a & m) | (b & ~m);
}

#endif
