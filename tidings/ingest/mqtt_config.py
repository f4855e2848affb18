"""The ``[mqtt]`` table: broker, session and ``[[mqtt.subscribe]]`` filters, with DLQ and bridge
topics checked for loops (a topic that a subscription would receive again)."""

from __future__ import annotations

import logging
import socket
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

from tidings.envelope import DEFAULT_TENANT
from tidings.ingest import topics
from tidings.ingest.table import Table, read_tenant
from tidings.settings import ConfigError

log = logging.getLogger("tidings.ingest")
MQTT_SOURCE = "mqtt"  # the source of every event and dead letter that came over MQTT


@dataclass(frozen=True, slots=True)
class Subscription:
    """One ``[[mqtt.subscribe]]`` table."""

    filter: str  # as subscribed, with any $share/<group>/ prefix
    qos: int  # 0 or 1: a QoS 2 subscription is taken at 1, see docs/ingest.md
    strip_prefix: str | None = None
    dlq_prefix: str | None = None
    tenant: str = DEFAULT_TENANT  # whose log its messages' events and dead letters go to


@dataclass(frozen=True, slots=True)
class MqttConfig:
    host: str
    port: int
    tls: bool
    username: str | None
    password: str | None = field(repr=False)
    client_id: str
    protocol: Literal[4, 5]  # 4: MQTT 3.1.1, 5: MQTT 5
    keepalive_s: int
    session_expiry_s: int  # MQTT 5: how long the broker keeps the session while disconnected
    subscribe: tuple[Subscription, ...]
    publish: tuple[dict[str, Any], ...]  # the bridge's rules; here only checked for loops

    @property
    def url(self) -> str:
        """The broker URL without credentials, for logs and status."""
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"


def parse_mqtt(raw: dict[str, Any]) -> MqttConfig:
    table = Table(raw, "mqtt")
    table.only(
        (
            "url",
            "client_id",
            "username",
            "password",
            "protocol",
            "keepalive_s",
            "session_expiry_s",
            "subscribe",
            "publish",
        )
    )
    url = table.text("url", "mqtt://127.0.0.1:1883")
    assert url is not None
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts", "tcp", "ssl") or not parts.hostname:
        raise table.fail("url", "must be mqtt://host[:port] or mqtts://host[:port]")
    tls = parts.scheme in ("mqtts", "ssl")
    try:
        port = parts.port or (8883 if tls else 1883)
    except ValueError:
        raise table.fail("url", "has an invalid port") from None
    protocol = str(raw.get("protocol", "3.1.1"))
    if protocol not in ("3.1.1", "5"):
        raise table.fail("protocol", 'must be "3.1.1" or "5"')
    default_id = f"tidings-{socket.gethostname()}"[:64]
    client_id = table.text("client_id", default_id)
    assert client_id is not None
    subscribe = _subscriptions(raw.get("subscribe", []))
    publish = raw.get("publish", [])
    if not isinstance(publish, list) or not all(isinstance(p, dict) for p in publish):
        raise table.fail("publish", "must be an array of tables ([[mqtt.publish]])")
    _check_loops(subscribe, publish)
    return MqttConfig(
        host=parts.hostname,
        port=port,
        tls=tls,
        username=table.text("username") or (unquote(parts.username) if parts.username else None),
        password=table.text("password") or (unquote(parts.password) if parts.password else None),
        client_id=client_id,
        protocol=5 if protocol == "5" else 4,
        keepalive_s=table.integer("keepalive_s", 30, 5, 65535),
        session_expiry_s=table.integer("session_expiry_s", 604_800, 0, 4_294_967_295),
        subscribe=subscribe,
        publish=tuple(publish),
    )


def _subscriptions(raw: Any) -> tuple[Subscription, ...]:
    if not isinstance(raw, list):
        raise ConfigError("mqtt.subscribe: must be an array of tables ([[mqtt.subscribe]])")
    found = []
    for index, item in enumerate(raw):
        table = Table(item, f"mqtt.subscribe[{index}]")
        table.only(("filter", "qos", "strip_prefix", "dlq_prefix", "tenant"))
        topic_filter = table.text("filter", required=True)
        assert topic_filter is not None
        problem = topics.filter_error(topic_filter)
        if problem:
            raise table.fail("filter", f"invalid topic filter {topic_filter!r}: {problem}")
        qos = table.integer("qos", 1, 0, 2)
        if qos == 2:
            log.warning(
                "%s.qos: QoS 2 is subscribed as QoS 1, so that a message is acknowledged only "
                "after it is committed",
                table.path,
            )
            qos = 1
        prefixes = {}
        for key in ("strip_prefix", "dlq_prefix"):
            value = table.text(key)
            if value is not None:
                problem = topics.topic_error(value) or (
                    "must not start with $ (reserved for the broker)"
                    if key == "dlq_prefix" and value.startswith("$")
                    else None
                )
                if problem:
                    raise table.fail(key, f"{value!r} {problem}")
            prefixes[key] = value
        found.append(
            Subscription(
                topic_filter,
                qos,
                prefixes["strip_prefix"],
                prefixes["dlq_prefix"],
                read_tenant(table),
            )
        )
    return tuple(found)


def _check_loops(subscribe: tuple[Subscription, ...], publish: list[dict[str, Any]]) -> None:
    """Refuse a DLQ prefix or a bridge topic that a subscription would receive again."""
    targets: list[tuple[str, str]] = []
    for index, sub in enumerate(subscribe):
        if sub.dlq_prefix is not None:
            targets.append(
                (f"mqtt.subscribe[{index}].dlq_prefix", topics.dlq_pattern(sub.dlq_prefix))
            )
    for index, rule in enumerate(publish):
        template = rule.get("topic")
        path = f"mqtt.publish[{index}].topic"
        if not isinstance(template, str) or not template:
            raise ConfigError(f"{path}: is required (a topic such as tidings/{{tenant}}/{{type}})")
        pattern = topics.template_pattern(template)
        problem = topics.filter_error(pattern) or (
            "must not contain + or #" if "+" in template or "#" in template else None
        )
        if problem:
            raise ConfigError(f"{path}: invalid topic {template!r}: {problem}")
        targets.append((path, pattern))
    for path, pattern in targets:
        for index, sub in enumerate(subscribe):
            if topics.filters_overlap(sub.filter, pattern):
                raise ConfigError(
                    f"{path}: its topics would be received again by mqtt.subscribe[{index}].filter "
                    f"{sub.filter!r} (a loop)"
                )
