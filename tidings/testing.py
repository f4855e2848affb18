"""In-memory implementations of Tidings' narrow seams, for tests (Tidings' own and its users').

``MemoryStore`` keeps the event log's contract, and the other members of a ``Backend`` have
their twins too (tests/contract runs the same suites against them and against every other
implementation) without a file, a thread or a transaction, so a test that needs a store but not
a disk stays fast and deterministic. ``memory_backend()`` bundles them.
"""

from __future__ import annotations

import logging
from bisect import bisect_left, bisect_right
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace

from tidings.envelope import AppendResult, Candidate, Event, Filter
from tidings.envelope.timefmt import now_us
from tidings.errors import TidingsError
from tidings.store.auth import ApiKey, Tenant
from tidings.store.backend import Backend
from tidings.store.base import (
    BucketCount,
    CommitListener,
    CountQuery,
    GroupListener,
    Query,
    StoreStats,
)
from tidings.store.idempotency import conflict_error, same_content
from tidings.store.listeners import Listeners
from tidings.store.memory.deliveries import MemoryDeliveryStore
from tidings.store.memory.state import MemoryDeadLetters, MemoryLeases, MemorySinkCursors
from tidings.store.memory.transfer import MemoryTransfer
from tidings.store.stats import HOUR_US, STATS_TOP, hours_since, store_stats

__all__ = [
    "MemoryAuthStore",
    "MemoryDeadLetters",
    "MemoryDeliveryStore",
    "MemoryLeases",
    "MemorySinkCursors",
    "MemoryStore",
    "memory_backend",
]

log = logging.getLogger("tidings.testing")


def _seq(event: Event) -> int:
    return event.seq


class MemoryStore:
    """``Store`` held in Python lists and dicts.

    The data belongs to the object, not to ``open``: ``close`` then ``open`` finds every event
    again, as reopening a file would. ``clock`` (microseconds since the epoch) stamps
    ``received_at``; a test may pass or assign its own to control time.
    """

    def __init__(self, *, clock: Callable[[], int] = now_us) -> None:
        self.clock = clock  # stamps received_at, never trusted to move forwards
        self._log: list[Event] = []  # every stored event, in seq order
        self._by_id: dict[tuple[str, str], Event] = {}  # (tenant, id): its newest event
        self._by_key: dict[tuple[str, str], Event] = {}  # (tenant, dedupe key): its event
        self._purged: dict[str, int] = {}  # tenant: the highest seq retention deleted
        self._last_seq = 0  # the highest seq ever given, so a purge never lets one be reused
        self._last_received_us = 0  # received_at never goes backwards
        self._listeners = Listeners(log)  # each append is a group of its own
        self._open = False  # appends and reads are refused while closed

    # -- life cycle ---------------------------------------------------------------------

    async def open(self) -> None:
        self._open = True

    async def close(self) -> None:
        self._open = False

    def _require_open(self) -> None:
        if not self._open:
            raise TidingsError(503, "store_closed", "the store is not open")

    async def ping(self) -> None:
        self._require_open()

    def add_commit_listener(self, listener: CommitListener) -> None:
        self._listeners.commit.append(listener)

    def add_group_listener(self, listener: GroupListener) -> None:
        self._listeners.group.append(listener)

    async def size_bytes(self) -> int:
        return sum(_size(event) for event in self._log)

    # -- writes -------------------------------------------------------------------------

    async def append(self, candidates: Sequence[Candidate]) -> list[AppendResult]:
        """Stage the whole call first, so a conflict anywhere in it stores nothing."""
        self._require_open()
        received_us = max(self.clock(), self._last_received_us)
        staged: dict[tuple[str, str], Event] = {}  # this call's keys, for repeats within it
        results: list[AppendResult] = []
        events: list[Event] = []
        seq = self._last_seq
        for index, c in enumerate(candidates):
            key = (c.tenant, c.dedupe_key) if c.dedupe_key is not None else None
            if key is not None:
                found = staged[key] if key in staged else self._by_key.get(key)
                if found is not None:
                    if not same_content(
                        found.type, found.source, found.subject, found.data_json, c
                    ):
                        raise conflict_error(index, c.idempotency_key)
                    results.append(AppendResult(found.id, found.seq, True))
                    continue
            seq += 1
            event = c.stored(seq, received_us)
            if key is not None:
                staged[key] = event
            events.append(event)
            results.append(AppendResult(c.id, seq, False))
        if events:
            self._commit(events, staged, received_us)
        self._listeners.tell_group(len(candidates), 0.0)  # metrics never fail a publish
        return results

    def _commit(
        self, events: list[Event], keys: dict[tuple[str, str], Event], received_us: int
    ) -> None:
        self._log.extend(events)
        for event in events:
            self._by_id[(event.tenant, event.id)] = event
        self._by_key.update(keys)
        self._last_seq = events[-1].seq
        self._last_received_us = received_us
        self._listeners.tell_commit(events)

    async def purge(
        self, older_than_us: int, chunk: int = 1000, keep_from: int | None = None
    ) -> int:
        """Delete events received before ``older_than_us``, but none from ``keep_from`` on.

        ``chunk`` only matters on disk, where it bounds each transaction.
        """
        if chunk < 1:
            raise ValueError("purge chunk must be at least 1")
        self._require_open()
        kept: list[Event] = []
        deleted: list[Event] = []
        for event in self._log:
            due = event.received_at_us < older_than_us
            needed = keep_from is not None and event.seq >= keep_from
            (deleted if due and not needed else kept).append(event)
        self._log = kept
        for event in deleted:
            tenant = event.tenant
            self._purged[tenant] = max(self._purged.get(tenant, 0), event.seq)
        self._forget(deleted)
        return len(deleted)

    def _forget(self, deleted: Iterable[Event]) -> None:
        """Drop index entries that point at deleted events (a purged key may be used again)."""
        gone = {id(event) for event in deleted}
        for index in (self._by_id, self._by_key):
            for name in [name for name, event in index.items() if id(event) in gone]:
                del index[name]

    # -- reads --------------------------------------------------------------------------

    def head(self) -> int:
        return self._last_seq

    async def get(self, tenant: str, event_id: str) -> Event | None:
        self._require_open()
        return self._by_id.get((tenant, event_id))

    async def query(self, tenant: str, query: Query) -> list[Event]:
        self._require_open()
        lo = 0 if query.after is None else bisect_right(self._log, query.after, key=_seq)
        hi = len(self._log)
        if query.before is not None:
            hi = bisect_left(self._log, query.before, key=_seq)
        positions = range(lo, hi) if query.order == "asc" else range(hi - 1, lo - 1, -1)
        found: list[Event] = []
        if query.limit <= 0:
            return found
        for position in positions:
            event = self._log[position]
            if event.tenant == tenant and _in_bounds(event, query) and query.filter.matches(event):
                found.append(event)
                if len(found) == query.limit:
                    break
        return found

    async def read_after(
        self, tenant: str, after: int, limit: int, filter: Filter | None = None
    ) -> list[Event]:
        self._require_open()
        flt = filter or Filter()
        found: list[Event] = []
        if limit <= 0:
            return found
        for position in range(bisect_right(self._log, after, key=_seq), len(self._log)):
            event = self._log[position]
            if event.tenant == tenant and flt.matches(event):
                found.append(event)
                if len(found) == limit:
                    break
        return found

    async def read_log(self, after: int, through: int, limit: int) -> list[Event]:
        self._require_open()
        lo = bisect_right(self._log, after, key=_seq)
        hi = bisect_right(self._log, through, key=_seq)
        return self._log[lo : min(hi, lo + max(limit, 0))]

    async def position_before(self, tenant: str, received_at_us: int) -> int:
        self._require_open()
        for event in reversed(self._log):
            if event.tenant == tenant and event.received_at_us < received_at_us:
                return event.seq
        return 0

    async def earliest(self, tenant: str) -> int | None:
        self._require_open()
        return next((event.seq for event in self._log if event.tenant == tenant), None)

    async def purged_through(self, tenant: str) -> int:
        self._require_open()
        return self._purged.get(tenant, 0)

    async def stats(self, tenant: str) -> StoreStats:
        self._require_open()
        events = [event for event in self._log if event.tenant == tenant]
        since = hours_since(self.clock())
        hours = Counter(e.received_at_us // HOUR_US for e in events if e.received_at_us >= since)
        return store_stats(
            total=len(events),
            by_type=Counter(event.type for event in events).most_common(STATS_TOP),
            by_source=Counter(event.source for event in events).most_common(STATS_TOP),
            by_hour=sorted(hours.items()),
            head_seq=self._last_seq,
            earliest_seq=events[0].seq if events else None,
            size_bytes=await self.size_bytes(),
        )

    async def count_buckets(self, tenant: str, counts: CountQuery) -> list[BucketCount]:
        self._require_open()
        query, width, origin = counts.query, counts.width_us, counts.origin_us
        tally: Counter[tuple[int, str | None]] = Counter()
        for event in self._log:
            if event.tenant != tenant or not _in_bounds(event, query):
                continue
            if (query.after is not None and event.seq <= query.after) or (
                query.before is not None and event.seq >= query.before
            ):
                continue
            if query.filter.matches(event):
                start = origin + (event.received_at_us - origin) // width * width
                key = None if counts.by is None else getattr(event, counts.by)
                tally[start, key] += 1
        return [
            BucketCount(start, key, n)
            for (start, key), n in sorted(tally.items(), key=_bucket_order)
        ]


def _bucket_order(item: tuple[tuple[int, str | None], int]) -> tuple[int, str]:
    (start, key), _ = item
    return start, key or ""


def _in_bounds(event: Event, query: Query) -> bool:
    """The time bounds of ``query`` (inclusive); seq bounds are applied by position."""
    bounds = (
        (query.since_us, event.received_at_us, query.until_us),
        (query.time_since_us, event.time_us, query.time_until_us),
    )
    for low, value, high in bounds:
        if (low is not None and value < low) or (high is not None and value > high):
            return False
    return True


def _size(event: Event) -> int:
    """About the bytes an event holds: its text fields (``size_bytes`` is a file size on disk)."""
    texts = (event.id, event.type, event.source, event.subject or "", event.trace_id)
    return sum(map(len, texts)) + len(event.data_json) + len(event.metadata_json) + 16


def memory_backend(store: MemoryStore | None = None) -> Backend:
    """Every protocol of a ``Backend`` in memory; the data lives as long as the objects."""
    events, deliveries, dead_letters = (
        store or MemoryStore(),
        MemoryDeliveryStore(),
        MemoryDeadLetters(),
    )
    return Backend(
        url="memory://",
        events=events,
        deliveries=deliveries,
        sink_cursors=MemorySinkCursors(),
        dead_letters=dead_letters,
        leases=MemoryLeases(),
        auth=MemoryAuthStore(),
        transfer=MemoryTransfer(events, deliveries, dead_letters),
    )


class MemoryAuthStore:
    """``AuthStore`` held in dicts; ``default`` exists from the start, as in every backend."""

    def __init__(self, *, clock: Callable[[], int] = now_us) -> None:
        self._tenants: dict[str, Tenant] = {"default": Tenant("default", "default", clock())}
        self._keys: dict[str, ApiKey] = {}  # by id, in creation order

    async def create_tenant(self, tenant: Tenant) -> bool:
        if tenant.id in self._tenants:
            return False
        self._tenants[tenant.id] = tenant
        return True

    async def get_tenant(self, tenant_id: str) -> Tenant | None:
        return self._tenants.get(tenant_id)

    async def list_tenants(self) -> list[Tenant]:
        return sorted(self._tenants.values(), key=lambda t: (t.created_at_us, t.id))

    async def create_key(self, key: ApiKey) -> None:
        if key.tenant not in self._tenants:
            raise ValueError(f"no tenant {key.tenant!r}")
        if key.id in self._keys or any(k.hash == key.hash for k in self._keys.values()):
            raise ValueError("a key with this id or secret exists")
        self._keys[key.id] = key

    async def get_key(self, key_id: str) -> ApiKey | None:
        return self._keys.get(key_id)

    async def key_by_hash(self, key_hash: str) -> ApiKey | None:
        return next((k for k in self._keys.values() if k.hash == key_hash), None)

    async def list_keys(self, tenant: str | None = None) -> list[ApiKey]:
        found = [k for k in self._keys.values() if tenant is None or k.tenant == tenant]
        return sorted(found, key=lambda k: (k.created_at_us, k.id))

    async def revoke_key(self, key_id: str, at_us: int) -> ApiKey | None:
        key = self._keys.get(key_id)
        if key is None or key.revoked_at_us is not None:
            return None
        self._keys[key_id] = revoked = replace(key, revoked_at_us=at_us)
        return revoked

    async def count_active_keys(self) -> int:
        return sum(1 for k in self._keys.values() if k.revoked_at_us is None)
