"""The router against a store that fails and recovers, and against announcements that are
lost, duplicated or out of order: every live subscription gets every event once, in order."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from tidings.backplane import Announcement
from tidings.envelope import Event, Filter, Limits, PublishContext, candidates_from_json
from tidings.errors import TidingsError
from tidings.ingest.backoff import Backoff
from tidings.router import router as router_module
from tidings.router.router import Router
from tidings.streams.cursor import Cursor
from tidings.testing import MemoryStore


class FlakyStore(MemoryStore):
    """A store whose next ``failures`` log reads fail, as a database that went away does."""

    def __init__(self) -> None:
        super().__init__()
        self.failures = 0  # reads still to fail
        self.reads = 0  # every read attempted

    async def read_log(self, after: int, through: int, limit: int) -> list[Event]:
        self.reads += 1
        if self.failures:
            self.failures -= 1
            raise TidingsError(503, "store_unavailable", "the store is not answering")
        return await super().read_log(after, through, limit)


@dataclass(eq=False)
class Subscriber:
    cursor: Cursor = field(
        default_factory=lambda: Cursor("default", Filter(), 0, live=True, max_events=100_000)
    )
    wakes: int = 0

    def wake(self) -> None:
        self.wakes += 1

    @property
    def seqs(self) -> list[int]:
        return [event.seq for event in self.cursor.queue]


@pytest.fixture
async def store() -> FlakyStore:
    opened = FlakyStore()
    await opened.open()
    return opened


def quick() -> Backoff:
    return Backoff(0.001, 0.004, jitter=0.0)


async def commit(store: MemoryStore, count: int) -> list[Event]:
    """Store ``count`` events in one commit; its events, as the backplane would carry them."""
    bodies = [{"type": "thing.happened", "data": {"n": n}} for n in range(count)]
    candidates, _ = candidates_from_json(bodies, PublishContext(tenant="default"), Limits())
    results = await store.append(candidates)
    return await MemoryStore.read_log(store, results[0].seq - 1, results[-1].seq, count)


async def routed(router: Router, store: MemoryStore) -> None:
    assert await router.wait_routed(store.head(), timeout=5.0), "the router stalled"


async def reads_reach(router: Router, store: FlakyStore, reads: int) -> None:
    """Wait until the store was asked ``reads`` times (the repair keeps trying)."""
    for _ in range(500):
        if store.reads >= reads:
            return
        assert not await router.wait_routed(store.head(), timeout=0.01)
    raise AssertionError(f"the repair gave up after {store.reads} reads")


def start(store: MemoryStore) -> tuple[Router, Subscriber]:
    router = Router(store, backoff=quick())
    subscriber = Subscriber()
    router.subscribe(subscriber)
    return router, subscriber


# -- a store that fails and recovers ---------------------------------------------------------


async def test_a_failed_repair_read_is_retried_until_the_store_answers(
    store: FlakyStore,
) -> None:
    router, subscriber = start(store)
    await commit(store, 3)  # its announcement is lost: the gap must be read
    store.failures = 3
    router.on_announcement(Announcement.of(await commit(store, 2)))
    await routed(router, store)
    assert subscriber.seqs == [1, 2, 3, 4, 5]
    assert store.reads == 4  # three failures, then the read that answered
    assert router.repair_failures == 0
    await router.stop()


async def test_announcements_during_an_outage_are_routed_in_order_once_it_ends(
    store: FlakyStore,
) -> None:
    router, subscriber = start(store)
    store.failures = 1_000_000  # down until the test says otherwise
    router.on_announcement(Announcement(0, 0, None))  # nothing to read yet
    await commit(store, 1)  # lost
    for _ in range(5):
        router.on_announcement(Announcement.of(await commit(store, 2)))
    await reads_reach(router, store, 3)
    assert subscriber.seqs == []  # nothing out of order while the gap is unread
    assert router.repair_failures >= 3
    store.failures = 0
    await routed(router, store)
    assert subscriber.seqs == list(range(1, 12))
    assert router.repair_failures == 0
    await router.stop()


async def test_a_long_outage_keeps_the_queue_bounded_and_loses_nothing(
    store: FlakyStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(router_module, "MAX_PENDING", 8)
    router, subscriber = start(store)
    store.failures = 1_000_000
    await commit(store, 1)  # lost: the first announcement below needs a read
    for n in range(50):
        router.on_announcement(Announcement.of(await commit(store, 1)))
        assert len(router._pending) <= 9
        if n % 10 == 0:
            await reads_reach(router, store, store.reads + 1)  # still failing, still trying
    assert subscriber.seqs == []
    store.failures = 0
    await routed(router, store)
    assert subscriber.seqs == list(range(1, 52))
    await router.stop()


async def test_check_head_repairs_after_the_store_recovers(store: FlakyStore) -> None:
    router, subscriber = start(store)
    await commit(store, 4)  # every announcement lost
    store.failures = 2
    router.check_head(store.head())
    router.check_head(store.head())  # a second check while the first repair runs is harmless
    await routed(router, store)
    assert subscriber.seqs == [1, 2, 3, 4]
    await commit(store, 2)  # lost again: the next periodic check finds it
    router.check_head(store.head())
    await routed(router, store)
    assert subscriber.seqs == [1, 2, 3, 4, 5, 6]
    await router.stop()


# -- lost, duplicated and out-of-order announcements -----------------------------------------


async def test_contiguous_carried_announcements_are_routed_without_reading(
    store: FlakyStore,
) -> None:
    router, subscriber = start(store)
    for _ in range(3):
        router.on_announcement(Announcement.of(await commit(store, 2)))
    assert subscriber.seqs == [1, 2, 3, 4, 5, 6]
    assert store.reads == 0
    await router.stop()


async def test_a_lost_announcement_is_read_from_the_store(store: FlakyStore) -> None:
    router, subscriber = start(store)
    router.on_announcement(Announcement.of(await commit(store, 2)))
    await commit(store, 2)  # lost
    router.on_announcement(Announcement.of(await commit(store, 2)))
    await routed(router, store)
    assert subscriber.seqs == [1, 2, 3, 4, 5, 6]
    await router.stop()


async def test_a_duplicated_announcement_is_routed_once(store: FlakyStore) -> None:
    router, subscriber = start(store)
    first = Announcement.of(await commit(store, 2))
    second = Announcement.of(await commit(store, 2))
    for announcement in (first, first, second, first, second):
        router.on_announcement(announcement)
    await routed(router, store)
    assert subscriber.seqs == [1, 2, 3, 4]
    await router.stop()


async def test_out_of_order_announcements_are_routed_in_seq_order(store: FlakyStore) -> None:
    router, subscriber = start(store)
    early = Announcement.of(await commit(store, 2))
    middle = Announcement.of(await commit(store, 2))
    late = Announcement.of(await commit(store, 2))
    for announcement in (late, early, middle):
        router.on_announcement(announcement)
    await routed(router, store)
    assert subscriber.seqs == [1, 2, 3, 4, 5, 6]
    await router.stop()


async def test_an_announcement_without_events_is_read_from_the_store(store: FlakyStore) -> None:
    router, subscriber = start(store)
    events = await commit(store, 3)
    router.on_announcement(Announcement(0, events[-1].seq, None))  # too big to carry
    await routed(router, store)
    assert subscriber.seqs == [1, 2, 3]
    await router.stop()
