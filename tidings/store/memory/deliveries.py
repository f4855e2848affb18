"""``DeliveryStore`` in dicts: the same rules as the SQL of the other implementations."""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace

from tidings.store.deliveries import (
    Attempt,
    AttemptRecord,
    Delivery,
    DeliveryStats,
    Endpoint,
    EndpointAttempts,
    Status,
)

HOUR_US = 3_600_000_000


@dataclass(slots=True)
class _Row:
    delivery: Delivery
    lease_until_us: int | None


class MemoryDeliveryStore:
    """Objects are copied in and out, so a caller's later edits never leak into the state."""

    def __init__(self) -> None:
        self._endpoints: dict[str, Endpoint] = {}  # by id
        self._rows: dict[str, _Row] = {}  # deliveries by id
        self._attempts: dict[str, dict[int, Attempt]] = {}  # delivery id -> n -> attempt

    # -- endpoints ------------------------------------------------------------------------

    async def create_endpoint(self, endpoint: Endpoint) -> None:
        if endpoint.id in self._endpoints:
            raise ValueError(f"an endpoint with id {endpoint.id!r} exists")
        self._endpoints[endpoint.id] = _copy(endpoint)

    async def save_endpoint(self, endpoint: Endpoint) -> None:
        """Everything but the cursor, which only ``dispatch`` moves."""
        known = self._endpoints.get(endpoint.id)
        if known is None or known.tenant != endpoint.tenant:
            return
        saved = _copy(endpoint)
        saved.cursor, saved.created_at_us = known.cursor, known.created_at_us
        self._endpoints[endpoint.id] = saved

    async def delete_endpoint(self, tenant: str, endpoint_id: str, now_us: int = 0) -> bool:
        self._cancel(tenant, endpoint_id, now_us)
        known = self._endpoints.get(endpoint_id)
        if known is None or known.tenant != tenant:
            return False
        del self._endpoints[endpoint_id]
        return True

    async def get_endpoint(self, tenant: str, endpoint_id: str) -> Endpoint | None:
        known = self._endpoints.get(endpoint_id)
        return _copy(known) if known is not None and known.tenant == tenant else None

    async def list_endpoints(self, tenant: str | None) -> list[Endpoint]:
        found = [e for e in self._endpoints.values() if tenant is None or e.tenant == tenant]
        return [_copy(e) for e in sorted(found, key=lambda e: (e.created_at_us, e.id))]

    # -- deliveries -----------------------------------------------------------------------

    async def dispatch(
        self,
        deliveries: Sequence[Delivery],
        cursors: dict[str, int],
        lease_until_us: int | None = None,
    ) -> None:
        for d in deliveries:
            if d.id in self._rows:
                raise ValueError(f"a delivery with id {d.id!r} exists")
        for d in deliveries:
            self._rows[d.id] = _Row(replace(d), lease_until_us)
        for endpoint_id, position in cursors.items():
            endpoint = self._endpoints.get(endpoint_id)
            if endpoint is not None:
                endpoint.cursor = max(endpoint.cursor, position)

    async def claim_due(self, now_us: int, limit: int, lease_until_us: int) -> list[Delivery]:
        due = [
            row
            for row in self._rows.values()
            if row.delivery.status == "pending"
            and row.delivery.next_attempt_at_us is not None
            and row.delivery.next_attempt_at_us <= now_us
            and (row.lease_until_us is None or row.lease_until_us < now_us)
        ]
        due.sort(key=lambda row: row.delivery.next_attempt_at_us or 0)
        claimed = due[: max(limit, 0)]
        for row in claimed:
            row.lease_until_us = lease_until_us
        return [replace(row.delivery) for row in claimed]

    async def record(self, records: Sequence[AttemptRecord], now_us: int) -> None:
        for r in records:
            self._attempts.setdefault(r.delivery_id, {})[r.attempt.n] = replace(r.attempt)
            row = self._rows.get(r.delivery_id)
            if row is not None and row.delivery.status == "pending":
                d = row.delivery
                d.status = r.status
                d.attempts = max(d.attempts, r.attempt.n)
                d.next_attempt_at_us = r.next_attempt_at_us
                d.updated_at_us = now_us
                row.lease_until_us = None
        # In completion order: a success clears an endpoint's run of failures, and a failure
        # starts one unless one is running.
        for r in records:
            endpoint = self._endpoints.get(r.webhook_id)
            if endpoint is None:
                continue
            if r.succeeded:
                endpoint.failing_since_us = None
            elif endpoint.failing_since_us is None:
                endpoint.failing_since_us = r.attempt.at_us

    async def release_leases(self) -> None:
        for row in self._rows.values():
            if row.delivery.status == "pending":
                row.lease_until_us = None

    async def cancel_pending(self, tenant: str, endpoint_id: str, now_us: int = 0) -> int:
        return self._cancel(tenant, endpoint_id, now_us)

    def _cancel(self, tenant: str, endpoint_id: str, now_us: int) -> int:
        count = 0
        for row in self._rows.values():
            d = row.delivery
            if (d.tenant, d.webhook_id, d.status) == (tenant, endpoint_id, "pending"):
                _cancel_row(row, now_us)
                count += 1
        return count

    async def cancel_deliveries(self, delivery_ids: Sequence[str], now_us: int) -> None:
        for delivery_id in delivery_ids:
            row = self._rows.get(delivery_id)
            if row is not None and row.delivery.status == "pending":
                _cancel_row(row, now_us)

    async def get_delivery(
        self, tenant: str, delivery_id: str
    ) -> tuple[Delivery, list[Attempt]] | None:
        row = self._rows.get(delivery_id)
        if row is None or row.delivery.tenant != tenant:
            return None
        return replace(row.delivery), self._attempt_log(delivery_id)

    async def list_deliveries(
        self, tenant: str, endpoint_id: str, status: Status | None, limit: int, before: str | None
    ) -> list[tuple[Delivery, list[Attempt]]]:
        found = sorted(
            (
                row.delivery
                for row in self._rows.values()
                if row.delivery.tenant == tenant
                and row.delivery.webhook_id == endpoint_id
                and (status is None or row.delivery.status == status)
                and (before is None or row.delivery.id < before)
            ),
            key=lambda d: d.id,
            reverse=True,
        )
        return [(replace(d), self._attempt_log(d.id)) for d in found[: max(limit, 0)]]

    def _attempt_log(self, delivery_id: str) -> list[Attempt]:
        attempts = self._attempts.get(delivery_id, {})
        return [replace(attempts[n]) for n in sorted(attempts)]

    async def retry_delivery(self, tenant: str, delivery_id: str, now_us: int) -> Delivery | None:
        row = self._rows.get(delivery_id)
        if row is None or row.delivery.tenant != tenant:
            return None
        d = row.delivery
        if d.status != "pending":
            d.status = "pending"
            d.max_attempts = d.attempts + 1
            d.next_attempt_at_us = now_us
            d.updated_at_us = now_us
            row.lease_until_us = None
        return replace(d)

    # -- retention and stats --------------------------------------------------------------

    async def retention_floor(self) -> int | None:
        pending = [
            r.delivery.event_seq for r in self._rows.values() if r.delivery.status == "pending"
        ]
        cursors = [e.cursor + 1 for e in self._endpoints.values() if e.active]
        floors = [min(values) for values in (pending, cursors) if values]
        return min(floors) if floors else None

    async def purge_finished(self, older_than_us: int) -> int:
        gone = [
            delivery_id
            for delivery_id, row in self._rows.items()
            if row.delivery.status != "pending" and row.delivery.updated_at_us < older_than_us
        ]
        for delivery_id in gone:
            del self._rows[delivery_id]
            self._attempts.pop(delivery_id, None)
        return len(gone)

    async def stats(self, tenant: str, now_us: int) -> DeliveryStats:
        mine = [row.delivery for row in self._rows.values() if row.delivery.tenant == tenant]
        by_status: dict[str, int] = dict(Counter(d.status for d in mine))
        oldest = min((d.created_at_us for d in mine if d.status == "pending"), default=None)
        recent: Counter[str] = Counter()
        for d in mine:
            for attempt in self._attempts.get(d.id, {}).values():
                if attempt.at_us >= now_us - HOUR_US:
                    ok = attempt.status_code is not None and 200 <= attempt.status_code <= 299
                    recent["succeeded" if ok else "failed"] += 1
        return DeliveryStats(by_status, oldest, dict(recent))

    async def endpoint_attempts(self, tenant: str, since_us: int) -> dict[str, EndpointAttempts]:
        tally: dict[str, list[int]] = {}
        for row in self._rows.values():
            d = row.delivery
            if d.tenant != tenant:
                continue
            for attempt in self._attempts.get(d.id, {}).values():
                if attempt.at_us >= since_us:
                    ok = attempt.status_code is not None and 200 <= attempt.status_code <= 299
                    counts = tally.setdefault(d.webhook_id, [0, 0])
                    counts[0 if ok else 1] += 1
        return {wid: EndpointAttempts(ok, failed) for wid, (ok, failed) in tally.items()}


def _copy(endpoint: Endpoint) -> Endpoint:
    copied = copy.deepcopy(endpoint)
    copied._parsed = None  # parsed again on demand, from the copied fields
    return copied


def _cancel_row(row: _Row, now_us: int) -> None:
    row.delivery.status = "cancelled"
    row.delivery.next_attempt_at_us = None
    row.delivery.updated_at_us = now_us
    row.lease_until_us = None
