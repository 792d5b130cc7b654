"""SQLite persistence (apsw, WAL) for the engine: the writer the persistence thread runs, the
recovery read at start-up, and ``Store``, the read API.

The persistence thread is the only writer. Records from the `out` ring are written in batched
transactions (every ``batch_rows`` records or ``batch_ms``); writes are idempotent, keyed by
(run, symbol, id), so replaying a batch changes nothing. Money is stored exactly as the
integer money unit (TEXT, it can exceed 64 bits) beside a float in quote currency.

Recovery rests on the fills alone: position = sum of signed fill sizes, and cash, cost basis,
realised PnL and fees follow exactly from the fills and the strategy's initial cash (the same
integer arithmetic as the broker), so a crash between two commits can never leave the account
out of step with the trades table.
"""
from __future__ import annotations

import json
import os
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from orpflow.config import FEE_SCALE, MoneyScale, PersistenceConfig
from orpflow.instrument import Instrument
from orpflow import records as R

SCHEMA_VERSION = 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS runs(
    run_id INTEGER PRIMARY KEY, strategy_id TEXT NOT NULL, started_ns INTEGER NOT NULL,
    ended_ns INTEGER, status TEXT NOT NULL, events INTEGER, records INTEGER, config TEXT);
CREATE INDEX IF NOT EXISTS runs_strategy ON runs(strategy_id, run_id);
CREATE TABLE IF NOT EXISTS orders(
    run_id INTEGER NOT NULL, symbol TEXT NOT NULL, order_id INTEGER NOT NULL, client_id INTEGER,
    side INTEGER, type TEXT, tif TEXT, status TEXT, reason INTEGER, price REAL, qty REAL,
    filled REAL, price_ticks INTEGER, qty_units INTEGER, filled_units INTEGER,
    ts_request INTEGER, ts_arrival INTEGER, ts_done INTEGER, expire_at INTEGER,
    fees REAL, fees_money TEXT, event_no INTEGER,
    PRIMARY KEY(run_id, symbol, order_id));
CREATE INDEX IF NOT EXISTS orders_status ON orders(run_id, status);
CREATE TABLE IF NOT EXISTS trades(
    run_id INTEGER NOT NULL, symbol TEXT NOT NULL, fill_id INTEGER NOT NULL, order_id INTEGER,
    client_id INTEGER, side INTEGER, liquidity TEXT, price REAL, qty REAL, price_ticks INTEGER,
    qty_units INTEGER, fee REAL, fee_money TEXT, realised REAL, realised_money TEXT,
    position_units INTEGER, ts_exch INTEGER, ts_local INTEGER, event_no INTEGER,
    PRIMARY KEY(run_id, symbol, fill_id));
CREATE INDEX IF NOT EXISTS trades_time ON trades(symbol, ts_exch);
CREATE TABLE IF NOT EXISTS positions(
    strategy_id TEXT NOT NULL, symbol TEXT NOT NULL, initial_cash_money TEXT NOT NULL,
    run_id INTEGER, ts_exch INTEGER, position_units INTEGER, position REAL, cash REAL,
    cash_money TEXT, realised REAL, fees REAL, equity REAL, round_trips INTEGER,
    losing_round_trips INTEGER,
    PRIMARY KEY(strategy_id, symbol));
CREATE TABLE IF NOT EXISTS strategy_snapshots(
    run_id INTEGER NOT NULL, symbol TEXT NOT NULL, kind TEXT NOT NULL, event_no INTEGER NOT NULL,
    ts_exch INTEGER, ts_local INTEGER, position_units INTEGER, cash REAL, equity REAL,
    realised REAL, fees REAL, detail TEXT,
    PRIMARY KEY(run_id, symbol, kind, event_no));
CREATE INDEX IF NOT EXISTS snapshots_time ON strategy_snapshots(run_id, kind, ts_exch);
CREATE TABLE IF NOT EXISTS breaker_trips(
    run_id INTEGER NOT NULL, symbol TEXT NOT NULL, event_no INTEGER NOT NULL, breaker TEXT NOT NULL,
    ts_exch INTEGER, ts_local INTEGER, value REAL, limit_value REAL, position_units INTEGER,
    on_breaker TEXT, why TEXT, detail TEXT,
    PRIMARY KEY(run_id, symbol, event_no, breaker));
CREATE TABLE IF NOT EXISTS performance_metrics(
    run_id INTEGER NOT NULL, symbol TEXT NOT NULL, pnl REAL, realised REAL, fees REAL,
    sharpe REAL, max_drawdown REAL, win_rate REAL, avg_trade REAL, trade_count INTEGER,
    round_trips INTEGER, final_position REAL, final_equity REAL,
    PRIMARY KEY(run_id, symbol));
"""


def _apsw() -> Any:
    try:
        import apsw
    except ImportError as exc:                 # pragma: no cover - a declared dependency
        raise ImportError("persistence needs apsw: pip install apsw") from exc
    return apsw


def connect(path: str, synchronous: str = "NORMAL", readonly: bool = False) -> Any:
    apsw = _apsw()
    d = os.path.dirname(os.path.abspath(path))
    if not readonly and not os.path.isdir(d):
        raise FileNotFoundError(f"database folder does not exist: {d}")
    if readonly:
        if not os.path.exists(path):
            raise FileNotFoundError(f"no database at {path}")
        conn = apsw.Connection(path, flags=apsw.SQLITE_OPEN_READONLY)
    else:
        conn = apsw.Connection(path)
    conn.set_busy_timeout(5000)
    if not readonly:
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchall()[0][0]
        if str(mode).lower() != "wal":
            raise RuntimeError(f"{path}: SQLite refused WAL mode ({mode})")
        conn.execute(f"PRAGMA synchronous={synchronous}")
        conn.execute(SCHEMA)
        conn.execute("INSERT OR IGNORE INTO meta VALUES('schema_version', ?)", (str(SCHEMA_VERSION),))
    return conn


# ------------------------------------------------------------------ recovery

def restore_state(conn: Any, strategy_id: str, insts: Sequence[Instrument]) -> Dict[str, Any]:
    """What a restart of `strategy_id` resumes from, per symbol (absent: no history):
    exact money ints (cash, cost, realised, fees), position units, round trips, and the
    orders the last run left open. Also marks runs that never ended as 'crashed'."""
    conn.execute("UPDATE runs SET status='crashed' WHERE strategy_id=? AND status='running'",
                 (strategy_id,))
    runs = [r[0] for r in conn.execute("SELECT run_id FROM runs WHERE strategy_id=? ORDER BY run_id",
                                       (strategy_id,))]
    out: Dict[str, Any] = {"runs": runs, "symbols": {}}
    if not runs:
        return out
    for inst in insts:
        row = conn.execute("SELECT initial_cash_money, round_trips, losing_round_trips FROM positions "
                           "WHERE strategy_id=? AND symbol=?", (strategy_id, inst.symbol)).fetchall()
        if not row:
            continue
        cash0 = int(row[0][0])
        fills = conn.execute(
            "SELECT side, price_ticks, qty_units, fee_money, realised_money FROM trades t "
            "JOIN runs r ON r.run_id = t.run_id WHERE r.strategy_id=? AND t.symbol=? "
            "ORDER BY t.run_id, t.fill_id", (strategy_id, inst.symbol)).fetchall()
        spent = sum(s * p * q for s, p, q, _, _ in fills) * FEE_SCALE      # 1 tick x 1 unit = 1e8 money
        fees = sum(int(f) for _, _, _, f, _ in fills)
        realised = sum(int(x) for _, _, _, _, x in fills)
        position = sum(s * q for s, _, q, _, _ in fills)
        cost = (spent + realised) * (1 if position > 0 else -1) if position else 0
        last = runs[-1]
        open_orders = conn.execute(
            "SELECT order_id, side, type, tif, price_ticks, qty_units - filled_units, expire_at FROM orders "
            "WHERE run_id=? AND symbol=? AND status IN ('Pending','Accepted','PartiallyFilled') "
            "ORDER BY order_id", (last, inst.symbol)).fetchall()
        out["symbols"][inst.symbol] = {
            "cash": cash0 - spent - fees, "cost": cost, "realised": realised, "fees": fees,
            "position": position, "round_trips": int(row[0][1] or 0),
            "losing_round_trips": int(row[0][2] or 0), "fills": len(fills),
            "open_orders": [dict(zip(("order_id", "side", "type", "tif", "price_ticks", "qty_units",
                                      "expire_at"), o))
                            for o in open_orders],
        }
    return out


# ------------------------------------------------------------------ the writer

class Writer:
    """The persistence thread's end of the `out` ring: decodes records and writes them in
    batched transactions. Not thread-safe: one thread owns it."""

    def __init__(self, path: str, config: PersistenceConfig, strategy_id: str,
                 insts: Sequence[Instrument], config_text: str, initial_cash: Sequence[int]) -> None:
        self.path = path
        self.config = config
        self.insts = list(insts)
        self.symbols = [i.symbol for i in insts]
        self.scales = [MoneyScale(i) for i in insts]
        self.strategy_id = strategy_id
        self.conn = connect(path, config.synchronous)
        self.restored = restore_state(self.conn, strategy_id, insts)
        with self.conn:
            self.conn.execute("INSERT INTO runs(strategy_id, started_ns, status, config) VALUES(?,?,?,?)",
                              (strategy_id, time.time_ns(), "running", config_text))
            self.run_id = self.conn.last_insert_rowid()
            for sym, cash in zip(self.symbols, initial_cash):
                self.conn.execute("INSERT OR IGNORE INTO positions(strategy_id, symbol, initial_cash_money) "
                                  "VALUES(?,?,?)", (strategy_id, sym, str(cash)))
        self.records = 0
        self.rows_written = 0
        self.commits = 0
        self.write_s = 0.0
        self._pending = 0
        self._open = False
        self._last_commit = time.perf_counter()

    # -- batching
    def _begin(self) -> None:
        if not self._open:
            self.conn.execute("BEGIN")
            self._open = True

    def commit(self) -> None:
        if self._open:
            t = time.perf_counter()
            self.conn.execute("COMMIT")
            self.write_s += time.perf_counter() - t
            self._open = False
            self.commits += 1
        self._pending = 0
        self._last_commit = time.perf_counter()

    def commit_if_due(self) -> None:
        if self._pending and (self._pending >= self.config.batch_rows or
                              (time.perf_counter() - self._last_commit) * 1e3 >= self.config.batch_ms):
            self.commit()

    def write(self, recs: np.ndarray) -> None:
        """Write a batch of OutRecords (in ring order) into the open transaction."""
        if len(recs) == 0:
            return
        t = time.perf_counter()
        self._begin()
        kinds = recs["kind"]
        n = 0
        if (kinds == R.OUT_ORDER).any():
            n += self._orders(recs)
        if (kinds == R.OUT_FILL).any():
            n += self._fills(recs)
        if (kinds == R.OUT_ACCOUNT).any():
            n += self._accounts(recs)
        if ((kinds == R.OUT_SIGNAL) | (kinds == R.OUT_SYNC)).any():
            n += self._events(recs)
        if (kinds == R.OUT_BREAKER).any():
            n += self._breakers(recs)
        self.records += len(recs)
        self.rows_written += n
        self._pending += len(recs)
        self.write_s += time.perf_counter() - t
        self.commit_if_due()

    def _cols(self, rows: np.ndarray, names: Sequence[str]) -> List[List[Any]]:
        """Columns as Python lists (one .tolist() per column: far cheaper than per-row access)."""
        return [rows[n].tolist() for n in names]

    def _symbols(self, rows: np.ndarray) -> List[str]:
        syms = self.symbols
        return [syms[i] for i in rows["slot"].tolist()]

    def _orders(self, recs: np.ndarray) -> int:
        rows = R.order_rows(recs, self.insts)
        fees = [str(f) for f in R.money_ints(recs[recs["kind"] == R.OUT_ORDER]["v"], 8)]
        n = len(rows)
        types = [R.ORDER_TYPE[t] for t in rows["type"].tolist()]
        tifs = [R.TIF[t] for t in rows["tif"].tolist()]
        status = [R.ORDER_STATUS[t] for t in rows["status"].tolist()]
        c = self._cols(rows, ("order_id", "client_id", "side", "reason", "price", "qty", "filled", "price_ticks",
                              "qty_units", "filled_units", "ts_request", "ts_arrival", "ts_done", "expire_at",
                              "fees", "event_no"))
        data = list(zip([self.run_id] * n, self._symbols(rows), c[0], c[1], c[2], types, tifs, status, *c[3:15],
                        fees, c[15]))
        self.conn.executemany(
            "INSERT INTO orders VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) "
            "ON CONFLICT(run_id, symbol, order_id) DO UPDATE SET status=excluded.status, "
            "reason=excluded.reason, price=excluded.price, qty=excluded.qty, filled=excluded.filled, "
            "price_ticks=excluded.price_ticks, qty_units=excluded.qty_units, "
            "filled_units=excluded.filled_units, ts_arrival=excluded.ts_arrival, "
            "ts_done=excluded.ts_done, fees=excluded.fees, fees_money=excluded.fees_money, "
            "event_no=excluded.event_no WHERE excluded.event_no >= orders.event_no", data)
        return n

    def _fills(self, recs: np.ndarray) -> int:
        sub = recs[recs["kind"] == R.OUT_FILL]
        rows = R.fill_rows(recs, self.insts)
        n = len(rows)
        fee = [str(x) for x in R.money_ints(sub["v"], 6)]
        rea = [str(x) for x in R.money_ints(sub["v"], 8)]
        liq = ["taker" if x else "maker" for x in rows["liquidity"].tolist()]
        c = self._cols(rows, ("fill_id", "order_id", "client_id", "side", "price", "qty", "price_ticks",
                              "qty_units", "fee", "realised", "position_units", "ts_exch", "ts_local", "event_no"))
        data = list(zip([self.run_id] * n, self._symbols(rows), c[0], c[1], c[2], c[3], liq, c[4], c[5], c[6],
                        c[7], c[8], fee, c[9], rea, c[10], c[11], c[12], c[13]))
        self.conn.executemany("INSERT OR IGNORE INTO trades VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", data)
        return n

    def _accounts(self, recs: np.ndarray) -> int:
        sub = recs[recs["kind"] == R.OUT_ACCOUNT]
        rows = R.account_rows(recs, self.insts)
        n = len(rows)
        c = self._cols(rows, ("event_no", "ts_exch", "ts_local", "position_units", "cash", "equity", "realised",
                              "fees"))
        data = list(zip([self.run_id] * n, self._symbols(rows), ["account"] * n, *c, [None] * n))
        self.conn.executemany("INSERT OR REPLACE INTO strategy_snapshots VALUES(?,?,?,?,?,?,?,?,?,?,?,?)", data)
        slots = rows["slot"].tolist()
        last = {slot: i for i, slot in enumerate(slots)}          # the latest row of each instrument
        for slot, i in last.items():
            a = rows[i]
            cash = R.money_ints(sub["v"][i:i + 1], 0)[0]
            self.conn.execute(
                "UPDATE positions SET run_id=?, ts_exch=?, position_units=?, position=?, cash=?, "
                "cash_money=?, realised=?, fees=?, equity=?, round_trips=?, losing_round_trips=? "
                "WHERE strategy_id=? AND symbol=?",
                (self.run_id, int(a["ts_exch"]), int(a["position_units"]), float(a["position"]), float(a["cash"]),
                 str(cash), float(a["realised"]), float(a["fees"]), float(a["equity"]), int(a["round_trips"]),
                 int(a["losing_round_trips"]), self.strategy_id, self.symbols[slot]))
        return n + len(last)

    def _events(self, recs: np.ndarray) -> int:
        run = self.run_id
        sig = R.signal_rows(recs)
        c = self._cols(sig, ("side", "reason", "size_units", "position_units", "strength", "confidence",
                             "order", "no_order", "event_no", "ts_exch"))
        why = R.NO_ORDER_WHY
        data: List[Tuple[Any, ...]] = [
            (run, sym, "signal", ev, ts, None, pos, None, None, None, None,
             f'{{"side": {side}, "reason": {reason}, "size_units": {size}, "target_units": {pos}, '
             f'"strength": {strength!r}, "confidence": {conf!r}, "order": {order}, "no_order": "{why[no]}"}}')
            for sym, side, reason, size, pos, strength, conf, order, no, ev, ts
            in zip(self._symbols(sig), *c)]
        sync = recs[recs["kind"] == R.OUT_SYNC]
        for sym, r in zip(self._symbols(sync), sync.tolist()):
            v = r[5]
            detail = json.dumps({"state": int(v[0]), "gaps": int(v[1]), "resyncs": int(v[2]),
                                 "desyncs": int(v[3]), "in_sync": bool(v[4]), "update_id": int(v[5])})
            data.append((run, sym, "sync", int(r[2]), int(r[3]), int(r[4]), None, None, None, None, None, detail))
        self.conn.executemany("INSERT OR REPLACE INTO strategy_snapshots VALUES(?,?,?,?,?,?,?,?,?,?,?,?)", data)
        return len(data)

    def _breakers(self, recs: np.ndarray) -> int:
        """One row per circuit breaker trip; detail keeps the exact integers of the record."""
        from orpflow.config import ON_BREAKER
        sub = recs[recs["kind"] == R.OUT_BREAKER]
        rows = R.breaker_rows(sub, self.insts)
        trips = R.breaker_trips(sub, self.insts)
        data = []
        for t, row, v, value, limit in zip(trips, rows, sub["v"].tolist(), R.money_ints(sub["v"], 2),
                                           R.money_ints(sub["v"], 4)):
            mode = ON_BREAKER[v[9]] if 0 <= v[9] < len(ON_BREAKER) else str(v[9])
            detail = json.dumps({"value": value, "limit": limit, "span_ns": v[6], "window_ns": v[11],
                                 "trips": v[7], "breakers": v[1], "risk_ts": v[10]})
            data.append((self.run_id, t.symbol, int(row["event_no"]), t.breaker, t.ts, int(row["ts_local"]),
                         t.value, t.limit, v[8], mode, t.why, detail))
        self.conn.executemany("INSERT OR REPLACE INTO breaker_trips VALUES(?,?,?,?,?,?,?,?,?,?,?,?)", data)
        return len(data)

    def close(self, status: str, events: int, performance: Optional[Dict[str, Dict[str, Any]]] = None) -> None:
        """Commit everything, write the run's end and performance metrics, and close."""
        self.commit()
        with self.conn:
            for sym, p in (performance or {}).items():
                self.conn.execute(
                    "INSERT OR REPLACE INTO performance_metrics VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (self.run_id, sym, p["pnl"], p["realised"], p["fees"], p["sharpe"], p["max_drawdown"],
                     p["win_rate"], p["avg_trade"], p["trade_count"], p["round_trips"],
                     p["final_position"], p["final_equity"]))
            self.conn.execute("UPDATE runs SET ended_ns=?, status=?, events=?, records=? WHERE run_id=?",
                              (time.time_ns(), status, int(events), self.records, self.run_id))
        self.conn.close()


# ------------------------------------------------------------------ the read API

class Store:
    """Read an orpflow database (any thread, any process; WAL lets it read while a run writes).

    Every table method returns a numpy structured array, or a pandas DataFrame with
    ``frame=True``; filters are optional keyword arguments.
    """

    TABLES = ("runs", "orders", "trades", "positions", "performance_metrics", "strategy_snapshots",
              "breaker_trips")

    def __init__(self, path: str) -> None:
        self.path = path
        self.conn = connect(path, readonly=True)

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def query(self, sql: str, params: Sequence[Any] = (), frame: bool = False,
              names: Optional[Sequence[str]] = None) -> Any:
        """Rows of any SELECT as a structured array (or DataFrame); `names` labels the columns
        when the result may be empty (SQLite gives no description without a row)."""
        cur = self.conn.execute(sql, tuple(params))
        if names is None:
            try:
                names = [d[0] for d in cur.getdescription()]
            except Exception:              # no row: no description
                names = []
        names = list(names)
        rows = cur.fetchall()
        if frame:
            import pandas as pd
            return pd.DataFrame(rows, columns=names or None)
        if not names:
            return np.zeros(len(rows))
        cols = list(zip(*rows)) if rows else [()] * len(names)
        fields = []
        for name, col in zip(names, cols):
            vals = [v for v in col if v is not None]
            if vals and all(isinstance(v, int) for v in vals) and all(-2 ** 63 <= v < 2 ** 63 for v in vals) \
                    and len(vals) == len(col):
                fields.append((name, "<i8"))
            elif vals and all(isinstance(v, (int, float)) for v in vals):
                fields.append((name, "<f8"))
            else:
                fields.append((name, object))
        out = np.zeros(len(rows), fields)
        for (name, dt), col in zip(fields, cols):
            if dt == "<f8":
                out[name] = [np.nan if v is None else v for v in col]
            else:
                out[name] = col
        return out

    def _table(self, table: str, frame: bool, order: str, **filters: Any) -> Any:
        where, params = [], []
        for k, v in filters.items():
            if v is not None:
                where.append(f"{k}=?")
                params.append(v)
        sql = f"SELECT * FROM {table}" + (" WHERE " + " AND ".join(where) if where else "") + f" ORDER BY {order}"
        names = [r[1] for r in self.conn.execute(f"PRAGMA table_info({table})")]
        return self.query(sql, params, frame, names)

    def runs(self, strategy_id: Optional[str] = None, frame: bool = False) -> Any:
        return self._table("runs", frame, "run_id", strategy_id=strategy_id)

    def orders(self, run_id: Optional[int] = None, symbol: Optional[str] = None,
               status: Optional[str] = None, frame: bool = False) -> Any:
        return self._table("orders", frame, "run_id, symbol, order_id", run_id=run_id, symbol=symbol,
                           status=status)

    def trades(self, run_id: Optional[int] = None, symbol: Optional[str] = None, frame: bool = False) -> Any:
        return self._table("trades", frame, "run_id, symbol, fill_id", run_id=run_id, symbol=symbol)

    def positions(self, strategy_id: Optional[str] = None, frame: bool = False) -> Any:
        return self._table("positions", frame, "strategy_id, symbol", strategy_id=strategy_id)

    def performance(self, run_id: Optional[int] = None, frame: bool = False) -> Any:
        return self._table("performance_metrics", frame, "run_id, symbol", run_id=run_id)

    def snapshots(self, run_id: Optional[int] = None, kind: Optional[str] = None,
                  symbol: Optional[str] = None, frame: bool = False) -> Any:
        return self._table("strategy_snapshots", frame, "run_id, event_no", run_id=run_id, kind=kind,
                           symbol=symbol)

    def breaker_trips(self, run_id: Optional[int] = None, symbol: Optional[str] = None,
                      frame: bool = False) -> Any:
        """Circuit breaker trips: which, when (ts_exch), the value and limit, and why."""
        return self._table("breaker_trips", frame, "run_id, event_no", run_id=run_id, symbol=symbol)

    def integrity_check(self) -> str:
        return str(self.conn.execute("PRAGMA integrity_check").fetchall()[0][0])
