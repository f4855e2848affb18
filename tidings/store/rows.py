"""Rows as both SQL stores read and write them (no SQL, no I/O).

PostgreSQL and SQLite keep these tables with the same columns in the same order, and the same
JSON text where a value is a list or a mapping; only the statements differ, and they stay in
``tidings/store/<dialect>/``. A row is a sequence of column values in the order the named
queries select or insert them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from tidings.store.auth import ApiKey
from tidings.store.dead_letters import DeadLetter
from tidings.store.leases import Lease
from tidings.store.transfer import StoredDelivery


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


def dead_letter(row: Sequence[Any]) -> DeadLetter:
    """``seq, id, tenant, source, reason_code, reason, raw, topic, headers, received_at_us``."""
    seq, id_, tenant, source, code, reason, raw, topic, headers, received = row
    decoded = orjson.loads(headers) if headers else {}
    return DeadLetter(seq, id_, tenant, source, code, reason, bytes(raw), topic, decoded, received)


def dead_letter_insert(letter: DeadLetter) -> tuple[Any, ...]:
    """A new dead letter's values, without the position the database gives it."""
    return (
        letter.tenant, letter.id, letter.source, letter.reason_code, letter.reason, letter.raw,
        letter.topic, _json(letter.headers), letter.received_at_us,
    )  # fmt: skip


def dead_letter_import(letter: DeadLetter) -> tuple[Any, ...]:
    """A copied dead letter's values, its position first."""
    return (
        letter.seq, letter.id, letter.tenant, letter.source, letter.reason_code, letter.reason,
        letter.raw, letter.topic, _json(letter.headers), letter.received_at_us,
    )  # fmt: skip


def api_key(row: Sequence[Any]) -> ApiKey:
    """``id, tenant, name, prefix, hash, scopes, rate_limit, max_streams, created_at_us,
    revoked_at_us``; the scopes are a JSON list."""
    id_, tenant, name, prefix, hash_, scopes, rate, streams, created, revoked = row
    return ApiKey(
        id=id_,
        tenant=tenant,
        name=name,
        prefix=prefix,
        hash=hash_,
        scopes=tuple(orjson.loads(scopes)),
        rate_limit=rate,
        max_streams=streams,
        created_at_us=created,
        revoked_at_us=revoked,
    )


def api_key_insert(key: ApiKey) -> tuple[Any, ...]:
    """A new key's values, in the order :func:`api_key` reads them."""
    return (
        key.id, key.tenant, key.name, key.prefix, key.hash, _json(list(key.scopes)),
        key.rate_limit, key.max_streams, key.created_at_us, key.revoked_at_us,
    )  # fmt: skip


def delivery_imports(rows: Sequence[StoredDelivery]) -> list[tuple[Any, ...]]:
    """Copied deliveries' values (their attempt logs go in with :func:`attempt_imports`)."""
    return [
        (
            d.id, d.tenant, d.webhook_id, d.event_seq, d.event_id, d.message_id, d.status,
            d.attempts, d.max_attempts, d.next_attempt_at_us, d.created_at_us, d.updated_at_us,
        )
        for row in rows
        for d in (row.delivery,)
    ]  # fmt: skip


def attempt_imports(rows: Sequence[StoredDelivery]) -> list[tuple[Any, ...]]:
    """Every attempt of the copied deliveries, each after its delivery's id."""
    return [
        (row.delivery.id, a.n, a.at_us, a.status_code, a.latency_ms, a.error, a.response_body)
        for row in rows
        for a in row.attempts
    ]


def lease(row: Sequence[Any] | None) -> Lease | None:
    """``name, tenant, holder, expires_at_us, generation``; None when no row came back."""
    return Lease(*row) if row is not None else None
