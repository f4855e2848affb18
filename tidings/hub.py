"""The running hub: the parts of one Tidings process, started and stopped in order."""

from __future__ import annotations

import logging

from tidings import metrics
from tidings.envelope import Limits
from tidings.publish import Publisher
from tidings.retention import retention_loop
from tidings.settings import Settings
from tidings.store import Store, open_store_from_url
from tidings.tasks import Supervisor

log = logging.getLogger("tidings")


class Hub:
    """Owns the store, the publish path and the background tasks of one process."""

    def __init__(self, settings: Settings, store: Store | None = None) -> None:
        self.settings = settings
        self.store = store or open_store_from_url(
            settings.store, settings.data_dir, synchronous=settings.sqlite_synchronous
        )
        self.publisher = Publisher(self.store)
        self.limits = Limits(max_event_bytes=settings.max_event_bytes, max_batch=settings.max_batch)
        self.tasks = Supervisor()
        self.draining = False  # set at the first shutdown signal: /readyz answers 503

    async def start(self) -> None:
        await self.store.open()
        add_group_listener = getattr(self.store, "add_group_listener", None)
        if add_group_listener is not None:
            add_group_listener(metrics.record_commit)
        self.store.add_commit_listener(lambda events: metrics.STORE_HEAD.set(events[-1].seq))
        metrics.STORE_HEAD.set(self.store.head())
        self.tasks.start(
            "retention",
            lambda: retention_loop(
                self.store, self.settings.retention_days, self.settings.retention_interval_s
            ),
        )

    async def stop(self) -> None:
        """Stop background work, then let the store commit what it holds and close."""
        self.draining = True
        await self.tasks.stop()
        await self.store.close()
