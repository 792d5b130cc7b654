"""A nogil fast path in front of the Binance converter: the four message shapes parsed straight
from the frame's bytes, without orjson and without a Python object.

Contract (``fast_convert``): for a payload it returns either exactly what the orjson path
(``BinanceConverter``) returns for it, with the same records, or ``FAST_UNSURE``: "not a shape
I fully validated, ask the orjson path". It never accepts a payload the orjson path rejects or
converts differently, and never rejects one for another reason.

How: a first pass validates the WHOLE payload as strict JSON (RFC 8259) while noting where the
keys the converter reads are (top level and the combined stream's ``data`` object); a second
pass applies the converter's rules to those fields in the converter's own order, so a
rejection carries the reason the orjson path would give. Whatever orjson might read
differently from this parser is FAST_UNSURE: backslash escapes, non-ASCII bytes, floats,
exponents, ``-0``, integers of more than 18 digits, a key the converter reads appearing twice,
nesting deeper than 16, and anything that is not valid JSON (the orjson path then says
R_MALFORMED itself).

There is no separate pure-Python twin: the contract is "same result as the orjson path", so the
twin is the existing converter (``orpflow.reference.convert`` and the compiled
``BinanceConverter``), and the tests compare the two on every recorded line and on generated
and mutated messages.
"""
from libc.stdint cimport int64_t, uint32_t, INT64_MAX
from libc.string cimport memset, memcpy, memchr
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from cpython.mem cimport PyMem_Malloc, PyMem_Free

import orjson

from orpflow._core.types cimport (
    Event, F_DEPTH, F_TRADE, F_BBO, F_SNAPSHOT, F_BID, F_ASK, F_BUY, F_SELL, F_LAST,
    R_OK, R_MALFORMED, R_BAD_NUMBER, R_OFF_TICK, R_OFF_SIZE_INCREMENT, R_WRONG_SYMBOL,
    R_UNSUPPORTED, R_COUNT,
)
from orpflow._core.convert cimport EventBuffer, parse_units
from orpflow._core import convert as _convert

UNSURE = FAST_UNSURE

# ---- pass 1: strict JSON, noting the fields the converter reads ----------------------------

cdef enum:
    J_ABSENT = 0
    J_NULL
    J_FALSE
    J_TRUE
    J_INT          # non-negative integer of at most 18 digits (num)
    J_NEG          # negative non-zero integer of at most 18 digits
    J_STR          # ASCII string without escapes: its text is p[a:b]
    J_ARR          # p[a:b] runs from '[' to just past ']'
    J_OBJ

    MAX_DEPTH = 16

# the keys BinanceConverter reads (at the top level or in "data")
cdef enum:
    K_DATA = 0
    K_STREAM
    K_LAST_UPDATE_ID
    K_SYMBOL
    K_BIDS
    K_ASKS
    K_e
    K_s
    K_u
    K_U
    K_pu
    K_T
    K_E
    K_b
    K_a
    K_A
    K_B
    K_t
    K_m
    K_p
    K_q
    K_COUNT

cdef struct JVal:
    int type
    Py_ssize_t a
    Py_ssize_t b
    int64_t num

cdef struct JObj:
    JVal f[21]     # K_COUNT

# kinds of the "e" field
cdef enum:
    KIND_NONE = 0      # absent or null
    KIND_OTHER         # anything else (another string, a number, ...)
    KIND_DEPTH
    KIND_TRADE
    KIND_AGG
    KIND_BBO


cdef inline bint is_ws(char c) noexcept nogil:
    return c == c' ' or c == c'\n' or c == c'\r' or c == c'\t'


cdef inline Py_ssize_t skip_ws(const char *p, Py_ssize_t i, Py_ssize_t n) noexcept nogil:
    while i < n and is_ws(p[i]):
        i += 1
    return i


# bytes that end the plain part of a string: '"', '\\', controls, non-ASCII (one load per byte)
cdef unsigned char STR_STOP[256]
for _c in range(256):
    STR_STOP[_c] = _c == 0x22 or _c == 0x5C or _c < 0x20 or _c >= 0x80


cdef inline Py_ssize_t scan_string(const char *p, Py_ssize_t i, Py_ssize_t n) noexcept nogil:
    """p[i] is '"': the index just past the closing quote, or -1 (escape, control or non-ASCII
    byte, unterminated)."""
    i += 1
    while i < n and not STR_STOP[<unsigned char>p[i]]:
        i += 1
    if i < n and p[i] == c'"':
        return i + 1
    return -1


cdef inline Py_ssize_t scan_number(const char *p, Py_ssize_t i, Py_ssize_t n, JVal *v) noexcept nogil:
    """An integer ``-?(0|[1-9][0-9]*)`` of at most 18 digits; -1 for anything else (fractions and
    exponents included: the fast path reads no float)."""
    cdef bint neg = False
    cdef int64_t val = 0
    cdef int digits = 0
    if p[i] == c'-':
        neg = True
        i += 1
    if i >= n:
        return -1
    if p[i] == c'0':
        i += 1
        digits = 1
    elif c'1' <= p[i] <= c'9':
        while i < n and c'0' <= p[i] <= c'9':
            digits += 1
            if digits > 18:
                return -1
            val = val * 10 + (p[i] - c'0')
            i += 1
    else:
        return -1
    if i < n and (p[i] == c'.' or p[i] == c'e' or p[i] == c'E'):
        return -1
    if neg and val == 0:
        return -1                   # -0: orjson's reading of it is not worth guessing
    if v != NULL:
        v.type = J_NEG if neg else J_INT
        v.num = val
    return i


cdef inline Py_ssize_t scan_literal(const char *p, Py_ssize_t i, Py_ssize_t n,
                                    const char *lit, Py_ssize_t m) noexcept nogil:
    cdef Py_ssize_t k
    if n - i < m:
        return -1
    for k in range(m):
        if p[i + k] != lit[k]:
            return -1
    return i + m


cdef Py_ssize_t skip_value(const char *p, Py_ssize_t i, Py_ssize_t n, int depth, JVal *v) noexcept nogil:
    """Validate one JSON value at p[i] (no leading whitespace); the index just past it, or -1.
    Notes its type and span in v unless v is NULL."""
    cdef char c
    cdef Py_ssize_t j
    cdef int t
    if i >= n:
        return -1
    c = p[i]
    if c == c'"':
        j = scan_string(p, i, n)
        t = J_STR
        if v != NULL:
            v.a = i + 1
            v.b = j - 1
    elif c == c'{' or c == c'[':
        j = skip_container(p, i, n, depth + 1)
        t = J_OBJ if c == c'{' else J_ARR
        if v != NULL:
            v.a = i
            v.b = j
    elif c == c't':
        j = scan_literal(p, i, n, "true", 4)
        t = J_TRUE
    elif c == c'f':
        j = scan_literal(p, i, n, "false", 5)
        t = J_FALSE
    elif c == c'n':
        j = scan_literal(p, i, n, "null", 4)
        t = J_NULL
    elif c == c'-' or c'0' <= c <= c'9':
        return scan_number(p, i, n, v)
    else:
        return -1
    if j >= 0 and v != NULL:
        v.type = t
    return j


cdef Py_ssize_t skip_container(const char *p, Py_ssize_t i, Py_ssize_t n, int depth) noexcept nogil:
    """An object or array at p[i]; the index just past its closing bracket, or -1."""
    cdef bint obj = p[i] == c'{'
    cdef char close = c'}' if obj else c']'
    if depth > MAX_DEPTH:
        return -1
    i = skip_ws(p, i + 1, n)
    if i < n and p[i] == close:
        return i + 1
    while True:
        if obj:
            if i >= n or p[i] != c'"':
                return -1
            i = scan_string(p, i, n)
            if i < 0:
                return -1
            i = skip_ws(p, i, n)
            if i >= n or p[i] != c':':
                return -1
            i = skip_ws(p, i + 1, n)
        i = skip_value(p, i, n, depth, NULL)
        if i < 0:
            return -1
        i = skip_ws(p, i, n)
        if i >= n:
            return -1
        if p[i] == c',':
            i = skip_ws(p, i + 1, n)
        elif p[i] == close:
            return i + 1
        else:
            return -1


cdef inline int key_index(const char *k, Py_ssize_t m) noexcept nogil:
    """Which of the converter's keys k[0:m] is, or -1."""
    cdef char c
    if m == 1:
        c = k[0]
        if c == c'e': return K_e
        if c == c's': return K_s
        if c == c'u': return K_u
        if c == c'U': return K_U
        if c == c'T': return K_T
        if c == c'E': return K_E
        if c == c'b': return K_b
        if c == c'a': return K_a
        if c == c'A': return K_A
        if c == c'B': return K_B
        if c == c't': return K_t
        if c == c'm': return K_m
        if c == c'p': return K_p
        if c == c'q': return K_q
        return -1
    if m == 2:
        return K_pu if k[0] == c'p' and k[1] == c'u' else -1
    if m == 4:
        if k[0] == c'd' and k[1] == c'a' and k[2] == c't' and k[3] == c'a': return K_DATA
        if k[0] == c'b' and k[1] == c'i' and k[2] == c'd' and k[3] == c's': return K_BIDS
        if k[0] == c'a' and k[1] == c's' and k[2] == c'k' and k[3] == c's': return K_ASKS
        return -1
    if m == 6:
        if same(k, "stream", 6): return K_STREAM
        if same(k, "symbol", 6): return K_SYMBOL
        return -1
    if m == 12 and same(k, "lastUpdateId", 12):
        return K_LAST_UPDATE_ID
    return -1


cdef inline bint same(const char *a, const char *b, Py_ssize_t m) noexcept nogil:
    cdef Py_ssize_t k
    for k in range(m):
        if a[k] != b[k]:
            return False
    return True


cdef Py_ssize_t parse_object(const char *p, Py_ssize_t i, Py_ssize_t n, int depth, JObj *o,
                             JObj *data) noexcept nogil:
    """The object at p[i], noting the converter's keys in o (and, when data is not NULL, the
    members of an object-valued "data" in data); the index past it, or -1 (invalid JSON, or a
    noted key given twice: which of the two orjson keeps is not this parser's business)."""
    cdef Py_ssize_t j
    cdef int k
    i = skip_ws(p, i + 1, n)
    if i < n and p[i] == c'}':
        return i + 1
    while True:
        if i >= n or p[i] != c'"':
            return -1
        j = scan_string(p, i, n)
        if j < 0:
            return -1
        k = key_index(p + i + 1, j - i - 2)
        i = skip_ws(p, j, n)
        if i >= n or p[i] != c':':
            return -1
        i = skip_ws(p, i + 1, n)
        if k >= 0:
            if o.f[k].type != J_ABSENT:
                return -1
            if k == K_DATA and data != NULL and i < n and p[i] == c'{':
                if depth + 1 > MAX_DEPTH:
                    return -1
                j = parse_object(p, i, n, depth + 1, data, NULL)
                o.f[k].type = J_OBJ
                o.f[k].a = i
                o.f[k].b = j
            else:
                j = skip_value(p, i, n, depth, &o.f[k])
        else:
            j = skip_value(p, i, n, depth, NULL)
        if j < 0:
            return -1
        i = skip_ws(p, j, n)
        if i >= n:
            return -1
        if p[i] == c',':
            i = skip_ws(p, i + 1, n)
        elif p[i] == c'}':
            return i + 1
        else:
            return -1


# ---- pass 2: the converter's rules on the noted fields --------------------------------------

cdef struct Ctx:
    const char *p
    const FastInstrument *fi
    Event proto
    Event *out
    Py_ssize_t cap
    Py_ssize_t k           # records written


cdef inline bint given(const JVal *v) noexcept nogil:
    """dict.get(key) is not None."""
    return v.type != J_ABSENT and v.type != J_NULL


cdef int64_t POW10[19]
POW10[0] = 1
for _c in range(1, 19):
    POW10[_c] = POW10[_c - 1] * 10


cdef inline int quick_units(const char *s, Py_ssize_t n, int64_t mant, int exp, int off_grid,
                            int64_t *out) noexcept nogil:
    """parse_units for the common text ``digits[.digits]`` of at most 18 characters (no sign,
    nothing to overflow while reading); anything else, and any doubt, goes to parse_units, so
    the result is always parse_units's (same reasons in the same order)."""
    cdef Py_ssize_t i = 0
    cdef int64_t acc = 0
    cdef int frac = 0
    cdef bint beyond = False
    cdef char ch
    if n < 1 or n > 18 or exp > 18:
        return parse_units(s, n, mant, exp, off_grid, out)
    while i < n and c'0' <= s[i] <= c'9':
        acc = acc * 10 + (s[i] - c'0')
        i += 1
    if i == 0:
        return parse_units(s, n, mant, exp, off_grid, out)
    if i < n:
        if s[i] != c'.' or i + 1 == n:
            return parse_units(s, n, mant, exp, off_grid, out)
        i += 1
        while i < n:
            ch = s[i]
            if not (c'0' <= ch <= c'9'):
                return parse_units(s, n, mant, exp, off_grid, out)
            if frac < exp:
                acc = acc * 10 + (ch - c'0')
                frac += 1
            elif ch != c'0':
                beyond = True
            i += 1
    if beyond:
        return off_grid
    if frac < exp:
        if acc > INT64_MAX // POW10[exp - frac]:
            return parse_units(s, n, mant, exp, off_grid, out)
        acc *= POW10[exp - frac]
    if mant != 1:
        if acc % mant != 0:
            return off_grid
        acc //= mant
    out[0] = acc
    return R_OK


cdef inline int units(Ctx *c, const JVal *v, int64_t mant, int exp, int off_grid,
                      int64_t *out) noexcept nogil:
    if v.type != J_STR:
        return R_BAD_NUMBER           # numbers are refused (they may be floats)
    return quick_units(c.p + v.a, v.b - v.a, mant, exp, off_grid, out)


cdef inline int price(Ctx *c, const JVal *v, int64_t *out) noexcept nogil:
    return units(c, v, c.fi.tick_mant, c.fi.tick_exp, R_OFF_TICK, out)


cdef inline int size(Ctx *c, const JVal *v, int64_t *out) noexcept nogil:
    return units(c, v, c.fi.size_mant, c.fi.size_exp, R_OFF_SIZE_INCREMENT, out)


cdef inline int seq(const JVal *v, bint required, int64_t *out) noexcept nogil:
    if not given(v) and not required:
        out[0] = 0
        return R_OK
    if v.type != J_INT:
        return R_MALFORMED
    out[0] = v.num
    return R_OK


cdef inline int exch_ts(const JObj *d, int64_t *out) noexcept nogil:
    """T (matching engine) or else E (event), ms -> ns; 0 if neither."""
    cdef const JVal *t = &d.f[K_T]
    if not given(t):
        t = &d.f[K_E]
    if not given(t):
        out[0] = 0
        return R_OK
    if t.type != J_INT or t.num >= 9_000_000_000_000LL:
        return R_MALFORMED
    out[0] = t.num * 1_000_000
    return R_OK


cdef inline Event *add(Ctx *c) noexcept nogil:
    if c.k >= c.cap:
        return NULL
    c.k += 1
    return &c.out[c.k - 1]


cdef inline Py_ssize_t valid_value(const char *p, Py_ssize_t i, Py_ssize_t end, JVal *v) noexcept nogil:
    """skip_value over the already validated payload: a string ends at the next quote (pass 1
    refused escapes)."""
    cdef const char *q
    if p[i] == c'"':
        q = <const char *>memchr(p + i + 1, c'"', end - i - 1)
        if q == NULL:
            return -1
        v.type = J_STR
        v.a = i + 1
        v.b = q - p
        return v.b + 1
    return skip_value(p, i, end, 0, v)


cdef int levels(Ctx *c, const JVal *v, uint32_t flags) noexcept nogil:
    """One record per [price, size] pair of an already validated array, checked in the orjson
    path's order: each level's shape, then its price, then its size."""
    cdef const char *p = c.p
    cdef Py_ssize_t i, end
    cdef JVal v0, v1
    cdef int rc
    cdef int64_t px, qty
    cdef Event *e
    if v.type != J_ARR:
        return R_MALFORMED
    end = v.b
    i = skip_ws(p, v.a + 1, end)
    if p[i] == c']':
        return R_OK
    while True:
        if p[i] != c'[':
            return R_MALFORMED            # a level that is not a list
        i = skip_ws(p, i + 1, end)
        if p[i] == c']':
            return R_MALFORMED            # []
        i = valid_value(p, i, end, &v0)
        if i < 0:
            return FAST_UNSURE            # cannot happen: validated in pass 1
        i = skip_ws(p, i, end)
        if p[i] == c']':
            return R_MALFORMED            # [price]
        i = valid_value(p, skip_ws(p, i + 1, end), end, &v1)
        if i < 0:
            return FAST_UNSURE
        i = skip_ws(p, i, end)
        while p[i] == c',':               # extra elements are ignored
            i = skip_value(p, skip_ws(p, i + 1, end), end, 0, NULL)
            if i < 0:
                return FAST_UNSURE
            i = skip_ws(p, i, end)
        i = skip_ws(p, i + 1, end)        # past the level's ']'
        rc = price(c, &v0, &px)
        if rc != R_OK:
            return rc
        if px == 0:
            return R_BAD_NUMBER           # a zero price is not a level
        rc = size(c, &v1, &qty)
        if rc != R_OK:
            return rc
        e = add(c)
        if e == NULL:
            return FAST_UNSURE
        e[0] = c.proto
        e.flags = flags
        e.price = px
        e.qty = qty
        if p[i] == c',':
            i = skip_ws(p, i + 1, end)
        else:
            return R_OK                   # the array's ']'


cdef inline int finish(Ctx *c, uint32_t kind_flag) noexcept nogil:
    """The last record gets F_LAST; a message without levels still makes one record."""
    cdef Event *e
    if c.k == 0:
        e = add(c)
        if e == NULL:
            return FAST_UNSURE
        e[0] = c.proto
        e.flags = kind_flag
    c.out[c.k - 1].flags |= F_LAST
    return R_OK


cdef inline bint sym_eq(const char *p, const JVal *v, const FastInstrument *fi,
                        bint upper) noexcept nogil:
    """The ASCII string v equals the instrument's symbol (after ASCII upper-casing if upper)."""
    cdef Py_ssize_t k, m = v.b - v.a
    cdef char ch
    if m != fi.symbol_len:
        return False
    for k in range(m):
        ch = p[v.a + k]
        if upper and c'a' <= ch <= c'z':
            ch = ch - 32
        if ch != fi.symbol[k]:
            return False
    return True


cdef int snapshot(Ctx *c, const JObj *d) noexcept nogil:
    cdef int rc
    cdef const JVal *sym = &d.f[K_SYMBOL]
    if given(sym) and (sym.type != J_STR or not sym_eq(c.p, sym, c.fi, True)):
        return R_WRONG_SYMBOL
    rc = seq(&d.f[K_LAST_UPDATE_ID], True, &c.proto.seq)
    if rc == R_OK: rc = exch_ts(d, &c.proto.ts_exch)
    if rc == R_OK: rc = levels(c, &d.f[K_BIDS], F_SNAPSHOT | F_BID)
    if rc == R_OK: rc = levels(c, &d.f[K_ASKS], F_SNAPSHOT | F_ASK)
    if rc != R_OK:
        return rc
    return finish(c, F_SNAPSHOT)


cdef int depth(Ctx *c, const JObj *d) noexcept nogil:
    cdef int rc
    rc = seq(&d.f[K_u], True, &c.proto.seq)
    if rc == R_OK: rc = seq(&d.f[K_U], True, &c.proto.seq_first)
    if rc == R_OK: rc = seq(&d.f[K_pu], False, &c.proto.seq_prev)
    if rc == R_OK: rc = exch_ts(d, &c.proto.ts_exch)
    if rc == R_OK: rc = levels(c, &d.f[K_b], F_DEPTH | F_BID)
    if rc == R_OK: rc = levels(c, &d.f[K_a], F_DEPTH | F_ASK)
    if rc != R_OK:
        return rc
    return finish(c, F_DEPTH)


cdef int trade(Ctx *c, const JObj *d, int id_key) noexcept nogil:
    cdef int rc
    cdef Event *e
    cdef int mt = d.f[K_m].type
    if mt != J_TRUE and mt != J_FALSE:
        return R_MALFORMED
    rc = seq(&d.f[id_key], True, &c.proto.seq)
    if rc == R_OK: rc = exch_ts(d, &c.proto.ts_exch)
    if rc == R_OK: rc = price(c, &d.f[K_p], &c.proto.price)
    if rc == R_OK and c.proto.price == 0: rc = R_BAD_NUMBER
    if rc == R_OK: rc = size(c, &d.f[K_q], &c.proto.qty)
    if rc != R_OK:
        return rc
    e = add(c)
    if e == NULL:
        return FAST_UNSURE
    e[0] = c.proto
    # m = buyer is maker, so the aggressor sold
    e.flags = F_TRADE | F_LAST | (F_SELL if mt == J_TRUE else F_BUY)
    return R_OK


cdef int bbo(Ctx *c, const JObj *d) noexcept nogil:
    cdef int rc
    cdef int64_t bp = 0, bq = 0, ap = 0, aq = 0
    cdef Event *e
    rc = seq(&d.f[K_u], True, &c.proto.seq)
    if rc == R_OK: rc = exch_ts(d, &c.proto.ts_exch)
    if rc == R_OK: rc = price(c, &d.f[K_b], &bp)
    if rc == R_OK: rc = size(c, &d.f[K_B], &bq)
    if rc == R_OK: rc = price(c, &d.f[K_a], &ap)
    if rc == R_OK: rc = size(c, &d.f[K_A], &aq)
    if rc == R_OK and (bp == 0 or ap == 0):
        rc = R_BAD_NUMBER
    if rc != R_OK:
        return rc
    if c.cap - c.k < 2:
        return FAST_UNSURE
    e = add(c)
    e[0] = c.proto
    e.flags = F_BBO | F_BID
    e.price = bp
    e.qty = bq
    e = add(c)
    e[0] = c.proto
    e.flags = F_BBO | F_ASK | F_LAST
    e.price = ap
    e.qty = aq
    return R_OK


cdef inline int kind_of(const char *p, const JVal *v) noexcept nogil:
    cdef Py_ssize_t m = v.b - v.a
    if not given(v):
        return KIND_NONE
    if v.type != J_STR:
        return KIND_OTHER
    if m == 11 and same(p + v.a, "depthUpdate", 11): return KIND_DEPTH
    if m == 5 and same(p + v.a, "trade", 5): return KIND_TRADE
    if m == 8 and same(p + v.a, "aggTrade", 8): return KIND_AGG
    if m == 10 and same(p + v.a, "bookTicker", 10): return KIND_BBO
    return KIND_OTHER


cdef int event(Ctx *c, const JObj *d) noexcept nogil:
    """BinanceConverter._event: the kind, then the symbol, then the kind's fields."""
    cdef int kind = kind_of(c.p, &d.f[K_e])
    cdef const JVal *sym = &d.f[K_s]
    cdef bint is_bbo
    if sym.type != J_STR:
        if kind >= KIND_DEPTH or d.f[K_u].type != J_ABSENT:
            return R_MALFORMED
        return R_UNSUPPORTED
    is_bbo = kind == KIND_BBO or (kind == KIND_NONE and d.f[K_u].type != J_ABSENT
                                  and d.f[K_b].type != J_ABSENT and d.f[K_A].type != J_ABSENT)
    if not is_bbo and kind != KIND_DEPTH and kind != KIND_TRADE and kind != KIND_AGG:
        return R_UNSUPPORTED
    if not sym_eq(c.p, sym, c.fi, False) and not sym_eq(c.p, sym, c.fi, True):
        return R_WRONG_SYMBOL
    if kind == KIND_DEPTH:
        return depth(c, d)
    if is_bbo:
        return bbo(c, d)
    return trade(c, d, K_t if kind == KIND_TRADE else K_a)


cdef inline Py_ssize_t at_sign(const char *p, const JVal *v) noexcept nogil:
    """Index of the first '@' in the string v, or v.b if none."""
    cdef Py_ssize_t k = v.a
    while k < v.b and p[k] != c'@':
        k += 1
    return k


cdef const FastInstrument *route(const char *p, const JVal *v, const FastInstrument *ins,
                                 Py_ssize_t n_ins, bint upper) noexcept nogil:
    cdef Py_ssize_t k
    for k in range(n_ins):
        if ins[k].symbol_len and sym_eq(p, v, &ins[k], upper):
            return &ins[k]
    return NULL


cdef Py_ssize_t fast_bound(Py_ssize_t n) noexcept nogil:
    """At most how many records a payload of n bytes converts to: a level takes at least 9
    bytes (["1","1"]), and a message at most 2 records beyond its levels."""
    return n // 9 + 2


cdef int fast_convert(const char *p, Py_ssize_t n, const FastInstrument *ins, Py_ssize_t n_ins,
                      int opts, int64_t ts_local, Event *out, Py_ssize_t cap,
                      Py_ssize_t *n_out) noexcept nogil:
    """One Binance message p[0:n] -> records out[0:n_out[0]] (cap of them at most; fast_bound(n)
    always suffices) for the instrument ins[0] or, with FAST_ROUTE, the one of ins[0:n_ins] its
    stream name (or data "s") names. Returns the orjson path's reason code (records only with
    R_OK) or FAST_UNSURE."""
    cdef JObj top, dat
    cdef Ctx c
    cdef Py_ssize_t i, at = 0
    cdef const JVal *stream
    cdef const JVal *dv
    cdef const JObj *d
    cdef JVal part
    cdef bint snap_like
    cdef int rc
    n_out[0] = 0
    if n_ins < 1:
        return FAST_UNSURE
    memset(&top, 0, sizeof(JObj))
    memset(&dat, 0, sizeof(JObj))
    i = skip_ws(p, 0, n)
    if i >= n or p[i] != c'{':
        return FAST_UNSURE
    i = parse_object(p, i, n, 1, &top, &dat)
    if i < 0 or skip_ws(p, i, n) != n:
        return FAST_UNSURE
    dv = &top.f[K_DATA]
    d = &dat if dv.type == J_OBJ else &top
    # -- which instrument: the stream name's symbol part, else the message's "s" --
    stream = &top.f[K_STREAM]
    part.type = J_STR
    if stream.type == J_STR:
        at = at_sign(p, stream)
        part.a = stream.a
        part.b = at
    elif stream.type != J_ABSENT:
        return FAST_UNSURE
    if opts & FAST_ROUTE:
        if stream.type == J_STR:
            c.fi = route(p, &part, ins, n_ins, True)
        elif d.f[K_s].type == J_STR:
            c.fi = route(p, &d.f[K_s], ins, n_ins, False)
        else:
            return FAST_UNSURE
        if c.fi == NULL:
            return FAST_UNSURE            # an unknown symbol: the orjson path names the reason
    else:
        c.fi = &ins[0]
        if not c.fi.symbol_len:
            return FAST_UNSURE
        # the single-symbol converter does not read "stream"; one naming another symbol than
        # the message is a case the fast path leaves alone
        if stream.type == J_STR and not sym_eq(p, &part, c.fi, True):
            return FAST_UNSURE
    # a stream name and an "s" naming different symbols: left to the orjson path
    if stream.type == J_STR and d.f[K_s].type == J_STR and not sym_eq(p, &d.f[K_s], c.fi, True):
        return FAST_UNSURE
    c.p = p
    c.out = out
    c.cap = cap
    c.k = 0
    memset(&c.proto, 0, sizeof(Event))
    c.proto.ts_local = ts_local
    c.proto.instrument = c.fi.instrument
    # -- BinanceConverter._message --
    if not given(dv):
        if top.f[K_LAST_UPDATE_ID].type != J_ABSENT:
            rc = snapshot(&c, &top)
        else:
            rc = event(&c, &top)
    elif dv.type != J_OBJ:
        rc = R_MALFORMED
    else:
        snap_like = dat.f[K_LAST_UPDATE_ID].type != J_ABSENT
        if stream.type == J_STR and stream.b - at == 14 and same(p + at, "@depthSnapshot", 14):
            snap_like = True
        if snap_like and (opts & FAST_ENVELOPE):
            # {"stream":"<sym>@depthSnapshot","data":<REST body>}: the canonical form only
            if not (stream.type == J_STR and stream.b - at == 14 and dat.f[K_LAST_UPDATE_ID].type != J_ABSENT
                    and dat.f[K_e].type == J_ABSENT and dat.f[K_s].type == J_ABSENT
                    and dat.f[K_u].type == J_ABSENT and dat.f[K_SYMBOL].type == J_ABSENT
                    and dat.f[K_DATA].type == J_ABSENT):
                return FAST_UNSURE
            rc = snapshot(&c, &dat)
        else:
            rc = event(&c, &dat)
    if rc == R_OK:
        n_out[0] = c.k
    return rc


# ---- Python level: tests, benchmarks, integration ------------------------------------------

cdef int fill_instrument(FastInstrument *fi, object instrument) except -1:
    """Symbol (upper-case), tick and size units and id of an Instrument, as BinanceConverter
    takes them. A symbol the fast path cannot compare bytewise (non-ASCII, over 32 bytes) is
    marked unusable: every message for it goes to the orjson path."""
    memset(fi, 0, sizeof(FastInstrument))
    fi.tick_mant, fi.tick_exp = instrument.tick
    fi.size_mant, fi.size_exp = instrument.size_unit
    fi.instrument = instrument.id
    sym = instrument.symbol.upper()
    raw = sym.encode("utf-8")
    if sym.isascii() and 0 < len(raw) <= 32:
        memcpy(fi.symbol, <const char *>raw, len(raw))
        fi.symbol_len = <int>len(raw)
    return 0


cdef class FastBinanceConverter:
    """Binance JSON -> Event records for one or several instruments: the nogil fast path,
    falling back to the orjson path (BinanceConverter) for whatever it is unsure of. All
    records land in one EventBuffer ``out``; ``fast`` and ``fallback`` count the paths taken.

    Several instruments: messages are routed by the stream name's symbol part (before the first
    '@', upper-cased) or, without a stream name, by the message's "s".

    enveloped_snapshots: whether {"stream":"<sym>@depthSnapshot","data":<snapshot>} is a
    snapshot; by default, whether the orjson path converts it as one (probed once here).
    """

    def __cinit__(self, instruments, enveloped_snapshots=None):
        if not isinstance(instruments, (list, tuple)):
            instruments = [instruments]
        if not instruments:
            raise ValueError("at least one instrument")
        self.out = EventBuffer()
        self.n_ins = len(instruments)
        self.ins = <FastInstrument *>PyMem_Malloc(self.n_ins * sizeof(FastInstrument))
        if self.ins == NULL:
            raise MemoryError()
        self.by_symbol = {}
        for k, inst in enumerate(instruments):
            fill_instrument(&self.ins[k], inst)
            sym = inst.symbol.upper()
            if sym in self.by_symbol:
                raise ValueError(f"instrument {sym} given twice")
            self.by_symbol[sym] = _convert.BinanceConverter(inst)
        self.opts = FAST_ROUTE if self.n_ins > 1 else 0
        self.stream_fallback = None
        stream_cls = getattr(_convert, "BinanceStreamConverter", None)
        if self.n_ins > 1 and stream_cls is not None:
            self.stream_fallback = stream_cls(list(instruments))
        if enveloped_snapshots is None:
            enveloped_snapshots = _converts_enveloped_snapshots(instruments[0])
        if enveloped_snapshots:
            self.opts |= FAST_ENVELOPE
        memset(self.rejects, 0, sizeof(self.rejects))
        self.lines = self.messages = self.fast = self.fallback = 0

    def __dealloc__(self):
        PyMem_Free(self.ins)

    def rejected(self):
        """{reason code: count} of rejected messages."""
        return {r: self.rejects[r] for r in range(R_COUNT) if self.rejects[r]}

    def feed_json(self, payload, int64_t ts_local):
        """One JSON message received at ts_local ns; returns the reason code (R_OK = 0)."""
        cdef Py_ssize_t n, k = 0
        cdef int rc = FAST_UNSURE
        self.lines += 1
        if type(payload) is bytes:
            n = PyBytes_GET_SIZE(payload)
            if self.out.cap - self.out.n < fast_bound(n):
                self.out._grow(2 * self.out.cap + fast_bound(n))
            rc = fast_convert(PyBytes_AS_STRING(payload), n, self.ins, self.n_ins, self.opts,
                              ts_local, self.out.p + self.out.n, self.out.cap - self.out.n, &k)
        if rc != FAST_UNSURE:
            self.fast += 1
            self.out.n += k
        else:
            self.fallback += 1
            rc = self._fallback(payload, ts_local)
        if rc == R_OK:
            self.messages += 1
        else:
            self.rejects[rc] += 1
        return rc

    cdef int _fallback(self, payload, int64_t ts_local) except -2:
        cdef EventBuffer src
        cdef int rc
        if self.stream_fallback is not None:
            conv = self.stream_fallback
        elif self.n_ins == 1:
            conv = next(iter(self.by_symbol.values()))
        else:
            sym = _route_symbol(payload)
            if sym is None:
                return R_MALFORMED
            conv = self.by_symbol.get(sym)
            if conv is None:
                return R_WRONG_SYMBOL
        rc = conv.feed_json(payload, ts_local)
        src = conv.out
        if src.n:
            if self.out.cap - self.out.n < src.n:
                self.out._grow(2 * self.out.cap + src.n)
            memcpy(self.out.p + self.out.n, src.p, src.n * sizeof(Event))
            self.out.n += src.n
            src.n = 0
        return rc

    def try_fast(self, payload: bytes, int64_t ts_local):
        """(reason or UNSURE, records) of the fast path alone; counters and ``out`` untouched."""
        cdef Py_ssize_t n = len(payload), k = 0
        cdef EventBuffer buf = EventBuffer(fast_bound(n))
        cdef const char *p = payload
        cdef int rc
        with nogil:
            rc = fast_convert(p, n, self.ins, self.n_ins, self.opts, ts_local, buf.p, buf.cap, &k)
        buf.n = k
        return rc, buf.take()


def _route_symbol(payload):
    """The symbol a multi-instrument fallback routes a message by ("" if it names none), or
    None if it is not a JSON object (R_MALFORMED)."""
    try:
        obj = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return None
    if type(obj) is not dict:
        return None
    stream = obj.get("stream")
    if type(stream) is str:
        return stream.split("@", 1)[0].upper()
    data = obj.get("data")
    d = data if type(data) is dict else obj
    sym = d.get("s")
    return sym if type(sym) is str else ""


def _converts_enveloped_snapshots(instrument):
    """Whether the orjson path converts {"stream":"<sym>@depthSnapshot","data":<snapshot>} (the
    recording format's multi-symbol snapshot); the fast path then converts it too."""
    conv = _convert.BinanceConverter(instrument)
    body = b'{"stream":"%s@depthSnapshot","data":{"lastUpdateId":1,"bids":[],"asks":[]}}' % (
        instrument.symbol.lower().encode())
    return conv.feed_json(body, 0) == R_OK


def _quick_units(bytes text, int64_t mant, int exp, int off_grid):
    """(reason, units) of the fast path's decimal reader, to test it against parse_units."""
    cdef int64_t v = 0
    cdef int rc = quick_units(text, len(text), mant, exp, off_grid, &v)
    return rc, (v if rc == R_OK else 0)


def _bench_fast(FastBinanceConverter conv, list payloads, int reps):
    """ns per message of fast_convert alone (no Python call, GIL released), each payload
    converted reps times into a scratch buffer; for benchmarks/bench_json.py."""
    import time
    cdef Py_ssize_t k, n, got = 0, bound = 16
    cdef const char *p
    cdef int r
    for payload in payloads:
        bound = max(bound, fast_bound(len(<bytes>payload)))
    cdef EventBuffer buf = EventBuffer(bound)
    cdef list ptrs = [(<bytes>p) for p in payloads]
    t0 = time.perf_counter_ns()
    for payload in ptrs:
        n = len(<bytes>payload)
        p = <bytes>payload
        with nogil:
            for r in range(reps):
                fast_convert(p, n, conv.ins, conv.n_ins, conv.opts, r,
                             buf.p, buf.cap, &k)
                got += k
    return (time.perf_counter_ns() - t0) / (reps * len(payloads))
