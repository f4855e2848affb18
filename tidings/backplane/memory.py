"""The in-process backplane: one node, announcements handed straight to the router."""

from __future__ import annotations

from tidings.backplane.base import Announcement, AnnouncementHandler, StateHandler


class MemoryBackplane:
    def __init__(self) -> None:
        self._handler: AnnouncementHandler | None = None  # the router's entry point

    @property
    def connected(self) -> bool:
        return self._handler is not None

    async def start(self, on_announcement: AnnouncementHandler, on_state: StateHandler) -> None:
        self._handler = on_announcement

    def publish(self, announcement: Announcement) -> None:
        if self._handler is not None:
            self._handler(announcement)

    async def stop(self) -> None:
        self._handler = None
