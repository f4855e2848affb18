"""Copy everything one backend holds into another (``tidings migrate-store``).

Events keep their ids, positions and times, so streams resume, cursors and deliveries point at
the same events, and idempotency keys keep answering duplicates; tenants and API keys come
along (hashed, as stored), so the same keys go on working. The copy is resumable: each
part starts after what the target already has, and imports skip rows it holds. Copy from a
store no server is writing to (stop the servers first), or run the copy again with
``resume`` after they stop, to bring over what they wrote meanwhile.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from tidings.store.backend import Backend

K = TypeVar("K")  # where a batch leaves off: a position or an id
R = TypeVar("R")  # a row of one part

Progress = Callable[[str, int, int | None], None]
"""Told after each batch: (part, rows copied so far, rows expected or None)."""


class TargetNotEmpty(ValueError):
    """The target holds data and the copy was not told to continue into it."""


@dataclass
class CopyReport:
    """How many rows of each part were copied (or found already there)."""

    counts: dict[str, int] = field(default_factory=dict)


async def copy_backend(
    source: Backend,
    target: Backend,
    *,
    resume: bool = False,
    batch: int = 5000,
    progress: Progress | None = None,
) -> CopyReport:
    """Copy every part of ``source`` into ``target``; both must be open."""
    if batch < 1:
        raise ValueError("the batch size must be at least 1")
    if not resume and (not await target.transfer.is_empty() or await target.auth.list_keys()):
        raise TargetNotEmpty(
            "the target store is not empty; pass --resume to continue an interrupted copy"
        )
    tell = progress or (lambda part, done, total: None)
    report = CopyReport()

    # Events, by position: the target's head is where an interrupted copy stopped.
    total = source.events.head()
    report.counts["events"] = await _copy_batches(
        source.transfer.export_events,
        target.transfer.import_events,
        start=target.events.head(),
        last=lambda row: row.event.seq,
        batch=batch,
        told=lambda after, copied: tell("events", after, total),
    )
    await target.transfer.import_purges(await source.transfer.export_purges())

    # Endpoints with their secrets and cursors (a cursor only moves forward).
    endpoints = await source.deliveries.list_endpoints(None)
    for endpoint in endpoints:
        if await target.deliveries.get_endpoint(endpoint.tenant, endpoint.id) is None:
            await target.deliveries.create_endpoint(endpoint)
        else:
            await target.deliveries.save_endpoint(endpoint)
            await target.deliveries.dispatch([], {endpoint.id: endpoint.cursor})
    report.counts["endpoints"] = len(endpoints)
    tell("endpoints", len(endpoints), len(endpoints))

    # Tenants and API keys (stored hashed: the same keys go on working, revoked ones stay so).
    tenants = await source.auth.list_tenants()
    for tenant in tenants:
        await target.auth.create_tenant(tenant)
    keys = await source.auth.list_keys()
    for key in keys:
        if await target.auth.get_key(key.id) is None:
            await target.auth.create_key(key)
    report.counts["tenants"], report.counts["keys"] = len(tenants), len(keys)
    tell("keys", len(keys), len(keys))

    report.counts["deliveries"] = await _copy_batches(
        source.transfer.export_deliveries,
        target.transfer.import_deliveries,
        start="",
        last=lambda row: row.delivery.id,
        batch=batch,
        told=lambda after, copied: tell("deliveries", copied, None),
    )

    cursors = await source.sink_cursors.list_sink_cursors()
    for cursor in cursors:
        await target.sink_cursors.set_sink_cursor(
            cursor.sink, cursor.tenant, cursor.position, cursor.updated_at_us
        )
    report.counts["sink_cursors"] = len(cursors)
    tell("sink cursors", len(cursors), len(cursors))

    report.counts["dead_letters"] = await _copy_batches(
        source.transfer.export_dead_letters,
        target.transfer.import_dead_letters,
        start=0,
        last=lambda letter: letter.seq,
        batch=batch,
        told=lambda after, copied: tell("dead letters", copied, None),
    )
    return report


async def _copy_batches(
    export: Callable[[K, int], Awaitable[Sequence[R]]],
    import_: Callable[[Sequence[R]], Awaitable[None]],
    *,
    start: K,
    last: Callable[[R], K],
    batch: int,
    told: Callable[[K, int], None],
) -> int:
    """Export batches after ``start`` and import each, until an export comes back empty;
    ``last`` is where a row leaves off, ``told`` hears (that place, rows so far) after each
    batch. Answers how many rows were copied."""
    after, copied = start, 0
    while rows := await export(after, batch):
        await import_(rows)
        after, copied = last(rows[-1]), copied + len(rows)
        told(after, copied)
    return copied
