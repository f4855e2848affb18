"""The group-committing writer of the PostgreSQL store.

Concurrent publishes queue their candidates; one task takes everything waiting (up to a cap)
and writes it in one transaction, then answers every caller. The transaction first takes the
log's transaction-scoped advisory lock, and only then draws positions: the next group, in
this process or another node, draws after this one is visible, so positions become visible in
commit order and a reader paging ``seq > cursor`` never skips one (a plain sequence would let
seq 102 commit before 101). Usually the whole group is one statement committed on its own
(``append_group``: one round trip). Deduplication keys are looked up first and settled in
Python (plan.py), so an idempotency conflict drops its caller and nothing else; a row the
database refuses, or a key another node stored meanwhile, sends the group down a slow path:
one transaction under the lock, keys looked up again, a savepoint per caller.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg  # type: ignore[import-untyped]

from tidings.envelope import AppendResult, Candidate, Event
from tidings.envelope.timefmt import now_us
from tidings.errors import TidingsError
from tidings.store.postgres.connection import UNAVAILABLE, unavailable
from tidings.store.postgres.filter_sql import document_text
from tidings.store.postgres.plan import CallerPlan, GroupPlan, StoredKey

log = logging.getLogger("tidings.store")

MAX_GROUP_EVENTS = 5000  # bounds one transaction's size and every caller's wait

# What a refused row looks like: the server's refusal, or a value the driver cannot encode
REFUSED: tuple[type[BaseException], ...] = (
    asyncpg.PostgresError,
    asyncpg.exceptions.DataError,
    ValueError,
)

CommitCallback = Callable[[int, list[Event], float], None]
"""Told after each group: (candidates in it, committed events in seq order, seconds)."""


@dataclass(slots=True)
class _Append:
    candidates: Sequence[Candidate]
    future: asyncio.Future[list[AppendResult]]


class Writer:
    """Owns the write task; connections come from the store's pool, one per group."""

    def __init__(self, pool: Any, queries: dict[str, str], on_commit: CommitCallback) -> None:
        self._pool = pool  # asyncpg pool shared with the readers
        self._q = queries  # named SQL
        self._on_commit = on_commit  # told of each group, in commit order
        self._queue: deque[_Append] = deque()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="tidings:pg-writer")

    async def append(self, candidates: Sequence[Candidate]) -> list[AppendResult]:
        if self._closed:
            raise TidingsError(503, "store_closed", "the store is shutting down")
        future: asyncio.Future[list[AppendResult]] = asyncio.get_running_loop().create_future()
        self._queue.append(_Append(candidates, future))
        self._wake.set()
        return await future

    async def stop(self) -> None:
        """Commit what is queued, then end the task."""
        if self._closed:
            return
        self._closed = True
        self._wake.set()
        if self._task is not None:
            await self._task

    # -- the task -----------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                group: list[_Append] = []
                count = 0
                while self._queue and count < MAX_GROUP_EVENTS:
                    item = self._queue.popleft()
                    group.append(item)
                    count += len(item.candidates)
                await self._commit(group, count)
            if self._closed:
                return

    async def _commit(self, group: list[_Append], count: int) -> None:
        started = time.perf_counter()
        try:
            plans, received_us = await self._write_group(group)
        except REFUSED as error:
            if isinstance(error, UNAVAILABLE):
                self._fail(group, unavailable(error))
                return
            # A row the database refused, or a key another node stored since it was looked
            # up: nothing of the group was stored; again, under the lock, caller by caller.
            log.info("a write group was refused; committing caller by caller: %s", error)
            try:
                plans, received_us = await self._write_each(group)
            except Exception as again:
                self._fail(group, _failure(again))
                return
        except Exception as error:
            self._fail(group, _failure(error))
            return
        committed: list[Event] = []
        for request, plan in zip(group, plans, strict=True):
            if plan.error is None:
                committed.extend(plan.events(received_us))
            if request.future.done():  # the caller went away; its events are stored anyway
                continue
            if plan.error is not None:
                request.future.set_exception(plan.error)
            else:
                request.future.set_result(plan.results())
        self._on_commit(count, committed, time.perf_counter() - started)

    def _fail(self, group: list[_Append], error: TidingsError) -> None:
        log.error("a write group failed: %s", error.message)
        for request in group:
            if not request.future.done():
                request.future.set_exception(error)

    async def _write_group(self, group: list[_Append]) -> tuple[list[CallerPlan], int]:
        """The whole group in one statement that commits on its own: one round trip.

        Keys are looked up first, outside the lock; one stored meanwhile by another node
        makes the insert fail on the unique index, and the group goes the slow way.
        """
        async with self._pool.acquire() as conn:
            plan = GroupPlan(await self._stored_keys(conn, group))
            for request in group:
                plan.add(request.candidates)
            rows = plan.rows
            if not rows:
                return plan.callers, 0
            last, received_us, _ = await conn.fetchrow(
                self._q["append_group"], *_columns(rows), now_us(), len(rows)
            )
        plan.assign(last - len(rows) + 1)
        return plan.callers, int(received_us)

    async def _write_each(self, group: list[_Append]) -> tuple[list[CallerPlan], int]:
        """One transaction under the log lock, with a savepoint per caller: a caller whose
        rows are refused fails alone."""
        async with self._pool.acquire() as conn:
            await conn.execute(self._q["lock_log"])  # BEGIN; the lock, until COMMIT
            try:
                plan = GroupPlan(await self._stored_keys(conn, group))
                received_us = max(now_us(), await conn.fetchval(self._q["log_state"]))
                for request in group:
                    caller = plan.add(request.candidates)
                    await self._write_caller(conn, plan, caller, received_us)
                await conn.execute("COMMIT")
            except BaseException:
                await _rollback(conn)
                raise
        return plan.callers, received_us

    async def _stored_keys(
        self, conn: Any, group: list[_Append]
    ) -> dict[tuple[str, str], StoredKey]:
        keys = {
            (c.tenant, c.dedupe_key)
            for request in group
            for c in request.candidates
            if c.dedupe_key is not None
        }
        if not keys:
            return {}
        tenants, names = zip(*keys, strict=True)
        rows = await conn.fetch(self._q["find_by_dedupe_keys"], list(tenants), list(names))
        return {(r[0], r[1]): StoredKey(*r[2:]) for r in rows}

    async def _write_caller(
        self, conn: Any, group: GroupPlan, plan: CallerPlan, received_us: int
    ) -> None:
        if plan.error is not None or not plan.rows:
            return
        await conn.execute("SAVEPOINT caller")
        try:
            last = await conn.fetchval(self._q["draw"], len(plan.rows))
            plan.assign(last - len(plan.rows) + 1)
            await conn.execute(
                self._q["insert_events"], plan.seqs, *_columns(plan.rows), received_us
            )
        except REFUSED as error:
            if isinstance(error, UNAVAILABLE):
                raise
            await conn.execute("ROLLBACK TO SAVEPOINT caller")
            group.discard(plan, _refused(error))
        await conn.execute("RELEASE SAVEPOINT caller")


def _columns(rows: list[Candidate]) -> list[list[Any]]:
    """The insert's parameter arrays, one per column (unnest turns them back into rows)."""
    return [
        [c.tenant for c in rows],
        [c.id for c in rows],
        [c.type for c in rows],
        [c.source for c in rows],
        [c.subject for c in rows],
        [c.time_us for c in rows],
        [c.trace_id for c in rows],
        [c.idempotency_key for c in rows],
        [c.dedupe_key for c in rows],
        [c.data_json for c in rows],
        [c.metadata_json for c in rows],
        [document_text(c.data_json) for c in rows],
        [document_text(c.metadata_json) for c in rows],
    ]


def _refused(error: BaseException) -> TidingsError:
    if isinstance(error, asyncpg.exceptions.CharacterNotInRepertoireError):
        return TidingsError(
            422,
            "validation_error",
            "PostgreSQL cannot store this text (the NUL character, or invalid UTF-8)",
            details=[{"loc": ["body"], "msg": str(error)}],
        )
    log.warning("the store refused one caller's events: %s", error)
    return TidingsError(500, "store_error", f"the store refused the events: {error}")


def _failure(error: BaseException) -> TidingsError:
    if isinstance(error, TidingsError):
        return error
    if not isinstance(error, UNAVAILABLE):
        log.error("commit failed", exc_info=error)
    return TidingsError(503, "store_unavailable", f"the store could not commit: {error}")


async def _rollback(conn: Any) -> None:
    """End a failed transaction; a lost connection has ended it already."""
    if conn.is_closed():
        return
    try:
        await conn.execute("ROLLBACK")
    except Exception:
        log.debug("rollback failed", exc_info=True)
