"""The PostgreSQL backend: every protocol over one database and one connection pool."""

from __future__ import annotations

from tidings.store.backend import Backend, redact
from tidings.store.postgres.auth import PostgresAuthStore
from tidings.store.postgres.dead_letters import PostgresDeadLetters
from tidings.store.postgres.deliveries import PostgresDeliveryStore
from tidings.store.postgres.leases import PostgresLeases
from tidings.store.postgres.sink_cursors import PostgresSinkCursors
from tidings.store.postgres.store import PostgresStore
from tidings.store.postgres.transfer import PostgresTransfer


def postgres_backend(url: str, *, pool_size: int = 10) -> Backend:
    events = PostgresStore(url, pool_size=pool_size)
    return Backend(
        url=redact(url),
        events=events,
        deliveries=PostgresDeliveryStore(events),
        sink_cursors=PostgresSinkCursors(events),
        dead_letters=PostgresDeadLetters(events),
        leases=PostgresLeases(events),
        auth=PostgresAuthStore(events),
        transfer=PostgresTransfer(events),
    )


def open_backend(url: str) -> Backend:
    """What ``tidings.store.open_backend`` calls for a ``postgresql://`` URL."""
    return postgres_backend(url)
