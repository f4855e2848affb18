"""The embedded backend: every protocol over one SQLite file and its one writer thread."""

from __future__ import annotations

from pathlib import Path

from tidings.store.backend import Backend
from tidings.store.sqlite.auth import SqliteAuthStore
from tidings.store.sqlite.dead_letters import SqliteDeadLetters
from tidings.store.sqlite.deliveries import SqliteDeliveryStore
from tidings.store.sqlite.leases import SqliteLeases
from tidings.store.sqlite.sink_cursors import SqliteSinkCursors
from tidings.store.sqlite.store import SqliteStore
from tidings.store.sqlite.transfer import SqliteTransfer


def sqlite_backend(
    path: Path | str, *, synchronous: str = "FULL", quick_check_s: float = 0.0
) -> Backend:
    events = SqliteStore(path, synchronous=synchronous, quick_check_s=quick_check_s)
    return Backend(
        url=f"sqlite:///{events.path}",
        events=events,
        deliveries=SqliteDeliveryStore(events),
        sink_cursors=SqliteSinkCursors(events),
        dead_letters=SqliteDeadLetters(events),
        leases=SqliteLeases(events),
        auth=SqliteAuthStore(events),
        transfer=SqliteTransfer(events),
    )
