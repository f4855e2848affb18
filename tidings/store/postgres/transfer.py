"""``Transfer`` on PostgreSQL: event imports run under the log's advisory lock, so positions
stay in commit order even while a node appends."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tidings.envelope import Event
from tidings.envelope.timefmt import now_us
from tidings.store.dead_letters import DeadLetter
from tidings.store.deliveries import Attempt, Delivery
from tidings.store.postgres.filter_sql import document_text
from tidings.store.postgres.store import QUERIES, PostgresStore
from tidings.store.rows import attempt_imports, dead_letter, dead_letter_import, delivery_imports
from tidings.store.sql import load_queries
from tidings.store.transfer import StoredDelivery, StoredEvent

Q = load_queries("tidings.store.postgres", "transfer.sql")


class PostgresTransfer:
    def __init__(self, store: PostgresStore) -> None:
        self._store = store  # its pool

    async def is_empty(self) -> bool:
        held = await self._store.run(lambda conn: conn.fetchval(Q["holds_anything"]))
        return not held

    async def export_events(self, after: int, limit: int) -> list[StoredEvent]:
        async def run(conn: Any) -> list[StoredEvent]:
            rows = await conn.fetch(Q["export_events"], after, limit)
            return [StoredEvent(Event(*row[:12]), row[12]) for row in rows]

        return await self._store.run(run)

    async def import_events(self, rows: Sequence[StoredEvent]) -> None:
        if not rows:
            return
        events = [row.event for row in rows]
        columns = [
            [e.seq for e in events],
            [e.tenant for e in events],
            [e.id for e in events],
            [e.type for e in events],
            [e.source for e in events],
            [e.subject for e in events],
            [e.time_us for e in events],
            [e.trace_id for e in events],
            [e.idempotency_key for e in events],
            [row.dedupe_key for row in rows],
            [e.data_json for e in events],
            [e.metadata_json for e in events],
            [document_text(e.data_json) for e in events],
            [document_text(e.metadata_json) for e in events],
            max(e.received_at_us for e in events),
            [e.received_at_us for e in events],
        ]

        async def run(conn: Any) -> None:
            async with conn.transaction():
                await conn.execute(QUERIES["wait_for_writers"])  # the log lock, until commit
                await conn.execute(Q["import_events"], *columns)
                await conn.execute(Q["move_sequence_past"], max(e.seq for e in events))

        await self._store.run(run)
        await self._store.reload_position()

    async def export_purges(self) -> dict[str, int]:
        async def run(conn: Any) -> dict[str, int]:
            return {r[0]: int(r[1]) for r in await conn.fetch(Q["export_purges"])}

        return await self._store.run(run)

    async def import_purges(self, purged: dict[str, int]) -> None:
        stamp = now_us()
        values = [(tenant, through, stamp) for tenant, through in purged.items()]
        if values:
            await self._store.run(lambda conn: conn.executemany(Q["import_purge"], values))

    async def export_deliveries(self, after_id: str, limit: int) -> list[StoredDelivery]:
        async def run(conn: Any) -> list[StoredDelivery]:
            found = [
                Delivery(*r) for r in await conn.fetch(Q["export_deliveries"], after_id, limit)
            ]
            attempts: dict[str, list[Attempt]] = {d.id: [] for d in found}
            for r in await conn.fetch(Q["export_attempts"], list(attempts)):
                attempts[r[0]].append(Attempt(*r[1:]))
            return [StoredDelivery(d, attempts[d.id]) for d in found]

        return await self._store.run(run)

    async def import_deliveries(self, rows: Sequence[StoredDelivery]) -> None:
        deliveries, attempts = delivery_imports(rows), attempt_imports(rows)

        async def run(conn: Any) -> None:
            async with conn.transaction():
                if deliveries:
                    await conn.executemany(Q["import_delivery"], deliveries)
                if attempts:
                    await conn.executemany(Q["import_attempt"], attempts)

        await self._store.run(run)

    async def export_dead_letters(self, after: int, limit: int) -> list[DeadLetter]:
        async def run(conn: Any) -> list[DeadLetter]:
            rows = await conn.fetch(Q["export_dead_letters"], after, limit)
            return [dead_letter(row) for row in rows]

        return await self._store.run(run)

    async def import_dead_letters(self, rows: Sequence[DeadLetter]) -> None:
        values = [dead_letter_import(letter) for letter in rows]
        if not values:
            return

        async def run(conn: Any) -> None:
            async with conn.transaction():
                await conn.executemany(Q["import_dead_letter"], values)
                await conn.execute(Q["move_dead_letter_sequence_past"])

        await self._store.run(run)
