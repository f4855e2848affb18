"""Where every adapter's input ends: stored as events through the one publish path, or parked
as a dead letter with its raw bytes and the reason. Either way it is committed before the caller
acknowledges the input (an HTTP answer, an MQTT PUBACK).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from tidings.envelope import DEFAULT_TENANT, AppendResult, Limits, PublishContext
from tidings.errors import TidingsError
from tidings.ingest import metrics
from tidings.ingest.mapping import Draft, Unmappable, to_candidates, unmappable_from
from tidings.publish import Publisher
from tidings.store.dead_letters import DeadLetter, DeadLetterStore

log = logging.getLogger("tidings.ingest")

# Refusals that retrying cannot fix: the input is parked. Anything else (503: the store cannot
# commit now) is raised, so the sender retries or the message stays unacknowledged.
PARKED_STATUSES = (409, 413, 422)


@dataclass(frozen=True, slots=True)
class RawInput:
    """One piece of input as it arrived, enough to map it again later."""

    source: str  # the configured source name, "mqtt", or a PG NOTIFY source
    transport: str  # webhook | mqtt | pg_notify: the metrics label of the publish
    raw: bytes
    topic: str | None = None  # the MQTT topic or the PG NOTIFY channel
    headers: dict[str, str] = field(default_factory=dict)  # what a webhook mapping reads
    tenant: str = DEFAULT_TENANT  # whose log its events and dead letter go to


@dataclass(frozen=True, slots=True)
class Stored:
    results: list[AppendResult]


@dataclass(frozen=True, slots=True)
class Parked:
    letter: DeadLetter
    problem: Unmappable


Outcome = Stored | Parked


class Intake:
    def __init__(self, publisher: Publisher, dead_letters: DeadLetterStore, limits: Limits) -> None:
        self.publisher = publisher  # the one publish path
        self.dead_letters = dead_letters  # where unmappable input is parked
        self.limits = limits  # the same event and batch limits as POST /v1/events

    async def take(
        self,
        item: RawInput,
        build: Callable[[], list[Draft]],
        ctx: PublishContext | None = None,
        *,
        dedupe_prefix: str | None = None,
    ) -> Outcome:
        """Map ``item`` with ``build`` and store the events, or park it; raises only when the
        store cannot commit (TidingsError 503), when nothing was stored or parked."""
        try:
            return Stored(await self.publish(item, build, ctx, dedupe_prefix=dedupe_prefix))
        except Unmappable as problem:
            return Parked(await self.park(item, problem), problem)

    async def publish(
        self,
        item: RawInput,
        build: Callable[[], list[Draft]],
        ctx: PublishContext | None = None,
        *,
        dedupe_prefix: str | None = None,
    ) -> list[AppendResult]:
        """Map and store; ``Unmappable`` when the input (not the store) is the problem."""
        candidates = to_candidates(
            build(),
            ctx or PublishContext(tenant=item.tenant),
            self.limits,
            dedupe_prefix=dedupe_prefix,
        )
        if not candidates:
            return []
        try:
            return await self.publisher.publish(candidates, transport=item.transport)
        except TidingsError as error:
            if error.status in PARKED_STATUSES:
                raise unmappable_from(error) from None
            raise

    async def park(self, item: RawInput, problem: Unmappable) -> DeadLetter:
        letter = await self.dead_letters.add(
            source=item.source,
            reason_code=problem.code,
            reason=problem.reason,
            raw=item.raw,
            topic=item.topic,
            headers=item.headers,
            tenant=item.tenant,
        )
        metrics.dead_letter(item.source, problem.code)
        log.warning(
            "dead letter %s from %s%s: %s",
            letter.id,
            item.source,
            f" ({item.topic})" if item.topic else "",
            problem.reason,
        )
        return letter
