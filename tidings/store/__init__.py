"""The durable event log: a protocol and one module per implementation."""

from __future__ import annotations

from pathlib import Path

from tidings.store.base import CommitListener, Query, Store, StoreStats
from tidings.store.errors import StoreOpenError

__all__ = [
    "CommitListener",
    "Query",
    "Store",
    "StoreOpenError",
    "StoreStats",
    "open_store_from_url",
]


def open_store_from_url(
    url: str | None, data_dir: Path, *, synchronous: str = "FULL", quick_check_s: float = 0.0
) -> Store:
    """The store a URL names: ``sqlite:///path`` (default: ``<data dir>/tidings.db``).

    ``quick_check_s`` bounds the integrity check run when the store opens (0: none).
    """
    from tidings.store.sqlite import SqliteStore

    def sqlite(path: Path) -> Store:
        return SqliteStore(path, synchronous=synchronous, quick_check_s=quick_check_s)

    if not url:
        return sqlite(data_dir / "tidings.db")
    if url.startswith("sqlite:///"):
        return sqlite(Path(url.removeprefix("sqlite:///")))
    if url.startswith("sqlite://"):
        return sqlite(Path(url.removeprefix("sqlite://")))
    if url.startswith(("postgresql://", "postgres://")):
        raise ValueError("TIDINGS_STORE: the PostgreSQL store is not available in this version")
    raise ValueError(f"TIDINGS_STORE: unsupported store URL {url!r}; use sqlite:///path")
