"""Pydantic models of the answers the admin routes give, for /openapi.json.

The routes build their answers as dicts (``webhooks.endpoint_dict`` and the like); these models
describe them, and the tests check real answers against the document.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class WebhookOut(BaseModel):
    id: str
    url: str
    events: list[str] = Field(description="type patterns")
    filter: dict[str, Any] = Field(description="the other filters (source, subject, data.<path>)")
    active: bool
    description: str | None
    rate_limit: float | None = Field(description="deliveries per second; null: no limit")
    headers: dict[str, str] = Field(description="names, with values masked when listed")
    created_at: str
    disabled_reason: str | None
    secret: str | None = Field(None, description="only on create and rotate-secret")


class WebhookList(BaseModel):
    webhooks: list[WebhookOut]


class AttemptOut(BaseModel):
    at: str
    status_code: int | None
    latency_ms: float | None
    error: str | None
    response_body: str | None


class DeliveryOut(BaseModel):
    id: str
    webhook_id: str
    event_id: str
    event_seq: int | None = None
    message_id: str | None = Field(None, description="the webhook-id header of every attempt")
    status: Literal["pending", "succeeded", "failed", "cancelled"]
    attempts: list[AttemptOut]
    next_attempt_at: str | None
    created_at: str | None = None


class DeliveryPage(BaseModel):
    deliveries: list[DeliveryOut]
    next: str | None


class ReplayResult(BaseModel):
    replayed: int = Field(description="deliveries queued")


class DeadLetterOut(BaseModel):
    id: str
    source: str
    reason: str
    raw: str | None = Field(description="text when UTF-8, else base64 (see raw_encoding)")
    raw_encoding: Literal["base64"] | None = None
    received_at: str
    topic: str | None


class DeadLetterPage(BaseModel):
    dead_letters: list[DeadLetterOut]
    next: str | None


class RedrivenOne(BaseModel):
    dead_letter: str
    events: list[dict[str, Any]] = Field(description="{id, seq, duplicate} of each event stored")


class RedriveFailure(BaseModel):
    id: str
    error: str


class RedrivenMany(BaseModel):
    redriven: int
    failed: int
    events: int
    failures: list[RedriveFailure]


class Stats(BaseModel):
    model_config = ConfigDict(extra="allow")

    events: dict[str, Any] = Field(description="total, by_type, by_source, by_hour")
    store: dict[str, Any] = Field(description="head_seq, earliest_seq, size_bytes, retention")
    streams: dict[str, Any] = Field(description="open connections, subscriptions, delivered")
    deliveries: dict[str, Any] | None = Field(description="backlogs and success rates")


class Health(BaseModel):
    model_config = ConfigDict(extra="allow")

    status: str


# Stream frames (SSE ``data:`` and WebSocket messages), described once for both.


class ConnectedFrame(BaseModel):
    connection_id: str
    filter: dict[str, Any]
    position: int | None = Field(description="events after this one follow")


class HeartbeatFrame(BaseModel):
    model_config = ConfigDict(extra="allow")

    position: int | None = Field(description="the resume point (also the SSE id) at the head")


class SystemFrame(BaseModel):
    model_config = ConfigDict(extra="allow")

    code: str = Field(
        description="backplane_lost, backplane_restored, source_lost, source_restored, "
        "history_truncated (with earliest), slow_consumer, store_error, key_revoked"
    )
    message: str


class ShutdownFrame(BaseModel):
    model_config = ConfigDict(extra="allow")

    retry_ms: int = Field(description="wait this long (jittered) before reconnecting")


class KeyOut(BaseModel):
    id: str
    key: str | None = Field(None, description="the key itself: only in the answer to create")
    prefix: str
    name: str
    scopes: list[Literal["publish", "subscribe", "admin", "root"]]
    tenant: str
    rate_limit: float | None
    max_streams: int
    created_at: str
    revoked_at: str | None = None


class KeyList(BaseModel):
    keys: list[KeyOut]


class TenantOut(BaseModel):
    id: str
    name: str | None
    created_at: str


class TenantList(BaseModel):
    tenants: list[TenantOut]
