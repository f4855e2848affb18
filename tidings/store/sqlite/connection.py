"""Opening SQLite connections the way Tidings needs them."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from tidings.store.sqlite.filter_sql import regexp

SYNCHRONOUS_MODES = ("OFF", "NORMAL", "FULL", "EXTRA")


def connect(
    path: Path | str,
    *,
    synchronous: str = "FULL",
    readonly: bool = False,
    cached_statements: int = 128,
) -> sqlite3.Connection:
    """An autocommit connection in WAL mode: callers open transactions explicitly.

    ``check_same_thread`` is off because a connection moves between pool threads, but it is
    only ever used by one thread at a time.
    """
    conn = sqlite3.connect(
        str(path),
        isolation_level=None,
        check_same_thread=False,
        timeout=30.0,
        cached_statements=cached_statements,
    )
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute("PRAGMA busy_timeout=30000")
    conn.execute("PRAGMA foreign_keys=ON")
    if readonly:
        conn.execute("PRAGMA query_only=ON")
    conn.create_function("regexp", 2, regexp, deterministic=True)
    return conn
