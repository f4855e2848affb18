"""The durable event log: a protocol and one module per implementation."""

from __future__ import annotations

from pathlib import Path

from tidings.store.base import (
    BucketCount,
    CommitListener,
    CountQuery,
    GroupBy,
    Query,
    Store,
    StoreStats,
)

__all__ = [
    "BucketCount",
    "CommitListener",
    "CountQuery",
    "GroupBy",
    "Query",
    "Store",
    "StoreStats",
    "open_store_from_url",
]


def open_store_from_url(url: str | None, data_dir: Path, *, synchronous: str = "FULL") -> Store:
    """The store a URL names: ``sqlite:///path`` (default: ``<data dir>/tidings.db``)."""
    from tidings.store.sqlite import SqliteStore

    if not url:
        return SqliteStore(data_dir / "tidings.db", synchronous=synchronous)
    if url.startswith("sqlite:///"):
        return SqliteStore(Path(url.removeprefix("sqlite:///")), synchronous=synchronous)
    if url.startswith("sqlite://"):
        return SqliteStore(Path(url.removeprefix("sqlite://")), synchronous=synchronous)
    if url.startswith(("postgresql://", "postgres://")):
        raise ValueError("TIDINGS_STORE: the PostgreSQL store is not available in this version")
    raise ValueError(f"TIDINGS_STORE: unsupported store URL {url!r}; use sqlite:///path")
