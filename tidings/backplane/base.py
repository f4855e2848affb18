"""The backplane protocol: tell every node "positions (first, last] are committed".

A backplane is a hint, never the truth: messages can be lost (reconnects) or arrive without
their events (size caps). Routers repair from the store (see tidings.router.gaps).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from tidings.envelope import Event


@dataclass(frozen=True, slots=True)
class Announcement:
    first: int  # exclusive: the position before this commit
    last: int  # inclusive: the commit's last position
    events: list[Event] | None  # the committed events when they fit, in seq order

    @classmethod
    def of(cls, events: list[Event]) -> Announcement:
        """The announcement of one commit (its positions are contiguous)."""
        return cls(events[0].seq - 1, events[-1].seq, events)


AnnouncementHandler = Callable[[Announcement], None]
StateHandler = Callable[[bool], None]
"""Called with False when the backplane lost its connection, True when it is back."""


class Backplane(Protocol):
    @property
    def connected(self) -> bool: ...

    async def start(self, on_announcement: AnnouncementHandler, on_state: StateHandler) -> None:
        """Connect and start delivering announcements (from every node, this one included)."""

    def publish(self, announcement: Announcement) -> None:
        """Send an announcement without blocking the caller (called after each commit)."""

    async def stop(self) -> None: ...
