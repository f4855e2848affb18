"""Concurrent appends: nothing lost, nothing doubled, positions in causal order.

The first part runs against every store. The second part, ``TestSqliteWriter``, is specific to
the SQLite store: its group commit, its writer queue at shutdown and its schema migrations.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import random
import sqlite3
import threading
from bisect import bisect_left
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tidings.envelope import (
    DEFAULT_TENANT,
    AppendResult,
    Candidate,
    Event,
    Limits,
    PublishContext,
    candidates_from_json,
)
from tidings.errors import TidingsError
from tidings.store import Query, Store, StoreOpenError
from tidings.store.sql import load_migrations
from tidings.store.sqlite import SqliteStore
from tidings.store.sqlite.store import migrate

if TYPE_CHECKING:
    from tests.contract.conftest import FakeClock

APPENDERS = 50
EVENTS_EACH = 200


def candidate(data: Any = None, **fields: Any) -> Candidate:
    body = {"type": "load.tested", "data": data, **fields}
    return candidates_from_json(body, PublishContext(), Limits())[0][0]


async def read_all(store: Store, tenant: str = DEFAULT_TENANT) -> list[Event]:
    """Every event of a tenant in seq order, paged the way a stream catches up."""
    events: list[Event] = []
    while page := await store.read_after(tenant, events[-1].seq if events else 0, 1000):
        events.extend(page)
    return events


# -- every store ----------------------------------------------------------------------------


async def test_concurrent_appenders_lose_nothing_and_duplicate_nothing(store: Store) -> None:
    async def appender(who: int) -> list[AppendResult]:
        results = []
        for n in range(EVENTS_EACH):
            results.extend(await store.append([candidate({"who": who, "n": n})]))
        return results

    answered = [r for rs in await asyncio.gather(*map(appender, range(APPENDERS))) for r in rs]

    total = APPENDERS * EVENTS_EACH
    stored = await read_all(store)
    assert sorted(r.seq for r in answered) == list(range(1, total + 1))
    assert [e.seq for e in stored] == list(range(1, total + 1))
    assert {r.id: r.seq for r in answered} == {e.id: e.seq for e in stored}
    assert sorted((e.data["who"], e.data["n"]) for e in stored) == sorted(
        itertools.product(range(APPENDERS), range(EVENTS_EACH))
    )
    # each appender's own events keep its order
    for who in range(APPENDERS):
        mine = [e.data["n"] for e in stored if e.data["who"] == who]
        assert mine == list(range(EVENTS_EACH))
    stamps = [e.received_at_us for e in stored]
    assert stamps == sorted(stamps)
    assert store.head() == total


async def test_an_append_that_returned_before_another_was_called_has_the_smaller_seq(
    store: Store,
) -> None:
    ticks = itertools.count()  # one loop thread: a shared counter orders calls and returns
    calls: list[tuple[int, int, int]] = []  # (called, returned, seq)

    async def appender(who: int) -> None:
        for n in range(30):
            called = next(ticks)
            [result] = await store.append([candidate({"who": who, "n": n})])
            calls.append((called, next(ticks), result.seq))
            if n % 7 == who % 7:
                await asyncio.sleep(0)  # vary the interleaving

    await asyncio.gather(*map(appender, range(30)))

    by_return = sorted(calls, key=lambda call: call[1])
    returns = [returned for _, returned, _ in by_return]
    highest_so_far = list(itertools.accumulate((seq for _, _, seq in by_return), max))
    for called, _, seq in calls:
        finished_before = bisect_left(returns, called)  # appends that returned before this call
        if finished_before:
            assert highest_so_far[finished_before - 1] < seq


async def test_racing_the_same_key_stores_once_and_answers_both_with_its_seq(store: Store) -> None:
    first, second, other = await asyncio.gather(
        store.append([candidate({"v": 1}, id="a", idempotency_key="race")]),
        store.append([candidate({"v": 1}, id="b", idempotency_key="race")]),
        store.append([candidate({"v": 2}, id="c")]),
    )

    assert (first[0].id, first[0].seq) == (second[0].id, second[0].seq)
    assert sorted([first[0].duplicate, second[0].duplicate]) == [False, True]
    assert other[0].duplicate is False
    assert sorted(e.id for e in await read_all(store)) == sorted([first[0].id, "c"])


async def test_a_conflicting_caller_among_concurrent_ones_fails_alone(store: Store) -> None:
    await store.append([candidate({"v": 1}, idempotency_key="taken")])

    outcomes = await asyncio.gather(
        *(store.append([candidate({"n": n}), candidate({"n": n + 100})]) for n in range(5)),
        store.append(
            [candidate({"n": -1}, id="doomed"), candidate({"v": 2}, idempotency_key="taken")]
        ),
        *(store.append([candidate({"n": n})]) for n in range(5, 10)),
        return_exceptions=True,
    )

    refused = [o for o in outcomes if isinstance(o, BaseException)]
    assert len(refused) == 1
    assert isinstance(refused[0], TidingsError) and refused[0].code == "idempotency_conflict"
    stored = await read_all(store)
    assert len(stored) == 1 + 5 * 2 + 5
    assert "doomed" not in {e.id for e in stored}


async def test_received_at_never_decreases_in_seq_order_while_the_clock_jumps_around(
    store: Store, clock: FakeClock
) -> None:
    jitter = random.Random(7)
    start = clock.now_us

    def jumpy() -> int:
        return start + jitter.randint(-5_000_000, 5_000_000)

    clock.now_us = jumpy()

    async def appender(who: int) -> None:
        for n in range(20):
            clock.now_us = jumpy()
            await store.append([candidate({"who": who, "n": n})])

    await asyncio.gather(*map(appender, range(20)))

    stamps = [e.received_at_us for e in await read_all(store)]
    assert len(stamps) == 400
    assert stamps == sorted(stamps)
    assert stamps[0] < stamps[-1]  # the jumps forward were taken


# -- the SQLite writer ----------------------------------------------------------------------


@contextlib.asynccontextmanager
async def writer_held(store: SqliteStore) -> AsyncIterator[None]:
    """Keep the writer waiting until the block ends, so what is appended inside is queued.

    Another connection holds the write lock; a first append ("the plug") takes the writer into
    ``BEGIN IMMEDIATE``, where it waits. Everything appended meanwhile is committed as the
    next group once the lock is released.
    """
    blocker = sqlite3.connect(store.path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    plug = asyncio.create_task(store.append([candidate(id="plug")]))
    await asyncio.sleep(0.1)  # time for the writer to take the plug and wait for the lock
    try:
        yield
    finally:
        blocker.execute("COMMIT")
        blocker.close()
    await plug


def sqlite_store_commits(store: SqliteStore) -> int:
    """How many transactions the write-ahead log holds: its frames that end a commit.

    A frame header's second word is the database size after the commit for a commit frame,
    zero otherwise; frames whose salt differs from the log header's are left from before.
    """
    data = Path(f"{store.path}-wal").read_bytes()
    page_size = int.from_bytes(data[8:12], "big")
    salt = data[16:24]
    commits = 0
    for offset in range(32, len(data) - 24 + 1, 24 + page_size):
        frame = data[offset : offset + 24]
        if frame[8:16] == salt and int.from_bytes(frame[4:8], "big"):
            commits += 1
    return commits


def files_open_on(path: Path) -> int:
    """How many of this process's open files are ``path`` or its -wal and -shm (Linux)."""
    count = 0
    for fd in Path("/proc/self/fd").iterdir():
        with contextlib.suppress(OSError):
            count += os.readlink(fd).startswith(str(path.resolve()))
    return count


class TestSqliteWriter:
    """The SQLite store's writer thread, queue and schema."""

    async def test_concurrent_appends_are_committed_in_groups(
        self, sqlite_store: SqliteStore
    ) -> None:
        groups: list[int] = []
        sqlite_store.add_group_listener(lambda count, seconds: groups.append(count))

        async def appender(who: int) -> None:
            for n in range(20):
                await sqlite_store.append([candidate({"who": who, "n": n})])

        await asyncio.gather(*map(appender, range(APPENDERS)))

        assert sum(groups) == APPENDERS * 20
        assert max(groups) > 1
        assert len(groups) < APPENDERS * 20

    async def test_two_callers_racing_one_key_in_one_group_store_one_event(
        self, sqlite_store: SqliteStore
    ) -> None:
        groups: list[int] = []
        sqlite_store.add_group_listener(lambda count, seconds: groups.append(count))

        async with writer_held(sqlite_store):
            racing = [
                asyncio.create_task(
                    sqlite_store.append([candidate({"v": 1}, id=name, idempotency_key="k")])
                )
                for name in ("a", "b")
            ]
            bystander = asyncio.create_task(sqlite_store.append([candidate({"v": 2}, id="c")]))
            await asyncio.sleep(0)  # every task has queued its append

        [a], [b] = [await task for task in racing]
        [c] = await bystander

        # the plug alone, then the three together (or, on a slow machine, all four at once)
        assert groups in ([1, 3], [4])
        assert (a.id, a.seq, a.duplicate) == ("a", a.seq, False)
        assert (b.id, b.seq, b.duplicate) == ("a", a.seq, True)
        assert (c.id, c.duplicate) == ("c", False)
        assert c.seq == a.seq + 1
        assert [e.id for e in await read_all(sqlite_store)] == ["plug", "a", "c"]

    async def test_a_conflicting_caller_in_a_group_does_not_fail_the_others(
        self, sqlite_store: SqliteStore
    ) -> None:
        await sqlite_store.append([candidate({"v": 1}, idempotency_key="taken")])
        groups: list[int] = []
        sqlite_store.add_group_listener(lambda count, seconds: groups.append(count))
        committed: list[Event] = []
        sqlite_store.add_commit_listener(committed.extend)

        async with writer_held(sqlite_store):
            before = asyncio.create_task(
                sqlite_store.append([candidate(id="b1"), candidate(id="b2")])
            )
            doomed = asyncio.create_task(
                sqlite_store.append(
                    [candidate(id="d1"), candidate({"v": 2}, idempotency_key="taken")]
                )
            )
            after = asyncio.create_task(sqlite_store.append([candidate(id="a1")]))
            await asyncio.sleep(0)

        with pytest.raises(TidingsError) as raised:
            await doomed
        assert raised.value.code == "idempotency_conflict"
        b1, b2 = await before
        [a1] = await after
        assert groups in ([1, 5], [6])
        assert (b1.seq + 1, b2.seq + 1) == (b2.seq, a1.seq)
        assert [e.id for e in committed] == ["plug", "b1", "b2", "a1"]
        assert "d1" not in {e.id for e in await read_all(sqlite_store)}

    async def test_a_row_sqlite_cannot_store_fails_only_its_caller(
        self, sqlite_store: SqliteStore
    ) -> None:
        unstorable = candidate(id="bad")
        unstorable.data_json = {"not": "text"}  # type: ignore[assignment]

        async with writer_held(sqlite_store):
            good = asyncio.create_task(sqlite_store.append([candidate(id="good")]))
            bad = asyncio.create_task(sqlite_store.append([unstorable]))
            await asyncio.sleep(0)

        with pytest.raises(TidingsError) as raised:
            await bad
        assert raised.value.status == 500
        assert (await good)[0].duplicate is False
        assert [e.id for e in await read_all(sqlite_store)] == ["plug", "good"]

    async def test_a_long_batch_with_keys_among_its_rows_keeps_positions_in_order(
        self, sqlite_store: SqliteStore
    ) -> None:
        [earlier] = await sqlite_store.append([candidate(1, id="earlier", idempotency_key="dup")])
        committed: list[Event] = []
        sqlite_store.add_commit_listener(committed.extend)
        batch = [candidate({"n": n}, id=f"e{n}") for n in range(300)]
        batch[5] = candidate({"n": 5}, id="k5", idempotency_key="k5")
        batch[130] = candidate(1, id="again", idempotency_key="dup")  # a repeat: not stored
        batch[299] = candidate({"n": 299}, id="k299", idempotency_key="k299")

        results = await sqlite_store.append(batch)

        assert results[130] == AppendResult("earlier", earlier.seq, True)
        stored = [r for r in results if not r.duplicate]
        assert [r.seq for r in stored] == list(range(earlier.seq + 1, earlier.seq + 300))
        assert [r.id for r in stored] == [c.id for i, c in enumerate(batch) if i != 130]
        events = await read_all(sqlite_store)
        assert [(e.seq, e.id) for e in events[1:]] == [(r.seq, r.id) for r in stored]
        assert [(e.seq, e.id, e.data) for e in committed] == [
            (e.seq, e.id, e.data) for e in events[1:]
        ]
        assert len({e.received_at_us for e in events[1:]}) == 1
        keys = {e.id: e.idempotency_key for e in events}
        assert (keys["k5"], keys["k299"], keys["e6"]) == ("k5", "k299", None)

    @pytest.mark.parametrize("size", [2, 100, 128])
    @pytest.mark.parametrize(
        ("field", "value"),
        [("data_json", {"not": "text"}), ("type", None)],  # cannot be bound; NOT NULL midway
    )
    async def test_a_batch_of_one_statement_with_a_refused_row_stores_none_of_it(
        self, sqlite_store: SqliteStore, size: int, field: str, value: Any
    ) -> None:
        doomed = [candidate({"n": n}, id=f"d{n}") for n in range(size)]
        setattr(doomed[size // 2], field, value)

        async with writer_held(sqlite_store):
            before = asyncio.create_task(sqlite_store.append([candidate(id="b1")]))
            bad = asyncio.create_task(sqlite_store.append(doomed))
            after = asyncio.create_task(sqlite_store.append([candidate(id="a1")]))
            await asyncio.sleep(0)

        with pytest.raises(TidingsError) as raised:
            await bad
        assert raised.value.status == 500
        [b1], [a1] = await before, await after
        assert a1.seq == b1.seq + 1
        assert [e.id for e in await read_all(sqlite_store)] == ["plug", "b1", "a1"]

    async def test_a_row_sqlite_cannot_store_deep_in_a_long_batch_fails_only_its_caller(
        self, sqlite_store: SqliteStore
    ) -> None:
        doomed = [candidate({"n": n}, id=f"d{n}") for n in range(300)]
        doomed[250].data_json = {"not": "text"}  # type: ignore[assignment]

        async with writer_held(sqlite_store):
            before = asyncio.create_task(sqlite_store.append([candidate(id="b1")]))
            bad = asyncio.create_task(sqlite_store.append(doomed))
            after = asyncio.create_task(
                sqlite_store.append([candidate(id=f"a{n}") for n in range(200)])
            )
            await asyncio.sleep(0)

        with pytest.raises(TidingsError) as raised:
            await bad
        assert raised.value.status == 500
        [b1] = await before
        after_results = await after
        assert [r.seq for r in after_results] == list(range(b1.seq + 1, b1.seq + 201))
        ids = [e.id for e in await read_all(sqlite_store)]
        assert ids == ["plug", "b1"] + [f"a{n}" for n in range(200)]

    async def test_other_writes_share_the_group_and_a_failing_one_fails_alone(
        self, sqlite_store: SqliteStore
    ) -> None:
        commits_before = sqlite_store_commits(sqlite_store)

        def note(value: str) -> Any:
            def run(conn: sqlite3.Connection) -> str:
                conn.execute("CREATE TABLE IF NOT EXISTS notes (v TEXT PRIMARY KEY)")
                conn.execute("INSERT INTO notes VALUES (?)", (value,))
                return value

            return run

        async with writer_held(sqlite_store):
            first = asyncio.create_task(sqlite_store.write(note("x")))
            publish = asyncio.create_task(sqlite_store.append([candidate(id="p")]))
            clash = asyncio.create_task(sqlite_store.write(note("x")))  # primary key taken
            last = asyncio.create_task(sqlite_store.write(note("y")))
            await asyncio.sleep(0)

        assert await first == "x"
        assert (await publish)[0].duplicate is False
        with pytest.raises(sqlite3.IntegrityError):
            await clash
        assert await last == "y"
        rows = await sqlite_store.read(lambda conn: conn.execute("SELECT v FROM notes").fetchall())
        assert sorted(rows) == [("x",), ("y",)]
        assert [e.id for e in await read_all(sqlite_store)] == ["plug", "p"]
        # the plug's transaction, then one for everything queued behind it
        assert sqlite_store_commits(sqlite_store) - commits_before <= 2

    async def test_closing_commits_every_queued_append_before_it_returns(
        self, sqlite_store: SqliteStore
    ) -> None:
        blocker = sqlite3.connect(sqlite_store.path, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        queued = [
            asyncio.create_task(sqlite_store.append([candidate({"n": n})])) for n in range(100)
        ]
        await asyncio.sleep(0.1)  # the writer waits for the lock with everything queued
        closing = asyncio.create_task(sqlite_store.close())
        await asyncio.sleep(0.05)
        assert not closing.done()
        blocker.execute("COMMIT")
        blocker.close()

        await closing

        assert all(task.done() for task in queued)
        seqs = [task.result()[0].seq for task in queued]
        reopened = SqliteStore(sqlite_store.path)
        await reopened.open()
        try:
            assert [e.seq for e in await read_all(reopened)] == sorted(seqs)
            assert len(seqs) == 100
        finally:
            await reopened.close()

    async def test_an_append_after_close_is_refused_with_503(
        self, sqlite_store: SqliteStore
    ) -> None:
        await sqlite_store.close()

        with pytest.raises(TidingsError) as raised:
            await sqlite_store.append([candidate()])

        assert (raised.value.status, raised.value.code) == (503, "store_closed")

    async def test_a_newer_schema_than_the_code_knows_refuses_to_open(self, tmp_path: Path) -> None:
        path = tmp_path / "future.db"
        latest = load_migrations("tidings.store.sqlite.migrations")[-1][0]
        with contextlib.closing(sqlite3.connect(path)) as conn:
            conn.execute(f"PRAGMA user_version = {latest + 1}")
        store = SqliteStore(path)

        with pytest.raises(StoreOpenError, match=rf"version {latest + 1}.*upgrade Tidings"):
            await store.open()

        assert files_open_on(path) == 0  # the refused file is not left open
        with pytest.raises(TidingsError):
            await store.append([candidate()])

    async def test_migrations_are_idempotent_on_reopen(self, tmp_path: Path) -> None:
        path = tmp_path / "tidings.db"
        for _ in range(3):
            store = SqliteStore(path)
            await store.open()
            await store.append([candidate()])
            await store.close()

        latest = load_migrations("tidings.store.sqlite.migrations")[-1][0]
        with contextlib.closing(sqlite3.connect(path)) as conn:
            schema = conn.execute("SELECT sql FROM sqlite_master ORDER BY name").fetchall()
            assert migrate(conn) == latest
            assert conn.execute("PRAGMA user_version").fetchone()[0] == latest
            assert conn.execute("SELECT sql FROM sqlite_master ORDER BY name").fetchall() == schema
            assert conn.execute("SELECT COUNT(*) FROM events").fetchone()[0] == 3

    async def test_a_reopened_store_object_serves_reads_again(
        self, sqlite_store: SqliteStore
    ) -> None:
        await sqlite_store.append([candidate(id="a")])
        await sqlite_store.close()

        await sqlite_store.open()

        assert [e.id for e in await sqlite_store.query(DEFAULT_TENANT, Query())] == ["a"]
        [b] = await sqlite_store.append([candidate(id="b")])
        assert b.seq == 2

    async def test_a_cancelled_read_keeps_its_connection_until_its_thread_is_done(
        self, tmp_path: Path
    ) -> None:
        store = SqliteStore(tmp_path / "tidings.db", readers=1)
        await store.open()
        try:
            await store.append([candidate(id="a")])
            reading, release = threading.Event(), threading.Event()

            def slow_read(conn: sqlite3.Connection) -> None:
                reading.set()
                release.wait(timeout=10)
                conn.execute("SELECT 1").fetchone()

            # The pool itself: no public read can be made to wait in its thread on demand.
            slow = asyncio.create_task(store._readers.run(slow_read))
            assert await asyncio.to_thread(reading.wait, 10)
            slow.cancel()
            next_read = asyncio.create_task(store.get(DEFAULT_TENANT, "a"))
            await asyncio.sleep(0.05)

            assert not next_read.done()  # the only connection is still in use
            release.set()
            assert (await next_read) is not None
            with pytest.raises(asyncio.CancelledError):
                await slow
        finally:
            await store.close()
