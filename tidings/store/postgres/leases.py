"""``Leases`` on PostgreSQL: each operation is one statement, so the row lock it takes decides
between nodes racing for the same lease."""

from __future__ import annotations

from typing import Any

from tidings.store.leases import Lease, check_ttl
from tidings.store.postgres.store import PostgresStore
from tidings.store.rows import lease
from tidings.store.sql import load_queries

Q = load_queries("tidings.store.postgres", "leases.sql")


class PostgresLeases:
    def __init__(self, store: PostgresStore) -> None:
        self._store = store  # its pool

    async def acquire(
        self, name: str, holder: str, now_us: int, ttl_us: int, tenant: str = "default"
    ) -> Lease | None:
        check_ttl(ttl_us)
        args = (name, tenant, holder, now_us + ttl_us, now_us)

        async def run(conn: Any) -> Lease | None:
            return lease(await conn.fetchrow(Q["acquire_lease"], *args))

        return await self._store.run(run)

    async def renew(self, name: str, holder: str, now_us: int, ttl_us: int) -> Lease | None:
        check_ttl(ttl_us)
        args = (name, holder, now_us, now_us + ttl_us)

        async def run(conn: Any) -> Lease | None:
            return lease(await conn.fetchrow(Q["renew_lease"], *args))

        return await self._store.run(run)

    async def release(self, name: str, holder: str) -> bool:
        async def run(conn: Any) -> bool:
            status: str = await conn.execute(Q["release_lease"], name, holder)
            return status != "UPDATE 0"

        return await self._store.run(run)

    async def get(self, name: str) -> Lease | None:
        async def run(conn: Any) -> Lease | None:
            return lease(await conn.fetchrow(Q["get_lease"], name))

        return await self._store.run(run)
