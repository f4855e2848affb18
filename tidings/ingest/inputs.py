"""Each adapter's mapping: a webhook body, an MQTT message or a notification to drafts (no I/O).

The same functions serve live input and the redrive of a dead letter, so a redrive runs the
source's current mapping.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tidings.ingest.config import PgNotifyConfig, SourceConfig
from tidings.ingest.mapping import Draft, Unmappable, envelope_draft, generic_draft, parse_json
from tidings.ingest.mqtt_config import MQTT_SOURCE, Subscription
from tidings.ingest.smartthings import Confirmation, DeviceEvents, OtherLifecycle, Ping
from tidings.ingest.smartthings import read_lifecycle as read_smartthings
from tidings.ingest.topics import type_from_topic

# The request headers a webhook mapping reads; a dead letter keeps them for its redrive.
MAPPED_HEADERS = ("x-github-event", "x-github-delivery", "webhook-id", "traceparent")


def read_webhook(
    source: SourceConfig, body: bytes, headers: Mapping[str, str]
) -> list[Draft] | Ping | Confirmation | OtherLifecycle:
    """The drafts of a verified webhook body, or the SmartThings lifecycle it asks for."""
    value = parse_json(body)
    if source.verifier == "github":
        return [github_draft(source, value, headers)]
    if source.verifier == "smartthings":
        lifecycle = read_smartthings(value, source.name)
        if isinstance(lifecycle, DeviceEvents):
            return lifecycle.drafts
        if lifecycle is not None:
            return lifecycle
    if source.verifier == "standard-webhooks":
        return [standard_webhooks_draft(source, value, headers.get("webhook-id"))]
    return [generic_draft(value, source=source.name, default_type=source.type)]


def github_draft(source: SourceConfig, value: Any, headers: Mapping[str, str]) -> Draft:
    """Type ``<source>.<X-GitHub-Event>[.<action>]``, idempotency key ``X-GitHub-Delivery``."""
    event = headers.get("x-github-event")
    if not event:
        raise Unmappable("unmappable", "the X-GitHub-Event header is missing")
    action = value.get("action") if isinstance(value, dict) else None
    event_type = f"{source.name}.{event}" + (f".{action}" if isinstance(action, str) else "")
    raw = {"type": event_type, "source": source.name, "data": value}
    return Draft(raw, headers.get("x-github-delivery") or None)


def standard_webhooks_draft(source: SourceConfig, value: Any, webhook_id: str | None) -> Draft:
    """The generic rule with ``webhook-id`` as idempotency key. The payload shape the Standard
    Webhooks specification recommends, ``{type, timestamp, data}``, is an event input whose
    ``timestamp`` is the event's time."""
    if isinstance(value, dict) and "type" in value and "timestamp" in value and "time" not in value:
        value = {("time" if k == "timestamp" else k): v for k, v in value.items()}
    return generic_draft(value, source=source.name, default_type=source.type, key=webhook_id)


def read_mqtt(subscription: Subscription, topic: str, payload: bytes) -> list[Draft]:
    """Type from the topic (``strip_prefix`` removed, ``/`` as ``.``); a ``kind`` envelope maps
    field by field, any other JSON is the data; the topic is kept in ``metadata.topic``."""
    value = parse_json(payload)
    event_type = type_from_topic(topic, subscription.strip_prefix)
    if isinstance(value, dict) and "kind" in value:
        draft = envelope_draft(value, event_type, MQTT_SOURCE)
        return [Draft(draft.raw, metadata={**draft.metadata, "topic": topic})]
    raw = {"type": event_type, "source": MQTT_SOURCE, "data": value}
    return [Draft(raw, metadata={"topic": topic})]


def read_notification(config: PgNotifyConfig, payload: bytes) -> list[Draft]:
    """The generic rule with the channel's default type; the channel kept in
    ``metadata.channel``. A payload's own ``idempotency_key`` dedupes repeats."""
    value = parse_json(payload)
    draft = generic_draft(value, source=config.source, default_type=config.type)
    return [Draft(draft.raw, metadata={"channel": config.channel})]
