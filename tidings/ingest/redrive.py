"""Redrive: run a dead letter's raw input through its source's current mapping again.

Stored: the dead letter is deleted and the event ids returned. Still failing: 422
``redrive_failed`` and the dead letter stays. A keyless event gets a deduplication key made of
the dead letter's id, so a redrive that is repeated (a crash between the store and the delete,
two operators at once) stores its events once.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from tidings.envelope import DEFAULT_TENANT, AppendResult, PublishContext
from tidings.envelope.ids import trace_id_from_traceparent
from tidings.errors import TidingsError
from tidings.ingest import metrics
from tidings.ingest.config import IngestConfig
from tidings.ingest.inputs import read_mqtt, read_notification, read_webhook
from tidings.ingest.intake import Intake, RawInput
from tidings.ingest.mapping import Draft, Unmappable
from tidings.ingest.mqtt_config import MQTT_SOURCE
from tidings.store.dead_letters import DeadLetter, DeadLetterQuery, DeadLetterStore

PAGE = 100  # dead letters read at a time by a bulk redrive
MAX_FAILURES_LISTED = 100


def plan(config: IngestConfig, letter: DeadLetter) -> tuple[str, Callable[[], list[Draft]]]:
    """The transport and the current mapping of the dead letter's source."""
    raw, topic, headers = letter.raw, letter.topic or "", letter.headers
    source = config.sources.get(letter.source)
    if source is not None:

        def webhook() -> list[Draft]:
            mapped = read_webhook(source, raw, headers)
            if not isinstance(mapped, list):
                raise Unmappable("unmappable", "a SmartThings lifecycle request holds no events")
            return mapped

        return "webhook", webhook
    if letter.source == MQTT_SOURCE and config.mqtt is not None:
        from tidings.ingest.mqtt import subscription_for  # the mqtt extra, configured

        sub = subscription_for(config.mqtt.subscribe, topic)
        if sub is None:
            raise Unmappable("unmatched_topic", f"no configured subscription matches {topic!r}")
        return "mqtt", lambda: read_mqtt(sub, topic, raw)
    for entry in config.pg_notify:
        if (entry.source, entry.channel) == (letter.source, topic):
            return "pg_notify", functools.partial(read_notification, entry, raw)
    raise Unmappable("unmappable", f"the source {letter.source!r} is no longer configured")


def redrive_failed(letter: DeadLetter, problem: Unmappable) -> TidingsError:
    return TidingsError(
        422,
        "redrive_failed",
        f"dead letter {letter.id} still cannot be stored: {problem.reason}",
        details=problem.details,
    )


class Redriver:
    def __init__(
        self,
        intake: Intake,
        dead_letters: DeadLetterStore,
        config: Callable[[], IngestConfig],
    ) -> None:
        self.intake = intake  # the same store-or-refuse path as live input
        self.dead_letters = dead_letters
        self.config = config  # the current configuration (sources may have changed)

    async def redrive(self, letter: DeadLetter) -> list[AppendResult]:
        """Store the dead letter's events and delete it; 422 ``redrive_failed`` if it still
        cannot be stored (it is kept)."""
        ctx = PublishContext(
            trace_id=trace_id_from_traceparent(letter.headers.get("traceparent")),
            tenant=letter.tenant,
        )
        try:
            transport, build = plan(self.config(), letter)
            item = RawInput(
                letter.source, transport, letter.raw, letter.topic, letter.headers, letter.tenant
            )
            results = await self.intake.publish(item, build, ctx, dedupe_prefix=f"dl:{letter.id}")
        except Unmappable as problem:
            metrics.redriven(letter.source, False)
            raise redrive_failed(letter, problem) from None
        await self.dead_letters.delete(letter.id, letter.tenant)
        metrics.redriven(letter.source, True)
        return results

    async def redrive_many(
        self, query: DeadLetterQuery, tenant: str = DEFAULT_TENANT
    ) -> dict[str, Any]:
        """Redrive every dead letter matching ``query`` that existed when the call began,
        oldest first; counts, and the first failures with their errors."""
        last = await self.dead_letters.last_seq(tenant)
        after = query.after or 0
        redriven = failed = events = 0
        failures: list[dict[str, str]] = []
        while True:
            page = await self.dead_letters.find(
                replace(query, after=after, before=last + 1, order="asc", limit=PAGE), tenant
            )
            for letter in page:
                try:
                    results = await self.redrive(letter)
                except TidingsError as error:
                    if error.code != "redrive_failed":
                        raise
                    failed += 1
                    if len(failures) < MAX_FAILURES_LISTED:
                        failures.append({"id": letter.id, "error": error.message})
                    continue
                redriven += 1
                events += len(results)
            if len(page) < PAGE:
                break
            after = page[-1].seq
        return {"redriven": redriven, "failed": failed, "events": events, "failures": failures}
