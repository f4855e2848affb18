"""Pages over a ``time_since``/``time_until`` window on SQLite, through the block summary."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from typing import Any

from tidings.store.base import Query
from tidings.store.sql import load_queries
from tidings.store.sqlite.filter_sql import query_sql
from tidings.store.time_blocks import BLOCK, Window, segments

Q = load_queries("tidings.store.sqlite", "time_blocks.sql")
_LOWEST, _HIGHEST = -(2**63), 2**63 - 1


def has_time_window(query: Query) -> bool:
    return query.time_since_us is not None or query.time_until_us is not None


def time_page(conn: sqlite3.Connection, tenant: str, query: Query) -> list[tuple[Any, ...]]:
    """The rows of ``query`` (seq bounds only, no ``since``/``until``), in its order."""
    if query.limit <= 0:
        return []
    summarised = int(conn.execute(Q["summarised"]).fetchone()[0])
    window = Window(query.order, query.after, query.before)
    first, last = window.block_range(summarised)
    since = _LOWEST if query.time_since_us is None else query.time_since_us
    until = _HIGHEST if query.time_until_us is None else query.time_until_us
    name = "overlapping_asc" if query.order == "asc" else "overlapping_desc"
    blocks = conn.execute(Q[name], (tenant, first, last, since, until)) if first <= last else []
    rows: list[tuple[Any, ...]] = []
    for after, before in segments(window, summarised, (b for (b,) in blocks)):
        part = replace(query, after=after, before=before, limit=query.limit - len(rows))
        sql, params = query_sql(tenant, part)
        rows.extend(conn.execute(sql, params))
        if len(rows) >= query.limit:
            break
    return rows


def summarise(conn: sqlite3.Connection, start: int, end: int) -> list[tuple[Any, ...]]:
    """Each tenant's least and greatest time in the blocks from ``start`` to before ``end``."""
    return conn.execute(Q["summarise"], (BLOCK, start * BLOCK, end * BLOCK)).fetchall()


def record(conn: sqlite3.Connection, rows: list[tuple[Any, ...]], end: int) -> None:
    """Store summarised blocks (widening any already there) and move the mark to ``end``."""
    conn.executemany(Q["put_block"], rows)
    conn.execute(Q["summarised_to"], (end,))


def prune(conn: sqlite3.Connection) -> None:
    conn.execute(Q["prune"], (BLOCK,))


def summarised(conn: sqlite3.Connection) -> int:
    return int(conn.execute(Q["summarised"]).fetchone()[0])
