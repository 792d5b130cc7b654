/* orp_atomic.h -- the only place orpflow touches memory ordering.
 *
 * Hand-offs between threads use acquire/release pairs; counters nobody synchronises on use
 * relaxed. GCC/Clang builtins (same semantics as C11 <stdatomic.h>, but usable on plain
 * int64 fields that Cython can declare), an MSVC branch (x86/x64 and ARM64 via the
 * Interlocked/volatile rules), and a compile error anywhere else: a silent fallback would be
 * a data race.
 */
#ifndef ORP_ATOMIC_H
#define ORP_ATOMIC_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define ORP_CACHE_LINE 64

#if defined(__GNUC__) || defined(__clang__)

static inline int64_t ORP_load_acquire(const int64_t *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
static inline int64_t ORP_load_relaxed(const int64_t *p) { return __atomic_load_n(p, __ATOMIC_RELAXED); }
static inline void ORP_store_release(int64_t *p, int64_t v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }
static inline void ORP_store_relaxed(int64_t *p, int64_t v) { __atomic_store_n(p, v, __ATOMIC_RELAXED); }
static inline int64_t ORP_fetch_add_relaxed(int64_t *p, int64_t v) { return __atomic_fetch_add(p, v, __ATOMIC_RELAXED); }
static inline int64_t ORP_fetch_add_acq_rel(int64_t *p, int64_t v) { return __atomic_fetch_add(p, v, __ATOMIC_ACQ_REL); }
static inline void ORP_fence_acquire(void) { __atomic_thread_fence(__ATOMIC_ACQUIRE); }
static inline void ORP_fence_release(void) { __atomic_thread_fence(__ATOMIC_RELEASE); }
/* Full fence: orders an earlier store before a later load (Dekker-style flag handshakes). */
static inline void ORP_fence_seq_cst(void) { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
/* Stops the compiler from caching or reordering memory accesses across it (no CPU fence). */
static inline void ORP_compiler_barrier(void) { __asm__ __volatile__("" ::: "memory"); }

/* Seqlock payloads: copied word by word with relaxed atomics, so a reader that races the
 * writer performs no C11 data race (Boehm, "Can seqlocks get along with programming language
 * memory models?", 2012): the fences around the copy order it, and relaxed atomics make the
 * race defined. A plain memcpy of the payload is a data race, i.e. undefined behaviour, even
 * where today's compilers happen to emit code that works, and a race detector reports it. */
static inline void ORP_copy_words_load_relaxed(int64_t *dst, const int64_t *src, size_t n) {
    for (size_t i = 0; i < n; i++) dst[i] = __atomic_load_n(&src[i], __ATOMIC_RELAXED);
}
static inline void ORP_copy_words_store_relaxed(int64_t *dst, const int64_t *src, size_t n) {
    for (size_t i = 0; i < n; i++) __atomic_store_n(&dst[i], src[i], __ATOMIC_RELAXED);
}

static inline void ORP_pause(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__) || defined(__arm__)
    __asm__ __volatile__("yield" ::: "memory");
#else
    __asm__ __volatile__("" ::: "memory");
#endif
}

#elif defined(_MSC_VER)

#include <intrin.h>
#include <windows.h>
/* On MSVC, volatile accesses have acquire/release semantics with /volatile:ms (the x86/x64
 * default); on ARM64 we use explicit barriers so /volatile:iso is also correct. */
static __forceinline int64_t ORP_load_acquire(const int64_t *p) {
    int64_t v = *(const volatile int64_t *)p; _ReadWriteBarrier();
#if defined(_M_ARM64)
    __dmb(_ARM64_BARRIER_ISH);
#endif
    return v;
}
static __forceinline int64_t ORP_load_relaxed(const int64_t *p) { return *(const volatile int64_t *)p; }
static __forceinline void ORP_store_release(int64_t *p, int64_t v) {
#if defined(_M_ARM64)
    __dmb(_ARM64_BARRIER_ISH);
#endif
    _ReadWriteBarrier(); *(volatile int64_t *)p = v;
}
static __forceinline void ORP_store_relaxed(int64_t *p, int64_t v) { *(volatile int64_t *)p = v; }
static __forceinline int64_t ORP_fetch_add_relaxed(int64_t *p, int64_t v) { return _InterlockedExchangeAdd64((volatile __int64 *)p, v); }
static __forceinline int64_t ORP_fetch_add_acq_rel(int64_t *p, int64_t v) { return _InterlockedExchangeAdd64((volatile __int64 *)p, v); }
static __forceinline void ORP_fence_acquire(void) { _ReadWriteBarrier(); MemoryBarrier(); }
static __forceinline void ORP_fence_release(void) { MemoryBarrier(); _ReadWriteBarrier(); }
static __forceinline void ORP_fence_seq_cst(void) { _ReadWriteBarrier(); MemoryBarrier(); _ReadWriteBarrier(); }
static __forceinline void ORP_compiler_barrier(void) { _ReadWriteBarrier(); }
static __forceinline void ORP_copy_words_load_relaxed(int64_t *dst, const int64_t *src, size_t n) {
    for (size_t i = 0; i < n; i++) dst[i] = *(const volatile int64_t *)&src[i];
}
static __forceinline void ORP_copy_words_store_relaxed(int64_t *dst, const int64_t *src, size_t n) {
    for (size_t i = 0; i < n; i++) *(volatile int64_t *)&dst[i] = src[i];
}
static __forceinline void ORP_pause(void) { YieldProcessor(); }

#else
#error "orp_atomic.h: unsupported compiler (need GCC, Clang or MSVC atomics)"
#endif

/* Seqlock, one writer and any number of readers, over a payload of whole int64 words (the
 * MarketSnapshot, the engine's published per-instrument stats). Writer: seq odd (relaxed) +
 * release fence, payload stored with relaxed atomics, seq even (release). Reader: seq
 * (acquire), payload loaded with relaxed atomics, acquire fence, seq again; retried unless
 * both are the same even number. Returns the reader's retries. */
static inline void ORP_seqlock_write(int64_t *seq, int64_t *dst, const int64_t *src, size_t words) {
    int64_t s = *seq;                 /* only the writer stores seq: a plain read is exact */
    ORP_store_relaxed(seq, s + 1);
    ORP_fence_release();              /* the odd seq is visible before any payload store */
    ORP_copy_words_store_relaxed(dst, src, words);
    ORP_store_release(seq, s + 2);    /* ... and the whole payload before the even one */
}
static inline int64_t ORP_seqlock_read(const int64_t *seq, int64_t *dst, const int64_t *src, size_t words) {
    int64_t s1, s2, retries = 0;
    for (;;) {
        s1 = ORP_load_acquire(seq);
        if (s1 & 1) { retries++; ORP_pause(); continue; }
        ORP_copy_words_load_relaxed(dst, src, words);
        ORP_fence_acquire();          /* the payload loads complete before seq is read again */
        s2 = ORP_load_relaxed(seq);
        if (s1 == s2) return retries;
        retries++;
    }
}

/* Monotonic nanoseconds for latency measurement (vDSO on Linux: no syscall). */
#if defined(_MSC_VER)
static inline int64_t ORP_now_ns(void) {
    LARGE_INTEGER f, c; QueryPerformanceFrequency(&f); QueryPerformanceCounter(&c);
    return (int64_t)((double)c.QuadPart * 1e9 / (double)f.QuadPart);
}
#else
static inline int64_t ORP_now_ns(void) {
    struct timespec ts; clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}
#endif

/* Sleep for about ns nanoseconds (idle back-off of the engine's threads; never on the hot path). */
#if defined(_MSC_VER)
static inline void ORP_sleep_ns(int64_t ns) { Sleep((DWORD)(ns >= 1000000 ? ns / 1000000 : 1)); }
#else
static inline void ORP_sleep_ns(int64_t ns) {
    struct timespec ts; ts.tv_sec = (time_t)(ns / 1000000000LL); ts.tv_nsec = (long)(ns % 1000000000LL);
    nanosleep(&ts, NULL);
}
#endif

#endif /* ORP_ATOMIC_H */
