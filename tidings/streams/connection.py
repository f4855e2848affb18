"""The asyncio glue around cursors: one loop per connection that feeds its subscriptions.

A connection sleeps until the router wakes it, then drains everything queued for all its
subscriptions into one write (coalescing: a burst costs one socket write, not one per event).
A subscription that is behind pages the store at the pace the socket accepts. A write goes out
in pieces of about ``WRITE_PIECE`` bytes, each of which must be accepted within the stall time:
a slow socket that keeps draining is never closed, only one that accepts nothing.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import Any

from tidings import metrics
from tidings.envelope import DEFAULT_TENANT, Event, Filter
from tidings.router.router import Router
from tidings.store import Store
from tidings.streams.cursor import Cursor
from tidings.streams.progress import ProgressWatch, UnsentBytes, unsent_bytes

log = logging.getLogger("tidings.streams")
PAGE = 500  # events per catch-up read
# The stall timer restarts with each piece. A transport accepts a send at once below its high
# water mark (64 KiB) and otherwise waits until it drained to the low one, so one piece timing
# out means the socket took well under two pieces' worth of bytes in the whole stall time.
WRITE_PIECE = 65_536
_ids = itertools.count(1)


class Stalled(Exception):
    """The socket accepted nothing for the stall time."""


class StoreReadError(Exception):
    """A catch-up read from the store failed: the stream says ``store_error`` and ends."""


STORE_ERROR_MESSAGE = "events could not be read from the store; reconnect later"


class Subscription:
    """One subscription of a connection (SSE has one, a WebSocket may have several)."""

    __slots__ = ("connection", "cursor", "id")

    def __init__(self, connection: StreamConnection, sub_id: str, cursor: Cursor) -> None:
        self.connection = connection  # woken when events are queued
        self.id = sub_id  # the client's name for it (WebSocket), "" for SSE
        self.cursor = cursor

    def wake(self) -> None:
        self.connection.wake()


class StreamConnection(ABC):
    """Transport-independent stream loop; SSE and WebSocket supply framing and sending."""

    transport = "base"
    # Whether the server's send waits only while the transport is paused (then an idle,
    # empty transport can take a send without a stall deadline).
    waits_only_when_paused = False

    def __init__(self, store: Store, router: Router, *, heartbeat_s: float, stall_s: float) -> None:
        self.id = f"c{next(_ids)}-{int(time.time() * 1000) % 100000:05d}"
        self.store = store  # catch-up reads
        self.router = router  # live events
        self.heartbeat_s = heartbeat_s
        self.stall_s = stall_s
        self.subs: dict[str, Subscription] = {}
        self._wake: asyncio.Event | None = None  # what ``run`` waits on; made when it runs
        self._outbox: list[bytes] = []  # system and control frames waiting to be sent
        self.closing = False  # the client went away or the connection must end
        self.shutdown_retry_ms: int | None = None  # set when the server shuts down
        self.farewell: bytes | None = None  # the last frame before the server ends it
        self.ended = False  # ended by the server (key revoked), not by the client
        self.delivered = 0  # events written
        self.scope: Any = None  # the ASGI scope, by which the server finds the transport
        self.tenant = DEFAULT_TENANT  # whose events it streams (the key's tenant)
        self.socket_transport: asyncio.WriteTransport | None = None  # found once, by the registry
        self._events_metric = metrics.STREAM_EVENTS.labels(self.transport)

    # -- framing supplied by the transport ----------------------------------------------

    @abstractmethod
    def encode_event(self, sub: Subscription, event: Event) -> bytes: ...

    @abstractmethod
    def encode_heartbeat(self, position: int | None, positions: dict[str, int | None]) -> bytes: ...

    @abstractmethod
    def encode_system(self, code: str, details: dict[str, Any]) -> bytes: ...

    @abstractmethod
    def encode_shutdown(self, retry_ms: int) -> bytes: ...

    def encode_store_error(self, retry_ms: int) -> bytes:
        """The last frame of a stream whose store read failed; clients wait ``retry_ms``."""
        return self.encode_system(
            "store_error", {"message": STORE_ERROR_MESSAGE, "retry_ms": retry_ms}
        )

    @abstractmethod
    async def send(self, frames: list[bytes]) -> None:
        """Write frames to the socket (may wait for the socket to drain)."""

    # -- subscriptions --------------------------------------------------------------------

    def add_subscription(
        self, sub_id: str, tenant: str, filter: Filter, position: int | None
    ) -> Subscription:
        """Subscribe from ``position`` (catch up from the store) or, when None, from the head."""
        live = position is None
        start = self.router.routed_through if position is None else position
        sub = Subscription(self, sub_id, Cursor(tenant, filter, start, live=live))
        self.subs[sub_id] = sub
        self.router.subscribe(sub)
        self.wake()
        return sub

    def remove_subscription(self, sub_id: str) -> bool:
        sub = self.subs.pop(sub_id, None)
        if sub is None:
            return False
        self.router.unsubscribe(sub)
        return True

    def remove_all(self) -> None:
        for sub_id in list(self.subs):
            self.remove_subscription(sub_id)

    # -- signals from elsewhere -----------------------------------------------------------

    def wake(self) -> None:
        if self._wake is not None:
            self._wake.set()

    def unsent(self) -> int | None:
        """Bytes the kernel still holds for the peer, or None when that cannot be seen."""
        transport = self.socket_transport
        return unsent_bytes(transport.get_extra_info("socket") if transport else None)

    def push(self, frame: bytes) -> None:
        """Queue a control frame (system message, reply) to go out with the next write."""
        self._outbox.append(frame)
        self.wake()

    def system(self, code: str, details: dict[str, Any]) -> None:
        self.push(self.encode_system(code, details))

    def close(self) -> None:
        self.closing = True
        self.wake()

    def end(self, code: str, details: dict[str, Any]) -> None:
        """Send a last ``system`` message, then close (the stream's key was revoked)."""
        self.farewell = self.encode_system(code, details)
        self.ended = True
        self.close()

    def begin_shutdown(self, retry_ms: int) -> None:
        self.shutdown_retry_ms = retry_ms
        self.wake()

    @property
    def behind(self) -> bool:
        return any(sub.cursor.behind for sub in self.subs.values())

    # -- the loop -------------------------------------------------------------------------

    async def write(self, frames: list[bytes]) -> None:
        """Send frames in pieces; Stalled when one piece is not accepted within the stall time.

        Timing the whole write instead would close a slow but steady reader as soon as one
        catch-up page took longer than the stall time to drain.
        """
        for piece in pieces(frames, WRITE_PIECE):
            if self._cannot_block():
                await self.send(piece)
                continue
            try:
                async with asyncio.timeout(self.stall_s) as deadline:
                    watch = ProgressWatch(deadline, self.stall_s, self._unsent_watch())
                    try:
                        await self.send(piece)
                    finally:
                        watch.cancel()
            except TimeoutError:
                raise Stalled from None

    def _unsent_watch(self) -> UnsentBytes | None:
        return self.unsent if self.socket_transport is not None else None

    def _cannot_block(self) -> bool:
        """True when the next send is written at once, so it needs no stall deadline.

        A transport whose send waits only while it is paused (uvicorn's HTTP protocols wait
        for a drain *before* writing) and that holds no unsent bytes cannot block; skipping the
        deadline and its timer there keeps them off the fan-out hot path.
        """
        transport = self.socket_transport
        return (
            self.waits_only_when_paused
            and transport is not None
            and transport.get_write_buffer_size() == 0
        )

    async def _pump(self) -> bool:
        """Write what is ready; True when anything was written."""
        wrote = False
        if self._outbox:
            frames, self._outbox = self._outbox, []
            await self.write(frames)
            wrote = True
        batch: list[bytes] = []
        for sub in list(self.subs.values()):
            cursor = sub.cursor
            if cursor.behind:
                if batch:  # keep order: what was taken goes out before the page
                    await self.write(batch)
                    batch = []
                after = cursor.begin_read()
                try:
                    events = await self.store.read_after(cursor.tenant, after, PAGE, cursor.filter)
                except Exception as error:  # a damaged page, an I/O error: no retry loop here
                    raise StoreReadError(str(error)) from error
                if self.subs.get(sub.id) is not sub:
                    continue  # unsubscribed (and perhaps its id reused) while reading
                await self.write([self.encode_event(sub, e) for e in events])
                cursor.finish_read(events, PAGE)
                self._count(len(events))
                wrote = True
            taken = cursor.take()
            if taken:
                batch.extend(self.encode_event(sub, e) for e in taken)
                self._count(len(taken))
        if batch:
            await self.write(batch)
            wrote = True
        return wrote

    def _count(self, events: int) -> None:
        if events:
            self.delivered += events
            self._events_metric.inc(events)

    def _has_work(self) -> bool:
        if self._outbox or self.closing or self.shutdown_retry_ms is not None:
            return True
        return any(s.cursor.behind or s.cursor.queue for s in self.subs.values())

    def _heartbeat(self) -> bytes:
        routed = self.router.routed_through
        positions = {sid: s.cursor.heartbeat_position(routed) for sid, s in self.subs.items()}
        values = list(positions.values())
        common = (
            values[0]
            if values and all(v is not None for v in values) and len(set(values)) == 1
            else None
        )
        return self.encode_heartbeat(common, positions)

    async def run(self) -> None:
        """Feed the subscriptions until the connection closes or the server shuts down."""
        loop = asyncio.get_running_loop()
        next_heartbeat = loop.time() + self.heartbeat_s
        wake = self._wake = asyncio.Event()
        while not self.closing:
            if self.shutdown_retry_ms is not None:
                await self._deliver_through(self.router.routed_through)
                if not self.closing:
                    await self.write([self.encode_shutdown(self.shutdown_retry_ms)])
                return
            if await self._pump():
                continue
            now = loop.time()
            if now >= next_heartbeat:
                await self.write([self._heartbeat()])
                next_heartbeat = now + self.heartbeat_s
                continue
            wake.clear()
            if self._has_work():
                continue
            try:
                async with asyncio.timeout(next_heartbeat - now):
                    await wake.wait()
            except TimeoutError:
                pass
        if self.farewell is not None:
            frames, self._outbox = [*self._outbox, self.farewell], []
            self.farewell = None
            await self.write(frames)

    async def _deliver_through(self, position: int) -> None:
        """At shutdown: write every matching event up to ``position`` (what was committed
        before the shutdown), catching up from the store where a subscription is behind.

        The registry bounds how long this may take: past its deadline it closes the
        connection, and the client resumes from its last event after the restart.
        """

        def delivered() -> bool:
            return all(
                c.position >= position
                or (not c.behind and (not c.queue or c.queue[0].seq > position))
                for c in (sub.cursor for sub in self.subs.values())
            )

        while not self.closing and not delivered():
            await self._pump()
        if not self.closing:
            await self._pump()  # control frames and whatever else is queued live


def pieces(frames: list[bytes], size: int) -> Iterator[list[bytes]]:
    """Consecutive runs of whole frames of about ``size`` bytes (a frame is never split)."""
    piece: list[bytes] = []
    total = 0
    for frame in frames:
        piece.append(frame)
        total += len(frame)
        if total >= size:
            yield piece
            piece, total = [], 0
    if piece:
        yield piece
