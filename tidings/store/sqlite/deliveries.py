"""``DeliveryStore`` on the embedded SQLite store: writes go through its one writer thread."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

import orjson

from tidings.store.deliveries import (
    Attempt,
    AttemptRecord,
    Delivery,
    DeliveryStats,
    Endpoint,
    EndpointAttempts,
    Secret,
    Status,
)
from tidings.store.sql import load_queries
from tidings.store.sqlite.store import SqliteStore

Q = load_queries("tidings.store.sqlite", "deliveries.sql")
PURGE_CHUNK = 1000


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def _endpoint(row: tuple[Any, ...]) -> Endpoint:
    (
        id_,
        tenant,
        url,
        events,
        filter_,
        secrets,
        active,
        description,
        rate_limit,
        headers,
        created,
        updated,
        disabled_reason,
        cursor,
        failing_since,
    ) = row
    return Endpoint(
        id=id_,
        tenant=tenant,
        url=url,
        events=orjson.loads(events),
        filter=orjson.loads(filter_),
        secrets=[Secret(s["secret"], s.get("expires_at_us")) for s in orjson.loads(secrets)],
        active=bool(active),
        description=description,
        rate_limit=rate_limit,
        headers=orjson.loads(headers),
        created_at_us=created,
        updated_at_us=updated,
        disabled_reason=disabled_reason,
        cursor=cursor,
        failing_since_us=failing_since,
    )


def _secrets(endpoint: Endpoint) -> str:
    return _dumps(
        [{"secret": s.secret, "expires_at_us": s.expires_at_us} for s in endpoint.secrets]
    )


def _delivery(row: tuple[Any, ...]) -> Delivery:
    return Delivery(*row)


def _attempts(conn: sqlite3.Connection, delivery_id: str) -> list[Attempt]:
    return [Attempt(*r) for r in conn.execute(Q["select_attempts"], (delivery_id,))]


class SqliteDeliveryStore:
    def __init__(self, store: SqliteStore) -> None:
        self._store = store  # its writer thread serialises every write

    async def create_endpoint(self, endpoint: Endpoint) -> None:
        e = endpoint
        args = (
            e.id,
            e.tenant,
            e.url,
            _dumps(e.events),
            _dumps(e.filter),
            _secrets(e),
            int(e.active),
            e.description,
            e.rate_limit,
            _dumps(e.headers),
            e.created_at_us,
            e.updated_at_us,
            e.disabled_reason,
            e.cursor,
            e.failing_since_us,
        )
        await self._store.write(lambda conn: conn.execute(Q["insert_endpoint"], args))

    async def save_endpoint(self, endpoint: Endpoint) -> None:
        e = endpoint
        args = (
            e.url,
            _dumps(e.events),
            _dumps(e.filter),
            _secrets(e),
            int(e.active),
            e.description,
            e.rate_limit,
            _dumps(e.headers),
            e.updated_at_us,
            e.disabled_reason,
            e.failing_since_us,
            e.tenant,
            e.id,
        )
        await self._store.write(lambda conn: conn.execute(Q["update_endpoint"], args))

    async def delete_endpoint(self, tenant: str, endpoint_id: str, now_us: int = 0) -> bool:
        def run(conn: sqlite3.Connection) -> bool:
            conn.execute(Q["cancel_pending"], (now_us, tenant, endpoint_id))
            return conn.execute(Q["delete_endpoint"], (tenant, endpoint_id)).rowcount > 0

        return await self._store.write(run)

    async def get_endpoint(self, tenant: str, endpoint_id: str) -> Endpoint | None:
        def run(conn: sqlite3.Connection) -> Endpoint | None:
            row = conn.execute(Q["select_endpoint"], (tenant, endpoint_id)).fetchone()
            return _endpoint(row) if row else None

        return await self._store.read(run)

    async def list_endpoints(self, tenant: str | None) -> list[Endpoint]:
        return await self._store.read(
            lambda conn: [_endpoint(r) for r in conn.execute(Q["select_endpoints"], (tenant,))]
        )

    async def dispatch(
        self,
        deliveries: Sequence[Delivery],
        cursors: dict[str, int],
        lease_until_us: int | None = None,
    ) -> None:
        rows = [
            (
                d.id,
                d.tenant,
                d.webhook_id,
                d.event_seq,
                d.event_id,
                d.message_id,
                d.status,
                d.attempts,
                d.max_attempts,
                d.next_attempt_at_us,
                lease_until_us,
                d.created_at_us,
                d.updated_at_us,
            )
            for d in deliveries
        ]

        def run(conn: sqlite3.Connection) -> None:
            conn.executemany(Q["insert_delivery"], rows)
            conn.executemany(Q["move_cursor"], [(pos, eid) for eid, pos in cursors.items()])

        await self._store.write(run)

    async def claim_due(self, now_us: int, limit: int, lease_until_us: int) -> list[Delivery]:
        """Lease up to ``limit`` due deliveries, the longest-waiting first, in one statement."""

        def run(conn: sqlite3.Connection) -> list[Delivery]:
            rows = conn.execute(Q["claim_due"], (now_us, limit, lease_until_us)).fetchall()
            return sorted(map(_delivery, rows), key=lambda d: d.next_attempt_at_us or 0)

        return await self._store.write(run)

    async def record(self, records: Sequence[AttemptRecord], now_us: int) -> None:
        """Log the attempts and settle their deliveries; each endpoint is updated once."""
        attempts = [
            (
                r.delivery_id,
                r.attempt.n,
                r.attempt.at_us,
                r.attempt.status_code,
                r.attempt.latency_ms,
                r.attempt.error,
                r.attempt.response_body,
            )
            for r in records
        ]
        settled = [
            (r.status, r.attempt.n, r.next_attempt_at_us, now_us, r.delivery_id) for r in records
        ]
        # In completion order: a success clears an endpoint's run of failures, and a failure
        # starts one unless one is running; only the batch's net effect is written.
        cleared: set[str] = set()
        first_failure: dict[str, int] = {}
        for r in records:
            if r.succeeded:
                cleared.add(r.webhook_id)
                first_failure.pop(r.webhook_id, None)
            else:
                first_failure.setdefault(r.webhook_id, r.attempt.at_us)

        def run(conn: sqlite3.Connection) -> None:
            conn.executemany(Q["insert_attempt"], attempts)
            conn.executemany(Q["finish_attempt"], settled)
            conn.executemany(Q["endpoint_succeeded"], [(w,) for w in cleared])
            conn.executemany(Q["endpoint_failed"], [(at, w) for w, at in first_failure.items()])

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
            return _delivery(row), _attempts(conn, delivery_id)

        return await self._store.read(run)

    async def list_deliveries(
        self, tenant: str, endpoint_id: str, status: Status | None, limit: int, before: str | None
    ) -> list[tuple[Delivery, list[Attempt]]]:
        def run(conn: sqlite3.Connection) -> list[tuple[Delivery, list[Attempt]]]:
            rows = conn.execute(
                Q["select_deliveries"], (tenant, endpoint_id, status, before, limit)
            )
            found = [_delivery(r) for r in rows.fetchall()]
            return [(d, _attempts(conn, d.id)) for d in found]

        return await self._store.read(run)

    async def retry_delivery(self, tenant: str, delivery_id: str, now_us: int) -> Delivery | None:
        def run(conn: sqlite3.Connection) -> Delivery | None:
            conn.execute(Q["retry_delivery"], (now_us, now_us, tenant, delivery_id))
            row = conn.execute(Q["select_delivery"], (tenant, delivery_id)).fetchone()
            return _delivery(row) if row else None

        return await self._store.write(run)

    async def retention_floor(self) -> int | None:
        def run(conn: sqlite3.Connection) -> int | None:
            values = [
                conn.execute(Q[name]).fetchone()[0] for name in ("floor_pending", "floor_cursors")
            ]
            present = [int(v) for v in values if v is not None]
            return min(present) if present else None

        return await self._store.read(run)

    async def purge_finished(self, older_than_us: int) -> int:
        def chunk(conn: sqlite3.Connection) -> int:
            ids = [
                r[0] for r in conn.execute(Q["purge_finished_chunk"], (older_than_us, PURGE_CHUNK))
            ]
            conn.executemany(Q["delete_attempts"], [(i,) for i in ids])
            return len(ids)

        total = 0
        while True:
            deleted = await self._store.write(chunk)
            total += deleted
            if deleted < PURGE_CHUNK:
                return total

    async def stats(self, tenant: str, now_us: int) -> DeliveryStats:
        def run(conn: sqlite3.Connection) -> DeliveryStats:
            by_status = dict(conn.execute(Q["count_by_status"], (tenant,)).fetchall())
            oldest = conn.execute(Q["oldest_pending"], (tenant,)).fetchone()[0]
            recent = dict(
                conn.execute(Q["attempts_since"], (tenant, now_us - 3_600_000_000)).fetchall()
            )
            return DeliveryStats(by_status, oldest, recent)

        return await self._store.read(run)

    async def endpoint_attempts(self, tenant: str, since_us: int) -> dict[str, EndpointAttempts]:
        def run(conn: sqlite3.Connection) -> dict[str, EndpointAttempts]:
            rows = conn.execute(Q["attempts_by_endpoint_since"], (tenant, since_us))
            return {wid: EndpointAttempts(int(ok), int(n) - int(ok)) for wid, ok, n in rows}

        return await self._store.read(run)
