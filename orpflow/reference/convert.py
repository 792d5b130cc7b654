"""Pure-Python twin of ``orpflow._core.convert``: exact decimals and Binance messages -> records.

The stdlib ``json`` module and Python integers only; the differential tests demand that this
and the compiled converter produce byte-identical event arrays from the same lines.
"""
from __future__ import annotations

import json
import math
import re
from typing import Dict, List, Sequence, Tuple, Union

import numpy as np

from orpflow._core.types import FLAGS, REASONS
from orpflow.events import EVENT_DTYPE

R = REASONS
INT64_MAX = 2 ** 63 - 1
SNAPSHOT_STREAM = "@depthSnapshot"      # a recorded REST snapshot: {"stream": "<sym>@depthSnapshot", ...}
_DECIMAL = re.compile(r"(-?)([0-9]+)(?:\.([0-9]*))?\Z")


def units_reason(text: str, unit_mant: int, unit_exp: int, off_grid: int = R["OFF_TICK"]) -> Tuple[int, int]:
    """(reason, units): ``text`` as a whole number of ``unit_mant * 10**-unit_exp``.

    Checks in this order: syntax, sign, digits beyond the grid, int64 range, multiple of unit.
    """
    if unit_mant < 1 or not 0 <= unit_exp <= 18:
        raise ValueError(f"unit must be mant >= 1, 0 <= exp <= 18; got {unit_mant}e-{unit_exp}")
    m = _DECIMAL.match(text) if text.isascii() else None
    if m is None:
        return R["BAD_NUMBER"], 0
    sign, whole, frac = m.group(1), m.group(2), m.group(3)
    if frac == "":
        return R["BAD_NUMBER"], 0
    frac = frac or ""
    if sign and (whole + frac).strip("0"):
        return R["NEGATIVE"], 0
    if frac[unit_exp:].strip("0"):
        return off_grid, 0
    scaled = int(whole + frac[:unit_exp].ljust(unit_exp, "0"))
    if scaled > INT64_MAX:
        return R["OVERFLOW"], 0
    if scaled % unit_mant:
        return off_grid, 0
    return R["OK"], scaled // unit_mant


class _Reject(Exception):
    def __init__(self, reason: str):
        self.reason = R[reason]


class BinanceConverter:
    """Same contract as the compiled BinanceConverter (see its docstring)."""

    def __init__(self, instrument):
        self.tick = instrument.tick
        self.size_unit = instrument.size_unit
        self.instrument = instrument.id
        self.symbol = instrument.symbol.upper()
        self.records: List[tuple] = []
        self.rejects: Dict[int, int] = {}
        self.lines = 0
        self.messages = 0

    def rejected(self) -> Dict[int, int]:
        return dict(sorted(self.rejects.items()))

    def take(self) -> np.ndarray:
        out = np.array(self.records, dtype=EVENT_DTYPE) if self.records else np.zeros(0, EVENT_DTYPE)
        self.records = []
        return out

    def feed_lines(self, lines: Sequence[bytes]) -> None:
        for line in lines:
            self.lines += 1
            head, sep, payload = line.partition(b" ")
            if not sep or not head:
                if line.strip():
                    self._count(R["MALFORMED"])
                continue
            try:
                ts_local = int(head)
            except ValueError:
                self._count(R["MALFORMED"])
                continue
            if not 0 <= ts_local <= INT64_MAX:
                self._count(R["MALFORMED"])
                continue
            self._one(payload, ts_local)

    def feed_json(self, payload: Union[bytes, str], ts_local: int) -> int:
        self.lines += 1
        return self._one(payload, ts_local)

    # ------------------------------------------------------------------
    def _count(self, reason: int) -> None:
        self.rejects[reason] = self.rejects.get(reason, 0) + 1

    def _one(self, payload, ts_local: int) -> int:
        start = len(self.records)
        try:
            try:
                obj = json.loads(payload, parse_constant=_no_constants, parse_float=_finite_float, parse_int=_json_int)
            except (ValueError, UnicodeDecodeError):
                raise _Reject("MALFORMED")
            if type(obj) is not dict:
                raise _Reject("MALFORMED")
            self._message(obj, ts_local)
        except _Reject as exc:
            del self.records[start:]
            self._count(exc.reason)
            return exc.reason
        self.messages += 1
        return 0

    def _message(self, obj: dict, ts_local: int) -> None:
        data = obj.get("data")
        if data is None:
            if "lastUpdateId" in obj:
                return self._snapshot(obj, ts_local)
            data = obj
        elif type(data) is dict and "lastUpdateId" in data:
            stream = obj.get("stream")
            if type(stream) is str and stream.endswith(SNAPSHOT_STREAM):
                sym = stream[:len(stream) - len(SNAPSHOT_STREAM)]
                if "@" in sym or not sym:
                    raise _Reject("MALFORMED")
                if sym.upper() != self.symbol:
                    raise _Reject("WRONG_SYMBOL")
                return self._snapshot(data, ts_local)
        if type(data) is not dict:
            raise _Reject("MALFORMED")
        kind, sym = data.get("e"), data.get("s")
        if type(sym) is not str:
            known = kind in ("depthUpdate", "trade", "aggTrade", "bookTicker") or "u" in data
            raise _Reject("MALFORMED" if known else "UNSUPPORTED")
        is_bbo = kind == "bookTicker" or (kind is None and "u" in data and "b" in data and "A" in data)
        if kind not in ("depthUpdate", "trade", "aggTrade") and not is_bbo:
            raise _Reject("UNSUPPORTED")
        if sym.upper() != self.symbol:
            raise _Reject("WRONG_SYMBOL")
        if kind == "depthUpdate":
            self._depth(data, ts_local)
        elif kind in ("trade", "aggTrade"):
            self._trade(data, ts_local, "t" if kind == "trade" else "a")
        else:
            self._bbo(data, ts_local)

    @staticmethod
    def _units(o, grid: Tuple[int, int], off_grid: str) -> int:
        if type(o) is not str:
            raise _Reject("BAD_NUMBER")
        rc, v = units_reason(o, *grid, R[off_grid])
        if rc:
            raise _Reject(_name(rc))
        return v

    def _price(self, o) -> int:
        return self._units(o, self.tick, "OFF_TICK")

    def _size(self, o) -> int:
        return self._units(o, self.size_unit, "OFF_SIZE_INCREMENT")

    @staticmethod
    def _exch_ts(d: dict) -> int:
        t = d.get("T")
        if t is None:
            t = d.get("E")
        if t is None:
            return 0
        if type(t) is not int or not 0 <= t < 9_000_000_000_000:
            raise _Reject("MALFORMED")
        return t * 1_000_000

    @staticmethod
    def _seq(d: dict, key: str, required: bool) -> int:
        v = d.get(key)
        if v is None and not required:
            return 0
        if type(v) is not int or not 0 <= v <= INT64_MAX:
            raise _Reject("MALFORMED")
        return v

    def _emit(self, proto: list, flags: int, price: int = 0, qty: int = 0) -> None:
        ts_exch, ts_local, seq, seq_first, seq_prev = proto
        self.records.append((ts_exch, ts_local, seq, seq_first, seq_prev, price, qty, flags, self.instrument))

    def _levels(self, levels, flags: int, proto: list) -> None:
        if type(levels) is not list:
            raise _Reject("MALFORMED")
        for lvl in levels:
            if type(lvl) is not list or len(lvl) < 2:
                raise _Reject("MALFORMED")
            px = self._price(lvl[0])
            if px == 0:
                raise _Reject("BAD_NUMBER")
            self._emit(proto, flags, px, self._size(lvl[1]))

    def _finish(self, start: int, kind: int, proto: list) -> None:
        if len(self.records) == start:
            self._emit(proto, kind)
        last = self.records[-1]
        self.records[-1] = last[:7] + (last[7] | FLAGS["LAST"],) + last[8:]

    def _depth(self, d: dict, ts_local: int) -> None:
        start = len(self.records)
        seq = self._seq(d, "u", True)
        proto = [0, ts_local, seq, self._seq(d, "U", True), self._seq(d, "pu", False)]
        proto[0] = self._exch_ts(d)
        self._levels(d.get("b"), FLAGS["DEPTH"] | FLAGS["BID"], proto)
        self._levels(d.get("a"), FLAGS["DEPTH"] | FLAGS["ASK"], proto)
        self._finish(start, FLAGS["DEPTH"], proto)

    def _snapshot(self, d: dict, ts_local: int) -> None:
        start = len(self.records)
        sym = d.get("symbol")
        if sym is not None and (type(sym) is not str or sym.upper() != self.symbol):
            raise _Reject("WRONG_SYMBOL")
        proto = [0, ts_local, self._seq(d, "lastUpdateId", True), 0, 0]
        proto[0] = self._exch_ts(d)
        self._levels(d.get("bids"), FLAGS["SNAPSHOT"] | FLAGS["BID"], proto)
        self._levels(d.get("asks"), FLAGS["SNAPSHOT"] | FLAGS["ASK"], proto)
        self._finish(start, FLAGS["SNAPSHOT"], proto)

    def _trade(self, d: dict, ts_local: int, id_key: str) -> None:
        m = d.get("m")
        if type(m) is not bool:
            raise _Reject("MALFORMED")
        proto = [0, ts_local, self._seq(d, id_key, True), 0, 0]
        proto[0] = self._exch_ts(d)
        px = self._price(d.get("p"))
        if px == 0:
            raise _Reject("BAD_NUMBER")
        qty = self._size(d.get("q"))
        self._emit(proto, FLAGS["TRADE"] | FLAGS["LAST"] | (FLAGS["SELL"] if m else FLAGS["BUY"]), px, qty)

    def _bbo(self, d: dict, ts_local: int) -> None:
        proto = [0, ts_local, self._seq(d, "u", True), 0, 0]
        proto[0] = self._exch_ts(d)
        bp, bq = self._price(d.get("b")), self._size(d.get("B"))
        ap, aq = self._price(d.get("a")), self._size(d.get("A"))
        if bp == 0 or ap == 0:
            raise _Reject("BAD_NUMBER")
        self._emit(proto, FLAGS["BBO"] | FLAGS["BID"], bp, bq)
        self._emit(proto, FLAGS["BBO"] | FLAGS["ASK"] | FLAGS["LAST"], ap, aq)


def _no_constants(name: str):
    raise ValueError(f"JSON constant {name} is not valid JSON")


# The compiled path reads JSON with orjson: a number that is infinite as a double is not JSON
# to it (the whole message is MALFORMED, before any symbol is looked at), and an integer beyond
# the 64-bit range becomes a float. Python's json reads both; these make it read as orjson does.
def _finite_float(text: str) -> float:
    v = float(text)
    if math.isinf(v):
        raise ValueError(f"number is infinity when parsed as double: {text[:40]}")
    return v


def _json_int(text: str):
    v = int(text)
    return v if -(1 << 63) <= v < (1 << 64) else _finite_float(text)


def _name(code: int) -> str:
    from orpflow.events import Reason
    return Reason(code).name


def read_binance(paths, instrument, report=None) -> np.ndarray:
    """Reference twin of ``orpflow.read_binance`` (same output, pure Python)."""
    from orpflow.feeds._io import as_paths, check_exists, read_lines
    files = as_paths(paths)
    check_exists(files)
    parts = []
    for path in files:
        conv = BinanceConverter(instrument)
        conv.feed_lines(read_lines(path))
        parts.append(conv.take())
        if report is not None:
            report.lines += conv.lines
            report.messages += conv.messages
            report.records += len(parts[-1])
            report.add_rejects(conv.rejected(), [], str(path))
    return np.concatenate(parts)


class BinanceStreamConverter:
    """Same contract as the compiled BinanceStreamConverter: several instruments on one
    combined stream, routed by the stream name's symbol (or "s"), one list of records."""

    def __init__(self, instruments) -> None:
        insts = list(instruments)
        if not insts:
            raise ValueError("at least one instrument")
        self.by_symbol: Dict[str, BinanceConverter] = {}
        self.records: List[tuple] = []
        for inst in insts:
            sym = inst.symbol.upper()
            if sym in self.by_symbol:
                raise ValueError(f"instrument {sym} given twice")
            conv = BinanceConverter(inst)
            conv.records = self.records            # one shared output, in arrival order
            self.by_symbol[sym] = conv
        self.only = self.by_symbol[insts[0].symbol.upper()] if len(insts) == 1 else None
        self.rejects: Dict[int, int] = {}
        self.lines = 0
        self.messages = 0

    def rejected(self) -> Dict[int, int]:
        return dict(sorted(self.rejects.items()))

    def take(self) -> np.ndarray:
        out = np.array(self.records, dtype=EVENT_DTYPE) if self.records else np.zeros(0, EVENT_DTYPE)
        del self.records[:]
        return out

    def feed_json(self, payload: Union[bytes, str], ts_local: int) -> int:
        self.lines += 1
        start = len(self.records)
        try:
            try:
                obj = json.loads(payload, parse_constant=_no_constants, parse_float=_finite_float, parse_int=_json_int)
            except (ValueError, UnicodeDecodeError):
                raise _Reject("MALFORMED")
            if type(obj) is not dict:
                raise _Reject("MALFORMED")
            self._route(obj)._message(obj, ts_local)
        except _Reject as exc:
            del self.records[start:]
            self.rejects[exc.reason] = self.rejects.get(exc.reason, 0) + 1
            return exc.reason
        self.messages += 1
        return 0

    def _route(self, obj: dict) -> BinanceConverter:
        if self.only is not None:
            return self.only
        stream = obj.get("stream")
        if type(stream) is str:
            key = stream.partition("@")[0].upper()
        elif "data" in obj:
            raise _Reject("MALFORMED")
        elif "lastUpdateId" in obj:
            raise _Reject("UNSUPPORTED")
        else:
            sym = obj.get("s")
            if type(sym) is not str:
                raise _Reject("MALFORMED")
            key = sym.upper()
        conv = self.by_symbol.get(key)
        if conv is None:
            raise _Reject("WRONG_SYMBOL")
        return conv
