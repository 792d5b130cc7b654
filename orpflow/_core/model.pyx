"""Native evaluator of ONNX models: a flat program of ops over one float32 arena, nogil.

orpflow.ml.native compiles a graph into this program (it checks ops, attributes and shapes);
this module checks again every offset, size and tree link before it keeps them, so no program,
however built, can make run() read or write outside its buffers or loop forever.

Memory: ``mem`` = [arena | constants]. The arena (writable, zeroed at build) holds the input
row, every intermediate tensor and the output; constants (weights, biases, thresholds) follow
it. ``imem`` holds int32 parameters (broadcast gather maps, tree structure). All of it is
allocated once when the model is built and freed with it.

Ops (one row of ``ops``: p[0] = kind, p[1] = sub, then per kind; offsets count floats of mem,
or int32s of imem for the *_int offsets):
  MATMUL   p2 has_bias, p3 M, p4 K, p5 N, p6 a, p7 w (K x N row-major), p8 bias (N), p9 out
  BINARY   sub ADD/SUB/MUL/DIV; p2 mode (0 same size, 1 b scalar, 2 a scalar, 3 gathered),
           p3 n, p4 a, p5 b, p6 out, p7 a index map (int), p8 b index map (int)
  UNARY    sub RELU/LEAKY_RELU/TANH/SIGMOID/CLIP/PROBIT/LOGISTIC; p2 n, p3 in, p4 out;
           f0 alpha or min, f1 max
  SOFTMAX  sub 0 exp-normalise, 1 SOFTMAX_ZERO (ai.onnx.ml: zeros stay zero);
           p2 outer, p3 n, p4 inner, p5 in, p6 out
  COPY     p2 outer, p3 len, p4 src, p5 src stride, p6 dst, p7 dst stride
  NORMALIZE sub MAX/L1/L2; p2 rows, p3 cols, p4 in, p5 out
  TREES    sub 0 regressor, 1 classifier; p2 x, p3 n_features, p4 out, p5 scratch (2 x
           n_targets), p6 int block, p7 float block, p8 n_trees, p9 n_nodes, p10 n_leaves,
           p11 n_weights, p12 n_targets, p13 aggregate, p14 post transform, p15 flags, p16 n_base,
           p17 depth (fixed-depth layout), p18 doubled-row scratch (TF_SPLIT_NAN)
           int block: roots[n_trees] feat[n_nodes] child[2 n_nodes] mode[n_nodes]
                      leaf_first[n_leaves + 1] leaf_target[n_weights] (+ leaf_of[n_nodes]
                      and packed[4 n_nodes] in the fixed-depth layout: per node feature |
                      track << 24, threshold bits, false link, true link, links and roots
                      as byte offsets of these records)
           float block: threshold[n_nodes] leaf_weight[n_weights] base[n_base]
           A child or root >= 0 is a branch node (always numbered after its parent: no cycle
           can be expressed); < 0 is the leaf ~child. child[2 i] is taken when the node's
           test is true, child[2 i + 1] when it is false. Fixed-depth layout (all BRANCH_LEQ): leaves are nodes too, linking to themselves, leaf_of[node]
           names their leaf, and every tree is walked exactly p17 steps.
  BINARY_SCORES  sub post transform; p2 in (1 score), p3 out (2 scores): LinearClassifier
           with one coefficient row and two class labels.
"""
from cpython.mem cimport PyMem_RawMalloc, PyMem_RawFree
from libc.stdint cimport int32_t, int64_t, uint8_t
from libc.string cimport memcpy, memset
from libc.math cimport expf, tanhf, logf, sqrtf, fabsf, isnan, INFINITY

import numpy as np

from orpflow._core.types cimport debug_count_alloc

cdef enum:
    OP_MATMUL = 1
    OP_BINARY = 2
    OP_UNARY = 3
    OP_SOFTMAX = 4
    OP_COPY = 5
    OP_NORMALIZE = 6
    OP_TREES = 7
    OP_BINARY_SCORES = 8

cdef enum:
    B_ADD = 0
    B_SUB = 1
    B_MUL = 2
    B_DIV = 3

cdef enum:
    U_RELU = 0
    U_LEAKY_RELU = 1
    U_TANH = 2
    U_SIGMOID = 3
    U_CLIP = 4
    U_PROBIT = 5
    U_LOGISTIC = 6

# ai.onnx.ml post transforms (onnxruntime's numbering)
cdef enum:
    P_NONE = 0
    P_LOGISTIC = 1
    P_SOFTMAX = 2
    P_SOFTMAX_ZERO = 3
    P_PROBIT = 4

cdef enum:
    AGG_AVERAGE = 0
    AGG_SUM = 1
    AGG_MIN = 2
    AGG_MAX = 3

# node modes (onnxruntime's numbering); the missing-value flag is bit 3
cdef enum:
    M_LEQ = 0
    M_LT = 1
    M_GTE = 2
    M_GT = 3
    M_EQ = 4
    M_NEQ = 5
    M_TRACK_TRUE = 8

cdef enum:
    TF_ALL_LEQ = 1            # every branch BRANCH_LEQ and no missing-value tracking
    TF_BINARY_CASE = 2        # classifier: 2 labels, weights for one class id only
    TF_ALL_POSITIVE = 4       # classifier: no negative leaf weight
    TF_FIXED_DEPTH = 8        # all LEQ (missing tracking allowed), leaves are nodes linking to
                              # themselves: p17 steps reach
                              # every leaf, so trees are walked 16 at a time without exit tests
    TF_TRACKS = 16            # fixed depth: some node's missing value tracks true
    TF_ONE_WEIGHT = 32        # fixed depth: every leaf has one weight, all for one target, kept
                              # in the leaf's threshold slot
    TF_SPLIT_NAN = 64         # fixed depth with tracking, read as plain LEQ over a doubled row
                              # (p18): x[2f] = x_f, x[2f + 1] = x_f with NaN as -inf, which every
                              # non-NaN threshold admits, so node feature 2f + track decides as
                              # onnxruntime does

cdef int64_t MAX_FLOATS = 64 * 1024 * 1024     # 256 MB of float32 (and the same cap for int32)

OPS_WIDTH = 20
KINDS = {"MATMUL": OP_MATMUL, "BINARY": OP_BINARY, "UNARY": OP_UNARY, "SOFTMAX": OP_SOFTMAX,
         "COPY": OP_COPY, "NORMALIZE": OP_NORMALIZE, "TREES": OP_TREES,
         "BINARY_SCORES": OP_BINARY_SCORES}
MAX_ELEMENTS = MAX_FLOATS


# ------------------------------------------------------------------------------------------
# the ai.onnx.ml scalar functions, as onnxruntime computes them (ml_common.h)


cdef inline float ml_logistic(float v) noexcept nogil:
    cdef float one = 1
    cdef float e = one / (one + expf(-fabsf(v)))
    return (one - e) if v < 0 else e


cdef inline float ml_erfinv(float x) noexcept nogil:
    # onnxruntime's approximation (Winitzki, a = 0.147, pi as float since 1.1x), kept so PROBIT matches it
    # float constants throughout: Cython would widen a bare literal to double, and the
    # cancellation below then differs visibly from onnxruntime's float arithmetic
    cdef float one = 1
    cdef float sgn = -one if x < 0 else one
    x = (one - x) * (one + x)
    cdef float lg = logf(x)
    cdef float v = <float>2.0 / (<float>3.141592653589793 * <float>0.147) + <float>0.5 * lg
    cdef float v2 = <float>1.0 / <float>0.147 * lg
    cdef float v3 = -v + sqrtf(v * v - v2)
    return sgn * sqrtf(v3)


cdef inline float ml_probit(float v) noexcept nogil:
    cdef float two = 2, one = 1
    return <float>1.41421356 * ml_erfinv(two * v - one)


cdef void ml_softmax(float *v, int64_t n) noexcept nogil:
    cdef float vmax = -3.4028234663852886e38
    cdef float s = 0
    cdef int64_t i
    for i in range(n):
        if v[i] > vmax:
            vmax = v[i]
    for i in range(n):
        v[i] = expf(v[i] - vmax)
        s += v[i]
    for i in range(n):
        v[i] /= s


cdef void ml_softmax_zero(float *v, int64_t n) noexcept nogil:
    # values within 1e-7 of zero are scaled by exp(-max) instead of exponentiated (onnxruntime)
    cdef float vmax = -3.4028234663852886e38
    cdef float s = 0
    cdef float eneg
    cdef int64_t i
    for i in range(n):
        if v[i] > vmax:
            vmax = v[i]
    eneg = expf(-vmax)
    for i in range(n):
        if v[i] > <float>0.0000001 or v[i] < <float>-0.0000001:
            v[i] = expf(v[i] - vmax)
            s += v[i]
        else:
            v[i] = v[i] * eneg
    for i in range(n):
        v[i] /= s


cdef void ml_post(float *v, int64_t n, int post) noexcept nogil:
    """write_scores for two or more scores."""
    cdef int64_t i
    if post == P_PROBIT:
        for i in range(n):
            v[i] = ml_probit(v[i])
    elif post == P_LOGISTIC:
        for i in range(n):
            v[i] = ml_logistic(v[i])
    elif post == P_SOFTMAX:
        ml_softmax(v, n)
    elif post == P_SOFTMAX_ZERO:
        ml_softmax_zero(v, n)


# ------------------------------------------------------------------------------------------
# dense kernels


cdef extern from "orp_gemv.h":
    # out[0:16] / out[0:4] = bias + a . w[:, block] (w row stride N), accumulators in registers
    void orp_gemv16(const float *a, const float *w, const float *bias, int has_bias,
                    int64_t K, int64_t N, float *out) noexcept nogil
    void orp_gemv4(const float *a, const float *w, const float *bias, int has_bias,
                   int64_t K, int64_t N, float *out) noexcept nogil


cdef void k_matmul(const ModelOp *op) noexcept nogil:
    cdef int64_t M = op.p[3], K = op.p[4], N = op.p[5]
    cdef const float *a = op.a
    cdef const float *w = op.b
    cdef const float *bias = op.c
    cdef bint has_bias = op.p[2] != 0
    cdef float *out = op.out
    cdef float *orow
    cdef const float *wrow
    cdef float av, acc
    cdef int64_t m, k, n, n0
    for m in range(M):
        orow = out + m * N
        if N == 1:
            acc = bias[0] if has_bias else <float>0
            for k in range(K):
                acc = acc + a[m * K + k] * w[k]
            orow[0] = acc
            continue
        n0 = 0
        while n0 + 16 <= N:
            orp_gemv16(a + m * K, w + n0, bias + n0, has_bias, K, N, orow + n0)
            n0 += 16
        while n0 + 4 <= N:
            orp_gemv4(a + m * K, w + n0, bias + n0, has_bias, K, N, orow + n0)
            n0 += 4
        if n0 == N:
            continue
        for n in range(n0, N):
            orow[n] = bias[n] if has_bias else <float>0
        for k in range(K):
            av = a[m * K + k]
            wrow = w + k * N
            for n in range(n0, N):
                orow[n] = orow[n] + av * wrow[n]


cdef inline float bin1(int sub, float x, float y) noexcept nogil:
    if sub == B_ADD:
        return x + y
    if sub == B_SUB:
        return x - y
    if sub == B_MUL:
        return x * y
    return x / y


cdef void k_binary(const ModelOp *op) noexcept nogil:
    cdef int64_t n = op.p[3], i
    cdef const float *a = op.a
    cdef const float *b = op.b
    cdef float *o = op.out
    cdef float s
    cdef int sub = op.sub
    cdef int64_t mode = op.p[2]
    if mode == 0:
        if sub == B_ADD:
            for i in range(n):
                o[i] = a[i] + b[i]
        elif sub == B_SUB:
            for i in range(n):
                o[i] = a[i] - b[i]
        elif sub == B_MUL:
            for i in range(n):
                o[i] = a[i] * b[i]
        else:
            for i in range(n):
                o[i] = a[i] / b[i]
    elif mode == 1:
        s = b[0]
        if sub == B_ADD:
            for i in range(n):
                o[i] = a[i] + s
        elif sub == B_SUB:
            for i in range(n):
                o[i] = a[i] - s
        elif sub == B_MUL:
            for i in range(n):
                o[i] = a[i] * s
        else:
            for i in range(n):
                o[i] = a[i] / s
    elif mode == 2:
        s = a[0]
        if sub == B_ADD:
            for i in range(n):
                o[i] = s + b[i]
        elif sub == B_SUB:
            for i in range(n):
                o[i] = s - b[i]
        elif sub == B_MUL:
            for i in range(n):
                o[i] = s * b[i]
        else:
            for i in range(n):
                o[i] = s / b[i]
    else:
        for i in range(n):
            o[i] = bin1(sub, a[op.ia[i]], b[op.ib[i]])


cdef void k_unary(const ModelOp *op) noexcept nogil:
    cdef int64_t n = op.p[2], i
    cdef const float *a = op.a
    cdef float *o = op.out
    cdef float v, lo = op.f0, hi = op.f1
    cdef int sub = op.sub
    if sub == U_RELU:
        for i in range(n):
            v = a[i]
            o[i] = <float>0 if v < 0 else v       # NaN passes, as in onnxruntime
    elif sub == U_LEAKY_RELU:
        for i in range(n):
            v = a[i]
            o[i] = v if v >= 0 else v * lo
    elif sub == U_TANH:
        for i in range(n):
            o[i] = tanhf(a[i])
    elif sub == U_SIGMOID:
        for i in range(n):
            o[i] = <float>1.0 / (<float>1.0 + expf(-a[i]))
    elif sub == U_CLIP:
        for i in range(n):
            v = a[i]
            v = lo if v < lo else v
            o[i] = hi if v > hi else v
    elif sub == U_PROBIT:
        for i in range(n):
            o[i] = ml_probit(a[i])
    else:
        for i in range(n):
            o[i] = ml_logistic(a[i])


cdef void k_softmax(const ModelOp *op) noexcept nogil:
    cdef int64_t outer = op.p[2], n = op.p[3], inner = op.p[4]
    cdef int64_t o, j, i
    for o in range(outer):
        if op.sub == 1:     # inner == 1 (checked at build)
            for i in range(n):
                op.out[o * n + i] = op.a[o * n + i]
            ml_softmax_zero(op.out + o * n, n)
            continue
        for j in range(inner):
            _softmax_into(op.a + o * n * inner + j, op.out + o * n * inner + j, n, inner)


cdef void _softmax_into(const float *a, float *y, int64_t n, int64_t inner) noexcept nogil:
    cdef int64_t i
    cdef float vmax = a[0], s = 0, e
    for i in range(1, n):
        if a[i * inner] > vmax:
            vmax = a[i * inner]
    for i in range(n):
        e = expf(a[i * inner] - vmax)
        y[i * inner] = e
        s = s + e
    for i in range(n):
        y[i * inner] = y[i * inner] / s


cdef void k_copy(const ModelOp *op) noexcept nogil:
    cdef int64_t o
    for o in range(op.p[2]):
        memcpy(op.out + o * op.p[7], op.a + o * op.p[5], <size_t>op.p[3] * sizeof(float))


cdef void k_normalize(const ModelOp *op) noexcept nogil:
    cdef int64_t rows = op.p[2], cols = op.p[3], r, i
    cdef const float *a
    cdef float *y
    cdef float d
    for r in range(rows):
        a = op.a + r * cols
        y = op.out + r * cols
        if op.sub == 0:
            d = a[0]
            for i in range(1, cols):
                if a[i] > d:
                    d = a[i]
        elif op.sub == 1:
            d = 0
            for i in range(cols):
                d = d + fabsf(a[i])
        else:
            d = 0
            for i in range(cols):
                d = d + a[i] * a[i]
            d = sqrtf(d)
        if d == 0:
            for i in range(cols):
                y[i] = a[i]
        else:
            for i in range(cols):
                y[i] = a[i] / d


cdef void k_binary_scores(const ModelOp *op) noexcept nogil:
    """LinearClassifier, one score and two labels: [1 - p, p] with p the score, or its
    logistic under LOGISTIC; the other transforms leave the score as it is (onnxruntime)."""
    cdef float s = op.a[0]
    if op.sub == P_LOGISTIC:
        s = ml_logistic(s)
    op.out[0] = 1 - s
    op.out[1] = s


# ------------------------------------------------------------------------------------------
# tree ensembles


cdef inline int32_t tree_leaf_leq(const int32_t *feat, const float *thr, const int32_t *child,
                                  const float *x, int32_t node) noexcept nogil:
    # all BRANCH_LEQ, no missing tracking: NaN fails x <= t and takes the false branch
    while node >= 0:
        node = child[2 * node + <int32_t>(not (x[feat[node]] <= thr[node]))]
    return ~node


cdef inline int32_t tree_leaf_any(const int32_t *feat, const float *thr, const int32_t *child,
                                  const int32_t *mode, const float *x, int32_t node) noexcept nogil:
    cdef float v, t
    cdef int32_t m
    cdef bint go
    while node >= 0:
        v = x[feat[node]]
        t = thr[node]
        m = mode[node]
        if (m & 7) == M_LEQ:
            go = v <= t
        elif (m & 7) == M_LT:
            go = v < t
        elif (m & 7) == M_GTE:
            go = v >= t
        elif (m & 7) == M_GT:
            go = v > t
        elif (m & 7) == M_EQ:
            go = v == t
        else:
            go = v != t
        go = go or ((m & M_TRACK_TRUE) != 0 and isnan(v))
        node = child[2 * node + <int32_t>(not go)]
    return ~node


cdef inline void add_leaf(int32_t leaf, const int32_t *leaf_first, const int32_t *leaf_target,
                          const float *leaf_w, float *score, float *has, int agg) noexcept nogil:
    cdef int64_t w
    cdef int32_t tg
    cdef float wv
    for w in range(leaf_first[leaf], leaf_first[leaf + 1]):
        tg = leaf_target[w]
        wv = leaf_w[w]
        if agg == AGG_MIN:
            if has[tg] == 0 or wv < score[tg]:
                score[tg] = wv
        elif agg == AGG_MAX:
            if has[tg] == 0 or wv > score[tg]:
                score[tg] = wv
        else:
            score[tg] = score[tg] + wv
        has[tg] = 1


cdef inline int32_t step(const char *packed, const float *x, int32_t n, bint track) noexcept nogil:
    # n is the byte offset of a 16-byte node record [feature | track << 24, threshold bits,
    # false link, true link] (links are byte offsets too: every access is one addressing mode).
    # BRANCH_LEQ: true if x <= t, or x is NaN and the node's missing value tracks true;
    # computed without a branch on the data
    cdef const int32_t *q = <const int32_t *>(packed + n)
    cdef float v
    cdef int32_t go
    if track:
        v = x[q[0] & 0xFFFFFF]
        go = <int32_t>(v <= (<const float *>q)[1]) | ((q[0] >> 24) & <int32_t>(v != v))
    else:
        v = x[q[0]]
        go = <int32_t>(v <= (<const float *>q)[1])
    return q[2 + go]


cdef inline void walk8(const char *packed, const float *x, const int32_t *roots, int64_t depth,
                       int32_t *nd, bint track) noexcept nogil:
    """Sixteen trees side by side: sixteen independent chains of loads the CPU overlaps (the
    walk is bound by load latency, not by instructions)."""
    cdef int32_t n0 = roots[0], n1 = roots[1], n2 = roots[2], n3 = roots[3]
    cdef int32_t n4 = roots[4], n5 = roots[5], n6 = roots[6], n7 = roots[7]
    cdef int32_t n8 = roots[8], n9 = roots[9], n10 = roots[10], n11 = roots[11]
    cdef int32_t n12 = roots[12], n13 = roots[13], n14 = roots[14], n15 = roots[15]
    cdef int64_t d
    for d in range(depth):
        n0 = step(packed, x, n0, track)
        n1 = step(packed, x, n1, track)
        n2 = step(packed, x, n2, track)
        n3 = step(packed, x, n3, track)
        n4 = step(packed, x, n4, track)
        n5 = step(packed, x, n5, track)
        n6 = step(packed, x, n6, track)
        n7 = step(packed, x, n7, track)
        n8 = step(packed, x, n8, track)
        n9 = step(packed, x, n9, track)
        n10 = step(packed, x, n10, track)
        n11 = step(packed, x, n11, track)
        n12 = step(packed, x, n12, track)
        n13 = step(packed, x, n13, track)
        n14 = step(packed, x, n14, track)
        n15 = step(packed, x, n15, track)
    nd[0] = n0; nd[1] = n1; nd[2] = n2; nd[3] = n3
    nd[4] = n4; nd[5] = n5; nd[6] = n6; nd[7] = n7
    nd[8] = n8; nd[9] = n9; nd[10] = n10; nd[11] = n11
    nd[12] = n12; nd[13] = n13; nd[14] = n14; nd[15] = n15


cdef void trees_fixed_depth(const ModelOp *op, const float *x, const int32_t *roots,
                            const char *packed, const int32_t *leaf_of,
                            const int32_t *leaf_first, const int32_t *leaf_target,
                            const float *leaf_w, float *score, float *has, int agg) noexcept nogil:
    """Every tree walked exactly depth steps, sixteen at a time; leaves are accumulated in tree
    order, as the one-at-a-time path (and onnxruntime) does. With one weight per leaf for one
    target (TF_ONE_WEIGHT), the weight sits in the leaf's threshold slot and the sum is kept
    in a register."""
    cdef int64_t n_trees = op.p[8], depth = op.p[17], t = 0, d, j
    cdef bint track = (op.p[15] & TF_TRACKS) != 0
    cdef float *x2
    cdef float v
    if op.p[15] & TF_SPLIT_NAN:
        x2 = op.out + op.p[18] - op.p[4]     # arena scratch of 2 n_features (checked at build)
        for j in range(op.p[3]):
            v = x[j]
            x2[2 * j] = v
            x2[2 * j + 1] = -INFINITY if v != v else v
        x = x2
        track = False
    cdef bint one = (op.p[15] & TF_ONE_WEIGHT) != 0 and (agg == AGG_SUM or agg == AGG_AVERAGE)
    cdef const float *pf = <const float *>packed
    cdef int32_t nd[16]
    cdef int32_t pad[16]
    cdef float acc = 0
    while t + 16 <= n_trees:
        if track:
            walk8(packed, x, roots + t, depth, nd, 1)
        else:
            walk8(packed, x, roots + t, depth, nd, 0)
        if one:
            for j in range(16):
                acc = acc + pf[(nd[j] >> 2) + 1]
        else:
            for j in range(16):
                add_leaf(leaf_of[nd[j] >> 4], leaf_first, leaf_target, leaf_w, score, has, agg)
        t += 16
    if t < n_trees:
        # the last 1-7 trees: still walked side by side (padded with copies of the last root,
        # whose results are dropped), not one long chain after another
        for j in range(16):
            pad[j] = roots[t + j] if t + j < n_trees else roots[n_trees - 1]
        if track:
            walk8(packed, x, pad, depth, nd, 1)
        else:
            walk8(packed, x, pad, depth, nd, 0)
        for j in range(n_trees - t):
            if one:
                acc = acc + pf[(nd[j] >> 2) + 1]
            else:
                add_leaf(leaf_of[nd[j] >> 4], leaf_first, leaf_target, leaf_w, score, has, agg)
    if one and n_trees > 0:
        score[leaf_target[0]] = acc
        has[leaf_target[0]] = 1


cdef void k_trees(const ModelOp *op) noexcept nogil:
    cdef const float *x = op.a
    cdef int64_t n_trees = op.p[8], n_nodes = op.p[9], n_leaves = op.p[10]
    cdef int64_t n_targets = op.p[12], n_base = op.p[16]
    cdef int agg = <int>op.p[13], post = <int>op.p[14], flags = <int>op.p[15]
    cdef const int32_t *roots = op.ia
    cdef const int32_t *feat = roots + n_trees
    cdef const int32_t *child = feat + n_nodes
    cdef const int32_t *mode = child + 2 * n_nodes
    cdef const int32_t *leaf_first = mode + n_nodes
    cdef const int32_t *leaf_target = leaf_first + n_leaves + 1
    cdef const float *thr = op.c
    cdef const float *leaf_w = thr + n_nodes
    cdef const float *base = leaf_w + op.p[11]
    cdef float *score = op.b
    cdef float *has = op.b + n_targets
    cdef float *out = op.out
    cdef int64_t t, w, k
    cdef int32_t leaf, tg
    cdef float wv
    for k in range(n_targets):
        score[k] = 0
        has[k] = 0
    if flags & TF_FIXED_DEPTH:
        trees_fixed_depth(op, x, roots, <const char *>(leaf_first + n_leaves + 1 + op.p[11] + n_nodes),
                          leaf_first + n_leaves + 1 + op.p[11], leaf_first, leaf_target, leaf_w, score, has, agg)
    else:
        for t in range(n_trees):
            if flags & TF_ALL_LEQ:
                leaf = tree_leaf_leq(feat, thr, child, x, roots[t])
            else:
                leaf = tree_leaf_any(feat, thr, child, mode, x, roots[t])
            add_leaf(leaf, leaf_first, leaf_target, leaf_w, score, has, agg)
    if op.sub == 0:
        for k in range(n_targets):
            if has[k] == 0 and n_targets > 1:
                # onnxruntime writes 0 for a target no leaf gave a weight (base ignored)
                out[k] = 0
                continue
            if agg == AGG_AVERAGE:
                out[k] = score[k] / <float>n_trees
            else:
                out[k] = score[k]
            if n_base == n_targets:
                out[k] = out[k] + base[k]
        if n_targets == 1:
            # one target: onnxruntime applies PROBIT only
            if post == P_PROBIT:
                out[0] = ml_probit(out[0])
        else:
            ml_post(out, n_targets, post)
    else:
        trees_classifier_finish(score, has, base, n_targets, n_base, post, flags, out)


cdef void trees_classifier_finish(float *score, float *has, const float *base, int64_t n,
                                  int64_t n_base, int post, int flags, float *out) noexcept nogil:
    """TreeEnsembleClassifier's FinalizeScores and write_scores as onnxruntime 1.2x-1.3x does
    them (checked case by case against it): a class no leaf gave a weight to reads 0."""
    cdef int64_t k
    cdef int add_second = -1
    cdef float s
    if n > 2:
        for k in range(n):
            if k < n_base:
                out[k] = score[k] + base[k]
            else:
                out[k] = score[k] if has[k] != 0 else <float>0
        ml_post(out, n, post)
        return
    if n_base == 2:
        if has[1] != 0:
            # onnxruntime: base_values[0] unused, class 1 = base 1 + class 0's sum, class 0 its
            # negation (still 0 if class 0 had no weight)
            score[1] = base[1] + score[0]
            score[0] = -score[1]
        else:
            score[0] = score[0] + base[0]
            score[1] = score[1] + base[1]
    elif n_base == 1:
        score[0] = score[0] + base[0]      # one base value (binary GradientBoosting exports)
    if n_base < 2 and has[1] == 0:
        add_second = 3 if n_base == 0 else -1
        s = score[0] if has[0] != 0 else <float>0
        if flags & TF_BINARY_CASE:
            if flags & TF_ALL_POSITIVE:
                add_second = 0 if s > <float>0.5 else 1
            else:
                add_second = 2 if s > 0 else 3
        # one score: the second class is made from it
        if add_second == -1:
            out[0] = s          # onnxruntime writes this one score only
            out[1] = 0
        elif post == P_LOGISTIC:
            out[0] = ml_logistic(-s)
            out[1] = ml_logistic(s)
        elif add_second <= 1:
            out[0] = 1 - s
            out[1] = s
        else:
            out[0] = -s
            out[1] = s
        return
    out[0] = score[0] if has[0] != 0 else <float>0
    out[1] = score[1] if has[1] != 0 else <float>0
    ml_post(out, 2, post)


# ------------------------------------------------------------------------------------------


cdef inline void run_op(const ModelOp *op) noexcept nogil:
    if op.kind == OP_MATMUL:
        k_matmul(op)
    elif op.kind == OP_BINARY:
        k_binary(op)
    elif op.kind == OP_UNARY:
        k_unary(op)
    elif op.kind == OP_SOFTMAX:
        k_softmax(op)
    elif op.kind == OP_COPY:
        k_copy(op)
    elif op.kind == OP_NORMALIZE:
        k_normalize(op)
    elif op.kind == OP_TREES:
        k_trees(op)
    else:
        k_binary_scores(op)


cdef class NativeModel:
    """A compiled model: ``run`` evaluates one row without the GIL and without allocating.

    Built by ``orpflow.ml.native.compile_native``; the constructor takes the lowered program
    (see the module documentation) and checks every range in it.
    """

    def __cinit__(self, int n_inputs, int n_outputs, int64_t input_offset, int64_t output_offset,
                  int64_t arena_size, consts, ints, ops, op_floats):
        cdef const float[::1] cv = np.ascontiguousarray(consts, dtype=np.float32).reshape(-1)
        cdef const int32_t[::1] iv = np.ascontiguousarray(ints, dtype=np.int32).reshape(-1)
        ops_arr = np.ascontiguousarray(ops, dtype=np.int64)
        flt_arr = np.ascontiguousarray(op_floats, dtype=np.float32)
        if ops_arr.ndim != 2 or ops_arr.shape[1] != OPS_WIDTH:
            raise ValueError(f"ops must have shape (n, {OPS_WIDTH})")
        if flt_arr.shape != (ops_arr.shape[0], 2):
            raise ValueError("op_floats must have shape (n_ops, 2)")
        if n_inputs < 1 or n_outputs < 1:
            raise ValueError("a model needs at least one input and one output value")
        if arena_size < 1 or arena_size > MAX_FLOATS or cv.shape[0] > MAX_FLOATS - arena_size:
            raise ValueError("model buffers exceed the size limit")
        if iv.shape[0] > MAX_FLOATS or ops_arr.shape[0] > 1000000:
            raise ValueError("model parameters exceed the size limit")
        self.arena_size = arena_size
        self.mem_size = arena_size + cv.shape[0]
        self.imem_size = iv.shape[0]
        self.n_ops = ops_arr.shape[0]
        if not (0 <= input_offset and input_offset + n_inputs <= arena_size):
            raise ValueError("input range outside the arena")
        if not (0 <= output_offset and output_offset + n_outputs <= self.mem_size):
            raise ValueError("output range outside the buffers")
        self.mem = <float *>PyMem_RawMalloc(<size_t>self.mem_size * sizeof(float))
        if self.mem == NULL:
            raise MemoryError()
        debug_count_alloc(1)
        self.imem = <int32_t *>PyMem_RawMalloc(<size_t>max(self.imem_size, 1) * sizeof(int32_t))
        if self.imem == NULL:
            raise MemoryError()
        debug_count_alloc(1)
        self.ops = <ModelOp *>PyMem_RawMalloc(<size_t>max(self.n_ops, 1) * sizeof(ModelOp))
        if self.ops == NULL:
            raise MemoryError()
        debug_count_alloc(1)
        memset(self.mem, 0, <size_t>arena_size * sizeof(float))
        if cv.shape[0]:
            memcpy(self.mem + arena_size, &cv[0], <size_t>cv.shape[0] * sizeof(float))
        if iv.shape[0]:
            memcpy(self.imem, &iv[0], <size_t>iv.shape[0] * sizeof(int32_t))
        memset(self.ops, 0, <size_t>max(self.n_ops, 1) * sizeof(ModelOp))
        self.n_inputs = n_inputs
        self.n_outputs = n_outputs
        self.x_in = self.mem + input_offset
        self.y_out = self.mem + output_offset
        cdef int64_t i, j
        for i in range(self.n_ops):
            for j in range(OPS_WIDTH):
                self.ops[i].p[j] = ops_arr[i, j]
            self.ops[i].kind = <int32_t>ops_arr[i, 0]
            self.ops[i].sub = <int32_t>ops_arr[i, 1]
            self.ops[i].f0 = flt_arr[i, 0]
            self.ops[i].f1 = flt_arr[i, 1]
            try:
                _resolve(self, &self.ops[i])
            except ValueError as e:
                raise ValueError(f"op {i}: {e}") from None

    def __dealloc__(self):
        if self.mem != NULL:
            PyMem_RawFree(self.mem)
            debug_count_alloc(-1)
            self.mem = NULL
        if self.imem != NULL:
            PyMem_RawFree(self.imem)
            debug_count_alloc(-1)
            self.imem = NULL
        if self.ops != NULL:
            PyMem_RawFree(self.ops)
            debug_count_alloc(-1)
            self.ops = NULL

    # -- evaluation -------------------------------------------------------------------------

    cdef int run(self, const float *x, float *out) noexcept nogil:
        cdef int64_t i
        memcpy(self.x_in, x, <size_t>self.n_inputs * sizeof(float))
        for i in range(self.n_ops):
            run_op(&self.ops[i])
        memcpy(out, self.y_out, <size_t>self.n_outputs * sizeof(float))
        return 0

    def evaluate(self, x):
        """Evaluate rows: ``x`` float32 of shape (n_inputs,) or (rows, n_inputs); returns
        float32 (rows, n_outputs). Each row goes through ``run`` (the GIL is released)."""
        arr = np.ascontiguousarray(x, dtype=np.float32)
        if arr.ndim == 1:
            arr = arr.reshape(1, -1)
        if arr.ndim != 2 or arr.shape[1] != self.n_inputs:
            raise ValueError(f"x must have shape ({self.n_inputs},) or (rows, {self.n_inputs}), "
                             f"got {np.shape(x)}")
        cdef int64_t rows = arr.shape[0]
        res = np.empty((rows, self.n_outputs), dtype=np.float32)
        if rows == 0:
            return res
        cdef const float[:, ::1] xv = arr
        cdef float[:, ::1] ov = res
        cdef int64_t r
        with nogil:
            for r in range(rows):
                self.run(&xv[r, 0], &ov[r, 0])
        return res

    def bench_ns(self, x, int64_t repeats):
        """Median-free timing helper: total ns for `repeats` runs of one row (GIL released)."""
        arr = np.ascontiguousarray(x, dtype=np.float32).reshape(-1)
        if arr.shape[0] != self.n_inputs or repeats < 1:
            raise ValueError("x must hold n_inputs values and repeats must be >= 1")
        out = np.empty(self.n_outputs, dtype=np.float32)
        cdef const float[::1] xv = arr
        cdef float[::1] ov = out
        cdef int64_t r, t0, t1
        with nogil:
            t0 = ORP_now_ns()
            for r in range(repeats):
                self.run(&xv[0], &ov[0])
            t1 = ORP_now_ns()
        return t1 - t0


# ------------------------------------------------------------------------------------------
# build-time checks -----------------------------------------------------------

cdef float *_rd(NativeModel self, int64_t off, int64_t n) except NULL:
    if n < 0 or off < 0 or n > self.mem_size or off > self.mem_size - n:
        raise ValueError(f"read range [{off}, {off}+{n}) outside the buffers")
    return self.mem + off

cdef float *_wr(NativeModel self, int64_t off, int64_t n) except NULL:
    if n < 0 or off < 0 or n > self.arena_size or off > self.arena_size - n:
        raise ValueError(f"write range [{off}, {off}+{n}) outside the arena")
    return self.mem + off

cdef const int32_t *_ird(NativeModel self, int64_t off, int64_t n) except NULL:
    if n < 0 or off < 0 or n > self.imem_size or off > self.imem_size - n:
        raise ValueError(f"int range [{off}, {off}+{n}) outside the parameters")
    return self.imem + off

cdef int _resolve(NativeModel self, ModelOp *op) except -1:
    cdef int64_t *p = op.p
    cdef int64_t i, n, M, K, N, outer, inner, span
    cdef const int32_t *m
    for i in range(2, OPS_WIDTH):
        if p[i] < 0 or p[i] > 4 * MAX_FLOATS:
            raise ValueError(f"parameter {i} = {p[i]} out of range")
    if op.kind == OP_MATMUL:
        M, K, N = p[3], p[4], p[5]
        if M < 1 or K < 1 or N < 1 or M * K > MAX_FLOATS or K * N > MAX_FLOATS or M * N > MAX_FLOATS:
            raise ValueError("bad matmul shape")
        op.a = _rd(self, p[6], M * K)
        op.b = _rd(self, p[7], K * N)
        op.c = _rd(self, p[8], N) if p[2] else self.mem
        op.out = _wr(self, p[9], M * N)
    elif op.kind == OP_BINARY:
        n = p[3]
        if op.sub < B_ADD or op.sub > B_DIV or p[2] > 3:
            raise ValueError("bad binary op")
        op.out = _wr(self, p[6], n)
        op.a = _rd(self, p[4], 1 if p[2] == 2 else n)
        op.b = _rd(self, p[5], 1 if p[2] == 1 else n)
        if p[2] == 3:
            op.ia = _ird(self, p[7], n)
            op.ib = _ird(self, p[8], n)
            for i in range(n):
                _rd(self, p[4] + op.ia[i], 1)
                _rd(self, p[5] + op.ib[i], 1)
                if op.ia[i] < 0 or op.ib[i] < 0:
                    raise ValueError("negative gather index")
    elif op.kind == OP_UNARY:
        if op.sub < U_RELU or op.sub > U_LOGISTIC:
            raise ValueError("bad unary op")
        op.a = _rd(self, p[3], p[2])
        op.out = _wr(self, p[4], p[2])
    elif op.kind == OP_SOFTMAX:
        outer, n, inner = p[2], p[3], p[4]
        if outer < 1 or n < 1 or inner < 1 or n * inner > MAX_FLOATS or outer * n * inner > MAX_FLOATS:
            raise ValueError("bad softmax shape")
        if op.sub == 1 and inner != 1:
            raise ValueError("SOFTMAX_ZERO over a strided axis")
        op.a = _rd(self, p[5], outer * n * inner)
        op.out = _wr(self, p[6], outer * n * inner)
    elif op.kind == OP_COPY:
        outer, n = p[2], p[3]
        if outer < 1 or n < 0 or p[5] > MAX_FLOATS or p[7] > MAX_FLOATS:
            raise ValueError("bad copy shape")
        op.a = _rd(self, p[4] + (outer - 1) * p[5], n)
        op.a = _rd(self, p[4], n)
        op.out = _wr(self, p[6] + (outer - 1) * p[7], n)
        op.out = _wr(self, p[6], n)
    elif op.kind == OP_NORMALIZE:
        if op.sub < 0 or op.sub > 2 or p[2] < 1 or p[3] < 1 or p[2] * p[3] > MAX_FLOATS:
            raise ValueError("bad normalizer")
        op.a = _rd(self, p[4], p[2] * p[3])
        op.out = _wr(self, p[5], p[2] * p[3])
    elif op.kind == OP_TREES:
        _resolve_trees(self, op)
    elif op.kind == OP_BINARY_SCORES:
        op.a = _rd(self, p[2], 1)
        op.out = _wr(self, p[3], 2)
    else:
        raise ValueError(f"unknown op kind {op.kind}")
    return 0

cdef int _resolve_trees(NativeModel self, ModelOp *op) except -1:
    cdef int64_t *p = op.p
    cdef int64_t n_feat = p[3], n_trees = p[8], n_nodes = p[9], n_leaves = p[10]
    cdef int64_t n_weights = p[11], n_targets = p[12], n_base = p[16], i, c
    if n_feat < 1 or n_targets < 1 or n_leaves < 1 or n_trees < 0 or n_nodes < 0 or n_weights < 0:
        raise ValueError("bad tree ensemble sizes")
    if op.sub == 1 and n_targets < 2:
        raise ValueError("a classifier needs two or more classes")
    if p[13] < AGG_AVERAGE or p[13] > AGG_MAX or p[14] < P_NONE or p[14] > P_PROBIT:
        raise ValueError("bad aggregate or post transform")
    if n_base < 0 or n_base > n_targets:
        raise ValueError("bad base_values length")
    if n_nodes > MAX_FLOATS or n_leaves > MAX_FLOATS or n_weights > MAX_FLOATS or n_trees > MAX_FLOATS:
        raise ValueError("tree ensemble too large")
    op.a = _rd(self, p[2], n_feat)
    op.out = _wr(self, p[4], n_targets)
    op.b = _wr(self, p[5], 2 * n_targets)
    cdef bint fixed = (p[15] & TF_FIXED_DEPTH) != 0
    if fixed and p[17] > 64:
        raise ValueError("bad fixed-depth tree layout")
    if fixed and n_feat >= (1 << 23):
        raise ValueError("too many features for the fixed-depth layout")
    cdef bint split = fixed and (p[15] & TF_SPLIT_NAN) != 0
    if split:
        _wr(self, p[18], 2 * n_feat)
        if p[15] & TF_TRACKS:
            raise ValueError("TF_SPLIT_NAN with TF_TRACKS")
    op.ia = _ird(self, p[6], n_trees + 4 * n_nodes + n_leaves + 1 + n_weights + (5 * n_nodes if fixed else 0))
    op.c = _rd(self, p[7], n_nodes + n_weights + n_base)
    cdef const int32_t *roots = op.ia
    cdef const int32_t *feat = roots + n_trees
    cdef const int32_t *child = feat + n_nodes
    cdef const int32_t *mode = child + 2 * n_nodes
    cdef const int32_t *leaf_first = mode + n_nodes
    cdef const int32_t *leaf_target = leaf_first + n_leaves + 1
    cdef const int32_t *leaf_of = leaf_target + n_weights
    cdef const int32_t *q
    if fixed:
        # links anywhere inside the node table (leaves link to themselves); the walk is a fixed
        # number of steps, so no link can make it loop forever
        if n_nodes >= (1 << 27):
            raise ValueError("too many nodes for the fixed-depth layout")
        for i in range(n_trees):        # byte offsets of node records
            if not (0 <= roots[i] < 16 * n_nodes and roots[i] % 16 == 0):
                raise ValueError("tree root out of range")
        for i in range(n_nodes):
            if not (0 <= feat[i] < (2 * n_feat if split else n_feat)) or (mode[i] != M_LEQ and mode[i] != M_LEQ | M_TRACK_TRUE):
                raise ValueError("bad fixed-depth node")
            if not (0 <= child[2 * i] < n_nodes and 0 <= child[2 * i + 1] < n_nodes):
                raise ValueError("tree link out of range")
            if not (0 <= leaf_of[i] < n_leaves):
                raise ValueError("leaf index out of range")
            q = leaf_of + n_nodes + 4 * i
            if not (0 <= (q[0] & 0xFFFFFF) < (2 * n_feat if split else n_feat) and (q[0] >> 24) in (0, 1)):
                raise ValueError("bad packed node")
            if not (0 <= q[2] < 16 * n_nodes and 0 <= q[3] < 16 * n_nodes and q[2] % 16 == 0 and q[3] % 16 == 0):
                raise ValueError("tree link out of range")
            if (q[0] >> 24) and not (p[15] & TF_TRACKS):
                raise ValueError("missing-value flag without TF_TRACKS")
        if p[15] & TF_ONE_WEIGHT and (n_weights < 1 or n_weights != n_leaves):
            raise ValueError("TF_ONE_WEIGHT needs one weight per leaf")
    for i in range(n_trees if not fixed else 0):
        if not (-n_leaves <= roots[i] < n_nodes):
            raise ValueError("tree root out of range")
    for i in range(n_nodes if not fixed else 0):
        if not (0 <= feat[i] < n_feat):
            raise ValueError("feature index out of range")
        if (mode[i] & 7) > M_NEQ or (mode[i] & ~15) != 0:
            raise ValueError("bad node mode")
        for c in range(2):
            # branch children come after their parent: every path ends at a leaf
            if not (-n_leaves <= child[2 * i + c] < n_nodes) or (0 <= child[2 * i + c] <= i):
                raise ValueError("tree link out of range or backwards")
    if leaf_first[0] != 0 or leaf_first[n_leaves] != n_weights:
        raise ValueError("bad leaf weight ranges")
    for i in range(n_leaves):
        if leaf_first[i + 1] < leaf_first[i]:
            raise ValueError("bad leaf weight ranges")
    for i in range(n_weights):
        if not (0 <= leaf_target[i] < n_targets):
            raise ValueError("leaf target out of range")
    return 0



cdef extern from "orp_atomic.h":
    int64_t ORP_now_ns() noexcept nogil
