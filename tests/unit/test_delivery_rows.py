"""Delivery state as rows: what both SQL stores write and read back, without a database."""

from __future__ import annotations

import asyncio

from tidings.store.base import purge_in_chunks
from tidings.store.deliveries import Attempt, AttemptRecord, Endpoint, Secret
from tidings.store.delivery_rows import (
    RecordedBatch,
    endpoint_from,
    endpoint_insert,
    endpoint_update,
    lowest,
)


def _endpoint() -> Endpoint:
    return Endpoint(
        id="wh_1",
        tenant="acme",
        url="https://example.test/hook",
        events=["order.*"],
        filter={"subject": "a"},
        secrets=[Secret("new"), Secret("old", expires_at_us=50)],
        active=True,
        description="orders",
        rate_limit=2.5,
        headers={"x-team": "shop"},
        created_at_us=10,
        updated_at_us=20,
        disabled_reason=None,
        cursor=7,
        failing_since_us=15,
    )


def _record(delivery_id: str, webhook_id: str, at_us: int, *, ok: bool) -> AttemptRecord:
    attempt = Attempt(1, at_us, 200 if ok else 500, 1.0, None, None)
    status = "succeeded" if ok else "pending"
    return AttemptRecord(delivery_id, webhook_id, attempt, status, None, ok)


def test_an_inserted_endpoint_reads_back_the_same() -> None:
    sent = _endpoint()
    assert endpoint_from(endpoint_insert(sent)) == sent


def test_an_endpoint_read_from_sqlite_integers_is_active_as_a_bool() -> None:
    row = list(endpoint_insert(_endpoint()))
    row[6] = 0
    assert endpoint_from(row).active is False


def test_an_endpoint_update_ends_with_its_tenant_and_id_and_leaves_the_cursor_alone() -> None:
    values = endpoint_update(_endpoint())
    assert values[-2:] == ("acme", "wh_1")
    assert 7 not in values and 10 not in values  # cursor, created_at_us


def test_a_batch_writes_only_the_net_effect_on_each_endpoint() -> None:
    batch = RecordedBatch.of(
        [
            _record("d1", "wh_a", 100, ok=False),
            _record("d2", "wh_a", 110, ok=True),  # clears wh_a's run of failures
            _record("d3", "wh_a", 120, ok=False),  # and starts a new one
            _record("d4", "wh_b", 130, ok=False),
            _record("d5", "wh_b", 140, ok=False),  # wh_b's run started at the first
            _record("d6", "wh_c", 150, ok=True),
        ],
        now_us=500,
    )
    assert batch.cleared == {"wh_a", "wh_c"}
    assert batch.first_failure == {"wh_a": 120, "wh_b": 130}
    assert [row[0] for row in batch.attempts] == ["d1", "d2", "d3", "d4", "d5", "d6"]
    assert batch.settled[1] == ("succeeded", 1, None, 500, "d2")


def test_lowest_skips_nulls_and_is_none_when_all_are() -> None:
    assert lowest([None, 9, 4]) == 4
    assert lowest([None, None]) is None


def test_purge_in_chunks_stops_at_the_first_short_chunk() -> None:
    chunks = iter([3, 3, 1, 3])
    calls: list[int] = []

    async def delete_chunk() -> int:
        calls.append(1)
        return next(chunks)

    assert asyncio.run(purge_in_chunks(delete_chunk, 3)) == 7
    assert len(calls) == 3
