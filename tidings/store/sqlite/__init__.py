"""The embedded SQLite store."""

from tidings.store.sqlite.store import SqliteStore

__all__ = ["SqliteStore"]
