"""Retention: events older than ``TIDINGS_RETENTION_DAYS`` are deleted, in small chunks."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from tidings import metrics
from tidings.envelope.timefmt import now_us
from tidings.store import Store

log = logging.getLogger("tidings.retention")
DAY_US = 86_400 * 1_000_000


def cutoff_us(days: float, now: int | None = None) -> int:
    """Events received before this instant are past retention."""
    return (now if now is not None else now_us()) - int(days * DAY_US)


FloorProvider = Callable[[], Awaitable[int | None]]


async def purge_once(store: Store, days: float, floor: FloorProvider | None = None) -> int:
    """One purge; ``floor`` gives the lowest position a delivery still needs (kept)."""
    keep_from = await floor() if floor is not None else None
    deleted = await store.purge(cutoff_us(days), keep_from=keep_from)
    if deleted:
        metrics.RETENTION_PURGED.inc(deleted)
        log.info("retention deleted %d events older than %g days", deleted, days)
    return deleted


async def retention_loop(
    store: Store,
    days: float,
    interval_s: float,
    floor: FloorProvider | None = None,
    also: Callable[[int], Awaitable[int]] | None = None,
) -> None:
    """Purge at start-up and then every ``interval_s`` seconds. ``days == 0`` keeps all.

    ``also(cutoff_us)`` purges what other parts keep for as long (finished deliveries).
    """
    if days <= 0:
        return
    while True:
        await purge_once(store, days, floor)
        if also is not None:
            await also(cutoff_us(days))
        await asyncio.sleep(interval_s)
