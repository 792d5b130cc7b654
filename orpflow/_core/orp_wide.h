/* 128-bit integers for exact window sums of price*size (int64 * int64).
 * GCC and Clang provide __int128 on every 64-bit target orpflow builds wheels for. */
#ifndef ORP_WIDE_H
#define ORP_WIDE_H

#if defined(__SIZEOF_INT128__)
typedef __int128 orp_i128;
#elif defined(_MSC_VER)
/* No 128-bit integer type in MSVC C: sums then round like doubles (not exact past 2^53). */
typedef double orp_i128;
#else
#error "orpflow needs a 128-bit integer type (GCC or Clang) or MSVC"
#endif

#include <stdint.h>
#include <math.h>

/* (double)x rounds the same integer the same way whatever its type, so a value that fits in
 * int64 (all real data) takes the one-instruction conversion instead of the libgcc call. */
static inline double orp_i128_to_double(orp_i128 x) {
#if defined(__SIZEOF_INT128__)
    int64_t lo = (int64_t)x;
    if ((orp_i128)lo == x)
        return (double)lo;
#endif
    return (double)x;
}

/* Python ints cross the boundary as two 64-bit halves: x = hi * 2**64 + lo. */
static inline int64_t orp_i128_hi(orp_i128 x) {
#if defined(__SIZEOF_INT128__)
    return (int64_t)(x >> 64);
#else
    return (int64_t)floor(x / 18446744073709551616.0);
#endif
}
static inline uint64_t orp_i128_lo(orp_i128 x) {
#if defined(__SIZEOF_INT128__)
    return (uint64_t)x;
#else
    return (uint64_t)(x - floor(x / 18446744073709551616.0) * 18446744073709551616.0);
#endif
}
static inline orp_i128 orp_i128_make(int64_t hi, uint64_t lo) {
    return (orp_i128)hi * (orp_i128)4294967296 * (orp_i128)4294967296 + (orp_i128)lo;
}

#endif
