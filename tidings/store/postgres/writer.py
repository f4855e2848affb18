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

Up to two groups are in flight at once, each on a connection of its own: the second waits
for the log lock inside PostgreSQL while the first commits, so its round trip and the Python
work around it overlap the first's commit instead of following it. It goes out only once it is
as large as the group before it (``_may_send``), so groups do not shrink into more commits.
Answers, commit listeners and the head are handed on in position order all the same
(commit_order.py). A group holding a deduplication key of a group in flight waits for that
one to be answered, so its lookup sees it. ``IN_FLIGHT = 1`` sends one group at a time.
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
import orjson

from tidings.envelope import AppendResult, Candidate, Event
from tidings.envelope.timefmt import now_us
from tidings.errors import TidingsError
from tidings.store.postgres.commit_order import CommitOrder
from tidings.store.postgres.connection import UNAVAILABLE, unavailable
from tidings.store.postgres.filter_sql import document_text
from tidings.store.postgres.plan import CallerPlan, GroupPlan, StoredKey

log = logging.getLogger("tidings.store")

MAX_GROUP_EVENTS = 5000  # bounds one transaction's size and every caller's wait
IN_FLIGHT = 2  # groups sent and not answered yet; each holds a connection of the write pool

# What a refused row looks like: the server's refusal, or a value the driver cannot encode
REFUSED: tuple[type[BaseException], ...] = (
    asyncpg.PostgresError,
    asyncpg.exceptions.DataError,
    ValueError,
    orjson.JSONEncodeError,  # text JSON cannot carry (a lone surrogate)
)

CommitCallback = Callable[[int, list[Event], float], None]
"""Told after each group: (candidates in it, committed events in seq order, seconds)."""


@dataclass(slots=True)
class _Append:
    candidates: Sequence[Candidate]
    future: asyncio.Future[list[AppendResult]]


@dataclass(slots=True)
class _Landed:
    """A group's outcome, waiting for its turn to be handed on."""

    group: list[_Append]
    count: int  # candidates in the group
    elapsed: float  # seconds from sending to the answer
    plans: list[CallerPlan] | None = None  # None: the group failed as a whole
    received_us: int = 0
    error: TidingsError | None = None


class Writer:
    """Owns the write task; connections come from the store's write pool, one per group."""

    def __init__(
        self,
        pool: Any,
        queries: dict[str, str],
        on_commit: CommitCallback,
        head: int | None = None,
    ) -> None:
        self._pool = pool  # asyncpg pool of IN_FLIGHT connections (or more)
        self._q = queries  # named SQL
        self._on_commit = on_commit  # told of each group, in position order
        self._queue: deque[_Append] = deque()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._queued = 0  # candidates in the queue
        self._order: CommitOrder[_Landed] = CommitOrder(head)  # hands groups on in order
        self._flights: dict[asyncio.Task[None], frozenset[tuple[str, str]]] = {}  # their keys
        self._last_sent = 0  # candidates in the group sent last

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="tidings:pg-writer")

    async def append(self, candidates: Sequence[Candidate]) -> list[AppendResult]:
        if self._closed:
            raise TidingsError(503, "store_closed", "the store is shutting down")
        future: asyncio.Future[list[AppendResult]] = asyncio.get_running_loop().create_future()
        self._queue.append(_Append(candidates, future))
        self._queued += len(candidates)
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
            while self._queue and self._may_send():
                group: list[_Append] = []
                count = 0
                while self._queue and count < MAX_GROUP_EVENTS:
                    item = self._queue.popleft()
                    group.append(item)
                    count += len(item.candidates)
                self._queued -= count
                keys = _keys(group)
                clashing = [t for t, theirs in self._flights.items() if keys & theirs]
                if clashing:  # its lookup must see what those store
                    await asyncio.wait(clashing)
                self._last_sent = count
                flight = asyncio.get_running_loop().create_task(
                    self._fly(self._order.launch(), group, count, keys)
                )
                self._flights[flight] = keys
                flight.add_done_callback(self._landed)
            if self._closed and not self._queue and not self._flights:
                return

    def _may_send(self) -> bool:
        """Whether to send the queue now. With no group in flight, always. With one, only
        when the queue holds at least as many candidates as the group sent last: the groups
        stay as large as they were, so the second one in flight saves a wait and costs no
        more commits; otherwise the queue waits for the answer, as it would with no second
        group at all (on a machine short of CPU, more and smaller commits would cost more
        than the wait they save)."""
        if not self._flights:
            return True
        return len(self._flights) < IN_FLIGHT and self._queued >= self._last_sent

    def _landed(self, flight: asyncio.Task[None]) -> None:
        self._flights.pop(flight, None)
        self._wake.set()  # the queue may go now

    async def _fly(
        self, token: int, group: list[_Append], count: int, keys: frozenset[tuple[str, str]]
    ) -> None:
        """Write one group, then hand on every group that is now in position order."""
        landed = _Landed(group, count, 0.0)
        started = time.perf_counter()
        try:
            landed.plans, landed.received_us = await self._commit(group, keys)
        except TidingsError as error:
            landed.error = error
        except BaseException as error:  # the flight must land, or the groups after it wait
            landed.error = _failure(error)
            if not isinstance(error, Exception):
                raise
        finally:
            landed.elapsed = time.perf_counter() - started
            for ready in self._order.finish(token, _positions(landed.plans), landed):
                try:
                    self._hand_on(ready)
                except Exception:  # the groups after it must still be answered
                    log.exception("answering a write group failed")

    async def _commit(
        self, group: list[_Append], keys: frozenset[tuple[str, str]]
    ) -> tuple[list[CallerPlan], int]:
        try:
            return await self._write_group(group, keys)
        except REFUSED as error:
            if isinstance(error, UNAVAILABLE):
                raise unavailable(error) from None
            # A row the database refused, or a key another node stored since it was looked
            # up: nothing of the group was stored; again, under the lock, caller by caller.
            log.info("a write group was refused; committing caller by caller: %s", error)
            try:
                return await self._write_each(group, keys)
            except Exception as again:
                raise _failure(again) from None
        except Exception as error:
            raise _failure(error) from None

    def _hand_on(self, landed: _Landed) -> None:
        """Answer a group's callers and tell the listeners, in position order."""
        if landed.plans is None:
            error = landed.error or TidingsError(503, "store_unavailable", "the commit failed")
            log.error("a write group failed: %s", error.message)
            for request in landed.group:
                if not request.future.done():
                    request.future.set_exception(error)
            return
        committed: list[Event] = []
        for request, plan in zip(landed.group, landed.plans, strict=True):
            if plan.error is None:
                committed.extend(plan.events(landed.received_us))
            if request.future.done():  # the caller went away; its events are stored anyway
                continue
            if plan.error is not None:
                request.future.set_exception(plan.error)
            else:
                request.future.set_result(plan.results())
        self._on_commit(landed.count, committed, landed.elapsed)

    async def _write_group(
        self, group: list[_Append], keys: frozenset[tuple[str, str]]
    ) -> tuple[list[CallerPlan], int]:
        """The whole group in one statement that commits on its own: one round trip.

        Keys are looked up first, outside the lock; one stored meanwhile by another node
        makes the insert fail on the unique index, and the group goes the slow way.
        """
        async with self._pool.acquire() as conn:
            plan = GroupPlan(await self._stored_keys(conn, keys))
            for request in group:
                plan.add(request.candidates)
            rows = plan.rows
            if not rows:
                return plan.callers, 0
            last, received_us, _ = await conn.fetchrow(
                self._q["append_group"], _rows_json(rows), now_us(), len(rows)
            )
        plan.assign(last - len(rows) + 1)
        return plan.callers, int(received_us)

    async def _write_each(
        self, group: list[_Append], keys: frozenset[tuple[str, str]]
    ) -> tuple[list[CallerPlan], int]:
        """One transaction under the log lock, with a savepoint per caller: a caller whose
        rows are refused fails alone."""
        async with self._pool.acquire() as conn:
            await conn.execute(self._q["lock_log"])  # BEGIN; the lock, until COMMIT
            try:
                plan = GroupPlan(await self._stored_keys(conn, keys))
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
        self, conn: Any, keys: frozenset[tuple[str, str]]
    ) -> dict[tuple[str, str], StoredKey]:
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


def _keys(group: list[_Append]) -> frozenset[tuple[str, str]]:
    """The group's deduplication keys."""
    return frozenset(
        (c.tenant, c.dedupe_key)
        for request in group
        for c in request.candidates
        if c.dedupe_key is not None
    )


def _positions(plans: list[CallerPlan] | None) -> tuple[int, int] | None:
    """The first and last position a group stored (None: it stored nothing). Positions rise
    in plan order, so they are the first caller's first and the last caller's last."""
    stored = [plan.seqs for plan in plans or () if plan.error is None and plan.seqs]
    return (stored[0][0], stored[-1][-1]) if stored else None


def _rows_json(rows: list[Candidate]) -> str:
    """The rows of ``append_group``: one JSON array, ``n`` counting from 1. Data and metadata
    go in as the JSON they are (``orjson.Fragment``: copied, not escaped as a string)."""
    out: list[dict[str, Any]] = []
    for n, c in enumerate(rows, 1):
        row: dict[str, Any] = {
            "n": n,
            "tenant": c.tenant,
            "id": c.id,
            "type": c.type,
            "source": c.source,
            "subject": c.subject,
            "time_us": c.time_us,
            "trace_id": c.trace_id,
            "idempotency_key": c.idempotency_key,
            "dedupe_key": c.dedupe_key,
        }
        if _as_json(c.data_json):
            row["data"] = orjson.Fragment(c.data_json)
        else:
            row["data_text"], row["data_doc"] = c.data_json, document_text(c.data_json)
        if _as_json(c.metadata_json):
            row["metadata"] = orjson.Fragment(c.metadata_json)
        else:
            row["metadata_text"] = c.metadata_json
            row["metadata_doc"] = document_text(c.metadata_json)
        out.append(row)
    try:
        return orjson.dumps(out).decode()
    except TypeError as error:  # a Fragment's text is not UTF-8 (a lone surrogate)
        raise ValueError(f"the events cannot be encoded: {error}") from None


def _as_json(text: str) -> bool:
    """Whether ``append_group`` can take this JSON text into a json column. It cannot take
    ``\\u0000``, and a top-level ``null`` would come out as SQL NULL: those go as strings."""
    return "\\u0000" not in text and text.strip() != "null"


def _columns(rows: list[Candidate]) -> list[list[Any]]:
    """``insert_events``' parameter arrays, one per column (unnest turns them back into rows)."""
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
