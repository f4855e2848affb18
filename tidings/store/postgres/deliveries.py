"""``DeliveryStore`` on PostgreSQL: every node may dispatch and deliver; due deliveries are
claimed with ``FOR UPDATE SKIP LOCKED`` so two nodes never lease the same one."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

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
from tidings.store.postgres.store import PostgresStore
from tidings.store.sql import load_queries

T = TypeVar("T")
Q = load_queries("tidings.store.postgres", "deliveries.sql")
PURGE_CHUNK = 1000


async def _attempts(conn: Any, delivery_id: str) -> list[Attempt]:
    return [Attempt(*r) for r in await conn.fetch(Q["select_attempts"], delivery_id)]


class PostgresDeliveryStore:
    def __init__(self, store: PostgresStore) -> None:
        self._store = store  # its pool
        # The statements of the delivery loop, ready on every connection before the first
        # burst of attempts: their results are recorded as soon as they arrive.
        store.prepare_on_connect(
            Q["insert_delivery"], Q["move_cursor"], Q["claim_due"], Q["record_batch"]
        )

    async def _write(self, fn: Callable[[Any], Awaitable[T]]) -> T:
        """``fn(conn)`` in one transaction."""

        async def run(conn: Any) -> T:
            async with conn.transaction():
                return await fn(conn)

        return await self._store.run(run)

    async def _write_results(self, fn: Callable[[Any], Awaitable[T]]) -> T:
        """``fn(conn)`` in one transaction that does not wait for its WAL to reach the disk.

        Attempt results are written as they arrive, and a result not yet recorded when this
        process dies is sent again: the sooner it commits, the fewer are. Waiting for the
        disk is most of a commit's time (milliseconds, against a fraction of one without),
        and what it protects against is a crash of the database server, which loses at most
        its last fraction of a second of results: those deliveries are attempted again
        (at-least-once still holds). A later synchronous commit (a dispatch, a cancellation)
        makes these durable too, so the state never goes back past one.
        """

        async def run(conn: Any) -> T:
            async with conn.transaction():
                await conn.execute(Q["relaxed_commit"])
                return await fn(conn)

        return await self._store.run(run)

    async def create_endpoint(self, endpoint: Endpoint) -> None:
        args = delivery_rows.endpoint_insert(endpoint)
        await self._store.run(lambda conn: conn.execute(Q["insert_endpoint"], *args))

    async def save_endpoint(self, endpoint: Endpoint) -> None:
        args = delivery_rows.endpoint_update(endpoint)
        await self._store.run(lambda conn: conn.execute(Q["update_endpoint"], *args))

    async def delete_endpoint(self, tenant: str, endpoint_id: str, now_us: int = 0) -> bool:
        async def run(conn: Any) -> bool:
            await conn.execute(Q["cancel_pending"], now_us, tenant, endpoint_id)
            status: str = await conn.execute(Q["delete_endpoint"], tenant, endpoint_id)
            return status != "DELETE 0"

        return await self._write(run)

    async def get_endpoint(self, tenant: str, endpoint_id: str) -> Endpoint | None:
        async def run(conn: Any) -> Endpoint | None:
            row = await conn.fetchrow(Q["select_endpoint"], tenant, endpoint_id)
            return delivery_rows.endpoint_from(row) if row else None

        return await self._store.run(run)

    async def list_endpoints(self, tenant: str | None) -> list[Endpoint]:
        async def run(conn: Any) -> list[Endpoint]:
            return [
                delivery_rows.endpoint_from(r)
                for r in await conn.fetch(Q["select_endpoints"], tenant)
            ]

        return await self._store.run(run)

    async def dispatch(
        self,
        deliveries: Sequence[Delivery],
        cursors: dict[str, int],
        lease_until_us: int | None = None,
    ) -> None:
        rows = delivery_rows.delivery_inserts(deliveries, lease_until_us)
        moves = delivery_rows.cursor_moves(cursors)

        async def run(conn: Any) -> None:
            if rows:
                await conn.executemany(Q["insert_delivery"], rows)
            if moves:
                await conn.executemany(Q["move_cursor"], moves)

        await self._write(run)

    async def claim_due(self, now_us: int, limit: int, lease_until_us: int) -> list[Delivery]:
        """Lease up to ``limit`` due deliveries, the longest-waiting first; rows another node
        is claiming at the same moment are skipped, not waited for."""

        async def run(conn: Any) -> list[Delivery]:
            rows = await conn.fetch(Q["claim_due"], now_us, limit, lease_until_us)
            return delivery_rows.by_due_time(map(delivery_rows.delivery_from, rows))

        return await self._store.run(run)

    async def record(self, records: Sequence[AttemptRecord], now_us: int) -> None:
        """Log the attempts and settle their deliveries; each endpoint is updated once."""
        batch = delivery_rows.RecordedBatch.of(records, now_us)
        attempts, settled = batch.attempts, batch.settled
        cleared, first_failure = batch.cleared, batch.first_failure
        if len({r.delivery_id for r in records}) == len(records):
            # The usual batch, one attempt per delivery: one statement, one round trip, so
            # results are recorded soon after they arrive (a crash re-sends only those not).
            modes = dict.fromkeys(cleared, "clear")
            for w in first_failure:
                modes[w] = "set" if w in cleared else "start"
            hooks = sorted(modes)
            args = (
                *(list(column) for column in zip(*attempts, strict=True)),
                now_us,
                [r.status for r in records],
                [r.next_attempt_at_us for r in records],
                [modes[w] for w in hooks],
                [first_failure.get(w) for w in hooks],
                hooks,
            )
            if records:
                await self._write_results(lambda conn: conn.execute(Q["record_batch"], *args))
            return

        async def run(conn: Any) -> None:
            if attempts:
                await conn.executemany(Q["insert_attempt"], attempts)
                await conn.executemany(Q["finish_attempt"], settled)
            if cleared:
                await conn.executemany(Q["endpoint_succeeded"], [(w,) for w in sorted(cleared)])
            if first_failure:
                failed = sorted((at, w) for w, at in first_failure.items())
                await conn.executemany(Q["endpoint_failed"], failed)

        await self._write_results(run)

    async def release_leases(self) -> None:
        await self._store.run(lambda conn: conn.execute(Q["release_leases"]))

    async def cancel_pending(self, tenant: str, endpoint_id: str, now_us: int = 0) -> int:
        async def run(conn: Any) -> int:
            status: str = await conn.execute(Q["cancel_pending"], now_us, tenant, endpoint_id)
            return int(status.rsplit(" ", 1)[1])

        return await self._store.run(run)

    async def cancel_deliveries(self, delivery_ids: Sequence[str], now_us: int) -> None:
        rows = [(now_us, delivery_id) for delivery_id in delivery_ids]
        if rows:
            await self._write(lambda conn: conn.executemany(Q["cancel_delivery"], rows))

    async def get_delivery(
        self, tenant: str, delivery_id: str
    ) -> tuple[Delivery, list[Attempt]] | None:
        async def run(conn: Any) -> tuple[Delivery, list[Attempt]] | None:
            row = await conn.fetchrow(Q["select_delivery"], tenant, delivery_id)
            if row is None:
                return None
            return delivery_rows.delivery_from(row), await _attempts(conn, delivery_id)

        return await self._store.run(run)

    async def list_deliveries(
        self, tenant: str, endpoint_id: str, status: Status | None, limit: int, before: str | None
    ) -> list[tuple[Delivery, list[Attempt]]]:
        async def run(conn: Any) -> list[tuple[Delivery, list[Attempt]]]:
            rows = await conn.fetch(
                Q["select_deliveries"], tenant, endpoint_id, status, before, limit
            )
            found = [delivery_rows.delivery_from(r) for r in rows]
            return [(d, await _attempts(conn, d.id)) for d in found]

        return await self._store.run(run)

    async def retry_delivery(self, tenant: str, delivery_id: str, now_us: int) -> Delivery | None:
        async def run(conn: Any) -> Delivery | None:
            await conn.execute(Q["retry_delivery"], now_us, now_us, tenant, delivery_id)
            row = await conn.fetchrow(Q["select_delivery"], tenant, delivery_id)
            return delivery_rows.delivery_from(row) if row else None

        return await self._write(run)

    async def retention_floor(self) -> int | None:
        async def run(conn: Any) -> int | None:
            return delivery_rows.lowest(
                [await conn.fetchval(Q[name]) for name in ("floor_pending", "floor_cursors")]
            )

        return await self._store.run(run)

    async def purge_finished(self, older_than_us: int) -> int:
        async def chunk(conn: Any) -> int:
            rows = await conn.fetch(Q["purge_finished_chunk"], older_than_us, PURGE_CHUNK)
            ids = [r[0] for r in rows]
            if ids:
                await conn.executemany(Q["delete_attempts"], [(i,) for i in ids])
            return len(ids)

        return await purge_in_chunks(lambda: self._write(chunk), PURGE_CHUNK)

    async def stats(self, tenant: str, now_us: int) -> DeliveryStats:
        async def run(conn: Any) -> DeliveryStats:
            by_status = {r[0]: int(r[1]) for r in await conn.fetch(Q["count_by_status"], tenant)}
            oldest = await conn.fetchval(Q["oldest_pending"], tenant)
            recent = {
                r[0]: int(r[1])
                for r in await conn.fetch(
                    Q["attempts_since"], tenant, now_us - delivery_rows.HOUR_US
                )
            }
            return DeliveryStats(by_status, oldest, recent)

        return await self._store.run(run)

    async def endpoint_attempts(self, tenant: str, since_us: int) -> dict[str, EndpointAttempts]:
        async def run(conn: Any) -> dict[str, EndpointAttempts]:
            rows = await conn.fetch(Q["attempts_by_endpoint_since"], tenant, since_us)
            return {r[0]: EndpointAttempts(int(r[1]), int(r[2]) - int(r[1])) for r in rows}

        return await self._store.run(run)
