"""The PostgreSQL store (asyncpg): one database shared by every node."""

from tidings.store.postgres.backend import open_backend, postgres_backend
from tidings.store.postgres.store import PostgresStore

__all__ = ["PostgresStore", "open_backend", "postgres_backend"]
