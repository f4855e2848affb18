"""Typed results: what the server answers, as frozen dataclasses (DESIGN.md section 4).

Each model keeps the answer's JSON object in ``raw``, so a field a newer server adds is not lost.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, Literal, TypeVar

T = TypeVar("T")

DeliveryStatus = Literal["pending", "succeeded", "failed", "cancelled"]


def _time(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) and value else None


def _required_time(value: Any) -> datetime:
    moment = _time(value)
    if moment is None:
        raise ValueError(f"expected an ISO 8601 time, got {value!r}")
    return moment


@dataclass(frozen=True, slots=True)
class Event:
    """A stored event."""

    id: str
    seq: int
    type: str
    source: str
    subject: str | None
    time: datetime  # the producer's claim
    received_at: datetime  # stamped by the store; never decreases with seq
    trace_id: str
    idempotency_key: str | None
    data: Any
    metadata: dict[str, Any]
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> Event:
        return cls(
            id=value["id"],
            seq=int(value["seq"]),
            type=value["type"],
            source=value["source"],
            subject=value.get("subject"),
            time=_required_time(value["time"]),
            received_at=_required_time(value["received_at"]),
            trace_id=value.get("trace_id") or "",
            idempotency_key=value.get("idempotency_key"),
            data=value.get("data"),
            metadata=value.get("metadata") or {},
            raw=value,
        )


@dataclass(frozen=True, slots=True)
class Published:
    """The answer to one published event: a repeated idempotency key gives ``duplicate``."""

    id: str
    seq: int
    duplicate: bool

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> Published:
        return cls(value["id"], int(value["seq"]), bool(value.get("duplicate", False)))


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a list; pass ``next`` as ``cursor`` (with the same filters) for the next."""

    items: list[T]
    next: str | None


@dataclass(frozen=True, slots=True)
class Webhook:
    """An outbound endpoint. ``secret`` is shown only on create and rotate."""

    id: str
    url: str
    events: list[str]
    filter: dict[str, Any]
    active: bool
    description: str | None
    rate_limit: float | None
    headers: dict[str, str]
    created_at: datetime | None
    disabled_reason: str | None
    secret: str | None
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> Webhook:
        return cls(
            id=value["id"],
            url=value["url"],
            events=list(value.get("events") or []),
            filter=value.get("filter") or {},
            active=bool(value.get("active", True)),
            description=value.get("description"),
            rate_limit=value.get("rate_limit"),
            headers=value.get("headers") or {},
            created_at=_time(value.get("created_at")),
            disabled_reason=value.get("disabled_reason"),
            secret=value.get("secret"),
            raw=value,
        )


@dataclass(frozen=True, slots=True)
class Attempt:
    """One try of a delivery."""

    at: datetime | None
    status_code: int | None
    latency_ms: float | None
    error: str | None
    response_body: str | None

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> Attempt:
        return cls(
            at=_time(value.get("at")),
            status_code=value.get("status_code"),
            latency_ms=value.get("latency_ms"),
            error=value.get("error"),
            response_body=value.get("response_body"),
        )


@dataclass(frozen=True, slots=True)
class Delivery:
    """One event on its way to one endpoint, with every attempt so far."""

    id: str
    webhook_id: str
    event_id: str
    status: DeliveryStatus
    attempts: list[Attempt]
    next_attempt_at: datetime | None
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> Delivery:
        return cls(
            id=value["id"],
            webhook_id=value["webhook_id"],
            event_id=value["event_id"],
            status=value["status"],
            attempts=[Attempt.from_json(a) for a in value.get("attempts") or []],
            next_attempt_at=_time(value.get("next_attempt_at")),
            raw=value,
        )


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """Input that could not become an event: the raw bytes (text, or base64) and the reason."""

    id: str
    source: str
    reason: str
    raw_text: str | None  # as the API shows it: text when UTF-8, else base64
    received_at: datetime | None
    topic: str | None
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> DeadLetter:
        return cls(
            id=value["id"],
            source=value["source"],
            reason=value["reason"],
            raw_text=value.get("raw"),
            received_at=_time(value.get("received_at")),
            topic=value.get("topic"),
            raw=value,
        )


@dataclass(frozen=True, slots=True)
class Redriven:
    """The answer to a bulk redrive: counts, and the first failures with their errors."""

    redriven: int
    failed: int
    events: int
    failures: list[dict[str, str]]

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> Redriven:
        return cls(
            int(value.get("redriven", 0)),
            int(value.get("failed", 0)),
            int(value.get("events", 0)),
            list(value.get("failures") or []),
        )


@dataclass(frozen=True, slots=True)
class Key:
    """An API key. ``key`` (the secret itself) is shown only when it is created."""

    id: str
    prefix: str | None
    name: str | None
    scopes: list[str]
    tenant: str | None
    rate_limit: float | None
    max_streams: int | None
    created_at: datetime | None
    key: str | None
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> Key:
        return cls(
            id=value["id"],
            prefix=value.get("prefix"),
            name=value.get("name"),
            scopes=list(value.get("scopes") or []),
            tenant=value.get("tenant"),
            rate_limit=value.get("rate_limit"),
            max_streams=value.get("max_streams"),
            created_at=_time(value.get("created_at")),
            key=value.get("key"),
            raw=value,
        )


@dataclass(frozen=True, slots=True)
class Tenant:
    """A tenant: its events, endpoints and keys are seen by no other tenant."""

    id: str
    name: str | None
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> Tenant:
        return cls(id=value["id"], name=value.get("name"), raw=value)


@dataclass(frozen=True, slots=True)
class SystemMessage:
    """A frame of a stream that is not an event.

    ``kind`` is ``connected`` (``data`` has ``connection_id``, ``filter``, ``position``),
    ``system`` (``code`` is e.g. ``backplane_lost``, ``history_truncated``, ``slow_consumer``)
    or ``shutdown`` (the server is going away; the stream reconnects after ``retry_ms``).
    """

    kind: Literal["connected", "system", "shutdown"]
    code: str
    message: str
    data: dict[str, Any]
    retry_ms: int | None = None
