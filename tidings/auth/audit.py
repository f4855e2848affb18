"""Audit events: admin actions and refused keys, stored in the tenant's own log.

An audit event is an ordinary event (``tidings.audit.<thing>.<action>``, source ``tidings``),
so it is queried, streamed and delivered by webhook like any other.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from prometheus_client import Counter

from tidings import metrics
from tidings.auth.principal import Principal
from tidings.envelope import Limits, PublishContext, candidates_from_json
from tidings.publish import Publisher
from tidings.store import Store

log = logging.getLogger("tidings.audit")
SOURCE = "tidings"

REFUSALS = Counter(
    "tidings_auth_refusals_total",
    "Requests refused by authentication or authorisation, by reason.",
    ["reason"],  # missing, malformed, unknown, forbidden, too_many_streams, rate_limited, origin
    registry=metrics.REGISTRY,
)


def audit_type(thing: str, action: str) -> str:
    return f"tidings.audit.{thing}.{action}"


class Auditor:
    """Writes audit events through the one publish path.

    Only while keys are required: the trail records which key did what; a loopback server
    without auth has one anonymous user, and its log holds only what was published.
    """

    def __init__(self, publisher: Publisher, limits: Limits, *, enabled: bool = True) -> None:
        self.publisher = publisher
        self.limits = limits
        self.enabled = enabled  # auth is on
        self._pending: set[asyncio.Task[None]] = set()  # refusals recorded in the background

    async def record(
        self,
        tenant: str,
        thing: str,
        action: str,
        actor: Principal | None,
        data: dict[str, Any],
        *,
        subject: str | None = None,
    ) -> None:
        """Store one audit event; a failure is logged, never raised into the action."""
        if not self.enabled:
            return
        body: dict[str, Any] = {
            "type": audit_type(thing, action),
            "source": SOURCE,
            "data": {**(actor.actor() if actor is not None else {}), **data},
        }
        if subject is not None:
            body["subject"] = subject
        try:
            candidates, _ = candidates_from_json(body, PublishContext(tenant=tenant), self.limits)
            await self.publisher.publish(candidates, transport="audit")
        except Exception:
            log.exception("could not record the audit event %s", body["type"])

    def record_later(self, tenant: str, thing: str, action: str, data: dict[str, Any]) -> None:
        """Record without making the caller wait (a refusal answers at once)."""
        if not self.enabled:
            return
        task = asyncio.get_running_loop().create_task(
            self.record(tenant, thing, action, None, data), name="tidings:audit"
        )
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def drain(self) -> None:
        """Wait for the audit events still being written (at shutdown)."""
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)


async def record_purge(store: Store, older_than_days: float, deleted: int) -> None:
    """``tidings purge`` (run beside the store, not through the API) leaves its audit event."""
    body = {
        "type": audit_type("events", "purged"),
        "source": SOURCE,
        "data": {"older_than_days": older_than_days, "deleted": deleted, "actor": "tidings purge"},
    }
    candidates, _ = candidates_from_json(body, PublishContext(), Limits())
    await store.append(candidates)
