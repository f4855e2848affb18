"""An online copy of a SQLite store, checked before it takes its final name."""

from __future__ import annotations

import math
import os
import sqlite3
import time
from pathlib import Path

from tidings.store.backup import BackupError, BackupReport
from tidings.store.sql import load_queries
from tidings.store.sqlite.integrity import quick_check

QUERIES = load_queries("tidings.store.sqlite", "backup.sql")


def backup_sqlite(source: Path, target: Path, *, overwrite: bool = False) -> BackupReport:
    """Copy ``source`` to ``target`` through SQLite's backup API, while Tidings may be writing.

    The copy is one read transaction of the source, so it is one consistent snapshot (WAL
    lets the writer go on meanwhile). It is written beside ``target`` first, switched to a
    rollback journal so it stands alone as one file, checked, synced, and only then renamed.
    """
    started = time.monotonic()
    if not source.is_file():
        raise BackupError(f"no SQLite store at {source} (set --data-dir or --store)")
    if target.exists() and not overwrite:
        raise BackupError(f"{target} exists; pass --overwrite to replace it")
    if target.is_dir():
        raise BackupError(f"{target} is a directory; name the backup file")
    if target.resolve() == source.resolve():
        raise BackupError("the backup cannot be the store itself")
    partial = target.with_name(target.name + ".partial")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        partial.unlink(missing_ok=True)
        partial.touch()  # a target that cannot be written is named as such, before the copy
    except OSError as error:
        raise BackupError(f"cannot write {target}: {error.strerror or error}") from None
    try:
        _copy(source, partial)
        check, events, head = _inspect(partial)
        if check != "ok":
            raise BackupError(f"the copy failed PRAGMA quick_check: {check}")
        _fsync(partial)
        os.replace(partial, target)
        _fsync(target.parent)
    except sqlite3.Error as error:
        raise BackupError(f"the backup of {source} failed: {error}") from None
    except OSError as error:
        raise BackupError(f"cannot write {target}: {error.strerror or error}") from None
    finally:
        partial.unlink(missing_ok=True)
    return BackupReport(
        source, target, target.stat().st_size, head, events, check, time.monotonic() - started
    )


def _copy(source: Path, partial: Path) -> None:
    # mode=ro: a missing or moved store is an error, never a new empty file.
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True, timeout=30.0)
    try:
        dst = sqlite3.connect(str(partial), isolation_level=None)
        try:
            src.backup(dst)  # every page in one step: one snapshot of the source
            dst.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
        finally:
            dst.close()
    finally:
        src.close()


def _inspect(path: Path) -> tuple[str, int, int]:
    """``PRAGMA quick_check`` of the copy (to the end: a backup is worth the wait), its event
    count and its highest position."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        check = quick_check(conn, timeout_s=math.inf)
        if not check.ok:
            return check.describe(), 0, 0
        events = int(conn.execute(QUERIES["count_events"]).fetchone()[0])
        head = int(conn.execute(QUERIES["sequence_position"]).fetchone()[0])
    except sqlite3.DatabaseError as error:  # "file is not a database" and the like
        return str(error), 0, 0
    finally:
        conn.close()
    return check.describe(), events, head


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
