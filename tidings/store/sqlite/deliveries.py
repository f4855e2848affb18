"""``DeliveryStore`` on the embedded SQLite store: writes go through its one writer thread."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from tidings.store import delivery_rows
from tidings.store.base import purge_in_chunks
from tidings.store.deliveries import (
    Attempt,
    AttemptRecord,
    Delivery,
    DeliveryStats,
    Endpoint,
    EndpointAttempts,
    Status,
)
from tidings.store.sql import load_queries
from tidings.store.sqlite.store import SqliteStore

Q = load_queries("tidings.store.sqlite", "deliveries.sql")
PURGE_CHUNK = 1000


def _attempts(conn: sqlite3.Connection, delivery_id: str) -> list[Attempt]:
    return [Attempt(*r) for r in conn.execute(Q["select_attempts"], (delivery_id,))]


class SqliteDeliveryStore:
    def __init__(self, store: SqliteStore) -> None:
        self._store = store  # its writer thread serialises every write

    async def create_endpoint(self, endpoint: Endpoint) -> None:
        args = delivery_rows.endpoint_insert(endpoint)
        await self._store.write(lambda conn: conn.execute(Q["insert_endpoint"], args))

    async def save_endpoint(self, endpoint: Endpoint) -> None:
        args = delivery_rows.endpoint_update(endpoint)
        await self._store.write(lambda conn: conn.execute(Q["update_endpoint"], args))

    async def delete_endpoint(self, tenant: str, endpoint_id: str, now_us: int = 0) -> bool:
        def run(conn: sqlite3.Connection) -> bool:
            conn.execute(Q["cancel_pending"], (now_us, tenant, endpoint_id))
            return conn.execute(Q["delete_endpoint"], (tenant, endpoint_id)).rowcount > 0

        return await self._store.write(run)

    async def get_endpoint(self, tenant: str, endpoint_id: str) -> Endpoint | None:
        def run(conn: sqlite3.Connection) -> Endpoint | None:
            row = conn.execute(Q["select_endpoint"], (tenant, endpoint_id)).fetchone()
            return delivery_rows.endpoint_from(row) if row else None

        return await self._store.read(run)

    async def list_endpoints(self, tenant: str | None) -> list[Endpoint]:
        return await self._store.read(
            lambda conn: [
                delivery_rows.endpoint_from(r)
                for r in conn.execute(Q["select_endpoints"], (tenant,))
            ]
        )

    async def dispatch(
        self,
        deliveries: Sequence[Delivery],
        cursors: dict[str, int],
        lease_until_us: int | None = None,
    ) -> None:
        rows = delivery_rows.delivery_inserts(deliveries, lease_until_us)
        moves = delivery_rows.cursor_moves(cursors)

        def run(conn: sqlite3.Connection) -> None:
            conn.executemany(Q["insert_delivery"], rows)
            conn.executemany(Q["move_cursor"], moves)

        await self._store.write(run)

    async def claim_due(self, now_us: int, limit: int, lease_until_us: int) -> list[Delivery]:
        """Lease up to ``limit`` due deliveries, the longest-waiting first, in one statement."""

        def run(conn: sqlite3.Connection) -> list[Delivery]:
            rows = conn.execute(Q["claim_due"], (now_us, limit, lease_until_us)).fetchall()
            return delivery_rows.by_due_time(map(delivery_rows.delivery_from, rows))

        return await self._store.write(run)

    async def record(self, records: Sequence[AttemptRecord], now_us: int) -> None:
        """Log the attempts and settle their deliveries; each endpoint is updated once."""
        batch = delivery_rows.RecordedBatch.of(records, now_us)

        def run(conn: sqlite3.Connection) -> None:
            conn.executemany(Q["insert_attempt"], batch.attempts)
            conn.executemany(Q["finish_attempt"], batch.settled)
            conn.executemany(Q["endpoint_succeeded"], [(w,) for w in batch.cleared])
            failed = [(at, w) for w, at in batch.first_failure.items()]
            conn.executemany(Q["endpoint_failed"], failed)

        await self._store.write(run)

    async def release_leases(self) -> None:
        await self._store.write(lambda conn: conn.execute(Q["release_leases"]))

    async def cancel_pending(self, tenant: str, endpoint_id: str, now_us: int = 0) -> int:
        return await self._store.write(
            lambda conn: conn.execute(Q["cancel_pending"], (now_us, tenant, endpoint_id)).rowcount
        )

    async def cancel_deliveries(self, delivery_ids: Sequence[str], now_us: int) -> None:
        rows = [(now_us, delivery_id) for delivery_id in delivery_ids]
        await self._store.write(lambda conn: conn.executemany(Q["cancel_delivery"], rows))

    async def get_delivery(
        self, tenant: str, delivery_id: str
    ) -> tuple[Delivery, list[Attempt]] | None:
        def run(conn: sqlite3.Connection) -> tuple[Delivery, list[Attempt]] | None:
            row = conn.execute(Q["select_delivery"], (tenant, delivery_id)).fetchone()
            if row is None:
                return None
            return delivery_rows.delivery_from(row), _attempts(conn, delivery_id)

        return await self._store.read(run)

    async def list_deliveries(
        self, tenant: str, endpoint_id: str, status: Status | None, limit: int, before: str | None
    ) -> list[tuple[Delivery, list[Attempt]]]:
        def run(conn: sqlite3.Connection) -> list[tuple[Delivery, list[Attempt]]]:
            rows = conn.execute(
                Q["select_deliveries"], (tenant, endpoint_id, status, before, limit)
            )
            found = [delivery_rows.delivery_from(r) for r in rows.fetchall()]
            return [(d, _attempts(conn, d.id)) for d in found]

        return await self._store.read(run)

    async def retry_delivery(self, tenant: str, delivery_id: str, now_us: int) -> Delivery | None:
        def run(conn: sqlite3.Connection) -> Delivery | None:
            conn.execute(Q["retry_delivery"], (now_us, now_us, tenant, delivery_id))
            row = conn.execute(Q["select_delivery"], (tenant, delivery_id)).fetchone()
            return delivery_rows.delivery_from(row) if row else None

        return await self._store.write(run)

    async def retention_floor(self) -> int | None:
        def run(conn: sqlite3.Connection) -> int | None:
            return delivery_rows.lowest(
                conn.execute(Q[name]).fetchone()[0] for name in ("floor_pending", "floor_cursors")
            )

        return await self._store.read(run)

    async def purge_finished(self, older_than_us: int) -> int:
        def chunk(conn: sqlite3.Connection) -> int:
            ids = [
                r[0] for r in conn.execute(Q["purge_finished_chunk"], (older_than_us, PURGE_CHUNK))
            ]
            conn.executemany(Q["delete_attempts"], [(i,) for i in ids])
            return len(ids)

        return await purge_in_chunks(lambda: self._store.write(chunk), PURGE_CHUNK)

    async def stats(self, tenant: str, now_us: int) -> DeliveryStats:
        def run(conn: sqlite3.Connection) -> DeliveryStats:
            by_status = dict(conn.execute(Q["count_by_status"], (tenant,)).fetchall())
            oldest = conn.execute(Q["oldest_pending"], (tenant,)).fetchone()[0]
            recent = dict(
                conn.execute(
                    Q["attempts_since"], (tenant, now_us - delivery_rows.HOUR_US)
                ).fetchall()
            )
            return DeliveryStats(by_status, oldest, recent)

        return await self._store.read(run)

    async def endpoint_attempts(self, tenant: str, since_us: int) -> dict[str, EndpointAttempts]:
        def run(conn: sqlite3.Connection) -> dict[str, EndpointAttempts]:
            rows = conn.execute(Q["attempts_by_endpoint_since"], (tenant, since_us))
            return {wid: EndpointAttempts(int(ok), int(n) - int(ok)) for wid, ok, n in rows}

        return await self._store.read(run)
