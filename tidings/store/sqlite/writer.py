"""The one SQLite writer: a thread that group-commits whatever callers queued meanwhile.

Concurrent publishes queue their candidates; the thread takes everything waiting (up to a
cap), writes it in one ``BEGIN IMMEDIATE`` transaction with a savepoint per caller, commits
once, then answers every caller. One fsync serves the whole group, which is what lifts
throughput from a few thousand to tens of thousands of events per second. A caller's
idempotency conflict rolls back only its own savepoint.

Other writes (delivery state, dead letters, cursors) join the same group in their own
savepoint: each would otherwise be a transaction and an fsync of its own, queued between
publish groups, and publishes would wait behind them.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from tidings.envelope import AppendResult, Candidate, Event
from tidings.envelope.timefmt import now_us
from tidings.errors import TidingsError
from tidings.store.idempotency import conflict_error, same_content
from tidings.store.sqlite.insert_rows import MAX_ROWS, chunk_sizes, insert_rows_sql, row_params

log = logging.getLogger("tidings.store")

MAX_GROUP_EVENTS = 5000  # bounds one transaction's size and every caller's wait
MAX_GROUP_CALLS = 64  # other writes per group, for the same reason
# Errors that say the file cannot be written at all (disk full, I/O error, read-only, damage),
# rather than that one caller's row was refused: they fail the whole group.
STORAGE_FAILURES = frozenset(
    {
        sqlite3.SQLITE_FULL,
        sqlite3.SQLITE_IOERR,
        sqlite3.SQLITE_READONLY,
        sqlite3.SQLITE_CANTOPEN,
        sqlite3.SQLITE_CORRUPT,
        sqlite3.SQLITE_NOTADB,
    }
)


class _Conflict(Exception):
    def __init__(self, index: int, key: str | None) -> None:
        super().__init__(index)
        self.index = index
        self.key = key


@dataclass(slots=True)
class _Append:
    candidates: Sequence[Candidate]
    future: asyncio.Future[list[AppendResult]]
    outcome: list[AppendResult] | BaseException | None = None
    events: list[Event] = field(default_factory=list)


@dataclass(slots=True)
class _Call:
    """Any other write: runs in its own savepoint of the next group's transaction."""

    fn: Callable[[sqlite3.Connection], Any]
    future: asyncio.Future[Any]
    outcome: Any = None
    error: BaseException | None = None


_STOP = object()

GroupListener = Callable[[int, list[Event], float], None]
"""Called in the event loop after a commit: (group size in events, committed events, seconds)."""


class Writer:
    """Owns the write connection and the thread that uses it."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        queries: dict[str, str],
        loop: asyncio.AbstractEventLoop,
        on_commit: GroupListener,
    ) -> None:
        self._conn = conn  # used only by the writer thread once started
        self._q = queries  # named SQL
        self._loop = loop  # where callers' futures live
        self._on_commit = on_commit  # told of each commit, in commit order
        self._inbox: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="tidings-sqlite-writer", daemon=True)
        self._closed = False
        # Why the last group failed to commit, None once one with events commits (readiness
        # follows it).
        self.failure: str | None = None
        self.failed_at = 0.0  # time.monotonic() of the last failed group
        row = conn.execute(self._q["last_position"]).fetchone()
        self.last_received_us: int = row[1]  # received_at never goes backwards

    def start(self) -> None:
        self._thread.start()

    def append(self, candidates: Sequence[Candidate]) -> asyncio.Future[list[AppendResult]]:
        future: asyncio.Future[list[AppendResult]] = self._loop.create_future()
        if self._closed:
            future.set_exception(_closed())
        else:
            self._inbox.put(_Append(candidates, future))
        return future

    def call(self, fn: Callable[[sqlite3.Connection], Any]) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = self._loop.create_future()
        if self._closed:
            future.set_exception(_closed())
        else:
            self._inbox.put(_Call(fn, future))
        return future

    async def stop(self) -> None:
        """Finish everything queued before this call, then end the thread."""
        if self._closed:
            return
        self._closed = True
        self._inbox.put(_STOP)
        await asyncio.to_thread(self._thread.join)

    # -- the thread ---------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            item = self._inbox.get()
            if item is _STOP:
                return
            items: list[_Append | _Call] = []
            calls = 0
            count = 0
            stopping = False
            while True:
                assert isinstance(item, (_Append, _Call))
                items.append(item)
                if isinstance(item, _Append):
                    count += len(item.candidates)
                else:
                    calls += 1
                if count >= MAX_GROUP_EVENTS or calls >= MAX_GROUP_CALLS:
                    break
                try:
                    item = self._inbox.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stopping = True
                    break
            self._run_group(items, count)
            if stopping:
                return

    def _run_group(self, items: list[_Append | _Call], count: int) -> None:
        conn = self._conn
        group = [item for item in items if isinstance(item, _Append)]
        calls = [item for item in items if isinstance(item, _Call)]
        started = time.perf_counter()
        received_us = max(now_us(), self.last_received_us)
        committed: list[Event] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            for item in items:  # in the order they were queued
                if isinstance(item, _Call):
                    self._run_call(item)
                else:
                    self._run_append(item, received_us)
                    committed.extend(item.events)
            conn.execute("COMMIT")
        except Exception as error:  # the transaction itself failed: nothing of it is stored
            log.exception("commit failed")
            self.failure = str(error) or type(error).__name__
            self.failed_at = time.monotonic()
            _rollback(conn)
            failure = TidingsError(503, "store_unavailable", f"the store could not commit: {error}")
            for request in group:
                request.outcome = failure
                request.events = []
            for call in calls:
                call.error = error
            committed = []
        else:
            if group:  # publishes commit again (small background writes may fit a full disk)
                self.failure = None
            if committed:
                self.last_received_us = received_us
        elapsed = time.perf_counter() - started
        self._answer(self._finish_group, group, calls, count, committed, elapsed)

    def _run_append(self, request: _Append, received_us: int) -> None:
        conn = self._conn
        # One statement is atomic by itself (SQLite undoes a failed statement), so only a
        # caller written in several needs a savepoint: one with a key (looked up first) or
        # with more rows than one INSERT holds. A savepoint is two more statements, and each
        # statement gives the GIL up and then waits for the event loop to hand it back.
        candidates = request.candidates
        guarded = len(candidates) > MAX_ROWS or any(
            c.dedupe_key is not None or c.idempotency_key is not None for c in candidates
        )
        if guarded:
            conn.execute("SAVEPOINT caller")
        try:
            request.outcome = self._insert(request, received_us)
        except _Conflict as conflict:
            conn.execute("ROLLBACK TO caller")
            request.outcome = conflict_error(conflict.index, conflict.key)
            request.events = []
        except Exception as error:  # a row SQLite refuses, or one that cannot be bound
            if storage_failure(error):
                raise  # the file, not the row: the group fails and readiness says so
            if guarded:
                conn.execute("ROLLBACK TO caller")
            log.exception("append failed for one caller")
            request.outcome = TidingsError(
                500, "store_error", f"the store refused the events: {error}"
            )
            request.events = []
        if guarded:
            conn.execute("RELEASE caller")

    def _run_call(self, call: _Call) -> None:
        conn = self._conn
        conn.execute("SAVEPOINT caller")
        try:
            call.outcome = call.fn(conn)
        except Exception as error:  # handed to its caller, who decides
            if storage_failure(error):
                raise
            conn.execute("ROLLBACK TO caller")
            call.error = error
        conn.execute("RELEASE caller")

    def _answer(self, callback: Callable[..., None], *args: Any) -> None:
        """Hand the outcome to the event loop; a closed loop has no caller left to answer."""
        try:
            self._loop.call_soon_threadsafe(callback, *args)
        except RuntimeError:
            log.warning("the event loop closed before the store answered a write")

    def _insert(self, request: _Append, received_us: int) -> list[AppendResult]:
        conn = self._conn
        find = self._q["find_by_dedupe_key"]
        results: list[AppendResult] = []
        run: list[Candidate] = []  # consecutive candidates without a key
        for index, c in enumerate(request.candidates):
            if c.dedupe_key is None and c.idempotency_key is None:
                run.append(c)
                continue
            if run:
                self._insert_run(run, request, results, received_us)
                run = []
            if c.dedupe_key is not None:
                row = conn.execute(find, (c.tenant, c.dedupe_key)).fetchone()
                if row is not None:
                    seq, id_, type_, source, subject, data = row
                    if not same_content(type_, source, subject, data, c):
                        raise _Conflict(index, c.idempotency_key)
                    results.append(AppendResult(id_, seq, True))
                    continue
            self._insert_keyed(c, request, results, received_us)
        if run:
            self._insert_run(run, request, results, received_us)
        return results

    def _insert_run(
        self,
        run: list[Candidate],
        request: _Append,
        results: list[AppendResult],
        received_us: int,
    ) -> None:
        """Insert rows without keys, up to ``MAX_ROWS`` per statement (``insert_rows``).
        Inside this ``BEGIN IMMEDIATE`` transaction the writer is the only writer, so
        AUTOINCREMENT hands the rows consecutive positions ending at ``last_insert_rowid()``."""
        conn = self._conn
        start = 0
        last: int | None = None
        for size in chunk_sizes(len(run)):
            chunk = run[start : start + size] if size < len(run) else run
            last = conn.execute(insert_rows_sql(size), row_params(received_us, chunk)).lastrowid
            start += size
        assert last is not None
        self._stored(run, last, request, results, received_us)

    def _insert_keyed(
        self,
        c: Candidate,
        request: _Append,
        results: list[AppendResult],
        received_us: int,
    ) -> None:
        """Insert one row that carries an idempotency or deduplication key."""
        row = (
            c.tenant,
            c.id,
            c.type,
            c.source,
            c.subject,
            c.time_us,
            received_us,
            c.trace_id,
            c.idempotency_key,
            c.dedupe_key,
            c.data_json,
            c.metadata_json,
        )
        last = self._conn.execute(self._q["insert_event"], row).lastrowid
        assert last is not None
        self._stored([c], last, request, results, received_us)

    @staticmethod
    def _stored(
        run: list[Candidate],
        last: int,
        request: _Append,
        results: list[AppendResult],
        received_us: int,
    ) -> None:
        """The answers and the stored events of rows whose positions end at ``last``."""
        seq = last - len(run)
        events = request.events
        for c in run:
            seq += 1
            results.append(AppendResult(c.id, seq, False))
            events.append(c.stored(seq, received_us))

    def _finish_group(
        self,
        group: list[_Append],
        calls: list[_Call],
        count: int,
        committed: list[Event],
        elapsed: float,
    ) -> None:
        for call in calls:
            _finish_call(call)
        if not group:
            return
        for request in group:
            if request.future.done():  # the caller went away; its events are stored anyway
                continue
            if isinstance(request.outcome, BaseException):
                request.future.set_exception(request.outcome)
            else:
                request.future.set_result(request.outcome or [])
        self._on_commit(count, committed, elapsed)


def _finish_call(call: _Call) -> None:
    if call.future.done():
        return
    if call.error is not None:
        call.future.set_exception(call.error)
    else:
        call.future.set_result(call.outcome)


def storage_failure(error: BaseException) -> bool:
    """Whether ``error`` means the database file cannot be written (not a refused row)."""
    code = getattr(error, "sqlite_errorcode", None)
    return isinstance(code, int) and code & 0xFF in STORAGE_FAILURES


def _rollback(conn: sqlite3.Connection) -> None:
    """End a failed transaction; SQLite may already have rolled it back itself."""
    if conn.in_transaction:
        try:
            conn.execute("ROLLBACK")
        except sqlite3.Error:
            log.exception("rollback failed")


def _closed() -> TidingsError:
    return TidingsError(503, "store_closed", "the store is shutting down")
