"""MQTT ingest: subscribed topics become events; a message is acknowledged to the broker only
after it is committed, stored as events or parked as a dead letter.

With a fixed client id and a persistent session, messages published while Tidings is down or
reconnecting wait at the broker, and a message delivered but not yet committed when the process
dies is delivered again: at-least-once. Invalid messages are parked and also republished to
``<dlq_prefix>/<original topic>`` for the tools that watch MQTT.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import orjson

from tidings.envelope import DEFAULT_TENANT
from tidings.envelope.timefmt import format_us
from tidings.errors import TidingsError
from tidings.ingest import metrics
from tidings.ingest.backoff import Backoff
from tidings.ingest.inputs import read_mqtt
from tidings.ingest.intake import Intake, Outcome, Parked, RawInput
from tidings.ingest.mapping import Draft, Unmappable
from tidings.ingest.mqtt_config import MQTT_SOURCE, MqttConfig, Subscription
from tidings.ingest.mqtt_link import Delivery, MqttLink
from tidings.ingest.topics import topic_matches
from tidings.streams.registry import StreamRegistry
from tidings.tasks import Supervisor

log = logging.getLogger("tidings.ingest.mqtt")
BATCH = 256  # messages committed together (the broker's in-flight window is usually smaller)
CONNECT_TIMEOUT_S = 10.0
STORE_RETRIES = 5  # attempts at a commit the store refused for now (503) before reconnecting


def subscription_for(subscriptions: tuple[Subscription, ...], topic: str) -> Subscription | None:
    """The first configured subscription whose filter matches ``topic``."""
    return next((s for s in subscriptions if topic_matches(s.filter, topic)), None)


def dlq_message(topic: str, reason: str, received_at_us: int, payload: bytes) -> bytes:
    """``{"original_topic", "reason", "received_at", "payload"}``: payload as text when it is
    UTF-8, else base64 (then ``"payload_encoding": "base64"`` says so)."""
    body: dict[str, Any] = {
        "original_topic": topic,
        "reason": reason,
        "received_at": format_us(received_at_us),
    }
    try:
        body["payload"] = payload.decode("utf-8")
    except UnicodeDecodeError:
        body["payload"] = base64.b64encode(payload).decode()
        body["payload_encoding"] = "base64"
    return orjson.dumps(body)


class MqttIngest:
    def __init__(
        self,
        config: MqttConfig,
        intake: Intake,
        streams: StreamRegistry,
        *,
        backoff: Backoff | None = None,
    ) -> None:
        self.config = config
        self.intake = intake  # stores events or parks dead letters
        self.streams = streams  # told when the broker is lost and back
        self.backoff = backoff or Backoff(0.5, 30.0)
        self.state = "starting"  # connecting | connected | disconnected | stopped
        self.since = time.time()  # when the state last changed
        self.last_error: str | None = None
        self.session_present: bool | None = None
        self.counts: Counter[str] = Counter()  # received, stored, dead_letters, acked
        self._inbox: asyncio.Queue[Delivery] = asyncio.Queue()
        self._link: MqttLink | None = None  # the live connection
        self._lost = False  # source_lost was broadcast and source_restored not yet
        self._stopping = False
        self._idle = asyncio.Event()  # set while no batch is being committed
        self._idle.set()

    def start(self, supervisor: Supervisor) -> None:
        supervisor.start("mqtt-connection", self._connection_loop)
        supervisor.start("mqtt-ingest", self._consume)

    def status(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "since": format_us(int(self.since * 1_000_000)),
            "broker": self.config.url,
            "client_id": self.config.client_id,
            "subscriptions": [s.filter for s in self.config.subscribe],
            "session_present": self.session_present,
            "pending": self._inbox.qsize(),
            "last_error": self.last_error,
            **{name: self.counts[name] for name in ("received", "stored", "dead_letters")},
        }

    def _set_state(self, state: str) -> None:
        self.state, self.since = state, time.time()
        metrics.connected("mqtt", MQTT_SOURCE, state == "connected")

    # -- connection ----------------------------------------------------------------------

    async def _connection_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._stopping:
            self._set_state("connecting")
            link = MqttLink(self.config, loop, self._inbox.put_nowait)
            try:
                self.session_present = await link.open(CONNECT_TIMEOUT_S)
                self._link = link
                self._online()
                await link.closed.wait()
                self.last_error = f"connection lost: {link.close_reason}"
            except (OSError, ConnectionError, TimeoutError) as error:
                self.last_error = (
                    f"cannot connect to {self.config.url}: {str(error) or type(error).__name__}"
                )
            finally:
                self._link = None
                await link.close()
            if self._stopping:
                return
            self._offline()
            delay = self.backoff.next()
            log.warning("MQTT: %s; reconnecting in %.1fs", self.last_error, delay)
            await asyncio.sleep(delay)

    def _online(self) -> None:
        self._set_state("connected")
        self.backoff.reset()
        log.info(
            "MQTT: connected to %s (session present: %s)", self.config.url, self.session_present
        )
        if self._lost:
            self._lost = False
            self.streams.broadcast_system(
                "source_restored",
                {"source": "mqtt", "message": f"connected to the MQTT broker {self.config.url}"},
            )

    def _offline(self) -> None:
        self._set_state("disconnected")
        if not self._lost:
            self._lost = True
            self.streams.broadcast_system(
                "source_lost",
                {"source": "mqtt", "message": f"the MQTT broker is unreachable: {self.last_error}"},
            )

    # -- messages ------------------------------------------------------------------------

    async def _consume(self) -> None:
        while True:
            batch = [await self._inbox.get()]
            if self._stopping:
                continue  # left unacknowledged: the broker delivers it in the next session
            while len(batch) < BATCH and not self._inbox.empty():
                batch.append(self._inbox.get_nowait())
            self._idle.clear()
            try:
                committed = await asyncio.gather(*(self._commit(d) for d in batch))
                # PUBACKs go out in the order the messages arrived (MQTT 4.6).
                for delivery, done in zip(batch, committed, strict=True):
                    if done:
                        delivery.link.ack(delivery)
                if not all(committed) and self._link is not None and not self._stopping:
                    # Unacknowledged messages come back only with a new session.
                    self._link.client.disconnect()
            finally:
                self._idle.set()

    async def _commit(self, delivery: Delivery) -> bool:
        """Store or park one message; False when the store could not commit it."""
        self.counts["received"] += 1
        sub = subscription_for(self.config.subscribe, delivery.topic)
        tenant = sub.tenant if sub is not None else DEFAULT_TENANT
        item = RawInput(MQTT_SOURCE, "mqtt", delivery.payload, delivery.topic, tenant=tenant)

        def build() -> list[Draft]:
            if sub is None:
                raise Unmappable(
                    "unmatched_topic", f"no configured subscription matches {delivery.topic!r}"
                )
            return read_mqtt(sub, delivery.topic, delivery.payload)

        outcome = await self._take(item, build)
        if outcome is None:
            return False
        if isinstance(outcome, Parked):
            self.counts["dead_letters"] += 1
            if sub is not None and sub.dlq_prefix:
                self._republish(sub.dlq_prefix, delivery, outcome)
        else:
            self.counts["stored"] += 1
        return True

    async def _take(self, item: RawInput, build: Callable[[], list[Draft]]) -> Outcome | None:
        """The intake's outcome, retried while the store cannot commit; None if it never did."""
        for attempt in range(STORE_RETRIES):
            try:
                return await self.intake.take(item, build)
            except TidingsError as error:
                self.last_error = f"the store could not commit a message: {error.message}"
            except Exception:  # a bug must not leave the message acknowledged or stuck
                log.exception("MQTT: a message from %r could not be taken", item.topic)
                return None
            if self._stopping:
                return None
            await asyncio.sleep(0.1 * 2**attempt)
        return None

    def _republish(self, prefix: str, delivery: Delivery, parked: Parked) -> None:
        topic = f"{prefix.rstrip('/')}/{delivery.topic}"
        letter = parked.letter
        body = dlq_message(delivery.topic, letter.reason, letter.received_at_us, delivery.payload)
        if not delivery.link.publish(topic, body, qos=1):
            log.warning("MQTT: dead letter %s could not be republished to %s", letter.id, topic)

    # -- shutdown ------------------------------------------------------------------------

    async def stop(self, supervisor: Supervisor, timeout: float = 5.0) -> None:
        """Stop taking messages, let the batch in progress commit and be acknowledged, then
        disconnect; whatever was not acknowledged waits at the broker for the next start."""
        self._stopping = True
        link = self._link
        if link is not None:
            link.accepting = False
        try:
            async with asyncio.timeout(timeout):
                await self._idle.wait()
        except TimeoutError:
            log.warning("MQTT: messages still committing after %.1fs; left unacknowledged", timeout)
        await supervisor.stop("mqtt-ingest")
        await supervisor.stop("mqtt-connection")  # its finally closes the link
        self._set_state("stopped")
