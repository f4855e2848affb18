"""The one publish path. Every source (HTTP, CloudEvents, webhooks, MQTT, PG NOTIFY) turns its
input into candidates and calls ``Publisher.publish``; nothing reaches a consumer before the
store has committed it."""

from __future__ import annotations

import asyncio
import time
from collections import Counter as Tally
from collections.abc import Sequence

from tidings import metrics
from tidings.envelope import AppendResult, Candidate
from tidings.errors import TidingsError
from tidings.store import Store


class Publisher:
    def __init__(self, store: Store) -> None:
        self.store = store  # the durable log; its commit listeners fan out
        self.inflight = 0  # publishes waiting for their commit
        self._idle = asyncio.Event()  # set while nothing is in flight
        self._idle.set()

    async def wait_idle(self, timeout: float) -> bool:
        """Wait until no publish is waiting for its commit (at shutdown); False on timeout."""
        try:
            async with asyncio.timeout(timeout):
                await self._idle.wait()
        except TimeoutError:
            return False
        return True

    async def publish(
        self,
        candidates: Sequence[Candidate],
        *,
        transport: str = "http",
        started: float | None = None,
    ) -> list[AppendResult]:
        """Store the candidates (all or nothing) and answer once they are durable."""
        begin = started if started is not None else time.perf_counter()
        self.inflight += 1
        self._idle.clear()
        try:
            results = await self.store.append(candidates)
        except TidingsError as error:
            metrics.PUBLISH_REJECTED.labels(error.code).inc()
            raise
        finally:
            self.inflight -= 1
            if not self.inflight:
                self._idle.set()
        if len(candidates) == 1:  # the common case, without the tallies
            counter = metrics.EVENTS_DUPLICATE if results[0].duplicate else metrics.EVENTS_INGESTED
            metrics.labelled(counter, metrics.source_label(candidates[0].source), transport).inc()
        else:
            stored: Tally[str] = Tally()
            repeated: Tally[str] = Tally()
            for candidate, result in zip(candidates, results, strict=True):
                (repeated if result.duplicate else stored)[candidate.source] += 1
            for counter, tally in (
                (metrics.EVENTS_INGESTED, stored),
                (metrics.EVENTS_DUPLICATE, repeated),
            ):
                for source, count in tally.items():
                    metrics.labelled(counter, metrics.source_label(source), transport).inc(count)
        metrics.labelled(metrics.PUBLISH_LATENCY, transport).observe(time.perf_counter() - begin)
        return results
