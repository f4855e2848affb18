"""A subscription is a cursor: its position, plus the live events queued for it (no I/O).

The router offers each committed, matching event. While the queue stays under its bounds the
subscription is *live*: its connection drains the queue. When the queue overflows (a burst, a
slow socket) or the subscription starts behind the head (a resume), it is *behind*: the queue
is dropped and the connection pages the store from ``position`` at the pace its socket drains.

Being behind never disconnects and never loses an event, because the store is the truth:

* Before each page is read, ``begin_read`` empties the queue and starts queueing afresh. Every
  event committed before the read is in the read's snapshot; every event routed after
  ``begin_read`` is queued. Together they cover everything; ``finish_read`` drops from the
  queue what the read already returned (seq <= position).
* When a read returns a short page (the store had no more), the cursor is live again.
* While a read is in flight, ``take`` hands out nothing and the cursor is not at the head: the
  page must go out first, and a heartbeat must not advertise a position the page has not reached.

Memory per subscription is bounded by ``max_events`` / ``max_bytes`` plus one page.
"""

from __future__ import annotations

from tidings.envelope import Event, Filter


class Cursor:
    def __init__(
        self,
        tenant: str,
        filter: Filter,
        position: int,
        *,
        live: bool,
        max_events: int = 1000,
        max_bytes: int = 1 << 20,
    ) -> None:
        self.tenant = tenant  # whose events
        self.filter = filter  # which events
        self.position = position  # every matching event with seq <= position was handed out
        # Live events with seq > position, in seq order. A list, not a deque: an idle
        # subscription's empty list is 56 bytes where an empty deque is over 600.
        self.queue: list[Event] = []
        self.queued_bytes = 0  # encoded size of the queue
        self.behind = not live  # True: the queue is not trusted; read the store from position
        self.max_events = max_events  # queue bounds; past them the cursor falls behind
        self.max_bytes = max_bytes
        self.times_behind = 0 if live else 1  # how often it had to catch up from the store
        self.reading = False  # between begin_read and finish_read: the page is not out yet

    # -- fed by the router ------------------------------------------------------------

    def offer(self, event: Event) -> bool:
        """Queue a routed event; True when the connection should wake up."""
        if self.behind:  # the connection reads the store; it will find this event there
            return False
        if self.queue:
            if event.seq <= self.queue[-1].seq:
                return False
        elif event.seq <= self.position:
            return False
        if len(self.queue) >= self.max_events or self.queued_bytes >= self.max_bytes:
            if not self.behind:
                self.behind = True
                self.times_behind += 1
            self.queue.clear()
            self.queued_bytes = 0
            return True
        self.queue.append(event)
        self.queued_bytes += len(event.encode())
        return len(self.queue) == 1

    # -- used by the connection ---------------------------------------------------------

    def take(self) -> list[Event]:
        """Everything queued, to be written in one go; the position moves past it."""
        if self.behind or self.reading or not self.queue:
            return []
        events, self.queue = self.queue, []
        self.queued_bytes = 0
        self.position = events[-1].seq
        return events

    def begin_read(self) -> int:
        """Start a store read: queue afresh from now on. Returns the position to read after."""
        self.queue.clear()
        self.queued_bytes = 0
        self.behind = False
        self.reading = True
        return self.position

    def finish_read(self, events: list[Event], page_size: int) -> None:
        """Account for a page read from the store (already written to the socket)."""
        self.reading = False
        if events:
            self.position = max(self.position, events[-1].seq)
        if len(events) >= page_size:
            # More may be waiting in the store; it has what was queued meanwhile too.
            self.behind = True
            self.queue.clear()
            self.queued_bytes = 0
            return
        stale = 0
        for event in self.queue:
            if event.seq > self.position:
                break
            stale += 1
            self.queued_bytes -= len(event.encode())
        del self.queue[:stale]

    def at_head(self, routed_through: int) -> bool:
        """Live with nothing queued: every routed event up to ``routed_through`` was seen."""
        return (
            not self.behind
            and not self.reading
            and not self.queue
            and routed_through >= self.position
        )

    def heartbeat_position(self, routed_through: int) -> int | None:
        """The position a heartbeat may advertise (``id:``), or None when not at the head.

        At the head every routed event was offered, so a sparse filter's resume point moves
        forward with the log even when nothing matches.
        """
        if not self.at_head(routed_through):
            return None
        self.position = max(self.position, routed_through)
        return self.position
