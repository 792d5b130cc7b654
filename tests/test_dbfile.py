"""The database file: only orpflow databases are modified, new files are private, and one
process writes a database at a time (readers always may)."""
from __future__ import annotations

import hashlib
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from orpflow.config import PersistenceConfig
from orpflow.dbfile import APPLICATION_ID, DatabaseLocked, PersistenceError
from orpflow.persistence import SCHEMA_VERSION, Store, Writer
from test_engine import sample_config

apsw = pytest.importorskip("apsw")


def writer(path: Path, strategy: str = "s") -> Writer:
    cfg = sample_config()
    return Writer(str(path), PersistenceConfig(path=str(path)), strategy, cfg.make_instruments(), "{}", [0])


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def foreign_db(path: Path, app_id: int = 0, wal: bool = False) -> None:
    conn = apsw.Connection(str(path))
    if wal:
        conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE notes(x TEXT); INSERT INTO notes VALUES('mine')")
    if app_id:
        conn.execute(f"PRAGMA application_id={app_id}")
    conn.close()


def test_new_database_is_private_and_stamped(tmp_path: Path) -> None:
    db = tmp_path / "new.db"
    old = os.umask(0o022)
    try:
        w = writer(db)
    finally:
        os.umask(old)
    try:
        assert stat.S_IMODE(db.stat().st_mode) == 0o600
        wal = Path(str(db) + "-wal")
        assert wal.exists() and stat.S_IMODE(wal.stat().st_mode) == 0o600
        head = db.read_bytes()[:100]
        assert int.from_bytes(head[68:72], "big") == APPLICATION_ID
        assert int.from_bytes(head[60:64], "big") == SCHEMA_VERSION
    finally:
        w.close("finished", 0)
    with Store(str(db)) as s:
        assert s.query("PRAGMA application_id")[0][0] == APPLICATION_ID
        assert list(s.runs()["status"]) == ["finished"]


def test_an_empty_file_becomes_a_database(tmp_path: Path) -> None:
    db = tmp_path / "empty.db"
    db.write_bytes(b"")
    writer(db).close("finished", 0)
    with Store(str(db)) as s:
        assert len(s.runs()) == 1


@pytest.mark.parametrize("kind", ["text", "foreign", "foreign-wal", "other-app", "orpflow-v1"])
def test_other_files_are_never_modified(tmp_path: Path, kind: str) -> None:
    db = tmp_path / "x.db"
    if kind == "text":
        db.write_text("just some notes, not a database\n" * 10)
        message = "not an SQLite database"
    elif kind in ("foreign", "foreign-wal"):
        foreign_db(db, wal=kind == "foreign-wal")
        message = "another application"
    elif kind == "other-app":
        foreign_db(db, app_id=0x12345678)
        message = "application_id 0x12345678"
    else:
        conn = apsw.Connection(str(db))            # an orpflow database from before schema 2
        conn.execute("CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT); "
                     "INSERT INTO meta VALUES('schema_version', '1')")
        conn.close()
        message = "schema version 1"
    before = digest(db)
    with pytest.raises(PersistenceError, match=message):
        writer(db)
    with pytest.raises(PersistenceError, match=message):
        Store(str(db))
    assert digest(db) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.db"]      # no -wal, -shm or lock file


def test_a_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PersistenceError, match="is a directory"):
        writer(tmp_path)
    with pytest.raises(PersistenceError, match="folder does not exist"):
        writer(tmp_path / "no" / "such.db")


def test_one_writer_readers_allowed(tmp_path: Path) -> None:
    db = tmp_path / "w.db"
    first = writer(db)
    try:
        with pytest.raises(DatabaseLocked, match=rf"pid {os.getpid()}.*started .* UTC, run {first.run_id}"):
            writer(db)
        with Store(str(db)) as s:                  # readers are not locked out
            assert list(s.runs()["status"]) == ["running"]
    finally:
        first.close("finished", 0)
    second = writer(db)                            # allowed once the first has closed
    second.close("finished", 0)
    with Store(str(db)) as s:
        assert list(s.runs()["status"]) == ["finished", "finished"]   # the refusal changed nothing


def test_a_killed_writer_does_not_block(tmp_path: Path) -> None:
    """The kernel drops the lock of a dead process, whatever its lock file still says."""
    db = tmp_path / "k.db"
    code = (f"import sys, os; sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
            "from test_dbfile import writer\n"
            f"w = writer(__import__('pathlib').Path({str(db)!r}))\n"
            "print('open', flush=True)\n"
            "os.kill(os.getpid(), 9)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=str(tmp_path))
    assert r.stdout.strip() == "open" and r.returncode == -9, r.stderr
    assert "pid" in Path(str(db) + ".lock").read_text()        # stale content, no lock
    w = writer(db)
    try:
        with Store(str(db)) as s:
            assert list(s.runs()["status"]) == ["crashed", "running"]
    finally:
        w.close("finished", 0)
