"""Numbered migrations, applied together in one transaction (nothing is ever half-migrated)."""

from __future__ import annotations

import logging
from typing import Any

from tidings.store.errors import StoreOpenError
from tidings.store.postgres.connection import MIGRATION_LOCK
from tidings.store.sql import load_migrations

log = logging.getLogger("tidings.store")

MIGRATIONS = "tidings.store.postgres.migrations"


def latest_version() -> int:
    migrations = load_migrations(MIGRATIONS)
    return migrations[-1][0] if migrations else 0


async def migrate(conn: Any, *, target: int | None = None, where: str = "database") -> int:
    """Bring the schema to ``target`` (default: the latest); returns the version.

    Several nodes may start at once: the advisory lock lets one migrate while the others wait
    and then find nothing to do.
    """
    migrations = load_migrations(MIGRATIONS)
    versions = [version for version, _, _ in migrations]
    if len(set(versions)) != len(versions):  # two files of one number: one would be skipped
        raise RuntimeError(f"PostgreSQL migrations share a number: {versions}")
    latest = migrations[-1][0] if migrations else 0
    target = latest if target is None else target
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
        await conn.execute("CREATE TABLE IF NOT EXISTS tidings_schema (version integer NOT NULL)")
        current = await conn.fetchval("SELECT max(version) FROM tidings_schema") or 0
        if current > latest:
            raise StoreOpenError(
                where,
                f"the schema is version {current}, newer than this Tidings knows ({latest}); "
                "upgrade Tidings",
            )
        for version, name, sql in migrations:
            if current < version <= target:
                log.info("migrating the PostgreSQL store to version %d (%s)", version, name)
                await conn.execute(sql)
                current = version
        await conn.execute("DELETE FROM tidings_schema")
        await conn.execute("INSERT INTO tidings_schema (version) VALUES ($1)", current)
    return int(current)
