"""``AuthStore`` on the embedded SQLite store: writes go through its one writer thread."""

from __future__ import annotations

import sqlite3

from tidings.store.auth import ApiKey, Tenant
from tidings.store.rows import api_key, api_key_insert
from tidings.store.sql import load_queries
from tidings.store.sqlite.store import SqliteStore

Q = load_queries("tidings.store.sqlite", "auth.sql")


class SqliteAuthStore:
    """Tenants and keys in the tables of migration 0004."""

    def __init__(self, store: SqliteStore) -> None:
        self.store = store  # its writer thread and reader pool

    async def create_tenant(self, tenant: Tenant) -> bool:
        args = (tenant.id, tenant.name, tenant.created_at_us)
        return bool(
            await self.store.write(lambda conn: conn.execute(Q["insert_tenant"], args).rowcount)
        )

    async def get_tenant(self, tenant_id: str) -> Tenant | None:
        def read(conn: sqlite3.Connection) -> Tenant | None:
            row = conn.execute(Q["get_tenant"], (tenant_id,)).fetchone()
            return Tenant(*row) if row else None

        return await self.store.read(read)

    async def list_tenants(self) -> list[Tenant]:
        return await self.store.read(
            lambda conn: [Tenant(*r) for r in conn.execute(Q["list_tenants"])]
        )

    async def create_key(self, key: ApiKey) -> None:
        args = api_key_insert(key)
        await self.store.write(lambda conn: conn.execute(Q["insert_key"], args))

    async def get_key(self, key_id: str) -> ApiKey | None:
        return await self._one(Q["get_key"], key_id)

    async def key_by_hash(self, key_hash: str) -> ApiKey | None:
        return await self._one(Q["key_by_hash"], key_hash)

    async def _one(self, sql: str, arg: str) -> ApiKey | None:
        def read(conn: sqlite3.Connection) -> ApiKey | None:
            row = conn.execute(sql, (arg,)).fetchone()
            return api_key(row) if row else None

        return await self.store.read(read)

    async def list_keys(self, tenant: str | None = None) -> list[ApiKey]:
        sql, args = (Q["list_keys"], ()) if tenant is None else (Q["list_tenant_keys"], (tenant,))
        return await self.store.read(lambda conn: [api_key(r) for r in conn.execute(sql, args)])

    async def revoke_key(self, key_id: str, at_us: int) -> ApiKey | None:
        def write(conn: sqlite3.Connection) -> ApiKey | None:
            if not conn.execute(Q["revoke_key"], (at_us, key_id)).rowcount:
                return None
            row = conn.execute(Q["get_key"], (key_id,)).fetchone()
            return api_key(row) if row else None

        return await self.store.write(write)

    async def count_active_keys(self) -> int:
        return await self.store.read(
            lambda conn: int(conn.execute(Q["count_active_keys"]).fetchone()[0])
        )
