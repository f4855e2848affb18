"""The stores under contract: every test that takes ``store`` runs once per implementation.

An implementation is a function that builds store objects over one location (a file, an
object, a database schema) whose data outlives any one of them, so tests can close a store and
open the same data again. A PostgreSQL store joins as one more entry in ``IMPLEMENTATIONS``::

    pytest.param(_postgres, id="postgres", marks=pytest.mark.postgres)
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tidings.envelope.timefmt import now_us
from tidings.store import Store
from tidings.store.postgres import PostgresStore
from tidings.store.sqlite import SqliteStore
from tidings.testing import MemoryStore

Clock = Callable[[], int]


@dataclass(frozen=True)
class Implementation:
    name: str
    build: Callable[[], Store]  # a new store object over the same data
    use_clock: Callable[[Clock], None]  # make ``received_at`` come from this clock


def _sqlite(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Implementation:
    path = tmp_path / "tidings.db"

    def use_clock(clock: Clock) -> None:
        monkeypatch.setattr("tidings.store.sqlite.writer.now_us", clock)

    return Implementation("sqlite", lambda: SqliteStore(path), use_clock)


def _memory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Implementation:
    # The data lives in the object, so "reopening" is opening the same object again.
    store = MemoryStore()

    def use_clock(clock: Clock) -> None:
        store.clock = clock

    return Implementation("memory", lambda: store, use_clock)


def _postgres(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Implementation:
    # A schema of its own in the run's database (tests/pg.py), taken when the test starts.
    url = tmp_path.joinpath("pg_url").read_text()

    def use_clock(clock: Clock) -> None:
        monkeypatch.setattr("tidings.store.postgres.writer.now_us", clock)

    return Implementation("postgres", lambda: PostgresStore(url, pool_size=4), use_clock)


IMPLEMENTATIONS = [
    pytest.param(_sqlite, id="sqlite"),
    pytest.param(_memory, id="memory"),
    pytest.param(_postgres, id="postgres", marks=pytest.mark.postgres),
]


class StoreHarness:
    """Opens, reopens and finally closes the stores of one implementation in one test."""

    def __init__(self, implementation: Implementation) -> None:
        self.implementation = implementation
        self.name = implementation.name
        self.store: Store | None = None  # the one open now, closed at the end of the test

    async def open(self) -> Store:
        store = self.implementation.build()
        await store.open()
        self.store = store
        return store

    async def reopen(self) -> Store:
        """Close the current store and open its data again, as a restarted process would."""
        await self.close()
        return await self.open()

    async def close(self) -> None:
        if self.store is not None:
            await self.store.close()
            self.store = None

    def use_clock(self, clock: Clock) -> None:
        self.implementation.use_clock(clock)


class FakeClock:
    """A clock a test moves by hand (microseconds since the epoch)."""

    def __init__(self, now_us: int) -> None:
        self.now_us = now_us

    def __call__(self) -> int:
        return self.now_us

    def advance(self, seconds: float) -> int:
        self.now_us += round(seconds * 1_000_000)
        return self.now_us


@pytest.fixture(params=IMPLEMENTATIONS)
async def harness(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[StoreHarness]:
    if request.param is _postgres:
        tmp_path.joinpath("pg_url").write_text(request.getfixturevalue("pg_url"))
    harness = StoreHarness(request.param(tmp_path, monkeypatch))
    yield harness
    await harness.close()


@pytest.fixture
async def store(harness: StoreHarness) -> Store:
    """An open, empty store of each implementation; closed after the test."""
    return await harness.open()


@pytest.fixture
def clock(harness: StoreHarness) -> FakeClock:
    """The clock that stamps ``received_at`` in this test, starting at the real time."""
    fake = FakeClock(now_us())
    harness.use_clock(fake)
    return fake


@pytest.fixture
async def sqlite_store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    """For what only the SQLite store has: group commit, the writer queue, the schema."""
    store = SqliteStore(tmp_path / "tidings.db")
    await store.open()
    yield store
    await store.close()
