"""The store protocol: the durable, ordered log of events. Every implementation passes the
same contract suite (tests/contract)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from tidings.envelope import AppendResult, Candidate, Event, Filter

CommitListener = Callable[[list[Event]], None]
"""Called in the event loop after each commit with its events, in seq order, once per commit."""

GroupListener = Callable[[int, float], None]
"""Told of each write group (metrics): candidates in it, seconds from its start to its commit."""


@dataclass(frozen=True, slots=True)
class Query:
    """A history query. Bounds on seq are exclusive; bounds on time are inclusive."""

    filter: Filter = field(default_factory=Filter)
    since_us: int | None = None  # received_at >= since
    until_us: int | None = None  # received_at <= until
    time_since_us: int | None = None  # the producer's time >= time_since
    time_until_us: int | None = None
    after: int | None = None  # seq > after
    before: int | None = None  # seq < before
    order: Literal["asc", "desc"] = "desc"
    limit: int = 100


GroupBy = Literal["type", "source", "subject"]


@dataclass(frozen=True, slots=True)
class CountQuery:
    """Event counts in fixed-width buckets of ``received_at``, optionally split by a field.

    The events counted are those ``query`` selects (its filter and its time and seq bounds;
    its order and limit do not apply). A bucket starts at ``origin_us + k * width_us``, with
    ``0 <= origin_us < width_us`` (a day bucket in a zone at UTC+1 has ``origin_us`` = 23 h).
    """

    query: Query
    width_us: int
    origin_us: int = 0
    by: GroupBy | None = None

    def __post_init__(self) -> None:
        if self.width_us <= 0 or not 0 <= self.origin_us < self.width_us:
            raise ValueError("CountQuery needs width_us > 0 and 0 <= origin_us < width_us")


@dataclass(frozen=True, slots=True)
class BucketCount:
    """How many events of one bucket have one value of the ``by`` field."""

    start_us: int
    key: str | None  # the value of ``by``; None when ``by`` is None or the event has no value
    count: int


@dataclass(frozen=True, slots=True)
class StoreStats:
    total: int
    by_type: dict[str, int]
    by_source: dict[str, int]
    by_hour: list[dict[str, Any]]
    head_seq: int
    earliest_seq: int | None
    size_bytes: int


class Store(Protocol):
    """The event log: append events durably in seq order and read them back.

    ``size_bytes`` and ``add_group_listener`` joined the protocol when the store became a
    backend (they were probed for before); everything else is unchanged.
    """

    async def open(self) -> None:
        """Create or migrate the schema and start the writer."""

    async def close(self) -> None:
        """Commit what is queued, checkpoint and release every resource."""

    async def append(self, candidates: Sequence[Candidate]) -> list[AppendResult]:
        """Store the candidates of one caller, all or nothing, and answer after the commit.

        A repeat of a stored deduplication key answers its original (``duplicate``); the same
        key with other content raises TidingsError 409 ``idempotency_conflict`` and stores
        nothing of this call. Other callers committed in the same group are unaffected.
        """

    async def get(self, tenant: str, event_id: str) -> Event | None: ...

    async def query(self, tenant: str, query: Query) -> list[Event]: ...

    async def read_after(
        self, tenant: str, after: int, limit: int, filter: Filter | None = None
    ) -> list[Event]:
        """Events with seq > ``after`` in seq order (the stream catch-up read)."""

    async def read_log(self, after: int, through: int, limit: int) -> list[Event]:
        """Events of every tenant with ``after < seq <= through`` in seq order (gap repair)."""

    async def position_before(self, tenant: str, received_at_us: int) -> int:
        """The highest seq of a tenant received before ``received_at_us`` (0 when none).

        A stream that resumes ``since`` a time starts after this position.
        """

    def head(self) -> int:
        """The highest committed seq (0 when empty)."""

    async def earliest(self, tenant: str) -> int | None:
        """The lowest stored seq of a tenant, or None when it has no events."""

    async def purged_through(self, tenant: str) -> int:
        """The highest seq retention has deleted for a tenant (0 when none)."""

    async def purge(
        self, older_than_us: int, chunk: int = 1000, keep_from: int | None = None
    ) -> int:
        """Delete events received before ``older_than_us`` in small chunks; the count.

        Events with ``seq >= keep_from`` are kept whatever their age (a delivery needs them).
        """

    async def stats(self, tenant: str) -> StoreStats: ...

    async def count_buckets(self, tenant: str, counts: CountQuery) -> list[BucketCount]:
        """Counts of the selected events per bucket and key, in bucket order.

        Only non-empty (bucket, key) pairs are listed, each once; the order of keys within a
        bucket is unspecified.
        """

    async def ping(self) -> None:
        """Raise when the store cannot serve."""

    def add_commit_listener(self, listener: CommitListener) -> None: ...

    def add_group_listener(self, listener: GroupListener) -> None:
        """Be told of every write group (size, duration); a store without groups tells of
        each append as a group of its own."""

    async def size_bytes(self) -> int:
        """About how many bytes the store occupies (files on disk, or the database's size)."""


async def purge_in_chunks(delete_chunk: Callable[[], Awaitable[int]], chunk: int) -> int:
    """Run ``delete_chunk`` (it deletes at most ``chunk`` events, each time in a short
    transaction of its own) until a run deletes fewer; answers how many were deleted."""
    if chunk < 1:
        raise ValueError("purge chunk must be at least 1")
    total = 0
    while True:
        deleted = await delete_chunk()
        total += deleted
        if deleted < chunk:
            return total
