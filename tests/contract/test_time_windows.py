"""Pages over a producer-time window answer the same whatever the block summary holds.

The SQL stores read a ``time_since``/``time_until`` page through a summary of the log in
blocks of positions (tidings/store/time_blocks.py); the in-memory twin scans. Every answer is
checked against a scan of the whole log, with producer clocks that go backwards, jump, and
repeat, before and after the summary catches up, past a purge, and with an empty tail.
"""

from __future__ import annotations

import random
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tidings.envelope import DEFAULT_TENANT, Event, Filter
from tidings.envelope.timefmt import now_us
from tidings.store import Query, Store
from tidings.store.postgres import PostgresStore
from tidings.store.sqlite import SqliteStore
from tidings.store.time_blocks import BLOCK

from .test_store_contract import ALL, candidate, everything

if TYPE_CHECKING:
    from tests.contract.conftest import FakeClock, StoreHarness

SPAN = 1_000_000  # producer times run over 0 .. SPAN, more or less in seq order


async def catch_up(store: Store) -> None:
    """Bring the store's summary up to its head (stores without one have nothing to do)."""
    summary = getattr(store, "time_summary", None)
    if summary is not None:
        await summary.catch_up()


def skewed_times(count: int, seed: int) -> list[int]:
    """Mostly increasing; some producers far behind or ahead, some runs going backwards."""
    rng = random.Random(seed)
    times = []
    for n in range(count):
        base = n * SPAN // count
        roll = rng.random()
        if roll < 0.05:
            times.append(rng.randrange(0, SPAN))  # a clock anywhere
        elif roll < 0.08:
            times.append(SPAN - base)  # a clock running backwards
        elif roll < 0.10:
            times.append(base // 2)  # the same time for many events, far behind
        else:
            times.append(base)
    return times


async def load(store: Store, times: list[int], *, tenant: str = DEFAULT_TENANT) -> None:
    base = candidate(tenant=tenant)
    rows = [
        replace(
            base,
            id=f"{tenant}-{n}-{t}",
            time_us=t,
            type="odd.one" if n % 7 == 0 else "thing.happened",
        )
        for n, t in enumerate(times)
    ]
    for lo in range(0, len(rows), 700):
        await store.append(rows[lo : lo + 700])


def expected(events: list[Event], q: Query) -> list[int]:
    found = [
        e.seq
        for e in events
        if (q.time_since_us is None or e.time_us >= q.time_since_us)
        and (q.time_until_us is None or e.time_us <= q.time_until_us)
        and (q.after is None or e.seq > q.after)
        and (q.before is None or e.seq < q.before)
        and q.filter.matches(e)
    ]
    return (found if q.order == "asc" else found[::-1])[: max(q.limit, 0)]


def queries(head: int, seed: int, count: int = 60) -> list[Query]:
    rng = random.Random(seed)
    out = []
    for n in range(count):
        lo = rng.randrange(-1000, SPAN)
        width = rng.choice([0, 1, 1000, 30_000, SPAN // 4, SPAN])
        since: int | None = lo
        until: int | None = lo + width
        if n % 5 == 1:
            since = None
        elif n % 5 == 2:
            until = None
        after = rng.randrange(0, head) if n % 3 == 0 else None
        before = rng.randrange(0, head + 10) if n % 4 == 0 else None
        flt = Filter(types=("odd.one",)) if n % 6 == 0 else Filter()
        out.append(
            Query(
                filter=flt,
                order=rng.choice(["asc", "desc"]),
                limit=rng.choice([0, 1, 7, 100, ALL]),
                time_since_us=since,
                time_until_us=until,
                after=after,
                before=before,
            )
        )
    return out


async def assert_pages_agree(store: Store, seed: int) -> None:
    events = await everything(store)
    for q in queries(store.head(), seed):
        got = [e.seq for e in await store.query(DEFAULT_TENANT, q)]
        assert got == expected(events, q), q


async def test_time_windows_agree_with_a_scan_before_and_after_the_summary(store: Store) -> None:
    await load(store, skewed_times(3 * BLOCK + 300, seed=1))
    await load(store, skewed_times(BLOCK, seed=2), tenant="acme")
    await assert_pages_agree(store, seed=10)  # nothing summarised yet, or some of it

    await catch_up(store)
    await assert_pages_agree(store, seed=11)

    # new events in the unsummarised tail, with times anywhere
    await load(store, skewed_times(500, seed=3))
    await assert_pages_agree(store, seed=12)


async def test_time_windows_agree_when_the_tail_is_empty(store: Store) -> None:
    first = candidate()
    [result] = await store.append([first])
    # fill up to the last position of a block, so the summary covers everything
    missing = BLOCK - 1 - result.seq % BLOCK + BLOCK
    await load(store, skewed_times(missing, seed=4))
    assert store.head() % BLOCK == BLOCK - 1
    await catch_up(store)
    await assert_pages_agree(store, seed=13)


async def test_time_windows_agree_after_a_purge(store: Store, clock: FakeClock) -> None:
    await load(store, skewed_times(2 * BLOCK + 100, seed=5))
    await load(store, skewed_times(300, seed=6), tenant="acme")
    await catch_up(store)
    cutoff = clock.advance(10)
    await load(store, skewed_times(BLOCK + 50, seed=7))

    assert await store.purge(cutoff) > 0
    await assert_pages_agree(store, seed=14)
    assert [e.seq for e in await everything(store, "acme")] == []
    assert await store.query("acme", Query(time_since_us=0, limit=ALL)) == []

    await catch_up(store)
    await load(store, skewed_times(300, seed=8), tenant="acme")
    await assert_pages_agree(store, seed=15)
    acme = await store.query("acme", Query(time_since_us=0, order="asc", limit=ALL))
    assert len(acme) == 300


async def test_the_summary_survives_a_reopen_and_keeps_growing(
    harness: StoreHarness, store: Store
) -> None:
    await load(store, skewed_times(2 * BLOCK, seed=9))
    await catch_up(store)
    window = Query(time_since_us=SPAN // 3, time_until_us=SPAN // 2, limit=ALL)
    found = [e.seq for e in await store.query(DEFAULT_TENANT, window)]
    assert found == expected(await everything(store), window)
    assert found

    reopened = await harness.reopen()
    assert [e.seq for e in await reopened.query(DEFAULT_TENANT, window)] == found
    await load(reopened, skewed_times(BLOCK + 10, seed=16))
    await catch_up(reopened)
    await assert_pages_agree(reopened, seed=17)


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
async def test_a_purge_drops_the_blocks_it_emptied_and_keeps_the_rest(
    backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    from tests.contract.conftest import FakeClock

    clock = FakeClock(now_us())
    monkeypatch.setattr(f"tidings.store.{backend}.writer.now_us", clock)
    store: SqliteStore | PostgresStore
    if backend == "sqlite":
        store = SqliteStore(tmp_path / "tidings.db")
    else:
        store = PostgresStore(request.getfixturevalue("pg_url"), pool_size=4)
    await store.open()
    try:
        await _purge_and_prune(store, clock)
    finally:
        await store.close()


async def _purge_and_prune(store: SqliteStore | PostgresStore, clock: FakeClock) -> None:
    async def blocks() -> list[tuple[str, int]]:
        sql = "SELECT tenant, block FROM event_time_blocks ORDER BY 1, 2"
        if isinstance(store, SqliteStore):
            return await store.read(lambda conn: conn.execute(sql).fetchall())
        return [(r[0], r[1]) for r in await store.run(lambda conn: conn.fetch(sql))]

    await load(store, skewed_times(3 * BLOCK - 20, seed=18))
    await load(store, skewed_times(10, seed=19), tenant="acme")  # in block 2
    await load(store, skewed_times(BLOCK + 20, seed=20))
    await catch_up(store)

    assert await blocks() == [("acme", 2), *(("default", b) for b in range(4))]
    cutoff = clock.advance(10)
    await load(store, skewed_times(100, seed=21))

    await store.purge(cutoff, keep_from=BLOCK + 5)  # default keeps block 1 on
    assert await blocks() == [("acme", 2), *(("default", b) for b in (1, 2, 3))]
    await assert_pages_agree(store, seed=22)

    await store.purge(cutoff, keep_from=3 * BLOCK + 5)  # acme has nothing left
    assert await blocks() == [("default", 3)]
    await assert_pages_agree(store, seed=23)
    assert await store.query("acme", Query(time_since_us=0)) == []
