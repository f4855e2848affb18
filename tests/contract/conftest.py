"""The stores under contract: every test runs once per implementation of its protocol.

The event log (``store``, ``harness``): an implementation is a function that builds store
objects over one location (a file, an object, a database schema) whose data outlives any one
of them, so tests can close a store and open the same data again. A PostgreSQL store joins as
one more entry in ``IMPLEMENTATIONS``::

    pytest.param(_postgres, id="postgres", marks=pytest.mark.postgres)

The other protocols of a backend (``deliveries``, ``sink_cursors``, ``dead_letters``,
``leases``, and ``backend`` itself): each has its own list of openers, async context managers
that yield an open, empty ``Backend`` whose member is under test. A backend joins a protocol's
suite with one entry in that protocol's list::

    pytest.param(_postgres_backend, id="postgres", marks=pytest.mark.postgres)
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tidings.envelope.timefmt import now_us
from tidings.store import AuthStore, Backend, Store, open_backend
from tidings.store.dead_letters import DeadLetterStore
from tidings.store.deliveries import DeliveryStore
from tidings.store.leases import Leases
from tidings.store.postgres import PostgresStore, postgres_backend
from tidings.store.sink_cursors import SinkCursors
from tidings.store.sqlite import SqliteStore
from tidings.testing import MemoryStore, memory_backend

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


# -- the other protocols of a backend --------------------------------------------------------

BackendOpener = Callable[[Path], AbstractAsyncContextManager[Backend]]


@asynccontextmanager
async def _sqlite_backend(tmp_path: Path) -> AsyncIterator[Backend]:
    backend = open_backend(f"sqlite:///{tmp_path / 'backend.db'}", tmp_path)
    await backend.open()
    try:
        yield backend
    finally:
        await backend.close()


@asynccontextmanager
async def _memory_backend(tmp_path: Path) -> AsyncIterator[Backend]:
    backend = memory_backend()
    await backend.open()
    try:
        yield backend
    finally:
        await backend.close()


@asynccontextmanager
async def _postgres_backend(tmp_path: Path) -> AsyncIterator[Backend]:
    backend = postgres_backend(tmp_path.joinpath("pg_url").read_text(), pool_size=4)
    await backend.open()
    try:
        yield backend
    finally:
        await backend.close()


BACKENDS = [
    pytest.param(_sqlite_backend, id="sqlite"),
    pytest.param(_memory_backend, id="memory"),
    pytest.param(_postgres_backend, id="postgres", marks=pytest.mark.postgres),
]
DELIVERY_STORES = [
    pytest.param(_sqlite_backend, id="sqlite"),
    pytest.param(_memory_backend, id="memory"),
    pytest.param(_postgres_backend, id="postgres", marks=pytest.mark.postgres),
]
SINK_CURSORS = [
    pytest.param(_sqlite_backend, id="sqlite"),
    pytest.param(_memory_backend, id="memory"),
    pytest.param(_postgres_backend, id="postgres", marks=pytest.mark.postgres),
]
DEAD_LETTERS = [
    pytest.param(_sqlite_backend, id="sqlite"),
    pytest.param(_memory_backend, id="memory"),
    pytest.param(_postgres_backend, id="postgres", marks=pytest.mark.postgres),
]
LEASES = [
    pytest.param(_sqlite_backend, id="sqlite"),
    pytest.param(_memory_backend, id="memory"),
    pytest.param(_postgres_backend, id="postgres", marks=pytest.mark.postgres),
]
AUTH_STORES = [
    pytest.param(_sqlite_backend, id="sqlite"),
    pytest.param(_memory_backend, id="memory"),
    pytest.param(_postgres_backend, id="postgres", marks=pytest.mark.postgres),
]


async def _opened(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    opener: BackendOpener = request.param
    if opener is _postgres_backend:
        tmp_path.joinpath("pg_url").write_text(request.getfixturevalue("pg_url"))
    async with opener(tmp_path) as backend:
        yield backend


@pytest.fixture(params=BACKENDS)
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    """An open, empty backend of each implementation (for what spans its protocols)."""
    async for opened in _opened(request, tmp_path):
        yield opened


@pytest.fixture(params=DELIVERY_STORES)
async def deliveries(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[DeliveryStore]:
    async for opened in _opened(request, tmp_path):
        yield opened.deliveries


@pytest.fixture(params=SINK_CURSORS)
async def sink_cursors(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[SinkCursors]:
    async for opened in _opened(request, tmp_path):
        yield opened.sink_cursors


@pytest.fixture(params=DEAD_LETTERS)
async def dead_letters(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[DeadLetterStore]:
    async for opened in _opened(request, tmp_path):
        yield opened.dead_letters


@pytest.fixture(params=LEASES)
async def leases(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Leases]:
    async for opened in _opened(request, tmp_path):
        yield opened.leases


@pytest.fixture(params=AUTH_STORES)
async def auth_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AuthStore]:
    """Tenants and keys of each backend, open and holding only ``default``."""
    async for opened in _opened(request, tmp_path):
        yield opened.auth
