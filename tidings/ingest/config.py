"""The ingest configuration: ``[sources.*]``, ``[mqtt]`` and ``[[pg_notify]]`` of the TOML file
(DESIGN.md section 6) read into typed objects, refused at start-up with a message naming the key.

Everything that can be checked without a network is checked here: unknown keys and verifiers,
missing secrets, unreadable public keys, invalid topic filters, and DLQ or bridge topics that a
subscription would receive again (a loop).
"""

from __future__ import annotations

import hashlib
import logging
import re
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tidings.envelope import type_error
from tidings.ingest import topics
from tidings.ingest.http_signatures import HttpSignatureVerifier, SmartThingsVerifier
from tidings.ingest.signatures import (
    GithubVerifier,
    HmacSha256Verifier,
    StandardWebhooksVerifier,
    Verifier,
    standard_webhooks_key,
)
from tidings.settings import ConfigError, Settings

log = logging.getLogger("tidings.ingest")

VerifierName = Literal["hmac-sha256", "github", "standard-webhooks", "smartthings"]
VERIFIERS: tuple[VerifierName, ...] = ("hmac-sha256", "github", "standard-webhooks", "smartthings")
MQTT_SOURCE = "mqtt"  # the source of every event and dead letter that came over MQTT
_NAME = re.compile(r"[A-Za-z0-9_-]{1,100}")
_KEYS: dict[str, tuple[str, ...]] = {
    "hmac-sha256": ("secret", "header", "timestamp_header", "tolerance_s"),
    "github": ("secret",),
    "standard-webhooks": ("secret", "tolerance_s"),
    "smartthings": ("secret", "public_key", "header", "timestamp_header", "tolerance_s"),
}


class _Table:
    """One TOML table, read key by key; every error names ``<path>.<key>``."""

    def __init__(self, raw: Any, path: str) -> None:
        if not isinstance(raw, dict):
            raise ConfigError(f"{path}: expected a table")
        self.raw: dict[str, Any] = raw
        self.path = path

    def fail(self, key: str, message: str) -> ConfigError:
        return ConfigError(f"{self.path}.{key}: {message}")

    def only(self, allowed: tuple[str, ...]) -> None:
        for key in self.raw:
            if key not in allowed:
                raise self.fail(key, f"unknown key; expected one of {', '.join(allowed)}")

    def text(self, key: str, default: str | None = None, *, required: bool = False) -> str | None:
        value = self.raw.get(key, default)
        if value is None:
            if required:
                raise self.fail(key, "is required")
            return None
        if not isinstance(value, str) or not value.strip():
            raise self.fail(key, "must be a non-empty string")
        return value

    def number(self, key: str, default: float, *, low: float = 0.0) -> float:
        value = self.raw.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= low:
            raise self.fail(key, f"must be a number greater than {low:g}")
        return float(value)

    def integer(self, key: str, default: int, low: int, high: int) -> int:
        value = self.raw.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise self.fail(key, f"must be an integer from {low} to {high}")
        return value


@dataclass(frozen=True, slots=True)
class SourceConfig:
    """One ``[sources.<name>]`` table: how ``POST /v1/ingest/<name>`` is verified and mapped."""

    name: str
    verifier: VerifierName
    type: str  # the default type: for a payload without "type"
    check: Verifier = field(repr=False, compare=False)  # built from the secret or key


@dataclass(frozen=True, slots=True)
class Subscription:
    """One ``[[mqtt.subscribe]]`` table."""

    filter: str  # as subscribed, with any $share/<group>/ prefix
    qos: int  # 0 or 1: a QoS 2 subscription is taken at 1, see docs/ingest.md
    strip_prefix: str | None = None
    dlq_prefix: str | None = None


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


@dataclass(frozen=True, slots=True)
class PgNotifyConfig:
    """One ``[[pg_notify]]`` table: a channel LISTENed to on one database."""

    dsn: str = field(repr=False)
    channel: str
    type: str
    source: str = "pg_notify"
    heartbeat_s: float = 5.0  # how often the listening connection is checked
    lock_retry_s: float = 5.0  # how often a standby node tries to take over

    @property
    def lock_key(self) -> int:
        """The advisory lock that makes one node of many the listener of this channel."""
        digest = hashlib.sha256(f"{self.dsn}\n{self.channel}".encode()).digest()
        return int.from_bytes(digest[:8], "big", signed=True)


@dataclass(frozen=True, slots=True)
class IngestConfig:
    sources: dict[str, SourceConfig] = field(default_factory=dict)
    mqtt: MqttConfig | None = None
    pg_notify: tuple[PgNotifyConfig, ...] = ()


def load_ingest_config(settings: Settings) -> IngestConfig:
    """The ingest configuration of ``settings``; ConfigError names the first bad key."""
    base = settings.config.parent if settings.config is not None else Path.cwd()
    sources = parse_sources(settings.sources, base)
    mqtt = parse_mqtt(settings.mqtt) if settings.mqtt is not None else None
    pg = parse_pg_notify(settings.pg_notify)
    for index, entry in enumerate(pg):
        if entry.source in sources or entry.source == MQTT_SOURCE:
            raise ConfigError(
                f"pg_notify[{index}].source: {entry.source!r} is already the name of another "
                "source; dead letters must name one source"
            )
    return IngestConfig(sources, mqtt, pg)


def parse_sources(raw: dict[str, Any], base: Path) -> dict[str, SourceConfig]:
    sources: dict[str, SourceConfig] = {}
    for name, table_raw in raw.items():
        path = f"sources.{name}"
        if not _NAME.fullmatch(name):
            raise ConfigError(f"{path}: a source name is 1-100 letters, digits, '_' or '-'")
        if name == MQTT_SOURCE:
            raise ConfigError(f"{path}: the name {MQTT_SOURCE!r} is the MQTT adapter's source")
        table = _Table(table_raw, path)
        verifier = table.text("verifier", required=True)
        if verifier not in VERIFIERS:
            raise table.fail(
                "verifier", f"unknown verifier {verifier!r}; expected one of {', '.join(VERIFIERS)}"
            )
        table.only(("verifier", "type", *_KEYS[verifier]))
        default_type = table.text("type", f"{name}.received")
        assert default_type is not None
        _check_default_type(table, default_type)
        sources[name] = SourceConfig(name, verifier, default_type, _verifier(table, verifier, base))
    return sources


def _check_default_type(table: _Table, default_type: str) -> None:
    """An invalid default type is reported but not refused: what maps to it is parked as a
    dead letter, and redriven once the type is fixed (nothing is lost meanwhile)."""
    problem = type_error(default_type)
    if problem:
        log.warning(
            "%s.type: %r is not a valid event type (%s); input of that type will be parked "
            "as dead letters until it is fixed",
            table.path,
            default_type,
            problem,
        )


def _verifier(table: _Table, name: str, base: Path) -> Verifier:
    if name == "smartthings":
        key_file = table.text("public_key")
        secret = table.text("secret")
        if key_file is None and secret is None:
            raise table.fail("secret", "is required (HMAC mode), or set public_key instead")
        if key_file is not None and secret is not None:
            raise table.fail("public_key", "set either secret (HMAC mode) or public_key, not both")
        if key_file is not None:
            public_key = load_public_key(key_file, base, table)
            tolerance = table.number("tolerance_s", 300.0)
            return SmartThingsVerifier(http_signature=HttpSignatureVerifier(public_key, tolerance))
        return SmartThingsVerifier(hmac_verifier=_hmac(table))
    secret = table.text("secret", required=True)
    assert secret is not None
    if name == "github":
        return GithubVerifier(secret.encode())
    if name == "standard-webhooks":
        try:
            key = standard_webhooks_key(secret)
        except ValueError as error:
            raise table.fail("secret", str(error)) from None
        return StandardWebhooksVerifier(key, table.number("tolerance_s", 300.0))
    return _hmac(table)


def _hmac(table: _Table) -> HmacSha256Verifier:
    secret = table.text("secret", required=True)
    header = table.text("header", "X-Signature")
    assert secret is not None and header is not None
    return HmacSha256Verifier(
        secret.encode(),
        header=header,
        timestamp_header=table.text("timestamp_header"),
        tolerance_s=table.number("tolerance_s", 300.0),
    )


def load_public_key(value: str, base: Path, table: _Table) -> rsa.RSAPublicKey:
    """An RSA public key from PEM text, or from a PEM file (a key or a certificate)."""
    if value.lstrip().startswith("-----BEGIN"):
        data = value.encode()
    else:
        file = Path(value) if Path(value).is_absolute() else base / value
        try:
            data = file.read_bytes()
        except OSError as error:
            raise table.fail("public_key", f"cannot read {str(file)!r}: {error}") from None
    try:
        key: object = serialization.load_pem_public_key(data)
    except ValueError:
        try:
            key = x509.load_pem_x509_certificate(data).public_key()
        except ValueError:
            raise table.fail("public_key", "is not a PEM public key or certificate") from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise table.fail("public_key", "must be an RSA key (SmartThings signs with RSA-SHA256)")
    return key


def parse_mqtt(raw: dict[str, Any]) -> MqttConfig:
    table = _Table(raw, "mqtt")
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
        table = _Table(item, f"mqtt.subscribe[{index}]")
        table.only(("filter", "qos", "strip_prefix", "dlq_prefix"))
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
            Subscription(topic_filter, qos, prefixes["strip_prefix"], prefixes["dlq_prefix"])
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


def parse_pg_notify(raw: Any) -> tuple[PgNotifyConfig, ...]:
    if not isinstance(raw, list):
        raise ConfigError("pg_notify: must be an array of tables ([[pg_notify]])")
    found: list[PgNotifyConfig] = []
    for index, item in enumerate(raw):
        table = _Table(item, f"pg_notify[{index}]")
        table.only(("dsn", "channel", "type", "source", "heartbeat_s", "lock_retry_s"))
        dsn = table.text("dsn", required=True)
        channel = table.text("channel", required=True)
        source = table.text("source", "pg_notify")
        assert dsn is not None and channel is not None and source is not None
        if not dsn.startswith(("postgresql://", "postgres://")):
            raise table.fail("dsn", "must be a postgresql:// URL")
        if len(channel.encode()) > 63:
            raise table.fail("channel", "must be at most 63 bytes (a PostgreSQL identifier)")
        if not _NAME.fullmatch(source):
            raise table.fail("source", "must be 1-100 letters, digits, '_' or '-'")
        default_type = table.text("type", f"{source}.received")
        assert default_type is not None
        _check_default_type(table, default_type)
        entry = PgNotifyConfig(
            dsn,
            channel,
            default_type,
            source,
            table.number("heartbeat_s", 5.0),
            table.number("lock_retry_s", 5.0),
        )
        if any((e.source, e.channel) == (source, channel) for e in found):
            raise table.fail("channel", f"{channel!r} is listed twice for source {source!r}")
        found.append(entry)
    return tuple(found)
