"""One MQTT connection with paho-mqtt 2.x, bridged to asyncio.

paho runs its network loop in its own thread (``loop_start``); its callbacks hand connection
changes and messages to the event loop with ``call_soon_threadsafe``. Each connection attempt
uses a fresh client, so a message can only be acknowledged on the connection that delivered it:
after a reconnect the broker redelivers what was not acknowledged, and a stale packet id must
not acknowledge the new delivery. Reconnecting is the caller's job (with its own backoff), so
paho's own reconnect is off.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from tidings.ingest.mqtt_config import MqttConfig

log = logging.getLogger("tidings.ingest.mqtt")


@dataclass(frozen=True, slots=True)
class Delivery:
    """A message as paho handed it over, with the link that must acknowledge it."""

    link: MqttLink
    mid: int
    qos: int
    topic: str
    payload: bytes


def _soon(loop: asyncio.AbstractEventLoop, fn: Callable[..., Any], *args: Any) -> None:
    """Run ``fn(*args)`` in the event loop; after the loop closed nobody is left to tell."""
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(fn, *args)


class MqttLink:
    """A single connection: connect, subscribe, receive, acknowledge, publish, close."""

    def __init__(
        self,
        config: MqttConfig,
        loop: asyncio.AbstractEventLoop,
        on_delivery: Callable[[Delivery], None],
    ) -> None:
        self.config = config
        self._loop = loop  # where callbacks are handed over
        self._on_delivery = on_delivery  # called in the event loop for each message
        self.connack: asyncio.Future[bool] = loop.create_future()  # session present?
        self.closed = asyncio.Event()  # set once the connection is gone
        self.close_reason = ""  # why, for logs and status
        self.accepting = True  # False: messages are left unacknowledged, for the next session
        self.client = self._client()

    def _client(self) -> paho.Client:
        config = self.config
        v5 = config.protocol == 5
        client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=config.client_id,
            clean_session=None if v5 else False,  # a persistent session, so nothing is missed
            protocol=paho.MQTTv5 if v5 else paho.MQTTv311,
            reconnect_on_failure=False,
            manual_ack=True,  # acknowledged only after the commit
        )
        if log.isEnabledFor(logging.DEBUG):
            # paho reports a normal disconnect at ERROR level; its log is for debugging only.
            client.enable_logger(logging.getLogger("tidings.ingest.mqtt.paho"))
        if config.username is not None:
            client.username_pw_set(config.username, config.password)
        if config.tls:
            client.tls_set()
        client.on_connect = self._connected
        client.on_disconnect = self._disconnected
        client.on_subscribe = self._subscribed
        client.on_message = self._message
        return client

    # -- paho's thread -----------------------------------------------------------------------

    def _connected(
        self, client: paho.Client, _: Any, flags: Any, code: ReasonCode, props: Any
    ) -> None:
        if code.is_failure:
            error = ConnectionError(f"the broker refused the connection: {code}")
            _soon(self._loop, _settle, self.connack, None, error)
            return
        if self.config.subscribe:
            # Every time: a broker that lost its state (restarted without persistence)
            # answers session_present=false and knows no subscription.
            client.subscribe([(s.filter, s.qos) for s in self.config.subscribe])
        _soon(self._loop, _settle, self.connack, bool(flags.session_present), None)

    def _subscribed(
        self, client: paho.Client, _: Any, mid: int, codes: list[ReasonCode], props: Any
    ) -> None:
        for sub, code in zip(self.config.subscribe, codes, strict=False):
            if code.is_failure:
                log.error("the broker refused the subscription %r: %s", sub.filter, code)

    def _disconnected(
        self, client: paho.Client, _: Any, flags: Any, code: ReasonCode, props: Any
    ) -> None:
        _soon(self._loop, self._mark_closed, str(code))

    def _message(self, client: paho.Client, _: Any, message: paho.MQTTMessage) -> None:
        if not self.accepting:
            return  # not acknowledged: the broker delivers it again in the next session
        try:
            topic = message.topic
        except UnicodeDecodeError:
            log.error("a message with a topic that is not UTF-8 was left unacknowledged")
            return
        delivery = Delivery(self, message.mid, message.qos, topic, bytes(message.payload))
        _soon(self._loop, self._on_delivery, delivery)

    # -- the event loop ----------------------------------------------------------------------

    def _mark_closed(self, reason: str) -> None:
        self.close_reason = self.close_reason or reason
        if not self.connack.done():
            self.connack.set_exception(ConnectionError(f"connection closed: {reason}"))
        self.closed.set()

    def _connect_blocking(self) -> None:
        config = self.config
        if config.protocol == 5:
            props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            props.SessionExpiryInterval = config.session_expiry_s
            self.client.connect(
                config.host, config.port, config.keepalive_s, clean_start=False, properties=props
            )
        else:
            self.client.connect(config.host, config.port, config.keepalive_s)

    async def open(self, timeout: float) -> bool:
        """Connect and wait for the CONNACK; whether the broker kept the session."""
        await asyncio.to_thread(self._connect_blocking)
        self.client.loop_start()
        async with asyncio.timeout(timeout):
            return await self.connack

    def ack(self, delivery: Delivery) -> None:
        """Acknowledge a committed message (QoS 0 needs none). paho queues the packet for its
        network thread, so this is safe from the event loop."""
        if delivery.qos > 0 and not self.closed.is_set():
            self.client.ack(delivery.mid, delivery.qos)

    def publish(self, topic: str, payload: bytes, qos: int = 1) -> bool:
        info = self.client.publish(topic, payload, qos=qos)
        return info.rc == paho.MQTT_ERR_SUCCESS

    async def close(self) -> None:
        """Disconnect (the broker keeps the session) and wait for paho's thread to end."""
        self.accepting = False
        self.client.disconnect()
        await asyncio.to_thread(self.client.loop_stop)
        self._mark_closed(self.close_reason or "closed by Tidings")


def _settle(future: asyncio.Future[bool], value: bool | None, error: BaseException | None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(bool(value))
