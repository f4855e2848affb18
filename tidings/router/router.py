"""Per node: route committed events to live subscriptions; repair gaps from the store."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from typing import Protocol

from tidings.backplane import Announcement
from tidings.envelope import Event
from tidings.ingest.backoff import Backoff
from tidings.router.gaps import GapTracker
from tidings.router.trie import SubscriptionIndex
from tidings.store import Store
from tidings.streams.cursor import Cursor

log = logging.getLogger("tidings.router")
REPAIR_PAGE = 1000
MAX_PENDING = 256  # announcements queued behind a repair; beyond it they merge into one range


class Subscriber(Protocol):
    """What the router needs of a subscription: its cursor and a way to wake its connection."""

    cursor: Cursor

    def __hash__(self) -> int: ...

    def wake(self) -> None: ...


class Router:
    """Routes announced commits to live subscriptions, reading from the store whatever the
    announcements leave out.

    A failed store read never stalls routing: the repair retries with backoff until the store
    answers, while later announcements queue behind it (bounded: past ``MAX_PENDING`` they
    merge into one range to read, their carried events dropped — the store has them).
    """

    def __init__(self, store: Store, *, backoff: Backoff | None = None) -> None:
        self._store = store  # the truth, read when announcements leave a gap
        self._index: SubscriptionIndex[Subscriber] = SubscriptionIndex()
        self._gaps = GapTracker(store.head())
        self._pending: deque[Announcement] = deque()  # waiting behind a store read, in order
        self._repair: asyncio.Task[None] | None = None
        self._backoff = backoff or Backoff(0.05, 5.0)  # between failed store reads
        self.repair_failures = 0  # consecutive failed store reads of the running repair
        self.routed_events = 0  # events routed since start
        self.offers = 0  # (event, subscription) pairs that matched
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []  # wait_routed callers

    @property
    def routed_through(self) -> int:
        """Every committed event up to here has been offered to every live subscription."""
        return self._gaps.routed_through

    def __len__(self) -> int:
        return len(self._index)

    # -- subscriptions --------------------------------------------------------------------

    def subscribe(self, subscriber: Subscriber) -> None:
        cursor = subscriber.cursor
        self._index.add(cursor.tenant, subscriber, cursor.filter.types)

    def unsubscribe(self, subscriber: Subscriber) -> None:
        self._index.remove(subscriber.cursor.tenant, subscriber)

    # -- announcements --------------------------------------------------------------------

    def on_announcement(self, announcement: Announcement) -> None:
        """Route at once when contiguous and carried; otherwise queue behind a store read."""
        if self._pending or self._repair is not None:
            self._queue(announcement)
            return
        plan = self._gaps.plan(
            announcement.first, announcement.last, announcement.events is not None
        )
        if plan.skip:
            return
        if plan.read_from is None and announcement.events is not None:
            self._route([e for e in announcement.events if e.seq > plan.use_carried_after])
            self._advance(announcement.last)
            return
        self._pending.append(announcement)
        self._repair = asyncio.create_task(self._drain_pending(), name="tidings:router-repair")

    def check_head(self, head: int) -> None:
        """Called now and then: when the store is ahead of what was routed, repair."""
        if head > self.routed_through and not self._pending and self._repair is None:
            log.info(
                "router behind the store (%d < %d); reading the gap", self.routed_through, head
            )
            self.on_announcement(Announcement(self.routed_through, head, None))

    def _queue(self, announcement: Announcement) -> None:
        """Queue behind the repair; a long queue (a store outage) merges into one range to
        read, so memory stays bounded. The head is left alone: the repair is working on it."""
        self._pending.append(announcement)
        if len(self._pending) > MAX_PENDING:
            head = self._pending.popleft()
            first = min(a.first for a in self._pending)
            last = max(a.last for a in self._pending)
            self._pending.clear()
            self._pending.extend((head, Announcement(first, last, None)))

    async def _drain_pending(self) -> None:
        """Handle queued announcements in order; a failed store read is retried, with backoff,
        from where routing got to, until the store answers."""
        try:
            while self._pending:
                try:
                    await self._handle(self._pending[0])
                except Exception as error:
                    self.repair_failures += 1
                    delay = self._backoff.next()
                    log.warning(
                        "router: reading the store failed (%s: %s); retry %d in %.2fs",
                        type(error).__name__,
                        error,
                        self.repair_failures,
                        delay,
                        exc_info=self.repair_failures == 1,
                    )
                    await asyncio.sleep(delay)
                    continue
                if self.repair_failures:
                    log.info("router: the store answers again; the gap is repaired")
                    self.repair_failures = 0
                    self._backoff.reset()
                self._pending.popleft()
        finally:
            self._repair = None

    async def _handle(self, announcement: Announcement) -> None:
        """Route one announcement, reading first what it leaves out. Safe to call again after
        a failure: the plan starts from what was routed."""
        carried = announcement.events is not None
        plan = self._gaps.plan(announcement.first, announcement.last, carried)
        if plan.skip:
            return
        if plan.read_from is not None and plan.read_to is not None:
            await self._read_and_route(plan.read_from, plan.read_to)
        if announcement.events is not None:
            self._route([e for e in announcement.events if e.seq > self.routed_through])
        self._advance(announcement.last)

    async def _read_and_route(self, after: int, through: int) -> None:
        while after < through:
            events = await self._store.read_log(after, through, REPAIR_PAGE)
            if not events:
                self._gaps.advance(through)  # nothing there (rolled back or purged)
                return
            self._route(events)
            after = events[-1].seq
        self._gaps.advance(through)

    # -- routing --------------------------------------------------------------------------

    def _route(self, events: list[Event]) -> None:
        index = self._index
        for event in events:
            if len(index):
                for subscriber in index.match(event.tenant, event.type):
                    cursor = subscriber.cursor
                    if cursor.filter.matches(event, types_checked=True):
                        self.offers += 1
                        if cursor.offer(event):
                            subscriber.wake()
            self.routed_events += 1
        if events:
            self._gaps.advance(events[-1].seq)
            if self._waiters:
                self._wake_waiters()

    def _advance(self, position: int) -> None:
        """Everything up to ``position`` was announced and routed (the rest matched nothing)."""
        if position > self.routed_through:
            self._gaps.advance(position)
            if self._waiters:
                self._wake_waiters()

    def _wake_waiters(self) -> None:
        through = self.routed_through
        for position, waiter in list(self._waiters):
            if position <= through and not waiter.done():
                waiter.set_result(None)
        self._waiters = [(p, w) for p, w in self._waiters if not w.done()]

    async def wait_routed(self, position: int, timeout: float) -> bool:
        """Wait until everything up to ``position`` was routed (at shutdown); False on timeout."""
        if self.routed_through >= position:
            return True
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((position, waiter))
        try:
            async with asyncio.timeout(timeout):
                await waiter
        except TimeoutError:
            return False
        return True

    async def stop(self) -> None:
        if self._repair is not None:
            self._repair.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._repair
