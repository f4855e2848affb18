"""``Leases`` on the embedded SQLite store: each operation is one statement on the writer."""

from __future__ import annotations

import sqlite3

from tidings.store.leases import Lease, check_ttl
from tidings.store.rows import lease
from tidings.store.sql import load_queries
from tidings.store.sqlite.store import SqliteStore

Q = load_queries("tidings.store.sqlite", "leases.sql")


class SqliteLeases:
    def __init__(self, store: SqliteStore) -> None:
        self._store = store  # its writer thread serialises every write

    async def acquire(
        self, name: str, holder: str, now_us: int, ttl_us: int, tenant: str = "default"
    ) -> Lease | None:
        check_ttl(ttl_us)
        args = (name, tenant, holder, now_us + ttl_us, now_us)
        return await self._store.write(
            lambda conn: lease(conn.execute(Q["acquire_lease"], args).fetchone())
        )

    async def renew(self, name: str, holder: str, now_us: int, ttl_us: int) -> Lease | None:
        check_ttl(ttl_us)
        args = (name, holder, now_us, now_us + ttl_us)
        return await self._store.write(
            lambda conn: lease(conn.execute(Q["renew_lease"], args).fetchone())
        )

    async def release(self, name: str, holder: str) -> bool:
        return await self._store.write(
            lambda conn: conn.execute(Q["release_lease"], (name, holder)).rowcount > 0
        )

    async def get(self, name: str) -> Lease | None:
        def run(conn: sqlite3.Connection) -> Lease | None:
            return lease(conn.execute(Q["get_lease"], (name,)).fetchone())

        return await self._store.read(run)
