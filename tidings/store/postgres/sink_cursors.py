"""``SinkCursors`` on PostgreSQL."""

from __future__ import annotations

from typing import Any

from tidings.store.postgres.store import PostgresStore
from tidings.store.sink_cursors import SinkCursor
from tidings.store.sql import load_queries

Q = load_queries("tidings.store.postgres", "sink_cursors.sql")


class PostgresSinkCursors:
    def __init__(self, store: PostgresStore) -> None:
        self._store = store  # its pool

    async def sink_cursor(self, sink: str) -> int | None:
        value = await self._store.run(lambda conn: conn.fetchval(Q["get_sink_cursor"], sink))
        return None if value is None else int(value)

    async def set_sink_cursor(self, sink: str, tenant: str, position: int, now_us: int) -> None:
        await self._store.run(
            lambda conn: conn.execute(Q["set_sink_cursor"], sink, tenant, position, now_us)
        )

    async def list_sink_cursors(self) -> list[SinkCursor]:
        async def run(conn: Any) -> list[SinkCursor]:
            return [SinkCursor(*row) for row in await conn.fetch(Q["list_sink_cursors"])]

        return await self._store.run(run)

    async def delete_sink_cursor(self, sink: str) -> bool:
        async def run(conn: Any) -> bool:
            status: str = await conn.execute(Q["delete_sink_cursor"], sink)
            return status != "DELETE 0"

        return await self._store.run(run)

    async def retention_floor(self) -> int | None:
        value = await self._store.run(lambda conn: conn.fetchval(Q["floor_sink_cursors"]))
        return None if value is None else int(value)
