"""Delivery state as both SQL stores read and write it (no SQL, no I/O).

PostgreSQL and SQLite keep webhook endpoints, deliveries and attempts in tables with the same
columns in the same order, and the same JSON text where a value is a list or a mapping; only
the statements and the way they are run differ, and those stay in
``tidings/store/<dialect>/deliveries.py``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from tidings.store.deliveries import AttemptRecord, Delivery, Endpoint, Secret

HOUR_US = 3_600_000_000  # the window of the attempts counted in DeliveryStats


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


def endpoint_from(row: Sequence[Any]) -> Endpoint:
    """``id, tenant, url, events, filter, secrets, active, description, rate_limit, headers,
    created_at_us, updated_at_us, disabled_reason, cursor, failing_since_us``."""
    (
        id_, tenant, url, events, filter_, secrets, active, description, rate_limit, headers,
        created, updated, disabled_reason, cursor, failing_since,
    ) = row  # fmt: skip
    return Endpoint(
        id=id_,
        tenant=tenant,
        url=url,
        events=orjson.loads(events),
        filter=orjson.loads(filter_),
        secrets=[Secret(s["secret"], s.get("expires_at_us")) for s in orjson.loads(secrets)],
        active=bool(active),  # SQLite keeps it as 0 or 1
        description=description,
        rate_limit=rate_limit,
        headers=orjson.loads(headers),
        created_at_us=created,
        updated_at_us=updated,
        disabled_reason=disabled_reason,
        cursor=cursor,
        failing_since_us=failing_since,
    )


def _secrets(e: Endpoint) -> str:
    return _json([{"secret": s.secret, "expires_at_us": s.expires_at_us} for s in e.secrets])


def endpoint_insert(e: Endpoint) -> tuple[Any, ...]:
    """A new endpoint's values, in the order :func:`endpoint_from` reads them."""
    return (
        e.id, e.tenant, e.url, _json(e.events), _json(e.filter), _secrets(e), e.active,
        e.description, e.rate_limit, _json(e.headers), e.created_at_us, e.updated_at_us,
        e.disabled_reason, e.cursor, e.failing_since_us,
    )  # fmt: skip


def endpoint_update(e: Endpoint) -> tuple[Any, ...]:
    """What saving an endpoint changes (everything but its creation time and cursor), then
    its tenant and id."""
    return (
        e.url, _json(e.events), _json(e.filter), _secrets(e), e.active, e.description,
        e.rate_limit, _json(e.headers), e.updated_at_us, e.disabled_reason, e.failing_since_us,
        e.tenant, e.id,
    )  # fmt: skip


def delivery_from(row: Sequence[Any]) -> Delivery:
    """A delivery's columns, in the order of :class:`Delivery`'s fields."""
    return Delivery(*row)


def delivery_inserts(
    deliveries: Sequence[Delivery], lease_until_us: int | None
) -> list[tuple[Any, ...]]:
    """New deliveries' values, each leased until ``lease_until_us`` (None: not leased)."""
    return [
        (
            d.id, d.tenant, d.webhook_id, d.event_seq, d.event_id, d.message_id, d.status,
            d.attempts, d.max_attempts, d.next_attempt_at_us, lease_until_us, d.created_at_us,
            d.updated_at_us,
        )
        for d in deliveries
    ]  # fmt: skip


def cursor_moves(cursors: dict[str, int]) -> list[tuple[int, str]]:
    """``(position, endpoint id)`` for each endpoint cursor to move."""
    return [(position, endpoint_id) for endpoint_id, position in cursors.items()]


def by_due_time(deliveries: Iterable[Delivery]) -> list[Delivery]:
    """The longest-waiting first: claim statements lease rows in no particular order."""
    return sorted(deliveries, key=lambda d: d.next_attempt_at_us or 0)


@dataclass(frozen=True, slots=True)
class RecordedBatch:
    """A batch of attempt results as rows to write."""

    attempts: list[tuple[Any, ...]]  # the attempt log's new rows
    settled: list[tuple[Any, ...]]  # ``(status, attempts, next_attempt_at_us, now, id)``
    cleared: set[str]  # endpoints whose run of failures ends
    first_failure: dict[str, int]  # endpoint -> when its run of failures starts, unless running

    @classmethod
    def of(cls, records: Sequence[AttemptRecord], now_us: int) -> RecordedBatch:
        attempts = [
            (
                r.delivery_id, r.attempt.n, r.attempt.at_us, r.attempt.status_code,
                r.attempt.latency_ms, r.attempt.error, r.attempt.response_body,
            )
            for r in records
        ]  # fmt: skip
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
        return cls(attempts, settled, cleared, first_failure)


def lowest(values: Iterable[Any]) -> int | None:
    """The lowest of the values that are not NULL, as an int; None when all are."""
    present = [int(v) for v in values if v is not None]
    return min(present) if present else None
