"""The ingest part of one process: webhook sources, the MQTT and PG NOTIFY adapters, dead
letters and their redrive, started after the store and stopped before it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from tidings import netguard
from tidings.envelope import Limits
from tidings.ingest.bridge_rules import forget_removed_rules
from tidings.ingest.config import IngestConfig, SourceConfig, load_ingest_config
from tidings.ingest.intake import Intake
from tidings.ingest.redrive import Redriver
from tidings.ingest.webhooks import WebhookReceiver
from tidings.publish import Publisher
from tidings.settings import Settings
from tidings.store import Backend
from tidings.store.dead_letters import DeadLetterStore
from tidings.streams.registry import StreamRegistry
from tidings.tasks import Supervisor

if TYPE_CHECKING:  # each needs an extra (mqtt, postgres), imported only when configured
    from tidings.ingest.bridge import MqttBridge
    from tidings.ingest.mqtt import MqttIngest
    from tidings.ingest.pg_notify import PgNotifyListener

log = logging.getLogger("tidings.ingest")


def allow_private(settings: Settings) -> bool:
    """``TIDINGS_WEBHOOK_ALLOW_PRIVATE``: the setting when Settings has it, else the environment."""
    value = getattr(settings, "webhook_allow_private", None)
    return bool(value) if value is not None else netguard.allow_private_from_env()


class IngestManager:
    def __init__(
        self,
        settings: Settings,
        publisher: Publisher,
        backend: Backend,
        streams: StreamRegistry,
    ) -> None:
        self.settings = settings
        self.streams = streams  # told when an adapter loses or regains its source
        self.config = IngestConfig()  # read at start
        self.dead_letters: DeadLetterStore = backend.dead_letters
        limits = Limits(max_event_bytes=settings.max_event_bytes, max_batch=settings.max_batch)
        self.intake = Intake(publisher, self.dead_letters, limits)
        self.webhooks = WebhookReceiver(self.intake, allow_private=allow_private(settings))
        self.redriver = Redriver(self.intake, self.dead_letters, lambda: self.config)
        self.tasks = Supervisor()  # the adapters' connection and ingest tasks
        self.mqtt: MqttIngest | None = None
        self.pg_notify: list[PgNotifyListener] = []
        self._stopping: asyncio.Task[None] | None = None
        self.backend = backend  # the log the MQTT bridge follows, and its cursors
        self.bridge: MqttBridge | None = None  # the [[mqtt.publish]] rules, when there are any

    @property
    def sources(self) -> Mapping[str, SourceConfig]:
        """The webhook sources by name (``POST /v1/ingest/{name}``)."""
        return self.config.sources

    async def start(self) -> None:
        """Read the configuration (ConfigError names a bad key) and start the adapters."""
        self.config = load_ingest_config(self.settings)
        mqtt = self.config.mqtt
        if mqtt is not None:
            from tidings.ingest.bridge import MqttBridge
            from tidings.ingest.mqtt import MqttIngest
        if self.config.pg_notify:
            from tidings.ingest.pg_notify import PgNotifyListener
        if mqtt is not None and mqtt.publish:
            self.bridge = MqttBridge(mqtt, self.backend.events, self.backend.sink_cursors)
        rules = self.bridge.rules if self.bridge is not None else []
        await forget_removed_rules(self.backend.sink_cursors, rules)
        if mqtt is not None:
            self.mqtt = MqttIngest(mqtt, self.intake, self.streams)
            self.mqtt.start(self.tasks)
        if self.bridge is not None:
            await self.bridge.start(self.tasks)
        for entry in self.config.pg_notify:
            listener = PgNotifyListener(entry, self.intake, self.streams)
            listener.start(self.tasks)
            self.pg_notify.append(listener)
        log.info(
            "ingest: %d webhook source(s)%s, %d PG NOTIFY channel(s)",
            len(self.config.sources),
            f", MQTT {self.config.mqtt.url}" if self.config.mqtt else "",
            len(self.config.pg_notify),
        )

    async def stop(self) -> None:
        """Stop taking input first (what is committing is acknowledged), then disconnect.

        Every call waits for the same stop, so it may be called early in the shutdown and
        again before the store closes."""
        if self._stopping is None:
            self._stopping = asyncio.create_task(self._stop(), name="tidings:ingest-stop")
        await asyncio.shield(self._stopping)

    async def _stop(self) -> None:
        if self.bridge is not None:
            await self.bridge.stop(self.tasks)
        if self.mqtt is not None:
            await self.mqtt.stop(self.tasks)
        for listener in self.pg_notify:
            await listener.stop(self.tasks)
        await self.tasks.stop()

    def status(self) -> dict[str, Any]:
        """Each adapter's state, for the body of /readyz (never a reason to be unready)."""
        return {
            "sources": sorted(self.config.sources),
            "mqtt": self.mqtt.status() if self.mqtt is not None else None,
            "mqtt_bridge": self.bridge.status() if self.bridge is not None else None,
            "pg_notify": [listener.status() for listener in self.pg_notify],
        }
