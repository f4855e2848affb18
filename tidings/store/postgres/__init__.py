"""The PostgreSQL store (asyncpg): one database shared by every node."""

from tidings.store.postgres.connection import StoreStartError
from tidings.store.postgres.store import PostgresStore

__all__ = ["PostgresStore", "StoreStartError"]
