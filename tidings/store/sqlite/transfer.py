"""``Transfer`` on the embedded SQLite store: imports go through the one writer thread."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from tidings.envelope import Event
from tidings.envelope.timefmt import now_us
from tidings.store.dead_letters import DeadLetter
from tidings.store.deliveries import Attempt, Delivery
from tidings.store.rows import attempt_imports, dead_letter, dead_letter_import, delivery_imports
from tidings.store.sql import load_queries
from tidings.store.sqlite.store import SqliteStore
from tidings.store.transfer import StoredDelivery, StoredEvent

Q = load_queries("tidings.store.sqlite", "transfer.sql")


class SqliteTransfer:
    def __init__(self, store: SqliteStore) -> None:
        self._store = store  # its writer thread and reader pool

    async def is_empty(self) -> bool:
        return not await self._store.read(
            lambda conn: bool(conn.execute(Q["holds_anything"]).fetchone()[0])
        )

    async def export_events(self, after: int, limit: int) -> list[StoredEvent]:
        def read(conn: sqlite3.Connection) -> list[StoredEvent]:
            rows = conn.execute(Q["export_events"], (after, limit)).fetchall()
            return [StoredEvent(Event(*row[:12]), row[12]) for row in rows]

        return await self._store.read(read)

    async def import_events(self, rows: Sequence[StoredEvent]) -> None:
        values = [
            (
                e.seq, e.id, e.type, e.source, e.subject, e.time_us, e.received_at_us,
                e.trace_id, e.idempotency_key, e.data_json, e.metadata_json, e.tenant,
                row.dedupe_key,
            )
            for row in rows
            for e in (row.event,)
        ]  # fmt: skip
        await self._store.write(lambda conn: conn.executemany(Q["import_event"], values))
        await self._store.reload_position()

    async def export_purges(self) -> dict[str, int]:
        return await self._store.read(
            lambda conn: {t: int(p) for t, p in conn.execute(Q["export_purges"]).fetchall()}
        )

    async def import_purges(self, purged: dict[str, int]) -> None:
        stamp = now_us()
        values = [(tenant, through, stamp) for tenant, through in purged.items()]
        await self._store.write(lambda conn: conn.executemany(Q["import_purge"], values))

    async def export_deliveries(self, after_id: str, limit: int) -> list[StoredDelivery]:
        def read(conn: sqlite3.Connection) -> list[StoredDelivery]:
            found = [Delivery(*r) for r in conn.execute(Q["export_deliveries"], (after_id, limit))]
            return [
                StoredDelivery(
                    d, [Attempt(*a) for a in conn.execute(Q["export_attempts"], (d.id,))]
                )
                for d in found
            ]

        return await self._store.read(read)

    async def import_deliveries(self, rows: Sequence[StoredDelivery]) -> None:
        deliveries, attempts = delivery_imports(rows), attempt_imports(rows)

        def run(conn: sqlite3.Connection) -> None:
            conn.executemany(Q["import_delivery"], deliveries)
            conn.executemany(Q["import_attempt"], attempts)

        await self._store.write(run)

    async def export_dead_letters(self, after: int, limit: int) -> list[DeadLetter]:
        def read(conn: sqlite3.Connection) -> list[DeadLetter]:
            rows = conn.execute(Q["export_dead_letters"], (after, limit)).fetchall()
            return [dead_letter(row) for row in rows]

        return await self._store.read(read)

    async def import_dead_letters(self, rows: Sequence[DeadLetter]) -> None:
        values = [dead_letter_import(letter) for letter in rows]
        await self._store.write(lambda conn: conn.executemany(Q["import_dead_letter"], values))
