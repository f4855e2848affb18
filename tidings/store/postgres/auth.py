"""``AuthStore`` on PostgreSQL: tenants and keys in the tables of migration 0005."""

from __future__ import annotations

from typing import Any

from tidings.store.auth import ApiKey, Tenant
from tidings.store.postgres.store import PostgresStore
from tidings.store.rows import api_key, api_key_insert
from tidings.store.sql import load_queries

Q = load_queries("tidings.store.postgres", "auth.sql")


class PostgresAuthStore:
    def __init__(self, store: PostgresStore) -> None:
        self._store = store  # its pool

    async def create_tenant(self, tenant: Tenant) -> bool:
        async def run(conn: Any) -> bool:
            status: str = await conn.execute(
                Q["insert_tenant"], tenant.id, tenant.name, tenant.created_at_us
            )
            return status != "INSERT 0 0"

        return await self._store.run(run)

    async def get_tenant(self, tenant_id: str) -> Tenant | None:
        row = await self._store.run(lambda conn: conn.fetchrow(Q["get_tenant"], tenant_id))
        return Tenant(*row) if row is not None else None

    async def list_tenants(self) -> list[Tenant]:
        rows = await self._store.run(lambda conn: conn.fetch(Q["list_tenants"]))
        return [Tenant(*row) for row in rows]

    async def create_key(self, key: ApiKey) -> None:
        args = api_key_insert(key)
        await self._store.run(lambda conn: conn.execute(Q["insert_key"], *args))

    async def get_key(self, key_id: str) -> ApiKey | None:
        row = await self._store.run(lambda conn: conn.fetchrow(Q["get_key"], key_id))
        return api_key(row) if row is not None else None

    async def key_by_hash(self, key_hash: str) -> ApiKey | None:
        row = await self._store.run(lambda conn: conn.fetchrow(Q["key_by_hash"], key_hash))
        return api_key(row) if row is not None else None

    async def list_keys(self, tenant: str | None = None) -> list[ApiKey]:
        if tenant is None:
            rows = await self._store.run(lambda conn: conn.fetch(Q["list_keys"]))
        else:
            rows = await self._store.run(lambda conn: conn.fetch(Q["list_tenant_keys"], tenant))
        return [api_key(row) for row in rows]

    async def revoke_key(self, key_id: str, at_us: int) -> ApiKey | None:
        row = await self._store.run(lambda conn: conn.fetchrow(Q["revoke_key"], at_us, key_id))
        return api_key(row) if row is not None else None

    async def count_active_keys(self) -> int:
        count = await self._store.run(lambda conn: conn.fetchval(Q["count_active_keys"]))
        return int(count)
