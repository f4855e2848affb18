"""Is this file a usable SQLite store? Checked before it is opened, and on demand.

``check_location`` refuses what SQLite would otherwise turn into a raw error or, worse, into a
new empty store: a data directory that cannot be created or written, a path that is a
directory, an empty (0-byte) file where a store was, a file that is not SQLite at all.
``quick_check`` runs SQLite's ``PRAGMA quick_check`` within a time bound, so damaged pages are
found at start (and by backups) rather than by the first reader that reaches them.
"""

from __future__ import annotations

import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from tidings.store.errors import StoreOpenError

SQLITE_HEADER = b"SQLite format 3\x00"
PROGRESS_STEPS = 10_000  # virtual machine steps between two looks at the clock


@dataclass(frozen=True)
class QuickCheck:
    """The outcome of ``PRAGMA quick_check``."""

    finished: bool  # False: the time ran out before SQLite was done
    problems: tuple[str, ...]  # SQLite's own descriptions, the first few; empty when sound
    elapsed_s: float

    @property
    def ok(self) -> bool:
        """Finished and found nothing wrong."""
        return self.finished and not self.problems

    def describe(self) -> str:
        if not self.finished:
            return f"not finished within {self.elapsed_s:.1f}s"
        if not self.problems:
            return "ok"
        more = len(self.problems) - 1
        return self.problems[0] + (f" (and {more} more)" if more else "")


def quick_check(conn: sqlite3.Connection, timeout_s: float, max_problems: int = 10) -> QuickCheck:
    """Run ``PRAGMA quick_check`` on ``conn``, interrupted after ``timeout_s`` seconds.

    quick_check verifies every page and record of the file but not that indexes match their
    tables, so it takes about as long as reading the file once.
    """
    started = time.monotonic()
    deadline = started + timeout_s
    conn.set_progress_handler(lambda: int(time.monotonic() > deadline), PROGRESS_STEPS)
    try:
        rows = conn.execute(f"PRAGMA quick_check({int(max_problems)})").fetchall()
    except sqlite3.OperationalError as error:
        if "interrupt" not in str(error):
            return QuickCheck(True, (str(error),), time.monotonic() - started)
        return QuickCheck(False, (), time.monotonic() - started)
    except sqlite3.DatabaseError as error:  # "database disk image is malformed" and the like
        return QuickCheck(True, (str(error),), time.monotonic() - started)
    finally:
        conn.set_progress_handler(None, 0)
    problems = tuple(str(row[0]) for row in rows if row[0] != "ok")
    return QuickCheck(True, problems, time.monotonic() - started)


def check_location(path: Path) -> None:
    """Refuse a database path that SQLite cannot use as a store; create its directory."""
    directory = path.parent
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise StoreOpenError(str(directory), "the data directory is not a directory") from None
    except OSError as error:
        reason = f"the data directory cannot be created: {error.strerror or error}"
        raise StoreOpenError(str(directory), reason) from None
    if not os.access(directory, os.W_OK | os.X_OK):
        raise StoreOpenError(
            str(directory),
            "the data directory is not writable (SQLite keeps its -wal and -shm files there)",
        )
    if path.is_dir():
        raise StoreOpenError(str(path), "the database path is a directory, not a file")
    if not path.exists():
        return
    try:
        with path.open("rb") as file:
            header = file.read(len(SQLITE_HEADER))
    except OSError as error:
        reason = f"the database file cannot be read: {error.strerror or error}"
        raise StoreOpenError(str(path), reason) from None
    if not header:
        raise StoreOpenError(
            str(path),
            "the database file is empty (0 bytes), so its events are gone; a new store is "
            "never created over an existing file: restore it from a backup, or move it away "
            "to start an empty store",
        )
    if header != SQLITE_HEADER:
        raise StoreOpenError(str(path), "the file is not a SQLite database")
