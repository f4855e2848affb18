"""The store as the rest of Tidings sees it: one bundle of narrow protocols over one database.

``open_backend`` reads ``TIDINGS_STORE`` and builds the bundle of the implementation it names;
nothing outside ``tidings.store`` ever names an implementation. The members share the event
log's resources (its file, its connection pool): open and close the backend, not a member.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

from tidings.store.auth import AuthStore
from tidings.store.base import Store
from tidings.store.dead_letters import DeadLetterStore
from tidings.store.deliveries import DeliveryStore
from tidings.store.leases import Leases
from tidings.store.sink_cursors import SinkCursors
from tidings.store.transfer import Transfer

POSTGRES_SCHEMES = ("postgresql://", "postgres://")


@dataclass(frozen=True, slots=True)
class Backend:
    """Every kind of state Tidings keeps, each behind its own protocol."""

    url: str  # what it was opened from, without a password (for logs and start-up)
    events: Store  # the event log: group commit, reads by position, queries, idempotency
    deliveries: DeliveryStore  # webhook endpoints, their cursors, deliveries and attempts
    sink_cursors: SinkCursors  # durable positions of the other sinks (the MQTT bridge)
    dead_letters: DeadLetterStore  # input parked with its raw bytes and the reason
    leases: Leases  # work owned by one node at a time
    auth: AuthStore  # tenants and their API keys (stored hashed)
    transfer: Transfer  # rows as stored, for copying to another backend (migrate-store)

    async def open(self) -> None:
        """Create or migrate the schema and start serving (the members share it)."""
        await self.events.open()

    async def close(self) -> None:
        await self.events.close()

    async def retention_floor(self) -> int | None:
        """The lowest event position any sink still needs, None when no sink needs one.

        Every sink counts — webhook deliveries and cursors, the MQTT bridge's cursors — so the
        scheduled purge and ``tidings purge`` keep exactly the same events.
        """
        floors = (
            await self.deliveries.retention_floor(),
            await self.sink_cursors.retention_floor(),
        )
        known = [floor for floor in floors if floor is not None]
        return min(known) if known else None


def open_backend(
    url: str | None, data_dir: Path, *, synchronous: str = "FULL", quick_check_s: float = 0.0
) -> Backend:
    """The backend ``TIDINGS_STORE`` names (not yet open).

    ``sqlite:///path`` (``sqlite:///relative`` or ``sqlite:////absolute``), or none for
    ``<data dir>/tidings.db``; ``postgresql://...`` is served by ``tidings.store.postgres``,
    whose ``open_backend(url)`` builds its bundle. ValueError names a URL that cannot be used.
    ``quick_check_s`` bounds SQLite's integrity check when the store opens (0: none).
    """
    if is_postgres(url):
        assert url is not None
        return _postgres(url)
    return _sqlite(sqlite_path(url, data_dir), synchronous, quick_check_s)


def is_postgres(url: str | None) -> bool:
    return bool(url) and str(url).startswith(POSTGRES_SCHEMES)


def sqlite_path(url: str | None, data_dir: Path) -> Path:
    """The SQLite file a store URL names; ValueError for a URL that is not SQLite's."""
    if not url:
        return data_dir / "tidings.db"
    if url.startswith("sqlite://"):
        path = url.removeprefix("sqlite:///") if url.startswith("sqlite:///") else url[9:]
        if not path:
            raise ValueError("TIDINGS_STORE: sqlite:/// needs a file path, e.g. sqlite:///t.db")
        return Path(path)
    raise ValueError(
        f"TIDINGS_STORE: unsupported store URL {redact(url)!r}; "
        "use sqlite:///path or postgresql://user@host/database"
    )


def _sqlite(path: Path, synchronous: str, quick_check_s: float) -> Backend:
    from tidings.store.sqlite.backend import sqlite_backend

    return sqlite_backend(path, synchronous=synchronous, quick_check_s=quick_check_s)


def _postgres(url: str) -> Backend:
    try:
        module = importlib.import_module("tidings.store.postgres")
    except ModuleNotFoundError as error:
        if error.name == "asyncpg":
            raise ValueError(
                "TIDINGS_STORE: the PostgreSQL store needs asyncpg (pip install asyncpg)"
            ) from None
        if error.name is not None and error.name.startswith("tidings.store.postgres"):
            raise ValueError(
                "TIDINGS_STORE: this build of Tidings has no PostgreSQL store "
                "(tidings.store.postgres is missing); use sqlite:///path"
            ) from None
        raise
    backend: Backend = module.open_backend(url)
    return backend


def redact(url: str) -> str:
    """The URL without its password, safe to print."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    credentials, _, location = rest.rpartition("@")
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}{':***' if ':' in credentials else ''}@{location}"
