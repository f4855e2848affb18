"""Webhook endpoints and deliveries as the API and the CLI see them."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from typing import Any

from tidings import metrics
from tidings.delivery.destinations import DestinationRefused, check_url, vet
from tidings.delivery.engine import LEASE_US, Engine, Job
from tidings.delivery.governor import Governor
from tidings.delivery.schedule import RetrySchedule, parse_schedule
from tidings.delivery.sender import Sender
from tidings.delivery.signing import generate_secret
from tidings.envelope import Event, Limits, PublishContext, candidates_from_json
from tidings.envelope.ids import uuid7
from tidings.envelope.timefmt import now_us
from tidings.errors import TidingsError
from tidings.publish import Publisher
from tidings.settings import Settings
from tidings.store import Backend, Query
from tidings.store.deliveries import Attempt, Delivery, Endpoint, Secret, Status
from tidings.tasks import Supervisor

DAY_US = 86_400_000_000

log = logging.getLogger("tidings.delivery")
REPLAY_CHUNK = 1000
DISABLED_EVENT_TYPE = "tidings.webhook.disabled"


def _invalid(field: str, message: str) -> TidingsError:
    return TidingsError(
        422, "validation_error", message, details=[{"loc": ["body", field], "msg": message}]
    )


class DeliveryService:
    def __init__(self, settings: Settings, backend: Backend, publisher: Publisher) -> None:
        self.settings = settings
        self.store = backend.events  # the log deliveries are made from
        self.publisher = publisher
        self.state = backend.deliveries  # endpoints, cursors, deliveries, attempts
        self.sender = Sender(
            timeout_s=settings.webhook_timeout_s,
            allow_private=settings.webhook_allow_private,
            max_connections=settings.delivery_concurrency * 2,
        )
        self.schedule = RetrySchedule(
            parse_schedule(settings.webhook_retry_schedule), settings.webhook_throttle_s
        )
        self.engine = Engine(
            self.store,
            self.state,
            self.sender,
            self.schedule,
            concurrency=settings.delivery_concurrency,
            disable_after_s=settings.webhook_disable_after_s,
            on_disable=self.disable,
            governor=Governor(lambda: publisher.inflight),
        )

    async def start(self, tasks: Supervisor) -> None:
        await self.engine.load()
        self.store.add_commit_listener(self.engine.on_commit)
        tasks.start("webhook-dispatch", self.engine.dispatch_loop)
        tasks.start("webhook-claim", self.engine.claim_loop)
        tasks.start("webhook-pump", self.engine.pump_loop)
        tasks.start("webhook-record", self.engine.record_loop)

    async def stop(self) -> None:
        await self.engine.stop()
        await self.state.release_leases()
        await self.sender.close()

    # -- endpoints ------------------------------------------------------------------------

    async def _vet(self, url: str) -> None:
        try:
            check_url(url)
            await vet(url, self.settings.webhook_allow_private)
        except DestinationRefused as error:
            raise _invalid("url", str(error)) from None

    async def create(self, tenant: str, spec: dict[str, Any]) -> Endpoint:
        await self._vet(spec["url"])
        now = now_us()
        endpoint = Endpoint(
            id="wh_" + uuid7().replace("-", ""),
            tenant=tenant,
            url=spec["url"],
            events=spec["events"],
            filter=spec["filter"],
            secrets=[Secret(spec.get("secret") or generate_secret())],
            active=spec["active"],
            description=spec.get("description"),
            rate_limit=spec.get("rate_limit"),
            headers=spec.get("headers") or {},
            created_at_us=now,
            updated_at_us=now,
            cursor=self.store.head(),  # from now on; history is sent with replay
        )
        endpoint.matcher  # noqa: B018 - the filter must parse before it is stored
        await self.state.create_endpoint(endpoint)
        self.engine.put_endpoint(endpoint)
        return endpoint

    async def get(self, tenant: str, endpoint_id: str) -> Endpoint:
        endpoint = await self.state.get_endpoint(tenant, endpoint_id)
        if endpoint is None:
            raise TidingsError(
                404, "webhook_not_found", f"no webhook endpoint with id {endpoint_id!r}"
            )
        return endpoint

    async def list_endpoints(self, tenant: str) -> list[Endpoint]:
        return await self.state.list_endpoints(tenant)

    async def update(self, tenant: str, endpoint_id: str, changes: dict[str, Any]) -> Endpoint:
        endpoint = await self.get(tenant, endpoint_id)
        if "url" in changes:
            await self._vet(changes["url"])
        was_active = endpoint.active
        updated = replace(endpoint, _parsed=None, updated_at_us=now_us(), **changes)
        updated.matcher  # noqa: B018 - validate the new filter
        if updated.active and not was_active:
            # Re-enabled: deliver from now on (missed events can be replayed), clear the past.
            updated.disabled_reason = None
            updated.failing_since_us = None
            updated.cursor = self.store.head()
            await self.state.dispatch([], {updated.id: updated.cursor})
        await self.state.save_endpoint(updated)
        if was_active and not updated.active:
            await self.state.cancel_pending(tenant, endpoint_id, now_us())
        self.engine.put_endpoint(updated)
        return updated

    async def delete(self, tenant: str, endpoint_id: str) -> None:
        if not await self.state.delete_endpoint(tenant, endpoint_id, now_us()):
            raise TidingsError(
                404, "webhook_not_found", f"no webhook endpoint with id {endpoint_id!r}"
            )
        self.engine.drop_endpoint(endpoint_id)
        metrics.forget_endpoint(endpoint_id)

    async def rotate(self, tenant: str, endpoint_id: str, secret: str | None) -> Endpoint:
        endpoint = await self.get(tenant, endpoint_id)
        now = now_us()
        overlap = int(self.settings.webhook_rotation_overlap_s * 1_000_000)
        kept = [
            Secret(s.secret, s.expires_at_us if s.expires_at_us is not None else now + overlap)
            for s in endpoint.secrets
            if s.expires_at_us is None or s.expires_at_us > now
        ]
        endpoint.secrets = [Secret(secret or generate_secret()), *kept]
        endpoint.updated_at_us = now
        await self.state.save_endpoint(endpoint)
        self.engine.put_endpoint(endpoint)
        return endpoint

    async def disable(self, endpoint: Endpoint, reason: str) -> None:
        """Stop delivering to an endpoint, cancel what is pending, and say so as an event."""
        if not endpoint.active:
            return
        log.warning("disabling webhook %s (%s): %s", endpoint.id, endpoint.url, reason)
        endpoint.active = False
        endpoint.disabled_reason = reason
        endpoint.updated_at_us = now_us()
        self.engine.put_endpoint(endpoint)
        await self.state.save_endpoint(endpoint)
        # Results already in hand (the 410 that caused this, say) are written before the
        # cancellation, so they keep their own outcome.
        await self.engine.flush()
        await self.state.cancel_pending(endpoint.tenant, endpoint.id, now_us())
        body = {
            "type": DISABLED_EVENT_TYPE,
            "source": "tidings",
            "subject": endpoint.id,
            "data": {"webhook_id": endpoint.id, "url": endpoint.url, "reason": reason},
        }
        limits = Limits(
            max_event_bytes=self.settings.max_event_bytes, max_batch=self.settings.max_batch
        )
        candidates, _ = candidates_from_json(body, PublishContext(tenant=endpoint.tenant), limits)
        await self.publisher.publish(candidates, transport="internal")

    # -- deliveries -----------------------------------------------------------------------

    async def deliveries(
        self, tenant: str, endpoint_id: str, status: Status | None, limit: int, before: str | None
    ) -> list[tuple[Delivery, list[Attempt]]]:
        await self.get(tenant, endpoint_id)
        return await self.state.list_deliveries(tenant, endpoint_id, status, limit, before)

    async def delivery(self, tenant: str, delivery_id: str) -> tuple[Delivery, list[Attempt]]:
        found = await self.state.get_delivery(tenant, delivery_id)
        if found is None:
            raise TidingsError(404, "delivery_not_found", f"no delivery with id {delivery_id!r}")
        return found

    async def retry(self, tenant: str, delivery_id: str) -> tuple[Delivery, list[Attempt]]:
        delivery, _ = await self.delivery(tenant, delivery_id)
        if delivery.status == "pending":
            raise TidingsError(
                409, "delivery_pending", "the delivery is still pending; it will be attempted"
            )
        endpoint = await self.get(tenant, delivery.webhook_id)
        if not endpoint.active:
            raise TidingsError(409, "webhook_disabled", "the endpoint is disabled; enable it first")
        events = await self.store.read_log(delivery.event_seq - 1, delivery.event_seq, 1)
        if not events:
            raise TidingsError(
                410, "event_purged", "the event was deleted by retention; it cannot be sent again"
            )
        await self.state.retry_delivery(tenant, delivery_id, now_us())
        return await self.delivery(tenant, delivery_id)

    async def replay(
        self,
        tenant: str,
        endpoint_id: str,
        since_us: int | None,
        until_us: int | None,
        only_failed: bool,
    ) -> int:
        """Send the window's events again under the endpoint's current filter, in chunks."""
        endpoint = await self.get(tenant, endpoint_id)
        if not endpoint.active:
            raise TidingsError(409, "webhook_disabled", "the endpoint is disabled; enable it first")
        failed_seqs: set[int] | None = None
        if only_failed:
            failed_seqs = await self._failed_seqs(tenant, endpoint_id)
        query = Query(
            filter=endpoint.matcher,
            since_us=since_us,
            until_us=until_us,
            order="asc",
            limit=REPLAY_CHUNK,
        )
        total = 0
        after: int | None = None
        while True:
            page = await self.store.query(tenant, replace(query, after=after))
            if not page:
                return total
            after = page[-1].seq
            chosen = [e for e in page if failed_seqs is None or e.seq in failed_seqs]
            if chosen:
                total += await self._resend(endpoint, chosen)
            if len(page) < REPLAY_CHUNK:
                return total

    async def _failed_seqs(self, tenant: str, endpoint_id: str) -> set[int]:
        seqs: set[int] = set()
        before: str | None = None
        while True:
            page = await self.state.list_deliveries(tenant, endpoint_id, "failed", 1000, before)
            seqs.update(d.event_seq for d, _ in page)
            if len(page) < 1000:
                return seqs
            before = page[-1][0].id

    async def _resend(self, endpoint: Endpoint, events: list[Event]) -> int:
        now = now_us()
        jobs = [Job(self.engine.new_delivery(endpoint, e, now), e) for e in events]
        await self.state.dispatch([j.delivery for j in jobs], {}, now + LEASE_US)
        self.engine.enqueue(jobs)
        return len(jobs)

    async def stats(self, tenant: str) -> dict[str, Any]:
        now = now_us()
        s = await self.state.stats(tenant, now)
        per_endpoint = await self.state.endpoint_attempts(tenant, now - DAY_US)
        attempts = s.attempts_last_hour
        tried = sum(attempts.values())
        oldest_age = (now - s.oldest_pending_us) / 1_000_000 if s.oldest_pending_us else 0.0
        metrics.OLDEST_PENDING.set(oldest_age)
        return {
            "by_status": {
                k: s.by_status.get(k, 0) for k in ("pending", "succeeded", "failed", "cancelled")
            },
            "queue_depth": self.engine.queued(),
            "oldest_pending_seconds": round(oldest_age, 3),
            "success_rate_last_hour": round(attempts.get("succeeded", 0) / tried, 4)
            if tried
            else None,
            "endpoints": sum(1 for e in self.engine.endpoints.values() if e.tenant == tenant),
            # Per endpoint id, attempts of the last 24 hours (endpoints with none are left out).
            "by_endpoint_24h": {
                endpoint_id: {
                    "succeeded": a.succeeded,
                    "failed": a.failed,
                    "success_rate": round(a.succeeded / (a.succeeded + a.failed), 4),
                }
                for endpoint_id, a in per_endpoint.items()
            },
            # Events not yet turned into deliveries (they wait in the log, behind the cursors);
            # positions are shared by tenants, so this counts theirs too: an upper bound.
            "cursor_lag": self.engine.cursor_lag(tenant),
            "yielding_to_publishes": self.engine.governor.yielding(
                asyncio.get_running_loop().time()
            ),
        }
