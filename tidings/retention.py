"""Retention: events older than ``TIDINGS_RETENTION_DAYS`` are deleted, in small chunks.

The scheduled purge and ``tidings purge`` run the same ``purge_backend``: events any sink
still needs (``Backend.retention_floor``) are kept whatever their age.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from tidings import metrics
from tidings.envelope.timefmt import now_us
from tidings.store import Backend, Store

log = logging.getLogger("tidings.retention")
DAY_US = 86_400 * 1_000_000


def cutoff_us(days: float, now: int | None = None) -> int:
    """Events received before this instant are past retention."""
    return (now if now is not None else now_us()) - int(days * DAY_US)


FloorProvider = Callable[[], Awaitable[int | None]]


async def purge_once(store: Store, days: float, floor: FloorProvider | None = None) -> int:
    """One purge of the log; ``floor`` gives the lowest position a sink still needs (kept)."""
    keep_from = await floor() if floor is not None else None
    deleted = await store.purge(cutoff_us(days), keep_from=keep_from)
    if deleted:
        metrics.RETENTION_PURGED.inc(deleted)
        log.info("retention deleted %d events older than %g days", deleted, days)
    return deleted


async def purge_backend(backend: Backend, days: float) -> int:
    """Delete the events past retention that no sink needs; the count."""
    return await purge_once(backend.events, days, backend.retention_floor)


async def retention_loop(backend: Backend, days: float, interval_s: float) -> None:
    """Purge at start-up and then every ``interval_s`` seconds. ``days == 0`` keeps all.

    Finished deliveries as old as the events go too (their attempt logs with them).
    """
    if days <= 0:
        return
    while True:
        await purge_backend(backend, days)
        await backend.deliveries.purge_finished(cutoff_us(days))
        await asyncio.sleep(interval_s)
