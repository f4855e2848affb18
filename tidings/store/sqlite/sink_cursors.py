"""``SinkCursors`` on the embedded SQLite store."""

from __future__ import annotations

import sqlite3

from tidings.store.sink_cursors import SinkCursor
from tidings.store.sql import load_queries
from tidings.store.sqlite.store import SqliteStore

Q = load_queries("tidings.store.sqlite", "sink_cursors.sql")


class SqliteSinkCursors:
    def __init__(self, store: SqliteStore) -> None:
        self._store = store  # its writer thread serialises every write

    async def sink_cursor(self, sink: str) -> int | None:
        def run(conn: sqlite3.Connection) -> int | None:
            row = conn.execute(Q["get_sink_cursor"], (sink,)).fetchone()
            return int(row[0]) if row else None

        return await self._store.read(run)

    async def set_sink_cursor(self, sink: str, tenant: str, position: int, now_us: int) -> None:
        args = (sink, tenant, position, now_us)
        await self._store.write(lambda conn: conn.execute(Q["set_sink_cursor"], args))

    async def list_sink_cursors(self) -> list[SinkCursor]:
        return await self._store.read(
            lambda conn: [SinkCursor(*row) for row in conn.execute(Q["list_sink_cursors"])]
        )

    async def delete_sink_cursor(self, sink: str) -> bool:
        return await self._store.write(
            lambda conn: conn.execute(Q["delete_sink_cursor"], (sink,)).rowcount > 0
        )

    async def retention_floor(self) -> int | None:
        def run(conn: sqlite3.Connection) -> int | None:
            value = conn.execute(Q["floor_sink_cursors"]).fetchone()[0]
            return int(value) if value is not None else None

        return await self._store.read(run)
