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
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from tidings import extras
from tidings.envelope import DEFAULT_TENANT
from tidings.ingest.mqtt_config import MQTT_SOURCE, MqttConfig, parse_mqtt
from tidings.ingest.signatures import (
    GithubVerifier,
    HmacSha256Verifier,
    StandardWebhooksVerifier,
    Verifier,
    standard_webhooks_key,
)
from tidings.ingest.table import Table, check_default_type, read_tenant
from tidings.settings import ConfigError, Settings

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import rsa

log = logging.getLogger("tidings.ingest")

VerifierName = Literal["hmac-sha256", "github", "standard-webhooks", "smartthings"]
VERIFIERS: tuple[VerifierName, ...] = ("hmac-sha256", "github", "standard-webhooks", "smartthings")
_NAME = re.compile(r"[A-Za-z0-9_-]{1,100}")
_KEYS: dict[str, tuple[str, ...]] = {
    "hmac-sha256": ("secret", "header", "timestamp_header", "tolerance_s"),
    "github": ("secret",),
    "standard-webhooks": ("secret", "tolerance_s"),
    "smartthings": (
        "secret",
        "public_key",
        "header",
        "timestamp_header",
        "tolerance_s",
        "target_url",
    ),
}


@dataclass(frozen=True, slots=True)
class SourceConfig:
    """One ``[sources.<name>]`` table: how ``POST /v1/ingest/<name>`` is verified and mapped."""

    name: str
    verifier: VerifierName
    type: str  # the default type: for a payload without "type"
    check: Verifier = field(repr=False, compare=False)  # built from the secret or key
    # SmartThings: this source's public URL, the CONFIRMATION answer's ``targetUrl`` (behind a
    # proxy the request URL is not what SmartThings calls); None: the request URL.
    target_url: str | None = None
    tenant: str = DEFAULT_TENANT  # whose log the source's events and dead letters go to


@dataclass(frozen=True, slots=True)
class PgNotifyConfig:
    """One ``[[pg_notify]]`` table: a channel LISTENed to on one database."""

    dsn: str = field(repr=False)
    channel: str
    type: str
    source: str = "pg_notify"
    heartbeat_s: float = 5.0  # how often the listening connection is checked
    lock_retry_s: float = 5.0  # how often a standby node tries to take over
    tenant: str = DEFAULT_TENANT  # whose log the notifications' events go to

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
    extras.require_for_url(settings.store, "TIDINGS_STORE")
    extras.require_for_url(settings.backplane, "TIDINGS_BACKPLANE")
    sources = parse_sources(settings.sources, base)
    mqtt = parse_mqtt(settings.mqtt) if settings.mqtt is not None else None
    if mqtt is not None:
        extras.require("mqtt", "[mqtt] in the configuration")
    pg = parse_pg_notify(settings.pg_notify)
    if pg:
        extras.require("postgres", "[[pg_notify]] in the configuration")
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
        table = Table(table_raw, path)
        verifier = table.text("verifier", required=True)
        if verifier not in VERIFIERS:
            raise table.fail(
                "verifier", f"unknown verifier {verifier!r}; expected one of {', '.join(VERIFIERS)}"
            )
        table.only(("verifier", "type", "tenant", *_KEYS[verifier]))
        default_type = table.text("type", f"{name}.received")
        assert default_type is not None
        check_default_type(table, default_type)
        tenant = read_tenant(table)
        check = _verifier(table, verifier, base)
        target_url = _target_url(table) if verifier == "smartthings" else None
        sources[name] = SourceConfig(name, verifier, default_type, check, target_url, tenant)
    return sources


def _target_url(table: Table) -> str | None:
    url = table.text("target_url")
    if url is not None and not re.fullmatch(r"https?://[^\s/?#]+[^\s]*", url):
        raise table.fail("target_url", "must be an absolute http:// or https:// URL")
    return url


def _verifier(table: Table, name: str, base: Path) -> Verifier:
    if name == "smartthings":
        extras.require("smartthings", f'{table.path}: verifier = "smartthings"')
        from tidings.ingest.http_signatures import HttpSignatureVerifier, SmartThingsVerifier

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


def _hmac(table: Table) -> HmacSha256Verifier:
    secret = table.text("secret", required=True)
    header = table.text("header", "X-Signature")
    assert secret is not None and header is not None
    return HmacSha256Verifier(
        secret.encode(),
        header=header,
        timestamp_header=table.text("timestamp_header"),
        tolerance_s=table.number("tolerance_s", 300.0),
    )


def load_public_key(value: str, base: Path, table: Table) -> rsa.RSAPublicKey:
    """An RSA public key from PEM text, or from a PEM file (a key or a certificate)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

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


def parse_pg_notify(raw: Any) -> tuple[PgNotifyConfig, ...]:
    if not isinstance(raw, list):
        raise ConfigError("pg_notify: must be an array of tables ([[pg_notify]])")
    found: list[PgNotifyConfig] = []
    for index, item in enumerate(raw):
        table = Table(item, f"pg_notify[{index}]")
        table.only(("dsn", "channel", "type", "source", "heartbeat_s", "lock_retry_s", "tenant"))
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
        check_default_type(table, default_type)
        entry = PgNotifyConfig(
            dsn,
            channel,
            default_type,
            source,
            table.number("heartbeat_s", 5.0),
            table.number("lock_retry_s", 5.0),
            read_tenant(table),
        )
        if any((e.source, e.channel) == (source, channel) for e in found):
            raise table.fail("channel", f"{channel!r} is listed twice for source {source!r}")
        found.append(entry)
    return tuple(found)
