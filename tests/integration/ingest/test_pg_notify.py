"""PG NOTIFY ingest against the real PostgreSQL ``test`` database: a trigger's notification
becomes an event; bad payloads are parked; one listener of many; a killed session recovers."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]
import pytest

from tests.integration.ingest.harness import IngestServer, dead_letters, events, wait_for
from tidings.envelope import Limits
from tidings.ingest.backoff import Backoff
from tidings.ingest.config import PgNotifyConfig
from tidings.ingest.intake import Intake
from tidings.ingest.pg_notify import PgNotifyListener
from tidings.publish import Publisher
from tidings.store import Query
from tidings.store.dead_letters import DeadLetterQuery
from tidings.streams.registry import StreamRegistry
from tidings.tasks import Supervisor
from tidings.testing import MemoryDeadLetters, MemoryStore

pytestmark = pytest.mark.postgres
DSN = "postgresql://postgres@127.0.0.1:5432/test"


async def execute(sql: str, *args: object) -> None:
    conn = await asyncpg.connect(DSN)
    try:
        await conn.execute(sql, *args)
    finally:
        await conn.close()


@pytest.fixture
def table() -> Iterator[tuple[str, str]]:
    """A table whose trigger NOTIFYs each changed row as JSON on its own channel."""
    suffix = uuid.uuid4().hex[:10]
    name, channel = f"properties_{suffix}", f"property_changes_{suffix}"
    asyncio.run(
        execute(
            f"""
            CREATE TABLE {name} (id serial PRIMARY KEY, address text, price integer);
            CREATE FUNCTION notify_{suffix}() RETURNS trigger AS $$
            BEGIN
                PERFORM pg_notify('{channel}', row_to_json(NEW)::text);
                RETURN NEW;
            END $$ LANGUAGE plpgsql;
            CREATE TRIGGER changed_{suffix} AFTER INSERT OR UPDATE ON {name}
                FOR EACH ROW EXECUTE FUNCTION notify_{suffix}();
            """
        )
    )
    yield name, channel
    asyncio.run(execute(f"DROP TABLE {name}; DROP FUNCTION notify_{suffix}();"))


def test_a_row_change_arrives_as_an_event_and_a_bad_payload_as_a_dead_letter(
    tmp_path: Path, table: tuple[str, str]
) -> None:
    name, channel = table
    (tmp_path / "tidings.toml").write_text(
        f"""
[[pg_notify]]
dsn = "{DSN}"
channel = "{channel}"
type = "db.property_changed"
heartbeat_s = 1
"""
    )
    server = IngestServer(
        tmp_path / "data", env={"TIDINGS_CONFIG": str(tmp_path / "tidings.toml")}
    ).start()
    try:

        def listening() -> bool:
            asyncio.run(execute(f"INSERT INTO {name} (address, price) VALUES ('probe', 0)"))
            return bool(events(server.url, type="db.property_changed"))

        wait_for(listening, 20, "the server to listen")
        asyncio.run(execute(f"INSERT INTO {name} (address, price) VALUES ('1 Main St', 250000)"))
        asyncio.run(execute(f"UPDATE {name} SET price = 240000 WHERE address = '1 Main St'"))

        def changes() -> list[int]:
            found = events(server.url, type="db.property_changed")
            return [e["data"]["price"] for e in found if e["data"]["address"] == "1 Main St"]

        assert wait_for(lambda: len(changes()) == 2 and changes(), what="both row changes") == [
            250000,
            240000,
        ]
        event = next(
            e
            for e in events(server.url, type="db.property_changed")
            if e["data"]["address"] == "1 Main St"
        )
        assert (event["source"], event["metadata"]) == ("pg_notify", {"channel": channel})

        asyncio.run(execute(f"SELECT pg_notify('{channel}', 'this is not json')"))
        (letter,) = wait_for(
            lambda: dead_letters(server.url, source="pg_notify"), what="the dead letter"
        )
        assert (letter["topic"], letter["raw"]) == (channel, "this is not json")
        assert letter["reason"].startswith("not_json")
    finally:
        assert server.stop() == 0


@pytest.fixture
async def intake() -> AsyncIterator[tuple[Intake, MemoryStore]]:
    store = MemoryStore()
    await store.open()
    yield Intake(Publisher(store), MemoryDeadLetters(), Limits()), store
    await store.close()


async def wait_async(check: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll ``check`` (state kept by the listeners) until it holds."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def test_exactly_one_of_two_listeners_listens_and_the_other_takes_over(
    intake: tuple[Intake, MemoryStore],
) -> None:
    take, store = intake
    channel = f"failover_{uuid.uuid4().hex[:8]}"
    config = PgNotifyConfig(DSN, channel, "db.changed", heartbeat_s=0.5, lock_retry_s=0.2)
    supervisor, other_node = Supervisor(), Supervisor()
    first = PgNotifyListener(config, take, StreamRegistry(), backoff=Backoff(0.05, 0.5))
    second = PgNotifyListener(config, take, StreamRegistry(), backoff=Backoff(0.05, 0.5))
    first.start(supervisor)
    await wait_async(lambda: first.state == "listening")
    second.start(other_node)
    await wait_async(lambda: second.state == "standby")
    for n in range(5):
        await execute(f"SELECT pg_notify('{channel}', '{{\"n\": {n}}}')")
    await wait_async(lambda: first.counts["stored"] == 5)
    assert second.counts["received"] == 0

    await first.stop(supervisor)
    await wait_async(lambda: second.state == "listening")
    await execute(f"SELECT pg_notify('{channel}', '{{\"n\": 5}}')")
    await wait_async(lambda: second.counts["stored"] == 1)
    stored = await store.query("default", Query(order="asc"))
    assert [e.data["n"] for e in stored] == [0, 1, 2, 3, 4, 5]
    await second.stop(other_node)


async def test_a_killed_listening_session_is_noticed_and_listening_resumes(
    intake: tuple[Intake, MemoryStore],
) -> None:
    take, _ = intake
    channel = f"killed_{uuid.uuid4().hex[:8]}"
    config = PgNotifyConfig(DSN, channel, "db.changed", heartbeat_s=0.3, lock_retry_s=0.2)
    streams = StreamRegistry()
    told: list[str] = []
    streams.broadcast_system = lambda code, details: told.append(code)  # type: ignore[method-assign]
    supervisor = Supervisor()
    listener = PgNotifyListener(config, take, streams, backoff=Backoff(0.05, 0.5))
    listener.start(supervisor)
    await wait_async(lambda: listener.state == "listening")
    await execute(
        "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' "
        "AND ((classid::bigint << 32) | objid::bigint) = $1::bigint",
        config.lock_key,
    )
    await wait_async(lambda: listener.state != "listening")
    await wait_async(lambda: listener.state == "listening")
    await execute(f"SELECT pg_notify('{channel}', '{{\"after\": true}}')")
    await wait_async(lambda: listener.counts["stored"] == 1)
    assert told == ["source_lost", "source_restored"]
    assert await take.dead_letters.find(DeadLetterQuery()) == []
    await listener.stop(supervisor)
    assert listener.state == "stopped"
    await supervisor.stop()
