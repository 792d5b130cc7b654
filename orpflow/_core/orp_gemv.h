/* orp_gemv.h -- row vector x matrix blocks for the native model evaluator.
 * out[0:W] = bias + a . w[:, 0:W] (w row-major, row stride N), W = 16 or 4 outputs at a time.
 * GCC/Clang: vector extensions keep the accumulators in registers (SSE2 on baseline x86-64,
 * NEON on arm64); the compiler's own vectoriser does not reliably do it once the kernel is
 * inlined into the big op dispatch. Other compilers: the plain loop. Both add in the same order
 * (acc += a[k] * w[k][j], k ascending), so results are identical. */
#ifndef ORP_GEMV_H
#define ORP_GEMV_H
#include <stdint.h>
#include <string.h>

#if defined(__GNUC__) || defined(__clang__)
typedef float orp_v4 __attribute__((vector_size(16)));

static inline orp_v4 orp_ld4(const float *p) { orp_v4 v; memcpy(&v, p, 16); return v; }
static inline void orp_st4(float *p, orp_v4 v) { memcpy(p, &v, 16); }

static inline void orp_gemv16(const float *a, const float *w, const float *bias, int has_bias,
                              int64_t K, int64_t N, float *out) {
    orp_v4 z = {0, 0, 0, 0};
    orp_v4 c0 = has_bias ? orp_ld4(bias) : z, c1 = has_bias ? orp_ld4(bias + 4) : z;
    orp_v4 c2 = has_bias ? orp_ld4(bias + 8) : z, c3 = has_bias ? orp_ld4(bias + 12) : z;
    for (int64_t k = 0; k < K; k++) {
        const float *r = w + k * N;
        orp_v4 av = {a[k], a[k], a[k], a[k]};
        c0 = c0 + av * orp_ld4(r);
        c1 = c1 + av * orp_ld4(r + 4);
        c2 = c2 + av * orp_ld4(r + 8);
        c3 = c3 + av * orp_ld4(r + 12);
    }
    orp_st4(out, c0); orp_st4(out + 4, c1); orp_st4(out + 8, c2); orp_st4(out + 12, c3);
}

static inline void orp_gemv4(const float *a, const float *w, const float *bias, int has_bias,
                             int64_t K, int64_t N, float *out) {
    orp_v4 z = {0, 0, 0, 0};
    orp_v4 c0 = has_bias ? orp_ld4(bias) : z;
    for (int64_t k = 0; k < K; k++) {
        orp_v4 av = {a[k], a[k], a[k], a[k]};
        c0 = c0 + av * orp_ld4(w + k * N);
    }
    orp_st4(out, c0);
}
#else
static inline void orp_gemv_w(const float *a, const float *w, const float *bias, int has_bias,
                              int64_t K, int64_t N, float *out, int W) {
    float acc[16];
    for (int j = 0; j < W; j++) acc[j] = has_bias ? bias[j] : 0.0f;
    for (int64_t k = 0; k < K; k++)
        for (int j = 0; j < W; j++) acc[j] = acc[j] + a[k] * w[k * N + j];
    for (int j = 0; j < W; j++) out[j] = acc[j];
}
static inline void orp_gemv16(const float *a, const float *w, const float *bias, int has_bias,
                              int64_t K, int64_t N, float *out) { orp_gemv_w(a, w, bias, has_bias, K, N, out, 16); }
static inline void orp_gemv4(const float *a, const float *w, const float *bias, int has_bias,
                             int64_t K, int64_t N, float *out) { orp_gemv_w(a, w, bias, has_bias, K, N, out, 4); }
#endif
#endif
