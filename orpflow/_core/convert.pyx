"""Exact decimal strings -> int64 units, and Binance messages -> Event records.

Decimal conversion never goes through a float: the string's digits become an integer mantissa
and a count of decimals, and the division by the unit (tick or size increment) is exact
integer arithmetic; anything off the grid is rejected with a reason, not rounded.

JSON is decoded by orjson (validating, ~0.5 M Binance lines/s here); walking the decoded
objects and converting the numbers happens in this module.
"""
from cpython.unicode cimport PyUnicode_AsUTF8AndSize
from libc.stdint cimport int64_t, uint32_t, INT64_MAX
from libc.string cimport memset

import numpy as np
import orjson

from orpflow._core.types cimport (
    Event, F_DEPTH, F_TRADE, F_BBO, F_SNAPSHOT, F_CLEAR, F_BID, F_ASK, F_BUY, F_SELL, F_LAST,
    R_OK, R_MALFORMED, R_BAD_NUMBER, R_NEGATIVE, R_OFF_TICK, R_OFF_SIZE_INCREMENT, R_OVERFLOW,
    R_WRONG_SYMBOL, R_UNSUPPORTED, R_COUNT,
)

cdef object _loads = orjson.loads
cdef object _JSONDecodeError = orjson.JSONDecodeError

cdef inline bint mul_add(int64_t *acc, int64_t mul, int64_t add) noexcept nogil:
    """acc = acc * mul + add for non-negative values; False (acc unchanged) on int64 overflow."""
    if acc[0] > (INT64_MAX - add) // mul:
        return False
    acc[0] = acc[0] * mul + add
    return True


cdef int parse_units(const char *s, Py_ssize_t n, int64_t unit_mant, int unit_exp,
                     int off_grid, int64_t *out) noexcept nogil:
    """Plain decimal text ``[-]digits[.digits]`` -> whole multiples of the unit
    ``unit_mant * 10**-unit_exp`` (unit_exp <= 18). Checks, in this order (the reference twin
    follows the same order): syntax (R_BAD_NUMBER), sign (R_NEGATIVE for a non-zero value),
    a non-zero digit beyond unit_exp decimals (off_grid), the value in 10**-unit_exp steps
    fitting int64 (R_OVERFLOW), being a multiple of unit_mant (off_grid)."""
    cdef Py_ssize_t i = 0
    cdef int64_t scaled = 0       # the value in steps of 10**-unit_exp
    cdef int frac = 0, d
    cdef bint neg = False, seen_digit = False, seen_dot = False, digit_after_dot = False
    cdef bint nonzero = False, beyond_grid = False, overflow = False
    cdef char c
    if n <= 0:
        return R_BAD_NUMBER
    if s[0] == c'-':
        neg = True
        i = 1
    while i < n:
        c = s[i]
        if c'0' <= c <= c'9':
            d = c - c'0'
            seen_digit = True
            if d:
                nonzero = True
            if seen_dot:
                digit_after_dot = True
                frac += 1
                if frac > unit_exp:
                    if d:
                        beyond_grid = True
                    i += 1
                    continue
            if not overflow and not mul_add(&scaled, 10, d):
                overflow = True
        elif c == c'.' and not seen_dot and seen_digit:
            seen_dot = True
        else:
            return R_BAD_NUMBER
        i += 1
    if not seen_digit or (seen_dot and not digit_after_dot):
        return R_BAD_NUMBER
    if neg and nonzero:
        return R_NEGATIVE
    if beyond_grid:
        return off_grid
    while frac < unit_exp and not overflow:       # pad the missing decimals
        if not mul_add(&scaled, 10, 0):
            overflow = True
        frac += 1
    if overflow:
        return R_OVERFLOW
    if scaled % unit_mant != 0:
        return off_grid
    out[0] = scaled // unit_mant
    return R_OK


def units_reason(str text, int64_t unit_mant, int unit_exp, int off_grid=R_OFF_TICK):
    """(reason, units) for a decimal string; units is 0 unless reason == 0 (R_OK)."""
    cdef Py_ssize_t n
    cdef const char *p = PyUnicode_AsUTF8AndSize(text, &n)
    cdef int64_t v = 0
    if unit_mant < 1 or not 0 <= unit_exp <= 18:
        raise ValueError(f"unit must be mant >= 1, 0 <= exp <= 18; got {unit_mant}e-{unit_exp}")
    cdef int rc = parse_units(p, n, unit_mant, unit_exp, off_grid, &v)
    return rc, (v if rc == R_OK else 0)


def decimal_to_units(str text, int64_t unit_mant, int unit_exp, what="value"):
    """Exact decimal string -> int units. Raises ValueError naming the reason."""
    from orpflow.events import Reason
    rc, v = units_reason(text, unit_mant, unit_exp, R_OFF_TICK)
    if rc != R_OK:
        raise ValueError(f"{what} {text!r}: {Reason(rc).name} (unit {unit_mant}e-{unit_exp})")
    return v


# ------------------------------------------------------------------------------------------


cdef class EventBuffer:
    """Growable event array for converters: records are appended through a C pointer and a
    rejected message is rolled back by resetting the count to where it started."""

    def __cinit__(self, int64_t capacity=4096):
        self.n = 0
        self._grow(capacity if capacity > 16 else 16)

    cdef int _grow(self, int64_t cap) except -1:
        from orpflow.events import EVENT_DTYPE
        new = np.zeros(cap, dtype=EVENT_DTYPE)
        if self.n:
            new[:self.n] = self.arr[:self.n]
        self.arr = new
        cdef unsigned char[::1] raw = new.view(np.uint8)
        self.p = <Event *>&raw[0]
        self.cap = cap
        return 0

    cdef Event *add(self) except NULL:
        if self.n == self.cap:
            self._grow(self.cap * 2)
        cdef Event *e = &self.p[self.n]
        memset(e, 0, sizeof(Event))
        self.n += 1
        return e

    def __len__(self):
        return self.n

    def take(self):
        """The records so far as a new, exactly sized array; the buffer is emptied."""
        out = self.arr[:self.n].copy()
        self.n = 0
        return out


# The stream name orpflow gives a REST depth snapshot in a recording (after "<symbol>").
SNAPSHOT_STREAM = "@depthSnapshot"


cdef inline bint _is_int(object o):
    return type(o) is int


cdef class BinanceConverter:
    """Binance JSON (combined stream, raw stream, REST depth snapshot) -> Event records.

    One converter per instrument. Messages for another symbol, of an unsupported kind, or
    with any malformed field are rejected whole (counted by reason, never partly emitted).
    """
    cdef readonly EventBuffer out
    cdef int64_t tick_mant, size_mant
    cdef int tick_exp, size_exp
    cdef uint32_t instrument
    cdef str symbol
    cdef int64_t rejects[R_COUNT]
    cdef public int64_t lines
    cdef public int64_t messages
    cdef readonly list examples     # first few rejections: (line number, reason code)

    def __cinit__(self, instrument, EventBuffer out=None):
        self.out = out if out is not None else EventBuffer()
        self.tick_mant, self.tick_exp = instrument.tick
        self.size_mant, self.size_exp = instrument.size_unit
        self.instrument = instrument.id
        self.symbol = instrument.symbol.upper()
        memset(self.rejects, 0, sizeof(self.rejects))
        self.lines = 0
        self.messages = 0
        self.examples = []

    def rejected(self):
        """{reason code: count} of rejected messages."""
        return {r: self.rejects[r] for r in range(R_COUNT) if self.rejects[r]}

    cdef void _reject(self, int reason):
        self.rejects[reason] += 1
        if len(self.examples) < 20:
            self.examples.append((self.lines, reason))

    # ---- entry points ----

    def feed_lines(self, lines):
        """Recorded lines ``b"<local_recv_ns> <json>"`` (how Binance recordings are stored: one message a line, prefixed by its receive time)."""
        cdef bytes line
        cdef Py_ssize_t sp
        cdef int rc
        for item in lines:
            self.lines += 1
            if type(item) is not bytes:
                self._reject(R_MALFORMED)
                continue
            line = <bytes>item
            sp = line.find(b" ")
            if sp <= 0:
                if line.strip():
                    self._reject(R_MALFORMED)
                continue
            try:
                ts_local = int(line[:sp])
            except ValueError:
                self._reject(R_MALFORMED)
                continue
            if not (0 <= ts_local <= INT64_MAX):
                self._reject(R_MALFORMED)
                continue
            rc = self._json(line[sp + 1:], ts_local)
            if rc != R_OK:
                self._reject(rc)
            else:
                self.messages += 1

    def feed_json(self, payload, int64_t ts_local):
        """One JSON message (bytes/str) received at ts_local ns; returns the reason code."""
        self.lines += 1
        cdef int rc = self._json(payload, ts_local)
        if rc != R_OK:
            self._reject(rc)
        else:
            self.messages += 1
        return rc

    cdef int _json(self, payload, int64_t ts_local):
        try:
            obj = _loads(payload)
        except _JSONDecodeError:
            return R_MALFORMED
        if type(obj) is not dict:
            return R_MALFORMED
        return self._message(<dict>obj, ts_local)

    cdef int _message(self, dict obj, int64_t ts_local):
        cdef int64_t start = self.out.n
        cdef int rc = R_OK
        data = obj.get("data")
        if data is None:
            if "lastUpdateId" in obj:
                rc = self._snapshot(obj, ts_local)
            else:
                data = obj            # raw (non-combined) stream message
        elif type(data) is dict and "lastUpdateId" in <dict>data:
            stream = obj.get("stream")
            if type(stream) is str and (<str>stream).endswith(SNAPSHOT_STREAM):
                # a REST snapshot as orpflow records it: {"stream":"<sym>@depthSnapshot","data":...}
                sym = (<str>stream)[:len(<str>stream) - len(SNAPSHOT_STREAM)]
                if "@" in sym or not sym:
                    rc = R_MALFORMED
                elif sym.upper() != self.symbol:
                    rc = R_WRONG_SYMBOL
                else:
                    rc = self._snapshot(<dict>data, ts_local)
                data = None
        if data is not None:
            if type(data) is not dict:
                return R_MALFORMED
            rc = self._event(<dict>data, ts_local)
        if rc != R_OK:
            self.out.n = start        # roll back a half-converted message
        return rc

    cdef int _event(self, dict d, int64_t ts_local):
        kind = d.get("e")
        sym = d.get("s")
        if type(sym) is not str:
            return R_MALFORMED if kind in ("depthUpdate", "trade", "aggTrade", "bookTicker") or "u" in d else R_UNSUPPORTED
        is_bbo = kind == "bookTicker" or (kind is None and "u" in d and "b" in d and "A" in d)
        if not is_bbo and kind != "depthUpdate" and kind != "trade" and kind != "aggTrade":
            return R_UNSUPPORTED
        # venues send the symbol upper-case: compare as is, fold case only when that fails
        if sym != self.symbol and (<str>sym).upper() != self.symbol:
            return R_WRONG_SYMBOL
        if kind == "depthUpdate":
            return self._depth(d, ts_local)
        if is_bbo:
            return self._bbo(d, ts_local)
        return self._trade(d, ts_local, "t" if kind == "trade" else "a")

    # ---- field helpers ----

    cdef inline int _units(self, object o, int64_t mant, int exp, int off_grid, int64_t *out):
        """A JSON string field as exact units; numbers are refused (they may be floats)."""
        cdef Py_ssize_t n
        cdef const char *p
        if type(o) is not str:
            return R_BAD_NUMBER
        p = PyUnicode_AsUTF8AndSize(o, &n)
        return parse_units(p, n, mant, exp, off_grid, out)

    cdef inline int _price(self, object o, int64_t *out):
        return self._units(o, self.tick_mant, self.tick_exp, R_OFF_TICK, out)

    cdef inline int _size(self, object o, int64_t *out):
        return self._units(o, self.size_mant, self.size_exp, R_OFF_SIZE_INCREMENT, out)

    cdef int _exch_ts(self, dict d, int64_t *out):
        """Exchange time in ns from T (matching engine) or else E (event); 0 if neither."""
        t = d.get("T")
        if t is None:
            t = d.get("E")
        if t is None:
            out[0] = 0
            return R_OK
        if not _is_int(t) or not (0 <= t < 9_000_000_000_000):
            return R_MALFORMED
        out[0] = <int64_t>t * 1_000_000
        return R_OK

    cdef int _levels(self, object levels, uint32_t flags, Event *proto):
        """Append one record per [price, size] pair; flags already carry kind and side."""
        cdef int rc
        cdef Event *e
        cdef int64_t px, qty
        if type(levels) is not list:
            return R_MALFORMED
        for lvl in <list>levels:
            if type(lvl) is not list or len(<list>lvl) < 2:
                return R_MALFORMED
            rc = self._price((<list>lvl)[0], &px)
            if rc != R_OK:
                return rc
            if px == 0:
                return R_BAD_NUMBER     # a zero price is not a level
            rc = self._size((<list>lvl)[1], &qty)
            if rc != R_OK:
                return rc
            e = self.out.add()
            e[0] = proto[0]
            e.flags = flags
            e.price = px
            e.qty = qty
        return R_OK

    cdef int _finish_message(self, int64_t start, uint32_t kind_flag, Event *proto):
        """Mark the last record LAST; a message with no levels still gets one record, so its
        sequence ids reach the book (an empty Binance diff advances `u`)."""
        cdef Event *e
        if self.out.n == start:
            e = self.out.add()
            e[0] = proto[0]
            e.flags = kind_flag
        self.out.p[self.out.n - 1].flags |= F_LAST
        return R_OK

    cdef int _seq(self, dict d, str key, bint required, int64_t *out):
        v = d.get(key)
        if v is None and not required:
            out[0] = 0
            return R_OK
        if not _is_int(v) or not (0 <= v <= INT64_MAX):
            return R_MALFORMED
        out[0] = v
        return R_OK

    # ---- message kinds ----

    cdef inline void _proto(self, Event *proto, int64_t ts_local):
        """The fields every record of a message shares; kinds fill in the rest."""
        memset(proto, 0, sizeof(Event))
        proto.ts_local = ts_local
        proto.instrument = self.instrument

    cdef int _depth(self, dict d, int64_t ts_local):
        cdef Event proto
        cdef int rc
        cdef int64_t start = self.out.n
        self._proto(&proto, ts_local)
        rc = self._seq(d, "u", True, &proto.seq)
        if rc == R_OK: rc = self._seq(d, "U", True, &proto.seq_first)
        if rc == R_OK: rc = self._seq(d, "pu", False, &proto.seq_prev)
        if rc == R_OK: rc = self._exch_ts(d, &proto.ts_exch)
        if rc == R_OK: rc = self._levels(d.get("b"), F_DEPTH | F_BID, &proto)
        if rc == R_OK: rc = self._levels(d.get("a"), F_DEPTH | F_ASK, &proto)
        if rc != R_OK:
            return rc
        return self._finish_message(start, F_DEPTH, &proto)

    cdef int _snapshot(self, dict d, int64_t ts_local):
        cdef Event proto
        cdef int rc
        cdef int64_t start = self.out.n
        self._proto(&proto, ts_local)
        sym = d.get("symbol")
        if sym is not None and (type(sym) is not str or (<str>sym).upper() != self.symbol):
            return R_WRONG_SYMBOL
        rc = self._seq(d, "lastUpdateId", True, &proto.seq)
        if rc == R_OK: rc = self._exch_ts(d, &proto.ts_exch)
        if rc == R_OK: rc = self._levels(d.get("bids"), F_SNAPSHOT | F_BID, &proto)
        if rc == R_OK: rc = self._levels(d.get("asks"), F_SNAPSHOT | F_ASK, &proto)
        if rc != R_OK:
            return rc
        return self._finish_message(start, F_SNAPSHOT, &proto)

    cdef int _trade(self, dict d, int64_t ts_local, str id_key):
        cdef Event *e
        cdef Event proto
        cdef int rc
        self._proto(&proto, ts_local)
        m = d.get("m")
        if type(m) is not bool:
            return R_MALFORMED
        rc = self._seq(d, id_key, True, &proto.seq)
        if rc == R_OK: rc = self._exch_ts(d, &proto.ts_exch)
        if rc == R_OK: rc = self._price(d.get("p"), &proto.price)
        if rc == R_OK and proto.price == 0: rc = R_BAD_NUMBER
        if rc == R_OK: rc = self._size(d.get("q"), &proto.qty)
        if rc != R_OK:
            return rc
        e = self.out.add()
        e[0] = proto
        # m = buyer is maker, so the aggressor sold
        e.flags = F_TRADE | F_LAST | (F_SELL if m else F_BUY)
        return R_OK

    cdef int _bbo(self, dict d, int64_t ts_local):
        cdef Event proto
        cdef Event *e
        cdef int rc
        cdef int64_t bp, bq, ap, aq
        self._proto(&proto, ts_local)
        rc = self._seq(d, "u", True, &proto.seq)
        if rc == R_OK: rc = self._exch_ts(d, &proto.ts_exch)
        if rc == R_OK: rc = self._price(d.get("b"), &bp)
        if rc == R_OK: rc = self._size(d.get("B"), &bq)
        if rc == R_OK: rc = self._price(d.get("a"), &ap)
        if rc == R_OK: rc = self._size(d.get("A"), &aq)
        if rc == R_OK and (bp == 0 or ap == 0):
            rc = R_BAD_NUMBER           # a zero price is no quote (negative ones fail above)
        if rc != R_OK:
            return rc
        e = self.out.add()
        e[0] = proto
        e.flags = F_BBO | F_BID
        e.price = bp
        e.qty = bq
        e = self.out.add()
        e[0] = proto
        e.flags = F_BBO | F_ASK | F_LAST
        e.price = ap
        e.qty = aq
        return R_OK


cdef class BinanceStreamConverter:
    """Several instruments on one Binance combined stream -> Event records in ONE buffer.

    Each message is decoded once and routed by its stream name's symbol part (before the
    first '@', upper-cased) or, without a stream name, by its "s"; a symbol the converter does
    not trade is rejected (WRONG_SYMBOL), as is a raw REST snapshot when there are several
    instruments (it names none: record snapshots enveloped, ``<sym>@depthSnapshot``).
    """
    cdef readonly EventBuffer out
    cdef dict by_symbol
    cdef BinanceConverter only
    cdef int64_t rejects[R_COUNT]
    cdef public int64_t lines
    cdef public int64_t messages

    def __cinit__(self, instruments):
        insts = list(instruments)
        if not insts:
            raise ValueError("at least one instrument")
        self.out = EventBuffer()
        self.by_symbol = {}
        for inst in insts:
            sym = inst.symbol.upper()
            if sym in self.by_symbol:
                raise ValueError(f"instrument {sym} given twice")
            self.by_symbol[sym] = BinanceConverter(inst, self.out)
        self.only = self.by_symbol[insts[0].symbol.upper()] if len(insts) == 1 else None
        memset(self.rejects, 0, sizeof(self.rejects))
        self.lines = 0
        self.messages = 0

    def rejected(self):
        """{reason code: count} of rejected messages."""
        return {r: self.rejects[r] for r in range(R_COUNT) if self.rejects[r]}

    def feed_json(self, payload, int64_t ts_local):
        """One JSON message received at ts_local ns; returns the reason code (0: converted)."""
        cdef int rc
        self.lines += 1
        try:
            obj = _loads(payload)
        except _JSONDecodeError:
            rc = R_MALFORMED
        else:
            rc = self._route(obj, ts_local) if type(obj) is dict else R_MALFORMED
        if rc != R_OK:
            self.rejects[rc] += 1
        else:
            self.messages += 1
        return rc

    cdef int _route(self, dict obj, int64_t ts_local):
        cdef BinanceConverter conv = self.only
        if conv is None:
            stream = obj.get("stream")
            if type(stream) is str:
                key = (<str>stream).partition("@")[0].upper()
            elif "data" in obj:
                return R_MALFORMED
            elif "lastUpdateId" in obj:
                return R_UNSUPPORTED          # a raw REST snapshot: whose?
            else:
                sym = obj.get("s")
                if type(sym) is not str:
                    return R_MALFORMED
                key = (<str>sym).upper()
            conv = self.by_symbol.get(key)
            if conv is None:
                return R_WRONG_SYMBOL
        return conv._message(obj, ts_local)
