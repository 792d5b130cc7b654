"""Logging: orpflow's loggers, their structured fields, and two formatters for the CLI.

The library only creates loggers (``orpflow.engine``, ``orpflow.feed``, ``orpflow.live``,
``orpflow.risk``, ``orpflow.persistence``) and gives ``orpflow`` a NullHandler; where the
records go is the application's choice (``configure`` is what ``orpflow run --log-format``
uses). Fields travel as ``extra={...}``, so any handler sees them as record attributes.

Nothing is logged per event: records come from Python code that runs once per run, per state
change, or per batch of output records drained from the engine's ring.
"""
from __future__ import annotations

import datetime as _dt
import json
import logging
import math
import sys
from typing import Any, Dict, Optional, Sequence, TextIO

__all__ = ["JsonFormatter", "TextFormatter", "configure", "fields", "is_cli_handler", "log_failure",
           "log_out_records"]

LEVELS = ("debug", "info", "warning", "error", "critical")
FORMATS = ("text", "json")

# every attribute a LogRecord has before `extra` is applied (plus what formatters add)
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "taskName"}


def fields(record: logging.LogRecord) -> Dict[str, Any]:
    """The structured fields a record carries (what was passed as ``extra``)."""
    return {k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")}


def _plain(v: Any) -> Any:
    """A JSON-safe value: numpy scalars as Python ones, NaN/inf as text, the rest as str."""
    if hasattr(v, "item") and callable(v.item) and getattr(v, "ndim", 1) == 0:
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    return str(v)


def _iso(created: float) -> str:
    t = _dt.datetime.fromtimestamp(created, _dt.timezone.utc)
    return t.isoformat(timespec="microseconds").replace("+00:00", "Z")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts (ISO 8601 UTC), level, logger, message, the record's
    fields, and ``exc`` (the traceback) when an exception is attached."""

    def format(self, record: logging.LogRecord) -> str:
        out: Dict[str, Any] = {"ts": _iso(record.created), "level": record.levelname,
                               "logger": record.name, "message": record.getMessage()}
        for k, v in fields(record).items():
            out.setdefault(k, _plain(v))
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            out["exc"] = record.exc_text
        return json.dumps(out, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """``orpflow: <level>: <message>  key=value ...`` — the CLI's own stderr style (its
    warnings and errors always looked like this); the JSON format carries the time."""

    def format(self, record: logging.LogRecord) -> str:
        text = f"orpflow: {record.levelname.lower()}: {record.getMessage()}"
        extra = {k: v for k, v in fields(record).items() if v is not None}
        if extra:
            text += "  " + " ".join(f"{k}={_text(v)}" for k, v in extra.items())
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        elif record.exc_text:
            text += "\n" + record.exc_text
        return text


def log_failure(logger: logging.Logger, exc: BaseException, message: str, extra: Dict[str, Any]) -> None:
    """An ERROR record carrying the exception's traceback as text (``exc_text``, which every
    logging.Formatter prints), not the exception itself: a record's exc_info keeps the
    traceback's frames, and with them the engine and its C memory, alive for as long as any
    handler holds the record (a MemoryHandler, a queue, pytest's log capture)."""
    if not logger.isEnabledFor(logging.ERROR):
        return
    import traceback
    record = logger.makeRecord(logger.name, logging.ERROR, __file__, 0, message, (), None, extra=extra)
    record.exc_text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)).rstrip("\n")
    logger.handle(record)


def _text(v: Any) -> str:
    v = _plain(v)
    s = v if isinstance(v, str) else json.dumps(v)
    return json.dumps(s) if (not s or any(c.isspace() for c in s)) and isinstance(v, str) else s


_OURS = "_orpflow_cli_handler"


def is_cli_handler(handler: logging.Handler) -> bool:
    """Whether ``configure`` added this handler."""
    return bool(getattr(handler, _OURS, False))


def configure(level: str = "info", fmt: str = "text", stream: Optional[TextIO] = None) -> logging.Handler:
    """Send the ``orpflow`` loggers' records at ``level`` and above to ``stream`` (default
    stderr) in ``fmt`` ("text" or "json"). Calling it again replaces the handler it added;
    handlers added by anyone else are left alone. Returns the handler."""
    if str(level).lower() not in LEVELS:
        raise ValueError(f"log level {level!r}: expected one of {', '.join(LEVELS)}")
    if fmt not in FORMATS:
        raise ValueError(f"log format {fmt!r}: expected one of {', '.join(FORMATS)}")
    root = logging.getLogger("orpflow")
    for h in list(root.handlers):
        if is_cli_handler(h):
            root.removeHandler(h)
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    setattr(handler, _OURS, True)
    root.addHandler(handler)
    root.setLevel(str(level).upper())
    return handler


# ---- records drained from the engine's out ring -------------------------------------------

_risk = logging.getLogger("orpflow.risk")
_feed = logging.getLogger("orpflow.feed")


def log_out_records(recs: Any, insts: Sequence[Any], run_id: Optional[int] = None) -> None:
    """Log the rare records of a batch drained from the out ring, in ring order: circuit
    breaker trips (``orpflow.risk``, WARNING) and book sync changes (``orpflow.feed``: in sync
    or waiting for a first snapshot INFO; out of sync after a gap or desync WARNING). Two
    vectorised compares per batch when there are none."""
    from orpflow import records as R
    from orpflow._core.book import STATE_NAMES
    kinds = recs["kind"]
    is_trip, is_sync = kinds == R.OUT_BREAKER, kinds == R.OUT_SYNC
    if not (is_trip.any() or is_sync.any()):
        return
    trips = iter(R.breaker_trips(R.select(recs, is_trip), insts))
    base = {} if run_id is None else {"run_id": run_id}
    for rec in R.select(recs, is_trip | is_sync).tolist():
        # (kind, slot, event_no, ts_exch, ts_local, v); v as loop.pyx writes it
        if rec[0] == R.OUT_BREAKER:
            t = next(trips)
            _risk.warning("circuit breaker %s tripped on %s: %s", t.breaker, t.symbol, t.why,
                          extra={"symbol": t.symbol, **base, "breaker": t.breaker, "value": t.value,
                                 "limit": t.limit, "position": t.position, "ts_exch": t.ts})
            continue
        v, slot = rec[5], int(rec[1])
        state = STATE_NAMES[v[0]] if 0 <= v[0] < len(STATE_NAMES) else str(v[0])
        extra = {"symbol": insts[slot].symbol if 0 <= slot < len(insts) else str(slot), **base,
                 "state": state, "in_sync": bool(v[4]), "gaps": v[1], "resyncs": v[2],
                 "desyncs": v[3], "update_id": v[5], "ts_local": rec[4]}
        if v[4]:
            _feed.info("book of %s in sync (%s)", extra["symbol"], state, extra=extra)
        elif v[1] or v[3] or state == "OUT_OF_SYNC":
            _feed.warning("book of %s out of sync (%s)", extra["symbol"], state, extra=extra)
        else:                           # the start, or a venue reset: no update was missed
            _feed.info("book of %s waiting for a snapshot (%s)", extra["symbol"], state, extra=extra)
