"""Delivery state: webhook endpoints, deliveries and their attempt log.

``DeliveryStore`` is the protocol the delivery part uses; each store implementation provides
one (tidings/store/sqlite/deliveries.py for the embedded store).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from tidings.envelope import Filter, parse_filter

Status = Literal["pending", "succeeded", "failed", "cancelled"]


@dataclass(slots=True)
class Secret:
    secret: str
    expires_at_us: int | None = None  # None: current; else still signing until then


@dataclass(slots=True)
class Endpoint:
    id: str
    tenant: str
    url: str
    events: list[str]  # type patterns
    filter: dict[str, Any]  # the other filters, in their query-parameter form
    secrets: list[Secret]  # newest first
    active: bool
    description: str | None
    rate_limit: float | None  # requests per second
    headers: dict[str, str]
    created_at_us: int
    updated_at_us: int
    disabled_reason: str | None = None
    cursor: int = 0
    failing_since_us: int | None = None
    _parsed: Filter | None = field(default=None, repr=False, compare=False)

    @property
    def matcher(self) -> Filter:
        """The endpoint's whole filter: its type patterns and the other filters."""
        if self._parsed is None:
            params: dict[str, Any] = dict(self.filter)
            if self.events and self.events != ["#"]:
                params["type"] = list(self.events)
            self._parsed = parse_filter(params, location="filter")
        return self._parsed

    def live_secrets(self, now_us: int) -> list[str]:
        """Secrets that sign now, newest first."""
        return [
            s.secret for s in self.secrets if s.expires_at_us is None or s.expires_at_us > now_us
        ]


@dataclass(slots=True)
class Delivery:
    id: str
    tenant: str
    webhook_id: str
    event_seq: int
    event_id: str
    message_id: str
    status: Status
    attempts: int
    max_attempts: int
    next_attempt_at_us: int | None
    created_at_us: int
    updated_at_us: int


@dataclass(slots=True)
class Attempt:
    n: int
    at_us: int
    status_code: int | None
    latency_ms: float | None
    error: str | None
    response_body: str | None


@dataclass(slots=True)
class AttemptRecord:
    """The result of one attempt and what it means for its delivery, written in batches."""

    delivery_id: str
    webhook_id: str
    attempt: Attempt
    status: Status  # the delivery's status after this attempt
    next_attempt_at_us: int | None  # when pending: the next attempt
    succeeded: bool


@dataclass(frozen=True, slots=True)
class DeliveryStats:
    by_status: dict[str, int]
    oldest_pending_us: int | None
    attempts_last_hour: dict[str, int]  # succeeded/failed attempts in the last hour


@dataclass(frozen=True, slots=True)
class EndpointAttempts:
    """One endpoint's attempts in a window: answered 2xx, and all the others."""

    succeeded: int
    failed: int


class DeliveryStore(Protocol):
    async def create_endpoint(self, endpoint: Endpoint) -> None: ...

    async def save_endpoint(self, endpoint: Endpoint) -> None: ...

    async def delete_endpoint(self, tenant: str, endpoint_id: str, now_us: int = 0) -> bool:
        """Delete it and cancel its pending deliveries; False when there was none."""

    async def get_endpoint(self, tenant: str, endpoint_id: str) -> Endpoint | None: ...

    async def list_endpoints(self, tenant: str | None) -> list[Endpoint]:
        """Every endpoint of a tenant (or of all tenants when None), oldest first."""

    async def dispatch(
        self,
        deliveries: Sequence[Delivery],
        cursors: dict[str, int],
        lease_until_us: int | None = None,
    ) -> None:
        """Create deliveries (leased until ``lease_until_us``, when given) and move endpoint
        cursors in one transaction."""

    async def claim_due(self, now_us: int, limit: int, lease_until_us: int) -> list[Delivery]:
        """Lease pending deliveries due by ``now_us`` that nobody holds, earliest first."""

    async def record(self, records: Sequence[AttemptRecord], now_us: int) -> None:
        """Log attempts and move their deliveries on, in one transaction."""

    async def release_leases(self) -> None: ...

    async def cancel_pending(self, tenant: str, endpoint_id: str, now_us: int = 0) -> int: ...

    async def cancel_deliveries(self, delivery_ids: Sequence[str], now_us: int) -> None:
        """Cancel these deliveries where they are still pending."""

    async def get_delivery(
        self, tenant: str, delivery_id: str
    ) -> tuple[Delivery, list[Attempt]] | None: ...

    async def list_deliveries(
        self, tenant: str, endpoint_id: str, status: Status | None, limit: int, before: str | None
    ) -> list[tuple[Delivery, list[Attempt]]]: ...

    async def retry_delivery(self, tenant: str, delivery_id: str, now_us: int) -> Delivery | None:
        """Make a finished delivery pending for one more attempt now."""

    async def retention_floor(self) -> int | None:
        """The lowest event position a delivery still needs (retention keeps it)."""

    async def purge_finished(self, older_than_us: int) -> int: ...

    async def stats(self, tenant: str, now_us: int) -> DeliveryStats: ...

    async def endpoint_attempts(self, tenant: str, since_us: int) -> dict[str, EndpointAttempts]:
        """Attempts made at or after ``since_us``, per endpoint id (endpoints with none are
        left out): a 2xx answer counts as succeeded, anything else as failed."""
