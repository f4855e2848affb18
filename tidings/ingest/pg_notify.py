"""PostgreSQL LISTEN/NOTIFY ingest: each notification's JSON payload becomes an event.

NOTIFY is at-most-once by nature: a notification sent while no session listens is gone, and
one received but not yet committed when the process dies is lost too. A dedicated connection
listens, a heartbeat query notices when it died (a dead TCP peer says nothing), and it
reconnects with backoff. With several nodes exactly one listens: the one holding a session
advisory lock on the listening connection; the others retry now and then, and take over when
the listener's session ends (PostgreSQL releases the lock with it).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from typing import Any

import asyncpg  # type: ignore[import-untyped]

from tidings.envelope.timefmt import format_us
from tidings.errors import TidingsError
from tidings.ingest import metrics
from tidings.ingest.backoff import Backoff
from tidings.ingest.config import PgNotifyConfig
from tidings.ingest.inputs import read_notification
from tidings.ingest.intake import Intake, Parked, RawInput
from tidings.streams.registry import StreamRegistry
from tidings.tasks import Supervisor

log = logging.getLogger("tidings.ingest.pg_notify")
CONNECT_TIMEOUT_S = 10.0
_CONNECTION_ERRORS = (
    OSError,
    TimeoutError,
    ConnectionError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
)


class PgNotifyListener:
    def __init__(
        self,
        config: PgNotifyConfig,
        intake: Intake,
        streams: StreamRegistry,
        *,
        backoff: Backoff | None = None,
    ) -> None:
        self.config = config
        self.intake = intake  # stores events or parks dead letters
        self.streams = streams  # told when the listener is lost and back
        self.backoff = backoff or Backoff(0.5, 30.0)
        self.name = f"pg-notify:{config.source}:{config.channel}"  # the supervised task's name
        self.state = "starting"  # connecting | standby | listening | disconnected | stopped
        self.since = time.time()
        self.last_error: str | None = None
        self.counts: Counter[str] = Counter()  # received, stored, dead_letters, lost
        self._inbox: asyncio.Queue[bytes] = asyncio.Queue()
        self._accepting = True
        self._lost = False  # source_lost was broadcast and source_restored not yet

    def start(self, supervisor: Supervisor) -> None:
        supervisor.start(self.name, self._listen_loop)
        supervisor.start(self.name + ":ingest", self._consume)

    def status(self) -> dict[str, Any]:
        return {
            "source": self.config.source,
            "channel": self.config.channel,
            "state": self.state,
            "since": format_us(int(self.since * 1_000_000)),
            "pending": self._inbox.qsize(),
            "last_error": self.last_error,
            **{name: self.counts[name] for name in ("received", "stored", "dead_letters", "lost")},
        }

    def _set_state(self, state: str) -> None:
        self.state, self.since = state, time.time()
        metrics.connected("pg_notify", self.config.source, state == "listening")

    # -- the listening connection --------------------------------------------------------

    async def _listen_loop(self) -> None:
        while True:
            self._set_state("connecting")
            try:
                await self._session()
            except _CONNECTION_ERRORS as error:
                self.last_error = f"{type(error).__name__}: {error}"
            was_listening = self.state == "listening"
            self._set_state("disconnected")
            if was_listening and not self._lost:
                self._lost = True
                self.streams.broadcast_system(
                    "source_lost",
                    {
                        "source": self.config.source,
                        "message": f"stopped listening to {self.config.channel}: {self.last_error}",
                    },
                )
            delay = self.backoff.next()
            log.warning(
                "PG NOTIFY %s: %s; reconnecting in %.1fs", self.name, self.last_error, delay
            )
            await asyncio.sleep(delay)

    async def _session(self) -> None:
        config = self.config
        conn: asyncpg.Connection = await asyncpg.connect(config.dsn, timeout=CONNECT_TIMEOUT_S)
        try:
            while not await conn.fetchval(
                "SELECT pg_try_advisory_lock($1)", config.lock_key, timeout=config.heartbeat_s
            ):
                if self.state != "standby":
                    self._set_state("standby")
                    log.info("PG NOTIFY %s: another node listens; standing by", self.name)
                self.backoff.reset()
                await asyncio.sleep(config.lock_retry_s)
            await conn.add_listener(config.channel, self._notified)
            self._set_state("listening")
            self.backoff.reset()
            log.info("PG NOTIFY %s: listening", self.name)
            if self._lost:
                self._lost = False
                self.streams.broadcast_system(
                    "source_restored",
                    {"source": config.source, "message": f"listening to {config.channel} again"},
                )
            while True:
                await asyncio.sleep(config.heartbeat_s)
                await conn.fetchval("SELECT 1", timeout=config.heartbeat_s)
        finally:
            await _close(conn)

    def _notified(self, conn: Any, pid: int, channel: str, payload: str) -> None:
        if self._accepting:
            self._inbox.put_nowait(payload.encode())
        else:
            self.counts["lost"] += 1  # at-most-once: arriving during shutdown

    # -- notifications -------------------------------------------------------------------

    async def _consume(self) -> None:
        while True:
            payload = await self._inbox.get()
            try:
                await self._commit(payload)
            finally:
                self._inbox.task_done()

    async def _commit(self, payload: bytes) -> None:
        self.counts["received"] += 1
        item = RawInput(
            self.config.source, "pg_notify", payload, self.config.channel, tenant=self.config.tenant
        )
        try:
            outcome = await self.intake.take(item, lambda: read_notification(self.config, payload))
        except TidingsError as error:
            self.counts["lost"] += 1
            log.error("PG NOTIFY %s: a notification was lost: %s", self.name, error.message)
            return
        self.counts["dead_letters" if isinstance(outcome, Parked) else "stored"] += 1

    async def stop(self, supervisor: Supervisor, timeout: float = 5.0) -> None:
        """Stop taking notifications, commit those received, then close the connection."""
        self._accepting = False
        await supervisor.stop(self.name)
        try:
            async with asyncio.timeout(timeout):
                await self._inbox.join()
        except TimeoutError:
            log.warning("PG NOTIFY %s: notifications still committing at shutdown", self.name)
        await supervisor.stop(self.name + ":ingest")
        self._set_state("stopped")


async def _close(conn: asyncpg.Connection) -> None:
    """Close politely; a connection that does not answer is dropped."""
    try:
        await asyncio.wait_for(conn.close(), timeout=2.0)
    except Exception:  # a dead connection cannot say goodbye
        log.debug("closing the listening connection failed", exc_info=True)
    finally:
        if not conn.is_closed():
            conn.terminate()
