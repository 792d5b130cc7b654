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

#endif
