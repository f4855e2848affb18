"""Copying a backend into another (``tidings migrate-store``): every pair of implementations.

What a copy must keep: events with their ids, positions, stamps and idempotency keys (a
repeat still answers the original), how far retention deleted, endpoints with secrets and
cursors, deliveries with their attempts, sink cursors and dead letters with their ids. The
target then goes on from where the source stopped, and an interrupted copy resumes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest

from tests.contract.conftest import _memory_backend, _postgres_backend, _sqlite_backend
from tests.contract.test_delivery_store import delivery, endpoint, failure
from tests.contract.test_store_contract import candidate
from tests.pg import create_schema, url
from tidings.envelope import DEFAULT_TENANT
from tidings.errors import TidingsError
from tidings.store import Backend, Query
from tidings.store.auth import ApiKey, Tenant
from tidings.store.copy import TargetNotEmpty, copy_backend
from tidings.store.transfer import StoredEvent

OPENERS = {"memory": _memory_backend, "sqlite": _sqlite_backend, "postgres": _postgres_backend}
PAIRS = [
    pytest.param((a, b), id=f"{a}-to-{b}", marks=[pytest.mark.postgres] * ("postgres" in a + b))
    for a, b in [
        ("sqlite", "postgres"),
        ("postgres", "sqlite"),
        ("memory", "sqlite"),
        ("sqlite", "memory"),
        ("memory", "postgres"),
        ("postgres", "postgres"),
    ]
]


@pytest.fixture(params=PAIRS)
async def pair(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[Backend, Backend]]:
    source_name, target_name = request.param
    async with AsyncExitStack() as stack:
        opened = []
        for side, name in (("source", source_name), ("target", target_name)):
            where = tmp_path / side
            where.mkdir()
            if name == "postgres":  # a schema of its own for each side
                database = request.getfixturevalue("pg_database")
                where.joinpath("pg_url").write_text(url(database, create_schema(database)))
            opened.append(await stack.enter_async_context(OPENERS[name](where)))
        yield opened[0], opened[1]


async def fill(backend: Backend) -> None:
    """A little of everything, purges and attempts included."""
    events = backend.events
    await events.append([candidate(id="gone", data={"n": 0})])
    await events.purge(older_than_us=2**62, keep_from=None)  # retention deleted the first
    await events.append([candidate(idempotency_key="k1", data={"n": 1})])
    await events.append([candidate("b.c", data={"n": 2}, subject="s"), candidate(data="x\x00y")])
    await events.append([candidate(tenant="acme", idempotency_key="k1", data={"n": 3})])
    first = await events.query(DEFAULT_TENANT, Query(order="asc", limit=1))
    await backend.deliveries.create_endpoint(endpoint("wh_a", cursor=first[0].seq))
    sent = delivery("wh_a", first[0].seq)
    await backend.deliveries.dispatch([sent, delivery("wh_a", first[0].seq + 1)], {})
    await backend.deliveries.record([failure(sent, 150, next_at=500)], 160)
    await backend.sink_cursors.set_sink_cursor("mqtt:one", DEFAULT_TENANT, first[0].seq, 7)
    await backend.auth.create_tenant(Tenant("acme", "Acme", 5))
    await backend.auth.create_key(
        ApiKey("key_1", "acme", "ci", "tdk_ab", "0" * 64, ("publish",), None, 5, 6, None)
    )
    for n in range(3):
        raw, topic = bytes([n, 255]), f"t/{n}"
        await backend.dead_letters.add(
            source="mqtt", reason_code="not_json", reason="r", raw=raw, topic=topic, headers={}
        )


async def everything(backend: Backend) -> dict[str, Any]:
    events: list[StoredEvent] = await backend.transfer.export_events(0, 10_000)
    deliveries = await backend.transfer.export_deliveries("", 10_000)
    return {
        "events": [(row.event, row.dedupe_key) for row in events],
        "purges": await backend.transfer.export_purges(),
        "endpoints": await backend.deliveries.list_endpoints(None),
        "deliveries": [(d.delivery, d.attempts) for d in deliveries],
        "cursors": await backend.sink_cursors.list_sink_cursors(),
        "dead_letters": await backend.transfer.export_dead_letters(0, 10_000),
        "tenants": [(t.id, t.name) for t in await backend.auth.list_tenants()],
        "keys": await backend.auth.list_keys(),
    }


async def test_a_copy_holds_everything_the_source_holds_and_goes_on_from_there(
    pair: tuple[Backend, Backend],
) -> None:
    source, target = pair
    await fill(source)
    seen: list[tuple[str, int]] = []

    report = await copy_backend(
        source, target, batch=2, progress=lambda part, done, total: seen.append((part, done))
    )

    assert await everything(target) == await everything(source)
    assert report.counts["events"] == 4 and report.counts["dead_letters"] == 3
    assert ("events", source.events.head()) in seen
    assert target.events.head() == source.events.head()
    assert await target.events.purged_through(DEFAULT_TENANT) == 1
    [repeat] = await target.events.append([candidate(idempotency_key="k1", data={"n": 1})])
    assert repeat.duplicate and repeat.seq == 2
    with pytest.raises(TidingsError) as conflict:
        await target.events.append([candidate(idempotency_key="k1", data={"n": 9})])
    assert conflict.value.status == 409
    [fresh] = await target.events.append([candidate()])
    assert fresh.seq > source.events.head()
    stored = await target.events.get(DEFAULT_TENANT, fresh.id)
    newest_copied = (await everything(source))["events"][-1][0]
    assert stored is not None and stored.received_at_us >= newest_copied.received_at_us
    letter = await target.dead_letters.add(source="mqtt", reason_code="x", reason="r", raw=b"")
    assert letter.seq > 3


async def test_a_non_empty_target_is_refused_unless_the_copy_resumes(
    pair: tuple[Backend, Backend],
) -> None:
    source, target = pair
    await fill(source)
    await target.events.append([candidate(id="already")])

    with pytest.raises(TargetNotEmpty):
        await copy_backend(source, target)
    assert [e.id for e in await target.events.query(DEFAULT_TENANT, Query())] == ["already"]


async def test_an_interrupted_copy_resumes_where_it_stopped(
    pair: tuple[Backend, Backend],
) -> None:
    source, target = pair
    await fill(source)
    calls = 0

    def interrupt(part: str, done: int, total: int | None) -> None:
        nonlocal calls
        calls += 1
        if part == "events" and calls == 2:
            raise KeyboardInterrupt  # the operator's ^C, between two batches

    with pytest.raises(KeyboardInterrupt):
        await copy_backend(source, target, batch=1, progress=interrupt)
    copied = len(await target.transfer.export_events(0, 100))
    assert 0 < copied < 4

    await copy_backend(source, target, resume=True, batch=1)
    await copy_backend(source, target, resume=True)  # again: nothing doubles

    assert await everything(target) == await everything(source)
