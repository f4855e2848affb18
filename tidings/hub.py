"""The running hub: the parts of one Tidings process, started and stopped in order."""

from __future__ import annotations

import asyncio
import logging

from tidings import metrics
from tidings.auth.audit import Auditor
from tidings.auth.service import AuthService, auth_enabled
from tidings.backplane import Announcement, Backplane, open_backplane_from_url
from tidings.delivery.service import DeliveryService
from tidings.envelope import Event, Limits
from tidings.ingest.manager import IngestManager
from tidings.publish import Publisher
from tidings.retention import retention_loop
from tidings.router.router import Router
from tidings.settings import Settings
from tidings.store import Backend, open_backend
from tidings.streams.registry import StreamRegistry
from tidings.tasks import Supervisor

log = logging.getLogger("tidings")
HEAD_CHECK_S = 5.0  # how often the router compares itself with the store's head


class Hub:
    """Owns the store, the publish path, fan-out and the background tasks of one process."""

    def __init__(
        self,
        settings: Settings,
        backend: Backend | None = None,
        backplane: Backplane | None = None,
    ) -> None:
        self.settings = settings
        self.backend = backend or open_backend(
            settings.store,
            settings.data_dir,
            synchronous=settings.sqlite_synchronous,
            quick_check_s=settings.sqlite_quick_check_s,
        )
        self.store = self.backend.events  # the event log, which most parts need alone
        self.backplane = backplane or open_backplane_from_url(settings.backplane)
        self.publisher = Publisher(self.store)
        self.limits = Limits(max_event_bytes=settings.max_event_bytes, max_batch=settings.max_batch)
        self.tasks = Supervisor()
        self.streams = StreamRegistry()
        # audit events, in the tenant's own log, while keys are required
        self.auditor = Auditor(self.publisher, self.limits, enabled=auth_enabled(settings))
        self.auth = AuthService(settings, self.backend.auth, self.auditor, self.streams)
        self.ingest = IngestManager(settings, self.publisher, self.backend, self.streams)
        self.router: Router | None = None  # built once the store is open and knows its head
        self.delivery: DeliveryService | None = None  # outbound webhooks, once started
        self.draining = False  # set at the first shutdown signal: /readyz answers 503
        self._shutdown: asyncio.Task[None] | None = None
        self._store_opened = False

    async def open_store(self) -> None:
        """Open the store once; ``StoreOpenError`` says why it cannot be."""
        if not self._store_opened:
            await self.backend.open()
            self._store_opened = True

    async def start(self) -> None:
        await self.open_store()
        self.store.add_group_listener(metrics.record_commit)
        self.router = Router(self.store)
        self.store.add_commit_listener(self._committed)
        await self.backplane.start(self.router.on_announcement, self._backplane_state)
        metrics.STORE_HEAD.set(self.store.head())
        delivery = DeliveryService(self.settings, self.backend, self.publisher)
        await delivery.start(self.tasks)
        self.delivery = delivery
        self.tasks.start(
            "retention",
            lambda: retention_loop(
                self.backend, self.settings.retention_days, self.settings.retention_interval_s
            ),
        )
        self.tasks.start("router-head-check", self._check_head)
        await self.auth.start(self.tasks)
        await self.ingest.start()  # last: input is taken only once everything can handle it

    def _committed(self, events: list[Event]) -> None:
        metrics.STORE_HEAD.set(events[-1].seq)
        self.backplane.publish(Announcement.of(events))

    def _backplane_state(self, connected: bool) -> None:
        code = "backplane_restored" if connected else "backplane_lost"
        message = "the backplane is back" if connected else "the backplane connection was lost"
        self.streams.broadcast_system(code, {"message": message})
        if connected and self.router is not None:
            self.router.check_head(self.store.head())

    async def _check_head(self) -> None:
        while True:
            await asyncio.sleep(HEAD_CHECK_S)
            if self.router is not None:
                self.router.check_head(self.store.head())

    def begin_shutdown(self) -> None:
        """Start the shutdown of streams (on SIGTERM, before uvicorn waits for connections)."""
        self.draining = True
        if self._shutdown is None:
            self._shutdown = asyncio.get_running_loop().create_task(
                self._close_streams(), name="tidings:shutdown-streams"
            )

    async def streams_closed(self) -> None:
        """Wait until the streams' shutdown begun by ``begin_shutdown`` has finished."""
        if self._shutdown is not None:
            await self._shutdown

    async def _close_streams(self) -> None:
        """In order: let in-flight publishes commit, let the router deliver what was committed,
        then tell every stream to go with a jittered retry."""
        budget = self.settings.shutdown_timeout_s
        await self.ingest.stop()  # adapters stop acknowledging input first
        if not await self.publisher.wait_idle(budget / 4):
            log.warning("publishes still in flight after %.1fs", budget / 4)
        router = self.router
        if router is not None:
            head = self.store.head()
            router.check_head(head)
            if not await router.wait_routed(head, budget / 4):
                log.warning("router did not reach the head %d before shutdown", head)
        await self.streams.shutdown(budget / 2)

    async def stop(self) -> None:
        """Close streams, stop background work, then let the store commit what it holds."""
        await self.ingest.stop()
        self.begin_shutdown()
        assert self._shutdown is not None
        await self._shutdown
        await self.tasks.stop()
        await self.auditor.drain()
        if self.delivery is not None:
            # in-flight attempts end, their results are written, leases are released
            await self.delivery.stop()
        await self.backplane.stop()
        if self.router is not None:
            await self.router.stop()
        await self.backend.close()
