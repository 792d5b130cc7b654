"""SQLite persistence (apsw, WAL) for the engine: the writer the persistence thread runs, the
recovery read at start-up, and ``Store``, the read API.

One process writes a database at a time (an OS lock on ``<db>.lock``, see orpflow.dbfile,
which also checks the file is an orpflow database before anything changes it); readers
(``Store``) are always allowed. Records from the `out` ring are written in batched
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
import logging
import os
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from orpflow.config import FEE_SCALE, MoneyScale, PersistenceConfig
from orpflow.instrument import Instrument
from orpflow import records as R
from orpflow.dbfile import (APPLICATION_ID, DatabaseLocked, PersistenceError, WriterLock,
                            check_database, create_private)

log = logging.getLogger(__name__)

SCHEMA_VERSION = 2          # PRAGMA user_version; 2: WITHOUT ROWID tables, typed signals table

# Keys are the natural (run, symbol, id) ones and the tables are clustered on them (WITHOUT
# ROWID): one B-tree per table, appended to in key order, and no secondary index to update
# per row. Nothing orpflow reads needs another index (recovery reads the last run's orders
# by key range); a reader wanting one can build it on a copy.
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
    PRIMARY KEY(run_id, symbol, order_id)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS trades(
    run_id INTEGER NOT NULL, symbol TEXT NOT NULL, fill_id INTEGER NOT NULL, order_id INTEGER,
    client_id INTEGER, side INTEGER, liquidity TEXT, price REAL, qty REAL, price_ticks INTEGER,
    qty_units INTEGER, fee REAL, fee_money TEXT, realised REAL, realised_money TEXT,
    position_units INTEGER, ts_exch INTEGER, ts_local INTEGER, event_no INTEGER,
    PRIMARY KEY(run_id, symbol, fill_id)) WITHOUT ROWID;
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
    PRIMARY KEY(run_id, symbol, kind, event_no)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS signals(
    run_id INTEGER NOT NULL, symbol TEXT NOT NULL, event_no INTEGER NOT NULL, ts_exch INTEGER,
    side INTEGER, reason INTEGER, size_units INTEGER, target_units INTEGER, strength REAL,
    confidence REAL, order_id INTEGER, no_order TEXT,
    PRIMARY KEY(run_id, symbol, event_no)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS breaker_trips(
    run_id INTEGER NOT NULL, symbol TEXT NOT NULL, event_no INTEGER NOT NULL, breaker TEXT NOT NULL,
    ts_exch INTEGER, ts_local INTEGER, value REAL, limit_value REAL, position_units INTEGER,
    on_breaker TEXT, why TEXT, detail TEXT,
    PRIMARY KEY(run_id, symbol, event_no, breaker)) WITHOUT ROWID;
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
    """A read-only connection (readers), or the writer's: the file checked to be an orpflow
    database of this schema (or absent/empty: then created mode 0600 and stamped with the
    application id and schema version before anything else) and switched to WAL. The
    caller holds the writer lock (``Writer`` does)."""
    apsw = _apsw()
    if readonly:
        if not os.path.exists(path):
            raise FileNotFoundError(f"no database at {path}")
        if check_database(path, SCHEMA_VERSION):
            raise PersistenceError(f"{path} is empty: not an orpflow database yet")
        try:
            conn = apsw.Connection(path, flags=apsw.SQLITE_OPEN_READONLY)
            conn.set_busy_timeout(5000)
        except apsw.Error as exc:
            raise PersistenceError(f"{path}: cannot open it read-only ({exc})") from None
        return conn
    new = check_database(path, SCHEMA_VERSION)
    if new:
        create_private(path)
    conn = apsw.Connection(path)
    try:
        conn.set_busy_timeout(5000)
        if new:
            # stamped while still in rollback-journal mode, so the file header carries them at
            # once; 16 KiB pages: fewer page splits and WAL frames per row than 4 KiB
            conn.execute(f"PRAGMA page_size=16384; PRAGMA application_id={APPLICATION_ID}; "
                         f"PRAGMA user_version={SCHEMA_VERSION}")
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchall()[0][0]
        if str(mode).lower() != "wal":
            raise PersistenceError(f"{path}: SQLite refused WAL mode ({mode})")
        conn.execute(f"PRAGMA synchronous={synchronous}")
        conn.execute(SCHEMA)
        conn.execute("INSERT OR IGNORE INTO meta VALUES('schema_version', ?)", (str(SCHEMA_VERSION),))
    except BaseException:
        conn.close()
        raise
    return conn


def check_writable(path: str) -> None:
    """Raise PersistenceError (DatabaseLocked) now if a Writer on `path` would be refused:
    not an orpflow database of this schema, or another process writing it."""
    check_database(path, SCHEMA_VERSION)
    WriterLock(path).release()


# ------------------------------------------------------------------ recovery

def restore_state(conn: Any, strategy_id: str, insts: Sequence[Instrument]) -> Dict[str, Any]:
    """What a restart of `strategy_id` resumes from, per symbol (absent: no history):
    exact money ints (cash, cost, realised, fees), position units, round trips, and the
    orders the last run left open. Also marks runs that never ended as 'crashed'."""
    crashed = [r[0] for r in conn.execute("SELECT run_id FROM runs WHERE strategy_id=? AND status='running'",
                                          (strategy_id,))]
    conn.execute("UPDATE runs SET status='crashed' WHERE strategy_id=? AND status='running'",
                 (strategy_id,))
    if crashed:
        log.warning("runs that never ended marked crashed: %s", crashed,
                    extra={"strategy_id": strategy_id, "crashed_runs": crashed})
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

# Rows go to SQLite as multi-row INSERTs of ROWS_PER_STATEMENT rows: one statement step per
# 64 rows instead of per row (the per-row cost of executemany is the statement, not the
# binding). A batch's remainder uses statements of 32, 16, ..., 1 rows, all prepared once
# (apsw's statement cache).
ROWS_PER_STATEMENT = 64


def _objects(cols: Sequence[Any], n: int) -> List[Any]:
    """Row-major flat list of Python values from numpy columns (or lists, or one value for
    every row): the parameters of a multi-row INSERT, built without a per-row Python loop."""
    a = np.empty((n, len(cols)), dtype=object)
    for j, c in enumerate(cols):
        a[:, j] = c
    return a.ravel().tolist()


def _money(v: np.ndarray, k: int) -> Any:
    """The 128-bit money at v[:, k] (low), v[:, k+1] (high) for a TEXT column: Python ints
    where the low word holds the whole value (SQLite writes their decimal text itself), exact
    decimal strings (Python's big ints) only for the rows that need more than 64 bits."""
    lo = v[:, k]
    big = v[:, k + 1] != (lo >> 63)
    if not big.any():
        return lo
    out = lo.astype(object)
    out[big] = [str(x) for x in R.money_ints(v[big], k)]
    return out


class Writer:
    """The persistence thread's end of the `out` ring: decodes records and writes them in
    batched transactions. Not thread-safe: one thread owns it. Holds the database's writer
    lock (orpflow.dbfile) from construction to close()."""

    def __init__(self, path: str, config: PersistenceConfig, strategy_id: str,
                 insts: Sequence[Instrument], config_text: str, initial_cash: Sequence[int]) -> None:
        self.path = path
        self.config = config
        self.insts = list(insts)
        self.symbols = [i.symbol for i in insts]
        self._symbol_objs = np.array(self.symbols, dtype=object)
        self.scales = [MoneyScale(i) for i in insts]
        self.strategy_id = strategy_id
        self.closed = False
        check_database(path, SCHEMA_VERSION)          # a foreign file: refuse before any lock file
        self.lock = WriterLock(path)
        try:
            self.conn = connect(path, config.synchronous)
            try:
                self.restored = restore_state(self.conn, strategy_id, insts)
                with self.conn:
                    self.conn.execute("INSERT INTO runs(strategy_id, started_ns, status, config) "
                                      "VALUES(?,?,?,?)", (strategy_id, time.time_ns(), "running", config_text))
                    self.run_id = self.conn.last_insert_rowid()
                    for sym, cash in zip(self.symbols, initial_cash):
                        self.conn.execute("INSERT OR IGNORE INTO positions(strategy_id, symbol, "
                                          "initial_cash_money) VALUES(?,?,?)", (strategy_id, sym, str(cash)))
            except BaseException:
                self.conn.close()
                raise
        except BaseException:
            self.lock.release()
            raise
        self.lock.set_run(self.run_id)
        log.info("database opened: %s (run %d)", path, self.run_id,
                 extra={"database": path, "run_id": self.run_id, "strategy_id": strategy_id,
                        "runs_before": len(self.restored["runs"])})
        for sym, st in self.restored["symbols"].items():
            log.info("restored %s: position %d units from %d fills, %d open orders", sym, st["position"],
                     st["fills"], len(st["open_orders"]),
                     extra={"symbol": sym, "run_id": self.run_id, "strategy_id": strategy_id,
                            "position_units": st["position"], "fills": st["fills"],
                            "open_orders": len(st["open_orders"]), "round_trips": st["round_trips"]})
        self.records = 0
        self.rows_written = 0
        self.commits = 0
        self.write_s = 0.0
        self._pending = 0
        self._open = False
        self._last_commit = time.perf_counter()
        self._sql: Dict[Tuple[str, int], str] = {}

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
            if log.isEnabledFor(logging.DEBUG):     # one per batch, never per record
                log.debug("commit", extra={"run_id": self.run_id, "records": self._pending,
                                           "commit_ms": round((time.perf_counter() - t) * 1e3, 3)})
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
        for kind, fn in ((R.OUT_ORDER, self._orders), (R.OUT_FILL, self._fills),
                         (R.OUT_ACCOUNT, self._accounts), (R.OUT_SIGNAL, self._signals),
                         (R.OUT_SYNC, self._syncs), (R.OUT_BREAKER, self._breakers)):
            sel = kinds == kind
            if sel.any():
                n += fn(R.select(recs, sel))
        self.records += len(recs)
        self.rows_written += n
        self._pending += len(recs)
        self.write_s += time.perf_counter() - t
        self.commit_if_due()

    def _insert(self, table: str, head: str, row: str, tail: str, flat: List[Any], n: int) -> None:
        """INSERT `n` rows (flat, row-major) as multi-row statements: head + row,row,... + tail."""
        if n == 0:
            return
        width = len(flat) // n
        k = ROWS_PER_STATEMENT
        done = 0
        while done < n:
            while k > n - done:
                k //= 2
            sql = self._sql.get((table, k))
            if sql is None:
                sql = self._sql[(table, k)] = head + ",".join([row] * k) + tail
            full = (n - done) // k * k
            if full == k:
                self.conn.execute(sql, flat[done * width:(done + k) * width])
            else:
                self.conn.executemany(sql, (flat[i * width:(i + k) * width]
                                            for i in range(done, done + full, k)))
            done += full

    def _head(self, slots: np.ndarray) -> Tuple[str, List[Any]]:
        """The run id and symbol SQL of a row: one instrument's symbol is a literal (a
        parameter fewer per row), several bind theirs."""
        if len(self.symbols) == 1:
            return f"{self.run_id},'{self.symbols[0].replace(chr(39), chr(39) * 2)}'", []
        return f"{self.run_id},?", [self._symbol_objs[slots]]

    def _orders(self, r: np.ndarray) -> int:
        # an order changes state several times per batch (pending, accepted, filled): only its
        # last state in the batch is upserted, the one the table would hold after all of them
        key = (r["slot"].astype(np.int64) << 48) | r["v"][:, 0]
        _, first_rev = np.unique(key[::-1], return_index=True)
        if len(first_rev) < len(r):
            r = r[np.sort(len(r) - 1 - first_rev)]
        rows = R.order_rows(r, self.insts)
        n = len(rows)
        types = np.array(R.ORDER_TYPE, dtype=object)[rows["type"]]
        tifs = np.array(R.TIF, dtype=object)[rows["tif"]]
        status = np.array(R.ORDER_STATUS, dtype=object)[rows["status"]]
        head, sym = self._head(rows["slot"])
        flat = _objects(sym + [rows["order_id"], rows["client_id"], rows["side"], types,
                         tifs, status, rows["reason"], rows["price"], rows["qty"], rows["filled"],
                         rows["price_ticks"], rows["qty_units"], rows["filled_units"], rows["ts_request"],
                         rows["ts_arrival"], rows["ts_done"], rows["expire_at"], rows["fees"],
                         _money(r["v"], 8), rows["event_no"]], n)
        self._insert("orders", "INSERT INTO orders VALUES",
                     f"({head},?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                     " ON CONFLICT(run_id, symbol, order_id) DO UPDATE SET status=excluded.status, "
                     "reason=excluded.reason, price=excluded.price, qty=excluded.qty, filled=excluded.filled, "
                     "price_ticks=excluded.price_ticks, qty_units=excluded.qty_units, "
                     "filled_units=excluded.filled_units, ts_arrival=excluded.ts_arrival, "
                     "ts_done=excluded.ts_done, fees=excluded.fees, fees_money=excluded.fees_money, "
                     "event_no=excluded.event_no WHERE excluded.event_no >= orders.event_no", flat, n)
        return n

    def _fills(self, r: np.ndarray) -> int:
        rows = R.fill_rows(r, self.insts)
        n = len(rows)
        liq = np.array(("maker", "taker"), dtype=object)[(rows["liquidity"] != 0).astype(np.intp)]
        head, sym = self._head(rows["slot"])
        flat = _objects(sym + [rows["fill_id"], rows["order_id"], rows["client_id"],
                         rows["side"], liq, rows["price"], rows["qty"], rows["price_ticks"], rows["qty_units"],
                         rows["fee"], _money(r["v"], 6), rows["realised"], _money(r["v"], 8),
                         rows["position_units"], rows["ts_exch"], rows["ts_local"], rows["event_no"]], n)
        self._insert("trades", "INSERT OR IGNORE INTO trades VALUES",
                     f"({head},?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", "", flat, n)
        return n

    def _accounts(self, r: np.ndarray) -> int:
        rows = R.account_rows(r, self.insts)
        n = len(rows)
        head, sym = self._head(rows["slot"])
        flat = _objects(sym + [rows["event_no"], rows["ts_exch"], rows["ts_local"],
                         rows["position_units"], rows["cash"], rows["equity"], rows["realised"], rows["fees"]], n)
        self._insert("account", "INSERT OR REPLACE INTO strategy_snapshots VALUES",
                     f"({head},'account',?,?,?,?,?,?,?,?,NULL)", "", flat, n)
        slots = rows["slot"].tolist()
        last = {slot: i for i, slot in enumerate(slots)}          # the latest row of each instrument
        for slot, i in last.items():
            a = rows[i]
            cash = R.money_ints(r["v"][i:i + 1], 0)[0]
            self.conn.execute(
                "UPDATE positions SET run_id=?, ts_exch=?, position_units=?, position=?, cash=?, "
                "cash_money=?, realised=?, fees=?, equity=?, round_trips=?, losing_round_trips=? "
                "WHERE strategy_id=? AND symbol=?",
                (self.run_id, int(a["ts_exch"]), int(a["position_units"]), float(a["position"]), float(a["cash"]),
                 str(cash), float(a["realised"]), float(a["fees"]), float(a["equity"]), int(a["round_trips"]),
                 int(a["losing_round_trips"]), self.strategy_id, self.symbols[slot]))
        return n + len(last)

    def _signals(self, r: np.ndarray) -> int:
        sig = R.signal_rows(r)
        n = len(sig)
        why = np.array(R.NO_ORDER_WHY, dtype=object)[np.clip(sig["no_order"], 0, len(R.NO_ORDER_WHY) - 1)]
        head, sym = self._head(sig["slot"])
        flat = _objects(sym + [sig["event_no"], sig["ts_exch"], sig["side"], sig["reason"],
                         sig["size_units"], sig["position_units"], sig["strength"], sig["confidence"],
                         sig["order"], why], n)
        self._insert("signals", "INSERT OR REPLACE INTO signals VALUES",
                     f"({head},?,?,?,?,?,?,?,?,?,?)", "", flat, n)
        return n

    def _syncs(self, sync: np.ndarray) -> int:
        """Book sync changes (rare): a JSON detail each."""
        data = []
        for sym, rec in zip(self._symbols_of(sync), sync.tolist()):
            v = rec[5]
            detail = json.dumps({"state": int(v[0]), "gaps": int(v[1]), "resyncs": int(v[2]),
                                 "desyncs": int(v[3]), "in_sync": bool(v[4]), "update_id": int(v[5])})
            data.append((self.run_id, sym, "sync", int(rec[2]), int(rec[3]), int(rec[4]), None, None, None, None,
                         None, detail))
        self.conn.executemany("INSERT OR REPLACE INTO strategy_snapshots VALUES(?,?,?,?,?,?,?,?,?,?,?,?)", data)
        return len(data)

    def _symbols_of(self, rows: np.ndarray) -> List[str]:
        return [self.symbols[i] for i in rows["slot"].tolist()]

    def _breakers(self, sub: np.ndarray) -> int:
        """One row per circuit breaker trip (rare); detail keeps the exact integers of the record."""
        from orpflow.config import ON_BREAKER
        rows = R.breaker_rows(sub, self.insts)
        trips = R.trips_of_rows(rows, self.insts)
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
        """Commit everything, write the run's end and performance metrics, close, and release
        the writer lock. A second call does nothing."""
        if self.closed:
            return
        self.closed = True
        try:
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
            log.info("database closed: run %d %s", self.run_id, status,
                     extra={"database": self.path, "run_id": self.run_id, "status": status,
                            "records": self.records, "commits": self.commits,
                            "write_s": round(self.write_s, 6)})
        finally:
            try:
                self.conn.close()
            finally:
                self.lock.release()


# ------------------------------------------------------------------ the read API

class Store:
    """Read an orpflow database (any thread, any process; WAL lets it read while a run writes).

    Every table method returns a numpy structured array, or a pandas DataFrame with
    ``frame=True``; filters are optional keyword arguments.
    """

    TABLES = ("runs", "orders", "trades", "positions", "performance_metrics", "strategy_snapshots", "signals",
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

    def signals(self, run_id: Optional[int] = None, symbol: Optional[str] = None, frame: bool = False) -> Any:
        """Every emitted signal: side, reason, size and target units, strength, confidence, the
        order it placed (0: none) and why not (no_order)."""
        return self._table("signals", frame, "run_id, event_no", run_id=run_id, symbol=symbol)

    def breaker_trips(self, run_id: Optional[int] = None, symbol: Optional[str] = None,
                      frame: bool = False) -> Any:
        """Circuit breaker trips: which, when (ts_exch), the value and limit, and why."""
        return self._table("breaker_trips", frame, "run_id, event_no", run_id=run_id, symbol=symbol)

    def integrity_check(self) -> str:
        return str(self.conn.execute("PRAGMA integrity_check").fetchall()[0][0])
