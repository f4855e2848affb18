"""Live writes: once per loop turn, each woken SSE connection's frames in one socket write.

The router offers a committed group's events to every matching cursor and wakes their
connections. Rather than waking a task per connection, which then sends each event through
the ASGI layers, a woken connection is marked here, and at the end of the loop turn every
marked connection that is *live* (at the head, nothing unsent in its transport) writes what
is queued for it, pre-encoded frames joined into one HTTP chunk, with one ``transport.write``.
A connection that is not live (behind, paused by a slow socket, shutting down) hands itself
to a task of its own instead; that task returns once the connection is live again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Protocol

log = logging.getLogger("tidings.streams")


class LiveWriter(Protocol):
    def flush_live(self) -> int:
        """Write what is queued (answer how many events), or hand over to its own task."""


class LiveWrites:
    """The connections woken during this loop turn, flushed together at its end."""

    def __init__(self, count: Callable[[int], None] = lambda events: None) -> None:
        self._marked: dict[LiveWriter, None] = {}  # insertion-ordered, each connection once
        self._scheduled = False  # a flush is due at the end of this loop turn
        self._count = count  # told the events written by each flush (a metric, counted once)

    def mark(self, conn: LiveWriter) -> None:
        self._marked[conn] = None
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> None:
        self._scheduled = False
        marked, self._marked = self._marked, {}
        written = 0
        for conn in marked:
            try:
                written += conn.flush_live()
            except Exception:  # one broken connection must not keep the others waiting
                log.exception("live write failed")
        if written:
            self._count(written)


class Ticking(Protocol):
    def tick(self, now: float) -> None:
        """Called every period of the clock: send a heartbeat when one is due."""


class HeartbeatClock:
    """One task that ticks every SSE connection's heartbeat, instead of a timer each.

    An idle connection should cost as little as possible: a timer handle per connection
    weighs about 0.7 KB (``bench/fanout/memory_breakdown.py``), a member of this set a few
    bytes. Ticks come every quarter of the shortest heartbeat period, so a heartbeat is sent
    at most a quarter period late.
    """

    def __init__(self) -> None:
        self._members: set[Ticking] = set()
        self._period = 0.0  # seconds between ticks, set by the first member
        self._task: asyncio.Task[None] | None = None

    def join(self, member: Ticking, heartbeat_s: float) -> None:
        period = min(max(heartbeat_s / 4, 0.01), 5.0)
        self._period = min(self._period, period) if self._period else period
        self._members.add(member)
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name="tidings:stream-heartbeats"
            )

    def leave(self, member: Ticking) -> None:
        self._members.discard(member)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._members:
                await asyncio.sleep(self._period)
                now = loop.time()
                for member in list(self._members):
                    try:
                        member.tick(now)
                    except Exception:  # one broken connection must not stop the others' beats
                        log.exception("heartbeat failed")
        finally:
            self._task = None
