"""The database file itself: is it ours, create it private, and one writer at a time.

- **Ownership.** An orpflow database carries ``PRAGMA application_id`` = ``APPLICATION_ID``
  ('ORPF') and ``PRAGMA user_version`` = the schema version. Before the writer changes
  anything (WAL mode, tables), an existing non-empty file is read (read-only) and refused
  unless it is an orpflow database of this schema version: a foreign SQLite file, a
  non-SQLite file or a directory is never modified.
- **Privacy.** A new database file is created with mode 0600 before SQLite opens it; SQLite
  gives its ``-wal`` and ``-shm`` files the database file's permissions.
- **One writer.** The writer holds an exclusive OS lock on ``<db>.lock`` (``flock``; on
  Windows ``msvcrt.locking``) for its whole life, and writes its pid, start time and run id
  into it so a refused second writer can say who holds it. The kernel drops the lock when the
  process dies (even by SIGKILL), so a crashed run never blocks recovery. SQLite's own locks
  cannot serve: they are POSIX byte-range locks that any ``close()`` of the file in the same
  process drops, and they are held per transaction, not per run. Readers (``Store``) take no
  lock. The lock file stays in place after a run (removing it would race with a new writer
  that already opened it); its content is only informative.
"""
from __future__ import annotations

import datetime
import json
import os
import socket
import struct
import sys
import time
from typing import Any, Dict, Optional

APPLICATION_ID = 0x4F525046            # b"ORPF"
SQLITE_MAGIC = b"SQLite format 3\x00"


class PersistenceError(ValueError):
    """A database path that cannot be used (not ours, another schema, locked, a directory);
    the message names the file."""


class DatabaseLocked(PersistenceError):
    """Another live process writes this database."""


# ------------------------------------------------------------------ ownership

def _header(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read(100)


def check_database(path: str, schema_version: int) -> bool:
    """Raise PersistenceError unless `path` is absent, empty, or an orpflow database of
    `schema_version`. Returns True when the file has to be created/initialised. Reads only."""
    if os.path.isdir(path):
        raise PersistenceError(f"database path is a directory: {path}")
    d = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(d):
        raise PersistenceError(f"database folder does not exist: {d}")
    if not os.path.exists(path):
        return True
    if not os.path.isfile(path):
        raise PersistenceError(f"database path is not a regular file: {path}")
    try:
        head = _header(path)
    except OSError as exc:
        raise PersistenceError(f"cannot read database {path}: {exc.strerror or exc}") from None
    if len(head) == 0:
        return True
    if len(head) < 100 or not head.startswith(SQLITE_MAGIC):
        raise PersistenceError(f"{path} is not an SQLite database; refusing to touch it")
    # header fields (big-endian): user_version at 60, application_id at 68. orpflow sets both
    # before it switches the file to WAL and never changes them, so the file header is current
    app_id, version = struct.unpack(">I", head[68:72])[0], struct.unpack(">I", head[60:64])[0]
    if app_id == 0:
        app_id, version = _legacy_ids(path)
    if app_id != APPLICATION_ID:
        raise PersistenceError(f"{path} is an SQLite database of another application "
                               f"(application_id {app_id:#x}, orpflow's is {APPLICATION_ID:#x}); "
                               "refusing to modify it")
    if version != schema_version:
        raise PersistenceError(f"{path} is an orpflow database of schema version {version}; this "
                               f"orpflow writes version {schema_version}: use a new database file")
    return False


def _legacy_ids(path: str) -> "tuple[int, int]":
    """An SQLite file without application id: orpflow before version 2 kept its schema
    version in a meta table. Read (read-only) whether it has one."""
    import apsw
    from urllib.parse import quote
    try:
        # immutable: no lock, no -wal/-shm created or read, nothing at all written beside it
        conn = apsw.Connection(f"file:{quote(os.path.abspath(path))}?immutable=1",
                               flags=apsw.SQLITE_OPEN_READONLY | apsw.SQLITE_OPEN_URI)
        try:
            row = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchall()
        finally:
            conn.close()
        return (APPLICATION_ID, int(row[0][0])) if row else (0, 0)
    except (apsw.Error, ValueError):
        return 0, 0


def create_private(path: str) -> None:
    """Create an empty database file with mode 0600 (no-op if it appeared meanwhile)."""
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        return
    os.close(fd)


# ------------------------------------------------------------------ the writer's lock

def lock_path(path: str) -> str:
    return os.path.abspath(path) + ".lock"


if sys.platform == "win32":                   # pragma: no cover - exercised on Windows only
    import msvcrt

    _LOCK_AT = 1 << 20                         # lock a byte past the info, which stays readable

    def _try_lock(fd: int) -> bool:
        os.lseek(fd, _LOCK_AT, os.SEEK_SET)
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True

    def _unlock(fd: int) -> None:
        os.lseek(fd, _LOCK_AT, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
else:
    import fcntl

    def _try_lock(fd: int) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def _unlock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)


class WriterLock:
    """The exclusive right to write one database, held until release() or process death."""

    def __init__(self, db_path: str) -> None:
        self.path = lock_path(db_path)
        self.db_path = db_path
        self.info: Dict[str, Any] = {"pid": os.getpid(), "host": socket.gethostname(),
                                     "started": time.time(), "run_id": None}
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise PersistenceError(f"cannot create the writer lock {self.path}: "
                                   f"{exc.strerror or exc}") from None
        if not _try_lock(fd):
            holder = _read_info(fd)
            os.close(fd)
            raise DatabaseLocked(f"{db_path} is being written by another orpflow run "
                                 f"({describe(holder)}); one writer per database: stop it "
                                 "first (reading with of.Store is fine)")
        self.fd: Optional[int] = fd
        self._write()

    def set_run(self, run_id: int) -> None:
        self.info["run_id"] = int(run_id)
        self._write()

    def _write(self) -> None:
        assert self.fd is not None
        data = (json.dumps(self.info) + "\n").encode()
        os.lseek(self.fd, 0, os.SEEK_SET)
        os.ftruncate(self.fd, 0)
        os.write(self.fd, data)

    def release(self) -> None:
        if self.fd is None:
            return
        fd, self.fd = self.fd, None
        try:
            _unlock(fd)
        finally:
            os.close(fd)

    def __del__(self) -> None:                 # a writer that was never closed
        try:
            self.release()
        except Exception:
            pass


def _read_info(fd: int) -> Dict[str, Any]:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        raw = os.read(fd, 4096)
        info = json.loads(raw.decode() or "{}")
        return info if isinstance(info, dict) else {}
    except (OSError, ValueError):
        return {}


def describe(info: Dict[str, Any]) -> str:
    """'pid 123 on host, started 2026-01-01 12:00:00 UTC, run 4' from what a lock holds."""
    parts = [f"pid {info.get('pid', '?')}"]
    if info.get("host"):
        parts[0] += f" on {info['host']}"
    started = info.get("started")
    if isinstance(started, (int, float)):
        t = datetime.datetime.fromtimestamp(started, datetime.timezone.utc)
        parts.append(f"started {t:%Y-%m-%d %H:%M:%S} UTC")
    if info.get("run_id") is not None:
        parts.append(f"run {info['run_id']}")
    return ", ".join(parts)
