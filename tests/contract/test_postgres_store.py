"""What only the PostgreSQL store has: commit order across processes, migrations, the plans
its indexes make possible, start-up errors and the text PostgreSQL cannot hold."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import asyncpg
import orjson
import pytest

from tests.contract.test_store_contract import candidate, everything
from tidings.envelope import parse_filter
from tidings.errors import TidingsError
from tidings.store import Query
from tidings.store.errors import StoreOpenError
from tidings.store.postgres import PostgresStore
from tidings.store.postgres.connection import LOG_LOCK
from tidings.store.postgres.filter_sql import EVENT_COLUMNS, Params, filter_clause
from tidings.store.postgres.migrate import latest_version, migrate
from tidings.store.sql import load_migrations

pytestmark = pytest.mark.postgres

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
async def pg_store(pg_url: str) -> AsyncIterator[PostgresStore]:
    store = PostgresStore(pg_url, pool_size=4)
    await store.open()
    yield store
    await store.close()


# -- commit order ---------------------------------------------------------------------------


async def test_a_reader_paging_by_seq_never_skips_an_event_two_writer_processes_commit(
    pg_url: str,
) -> None:
    """Two processes group-commit concurrently while a reader pages ``seq > cursor``.

    With a plain sequence, a group could commit seq 102 before another commits 101: the reader
    would move its cursor past 101 and never see it. Positions are drawn under the log's
    advisory lock, so every acknowledged event is seen, each once, in order.
    """
    bootstrap = PostgresStore(pg_url)
    await bootstrap.open()  # the schema, before two processes race to create it
    await bootstrap.close()
    per_writer = 2500
    writers = [
        await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "tests.contract.pg_writer"),
            *(pg_url, str(per_writer), "24", name),
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for name in ("w1", "w2")
    ]
    outputs = [asyncio.create_task(w.communicate()) for w in writers]
    conn = await asyncpg.connect(pg_url)
    seen: list[int] = []
    pages = 0
    try:
        cursor = 0
        while True:
            done = all(o.done() for o in outputs)  # taken before the read: one last pass
            rows = await conn.fetch(
                "SELECT seq FROM events WHERE seq > $1 ORDER BY seq LIMIT 200", cursor
            )
            if rows:
                seen.extend(r[0] for r in rows)
                cursor = rows[-1][0]
                pages += 1
            elif done:
                break
            else:
                await asyncio.sleep(0.001)
    finally:
        await conn.close()
    acknowledged: list[int] = []
    for writer, output in zip(writers, outputs, strict=True):
        out, err = await output
        assert writer.returncode == 0, err.decode()
        acknowledged.extend(orjson.loads(out))

    assert len(acknowledged) > 2 * per_writer  # every seventh publish is a batch of two
    assert pages > 10  # the reader really paged while the writers wrote
    assert seen == sorted(set(seen))
    assert seen == sorted(acknowledged)


async def test_seqs_drawn_by_a_rolled_back_group_leave_a_hole_no_later_commit_fills(
    pg_store: PostgresStore, pg_url: str
) -> None:
    [first] = await pg_store.append([candidate()])
    conn = await asyncpg.connect(pg_url)
    try:
        async with conn.transaction():
            drawn = await conn.fetchval("SELECT nextval('events_seq')")
            await conn.execute("SELECT 1")
        # a group that failed after drawing (the transaction rolled back above)
    finally:
        await conn.close()
    [after] = await pg_store.append([candidate()])

    assert drawn == first.seq + 1
    assert after.seq == drawn + 1
    assert await pg_store.read_log(0, after.seq, 10) != []
    assert [e.seq for e in await everything(pg_store)] == [first.seq, after.seq]


async def test_two_nodes_racing_the_same_keys_store_each_once_and_answer_the_same_seq(
    pg_store: PostgresStore, pg_url: str
) -> None:
    """Keys are looked up before the lock; the loser of a race hits the unique index and
    its group is written again under the lock, where it finds the winner's event."""
    other = PostgresStore(pg_url, pool_size=2)
    await other.open()
    try:
        for n in range(30):
            same = [candidate(idempotency_key=f"k{n}", data=n)]
            mine, theirs = await asyncio.gather(
                pg_store.append([*same, candidate(data="bystander")]),
                other.append(same),
            )
            assert mine[0].seq == theirs[0].seq
            assert sorted([mine[0].duplicate, theirs[0].duplicate]) == [False, True]
            assert mine[1].duplicate is False
    finally:
        await other.close()
    stored = await everything(pg_store)
    assert len(stored) == 60
    assert [e.seq for e in stored] == sorted(e.seq for e in stored)


async def _waiting_for_the_log_lock(conn: asyncpg.Connection, groups: int) -> None:
    """Until ``groups`` of the store's connections wait for the log lock ``conn`` holds."""
    for _ in range(2000):
        waiting = await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND application_name = 'tidings' AND wait_event_type = 'Lock'"
        )
        if waiting == groups:
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"the writer never had {groups} group(s) waiting for the log lock")


@pytest.fixture
async def lock_holder(pg_store: PostgresStore, pg_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection holding the log lock: the writer's groups queue behind it in PostgreSQL."""
    conn = await asyncpg.connect(pg_url)
    await conn.execute(f"SELECT pg_advisory_lock({LOG_LOCK})")
    yield conn
    await conn.close()


async def test_two_groups_in_flight_are_answered_and_announced_in_position_order(
    pg_store: PostgresStore, lock_holder: asyncpg.Connection
) -> None:
    """The second group waits for the lock in PostgreSQL beside the first; a third waits in
    the queue until they are answered. Listeners hear of every commit once, in order."""
    heard: list[int] = []
    pg_store.add_commit_listener(lambda events: heard.extend(e.seq for e in events))
    first = asyncio.create_task(pg_store.append([candidate(id="a1"), candidate(id="a2")]))
    await _waiting_for_the_log_lock(lock_holder, 1)
    second = asyncio.create_task(pg_store.append([candidate(id="b1"), candidate(id="b2")]))
    await _waiting_for_the_log_lock(lock_holder, 2)
    third = asyncio.create_task(pg_store.append([candidate(id="c1")]))
    await lock_holder.execute(f"SELECT pg_advisory_unlock({LOG_LOCK})")

    answers = [await first, await second, await third]
    seqs = [r.seq for answer in answers for r in answer]
    stored = await everything(pg_store)
    assert sorted(seqs) == [e.seq for e in stored]
    assert [e.id for e in stored][:4] in (["a1", "a2", "b1", "b2"], ["b1", "b2", "a1", "a2"])
    assert answers[2][0].seq == max(seqs)  # sent once the two in flight were answered
    assert heard == [e.seq for e in stored]
    assert pg_store.head() == max(seqs)


async def test_a_refused_group_in_flight_fails_its_caller_alone_and_keeps_the_order(
    pg_store: PostgresStore, lock_holder: asyncpg.Connection
) -> None:
    heard: list[int] = []
    pg_store.add_commit_listener(lambda events: heard.extend(e.seq for e in events))
    first = asyncio.create_task(pg_store.append([candidate(id="before")]))
    await _waiting_for_the_log_lock(lock_holder, 1)
    bad = replace(candidate(), subject="a\x00b")
    second = asyncio.gather(
        pg_store.append([bad]), pg_store.append([candidate(id="beside")]), return_exceptions=True
    )
    await _waiting_for_the_log_lock(lock_holder, 2)
    await lock_holder.execute(f"SELECT pg_advisory_unlock({LOG_LOCK})")

    [kept] = await first
    refused, [beside] = await second
    assert isinstance(refused, TidingsError) and refused.status == 422
    stored = await everything(pg_store)
    assert [(e.id, e.seq) for e in stored] == sorted(
        [("before", kept.seq), ("beside", beside.seq)], key=lambda pair: pair[1]
    )
    assert heard == [e.seq for e in stored]


async def test_a_group_holding_a_key_of_a_group_in_flight_waits_for_it(
    pg_store: PostgresStore, lock_holder: asyncpg.Connection, caplog: pytest.LogCaptureFixture
) -> None:
    """Sent beside it, the repeat would find nothing, hit the unique index and go the slow
    way; waiting, its lookup finds the first and answers its seq."""
    first = asyncio.create_task(pg_store.append([candidate(idempotency_key="k", data=1)]))
    await _waiting_for_the_log_lock(lock_holder, 1)
    again = asyncio.create_task(pg_store.append([candidate(idempotency_key="k", data=1)]))
    writer = pg_store._writer
    assert writer is not None
    for _ in range(5000):  # taken by the writer, which waits for the first to be answered
        if not writer._queue:
            break
        await asyncio.sleep(0.001)
    with caplog.at_level(logging.INFO, logger="tidings.store"):
        await lock_holder.execute(f"SELECT pg_advisory_unlock({LOG_LOCK})")
        [original], [repeat] = await first, await again

    assert (repeat.seq, repeat.duplicate) == (original.seq, True)
    assert len(await everything(pg_store)) == 1
    assert not [r for r in caplog.records if "refused" in r.getMessage()]


# -- migrations -----------------------------------------------------------------------------


async def _schema(conn: asyncpg.Connection) -> list[tuple[str, str, str]]:
    rows = await conn.fetch(
        """
        SELECT table_name, column_name, data_type FROM information_schema.columns
        WHERE table_schema = current_schema() ORDER BY 1, 2
        """
    )
    indexes = await conn.fetch(
        "SELECT tablename, indexname, replace(indexdef, current_schema() || '.', '') "
        "FROM pg_indexes WHERE schemaname = current_schema() ORDER BY 1, 2"
    )
    return [tuple(r) for r in rows] + [tuple(r) for r in indexes]


@pytest.mark.parametrize(
    "start",
    [0, *(v for v, _, _ in load_migrations("tidings.store.postgres.migrations"))][:-1],
)
async def test_migrating_from_every_earlier_version_gives_the_schema_of_a_new_database(
    pg_url: str, pg_database: str, start: int
) -> None:
    from tests.pg import create_schema, url

    fresh_url = url(pg_database, create_schema(pg_database))
    fresh = await asyncpg.connect(fresh_url)
    old = await asyncpg.connect(pg_url)
    try:
        assert await migrate(fresh) == latest_version()
        if start:
            assert await migrate(old, target=start) == start
            await old.execute(  # data written by the older version survives
                "INSERT INTO purges (tenant, purged_through, purged_at_us) VALUES ('t', 7, 1)"
            )
        assert await migrate(old) == latest_version()
        assert await migrate(old) == latest_version()  # again: nothing to do

        assert await _schema(old) == await _schema(fresh)
        if start:
            assert await old.fetchval("SELECT purged_through FROM purges") == 7
    finally:
        await fresh.close()
        await old.close()


async def test_every_migration_has_a_number_of_its_own() -> None:
    versions = [v for v, _, _ in load_migrations("tidings.store.postgres.migrations")]
    assert versions == sorted(set(versions))
    assert versions[0] == 1


async def test_a_schema_newer_than_the_code_refuses_to_open_and_changes_nothing(
    pg_store: PostgresStore, pg_url: str
) -> None:
    await pg_store.append([candidate()])
    await pg_store.close()
    conn = await asyncpg.connect(pg_url)
    try:
        await conn.execute("UPDATE tidings_schema SET version = version + 1")
        with pytest.raises(StoreOpenError, match="newer than this Tidings knows") as raised:
            await PostgresStore(pg_url).open()
        assert "\n" not in str(raised.value)
        assert await conn.fetchval("SELECT count(*) FROM events") == 1
    finally:
        await conn.close()


async def test_a_failing_migration_leaves_nothing_half_done(pg_url: str) -> None:
    conn = await asyncpg.connect(pg_url)
    try:
        await conn.execute("CREATE TABLE webhooks (taken integer)")  # 0002 will collide
        with pytest.raises(asyncpg.DuplicateTableError):
            await migrate(conn)
        assert await conn.fetchval("SELECT to_regclass('events')") is None
        assert await conn.fetchval("SELECT to_regclass('tidings_schema')") is None
    finally:
        await conn.close()


# -- start-up errors ------------------------------------------------------------------------


async def test_an_unreachable_server_fails_start_up_with_one_line() -> None:
    from tests.integration.server import free_port

    store = PostgresStore(f"postgresql://postgres@127.0.0.1:{free_port()}/nothing")
    with pytest.raises(StoreOpenError, match="cannot reach PostgreSQL") as raised:
        await store.open()
    assert "\n" not in str(raised.value)


async def test_a_missing_database_fails_start_up_naming_it() -> None:
    store = PostgresStore("postgresql://postgres@127.0.0.1:5432/tidings_no_such_database")
    with pytest.raises(StoreOpenError, match="does not exist"):
        await store.open()


async def test_a_user_without_permission_to_create_tables_fails_start_up_naming_it(
    pg_database: str, pg_url: str
) -> None:
    from tests.pg import url

    conn = await asyncpg.connect(url(pg_database))
    role = "tidings_reader_" + pg_url.rsplit("=", 1)[1]
    try:
        await conn.execute(f"CREATE ROLE {role} LOGIN")
        await conn.execute(f"GRANT USAGE ON SCHEMA {pg_url.rsplit('=', 1)[1]} TO {role}")
        store = PostgresStore(pg_url.replace("postgres@", f"{role}@"))
        with pytest.raises(StoreOpenError, match="no permission to create the tables"):
            await store.open()
    finally:
        await conn.execute(f"DROP OWNED BY {role}")
        await conn.execute(f"DROP ROLE {role}")
        await conn.close()


# -- what PostgreSQL cannot hold, and plans -------------------------------------------------


async def test_data_with_a_nul_character_is_stored_served_as_published_and_filtered(
    pg_store: PostgresStore,
) -> None:
    [stored] = await pg_store.append([candidate(data={"name": "a\x00b", "n": 1})])
    await pg_store.append([candidate(data={"name": "a\ufffdb", "n": 2})])

    event = await pg_store.get("default", stored.id)
    assert event is not None and event.data == {"name": "a\x00b", "n": 1}
    found = await pg_store.query(
        "default", Query(filter=parse_filter({"data.name": "a\x00b"}), order="asc")
    )
    assert [e.id for e in found] == [stored.id]


async def test_data_of_every_shape_goes_in_one_statement_and_is_stored_as_published(
    pg_store: PostgresStore, pg_url: str
) -> None:
    """Data and metadata travel as JSON inside the group's statement; a top-level null and
    text holding NUL go as strings. A group the statement refused would be written again
    with positions drawn anew, leaving a hole: consecutive positions mean it went through."""
    shapes: list[object] = [None, {"name": "a\x00b"}, {"a": None}, [1, "x", None], "t", 0, []]
    [first] = await pg_store.append([candidate()])
    batch = [candidate(data=d) for d in shapes]
    batch.append(candidate(data=1, metadata={"note": "a\x00b"}))
    results = await pg_store.append(batch)

    assert [r.seq for r in results] == list(range(first.seq + 1, first.seq + 2 + len(shapes)))
    for c, r in zip(batch, results, strict=True):
        event = await pg_store.get("default", r.id)
        assert event is not None
        assert (event.data_json, event.metadata_json) == (c.data_json, c.metadata_json)
    conn = await asyncpg.connect(pg_url)
    try:
        rows = await conn.fetch(
            "SELECT data::text, metadata::text FROM events WHERE seq > $1 ORDER BY seq",
            first.seq,
        )
    finally:
        await conn.close()
    documents = [(orjson.loads(d), orjson.loads(m)) for d, m in rows]
    assert documents == [
        (None, {}),
        ({"name": "a\ufffdb"}, {}),
        ({"a": None}, {}),
        ([1, "x", None], {}),
        ("t", {}),
        (0, {}),
        ([], {}),
        (1, {"note": "a\ufffdb"}),
    ]


async def test_a_text_field_with_a_nul_character_is_refused_alone_with_422(
    pg_store: PostgresStore,
) -> None:
    bad = replace(candidate(), subject="a\x00b")
    results = await asyncio.gather(
        pg_store.append([candidate(id="before")]),
        pg_store.append([bad]),
        pg_store.append([candidate(id="after")]),
        return_exceptions=True,
    )

    assert isinstance(results[1], TidingsError) and results[1].status == 422
    assert [e.id for e in await everything(pg_store)] == ["before", "after"]


async def test_text_json_cannot_carry_fails_its_caller_alone(pg_store: PostgresStore) -> None:
    """A lone surrogate cannot be written as JSON (the group's rows) nor as UTF-8: the group is
    written again caller by caller, and only that caller is refused."""
    bad = replace(candidate(), subject="a\ud800b")
    results = await asyncio.gather(
        pg_store.append([candidate(id="before")]),
        pg_store.append([bad]),
        pg_store.append([candidate(id="after")]),
        return_exceptions=True,
    )

    assert isinstance(results[1], TidingsError)
    assert [e.id for e in await everything(pg_store)] == ["before", "after"]


@pytest.mark.parametrize(
    ("params", "index"),
    [
        ({"type": "kind.3"}, "events_by_type"),
        ({"source": "source-3"}, "events_by_source"),
        ({"subject": "device-3"}, "events_by_subject"),
        ({"trace_id": f"{3:032x}"}, "events_by_trace"),
        ({"data.category": "c3"}, "events_data"),
        ({"metadata.kind": "k3"}, "events_metadata"),
    ],
)
async def test_each_filter_can_use_its_index(
    pg_store: PostgresStore, params: dict[str, str], index: str
) -> None:
    """The SQL a selective filter becomes is one its index serves (EXPLAIN after ANALYZE).

    docs/topics/ordering.md shows the plans on a million events."""
    await pg_store.append(
        [
            candidate(
                f"kind.{n % 97}",
                source=f"source-{n % 89}",
                subject=f"device-{n % 83}",
                trace_id=f"{n % 71 + 1:032x}",
                data={"category": f"c{n % 79}"},
                metadata={"kind": f"k{n % 73}"},
            )
            for n in range(3000)
        ]
    )
    await pg_store.run(lambda conn: conn.execute("ANALYZE events"))
    sql_params = Params("default")
    where = " AND ".join(["tenant = $1", *filter_clause(parse_filter(params), sql_params)])
    sql = f"SELECT {EVENT_COLUMNS} FROM events WHERE {where} ORDER BY seq DESC LIMIT 100"

    async def explain(conn: asyncpg.Connection) -> str:
        async with conn.transaction():
            rows = await conn.fetch("EXPLAIN " + sql, *sql_params.values)
        return "\n".join(r[0] for r in rows)

    assert index in await pg_store.run(explain)


async def test_pages_with_a_data_filter_read_in_windows_find_what_one_read_finds(
    pg_store: PostgresStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A data.<path> or type pattern page first reads the positions next to where it starts,
    then the rest: the answer must be the one a single read gives, in every order and bound."""
    from tidings.store.postgres import pages

    seqs = [
        r.seq
        for r in await pg_store.append(
            [candidate("a.x.c" if n % 7 == 0 else "b.y.c",
                       data={"c": "rare" if n % 9 == 0 else "common"}, metadata={"n": n})
             for n in range(60)]
        )
    ]  # fmt: skip
    queries = [
        Query(filter=parse_filter(flt), order=order, limit=limit, after=after, before=before)
        for flt in (
            {"data.c": "rare"},
            {"data.c": "common"},
            {"data.c": "none"},
            {"type": "a.*.c"},
            {"type": "*.y.#"},
            {"type": "z.#"},
            {"type": "a.*.c", "data.c": "common"},
            {"type": "a.x.c,b.y.c"},
            {"type": "a.x.c,z.z,a.x.c", "data.c": "rare"},
            {"type": "b.y.c,a.*.c"},
        )
        for order in ("asc", "desc")
        for limit in (1, 4, 100)
        for after, before in ((None, None), (seqs[5], None), (None, seqs[50]), (seqs[3], seqs[40]))
    ]

    async def answers() -> list[list[int]]:
        found = []
        for q in queries:
            found.append([e.seq for e in await pg_store.query("default", q)])
            flt = q.filter
            found.append(
                [e.seq for e in await pg_store.read_after("default", q.after or 0, q.limit, flt)]
            )
        return found

    monkeypatch.setattr(pages, "WINDOW", 10**9)
    whole = await answers()
    monkeypatch.setattr(pages, "WINDOW", 4)
    assert await answers() == whole
    assert any(whole)


async def test_a_lost_server_answers_503_and_the_store_recovers_by_itself(
    pg_store: PostgresStore, pg_url: str
) -> None:
    await pg_store.append([candidate()])
    admin = await asyncpg.connect(pg_url)
    try:
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name = 'tidings' AND pid <> pg_backend_pid() "
            "AND datname = current_database()"
        )
    finally:
        await admin.close()

    outcomes = []
    for _ in range(3):  # each dead pooled connection may fail once, then is replaced
        try:
            await pg_store.append([candidate()])
            outcomes.append("stored")
        except TidingsError as error:
            assert (error.status, error.code) == (503, "store_unavailable")
            outcomes.append("503")
    await pg_store.ping()
    assert outcomes[-1] == "stored"
    assert len(await everything(pg_store)) == 1 + outcomes.count("stored")
