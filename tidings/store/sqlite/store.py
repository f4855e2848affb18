"""The embedded store: SQLite in WAL mode, one group-committing writer thread, pooled readers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

from tidings.envelope import AppendResult, Candidate, Event, Filter
from tidings.envelope.timefmt import now_us
from tidings.errors import TidingsError
from tidings.store.base import (
    BucketCount,
    CommitListener,
    CountQuery,
    GroupListener,
    Query,
    StoreStats,
    purge_in_chunks,
)
from tidings.store.errors import StoreOpenError
from tidings.store.listeners import Listeners
from tidings.store.sql import load_migrations, load_queries
from tidings.store.sqlite import time_pages
from tidings.store.sqlite.connection import SYNCHRONOUS_MODES, connect
from tidings.store.sqlite.filter_sql import EVENT_COLUMNS, count_sql, filter_clause, query_sql
from tidings.store.sqlite.insert_rows import STATEMENT_CACHE
from tidings.store.sqlite.integrity import check_location, quick_check
from tidings.store.sqlite.readers import ReaderPool
from tidings.store.sqlite.time_pages import has_time_window, time_page
from tidings.store.sqlite.writer import Writer
from tidings.store.stats import STATS_TOP, hours_since, store_stats
from tidings.store.time_blocks import STEP, Catchup, complete_below

log = logging.getLogger("tidings.store")

T = TypeVar("T")
QUERIES = load_queries("tidings.store.sqlite", "queries.sql")
PROBE_AFTER_S = 5.0  # readiness tries a write this long after the last failure, and no more often


def _event(row: tuple[Any, ...]) -> Event:
    return Event(*row)


class SqliteStore:
    """``Store`` on one SQLite file. Open it inside the event loop that will use it."""

    def __init__(
        self,
        path: Path | str,
        *,
        synchronous: str = "FULL",
        readers: int = 4,
        quick_check_s: float = 0.0,
    ) -> None:
        synchronous = synchronous.upper()
        if synchronous not in SYNCHRONOUS_MODES:
            raise ValueError(
                f"TIDINGS_SQLITE_SYNCHRONOUS must be one of {', '.join(SYNCHRONOUS_MODES)}"
            )
        self.path = Path(path)  # the database file; -wal and -shm live beside it
        self._synchronous = synchronous  # FULL: acknowledged means on disk
        self._quick_check_s = quick_check_s  # PRAGMA quick_check at open, for at most this; 0: off
        self._readers = ReaderPool(self.path, readers)
        self._writer: Writer | None = None
        self._listeners = Listeners(log)  # told of every commit, in order
        self._head = 0  # highest committed seq
        self.time_summary = Catchup(self._summarise)  # summary of producer times, by block
        self._last_probe = -PROBE_AFTER_S  # monotonic time of the last readiness write

    # -- life cycle ---------------------------------------------------------------------

    async def open(self) -> None:
        """Open the file, or raise ``StoreOpenError`` naming it and saying why not."""
        if self._writer is not None:
            return
        conn, self._head = await asyncio.to_thread(self._open_writer_connection)
        try:
            writer = Writer(conn, QUERIES, asyncio.get_running_loop(), self._committed)
            self._readers.open()
        except sqlite3.Error as error:
            conn.close()
            raise StoreOpenError(str(self.path), f"SQLite cannot read it: {error}") from None
        self._writer = writer
        writer.start()

    def _open_writer_connection(self) -> tuple[sqlite3.Connection, int]:
        check_location(self.path)
        try:
            conn = connect(
                self.path, synchronous=self._synchronous, cached_statements=STATEMENT_CACHE
            )
        except sqlite3.Error as error:
            raise StoreOpenError(str(self.path), f"SQLite cannot open it: {error}") from None
        try:
            # The writer's savepoints (one per caller in a group) keep the pages they change in
            # a sub-journal, which SQLite spills to a temporary file past 64 KiB: a 100-event
            # caller's pages were written there once more, a quarter of the writer's CPU
            # (BENCHMARKS.md, publish section). In memory it holds one caller's pages at a
            # time, and is emptied when the savepoint is released.
            conn.execute("PRAGMA temp_store=MEMORY")
            self._quick_check(conn)
            migrate(conn)
            head = int(conn.execute(QUERIES["sequence_position"]).fetchone()[0])
            self.time_summary.summarised = time_pages.summarised(conn)
        except StoreOpenError:
            conn.close()
            raise
        except (sqlite3.Error, RuntimeError) as error:  # damage, or a schema from the future
            conn.close()
            raise StoreOpenError(str(self.path), str(error)) from None
        except BaseException:
            conn.close()  # a refused schema must not leave the file open
            raise
        return conn, head

    def _quick_check(self, conn: sqlite3.Connection) -> None:
        if self._quick_check_s <= 0:
            return
        result = quick_check(conn, self._quick_check_s)
        if not result.finished:
            log.warning(
                "PRAGMA quick_check of %s did not finish within %gs; starting without it "
                "(TIDINGS_SQLITE_QUICK_CHECK_S)",
                self.path,
                self._quick_check_s,
            )
        elif result.problems:
            raise StoreOpenError(
                str(self.path),
                f"PRAGMA quick_check found damage: {result.describe()}; restore a backup, or "
                "salvage what is readable with the sqlite3 shell's .recover",
            )
        else:
            log.info("PRAGMA quick_check of %s: ok in %.2fs", self.path, result.elapsed_s)

    async def close(self) -> None:
        if self._writer is None:
            return
        await self.time_summary.stop()
        writer, self._writer = self._writer, None
        await writer.stop()
        await self._readers.close()
        await asyncio.to_thread(_checkpoint_and_close, writer)

    def add_commit_listener(self, listener: CommitListener) -> None:
        self._listeners.commit.append(listener)

    def add_group_listener(self, listener: GroupListener) -> None:
        self._listeners.group.append(listener)

    def _committed(self, count: int, events: list[Event], elapsed: float) -> None:
        if events:
            self._head = events[-1].seq
            self.time_summary.nudge(self._head)
        self._listeners.tell_group(count, elapsed)
        if events:
            self._listeners.tell_commit(events)

    # -- writes -------------------------------------------------------------------------

    def _require_writer(self) -> Writer:
        if self._writer is None:
            raise TidingsError(503, "store_closed", "the store is not open")
        return self._writer

    async def append(self, candidates: Sequence[Candidate]) -> list[AppendResult]:
        writer = self._require_writer()
        if not candidates:
            return []
        return await writer.append(candidates)

    async def purge(
        self, older_than_us: int, chunk: int = 1000, keep_from: int | None = None
    ) -> int:
        """Delete in chunks, each its own short transaction, so publishes interleave."""

        async def delete_chunk() -> int:
            deleted: int = await self._require_writer().call(
                lambda c: _purge_chunk(c, older_than_us, chunk, keep_from)
            )
            return deleted

        deleted = await purge_in_chunks(delete_chunk, chunk)
        if deleted:
            await self._require_writer().call(time_pages.prune)
        return deleted

    async def _summarise(self, start: int) -> int | None:
        """Summarise producer times from block ``start`` on, up to what is complete."""
        end = min(complete_below(self._head), start + STEP)
        if end <= start:
            return None
        rows = await self._readers.run(lambda conn: time_pages.summarise(conn, start, end))
        await self._require_writer().call(lambda conn: time_pages.record(conn, rows, end))
        return end

    # -- reads --------------------------------------------------------------------------

    def head(self) -> int:
        return self._head

    async def get(self, tenant: str, event_id: str) -> Event | None:
        def read(conn: sqlite3.Connection) -> Event | None:
            row = conn.execute(QUERIES["get_by_id"], (tenant, event_id)).fetchone()
            return _event(row) if row else None

        return await self._readers.run(read)

    async def query(self, tenant: str, query: Query) -> list[Event]:
        def read(conn: sqlite3.Connection) -> list[Event]:
            bounded = _time_window_as_positions(conn, tenant, query)
            if bounded is None:
                return []
            if has_time_window(bounded):
                return [_event(r) for r in time_page(conn, tenant, bounded)]
            sql, params = query_sql(tenant, bounded)
            return [_event(r) for r in conn.execute(sql, params)]

        if has_time_window(query):
            self.time_summary.nudge(self._head)
        return await self._readers.run(read)

    async def read_after(
        self, tenant: str, after: int, limit: int, filter: Filter | None = None
    ) -> list[Event]:
        conditions, params = filter_clause(filter or Filter())
        where = " AND ".join(["tenant = ?", "seq > ?", *conditions])
        sql = f"SELECT {EVENT_COLUMNS} FROM events WHERE {where} ORDER BY seq ASC LIMIT ?"
        args = [tenant, after, *params, max(limit, 0)]
        return await self._readers.run(lambda conn: [_event(r) for r in conn.execute(sql, args)])

    async def read_log(self, after: int, through: int, limit: int) -> list[Event]:
        sql, args = QUERIES["read_log"], (after, through, max(limit, 0))
        return await self._readers.run(lambda conn: [_event(r) for r in conn.execute(sql, args)])

    async def position_before(self, tenant: str, received_at_us: int) -> int:
        def read(conn: sqlite3.Connection) -> int:
            row = conn.execute(QUERIES["position_before"], (tenant, received_at_us)).fetchone()
            return int(row[0] or 0)

        return await self._readers.run(read)

    async def earliest(self, tenant: str) -> int | None:
        return await self._readers.run(
            lambda conn: conn.execute(QUERIES["earliest"], (tenant,)).fetchone()[0]
        )

    async def purged_through(self, tenant: str) -> int:
        def read(conn: sqlite3.Connection) -> int:
            row = conn.execute(QUERIES["purged_through"], (tenant,)).fetchone()
            return int(row[0]) if row else 0

        return await self._readers.run(read)

    async def stats(self, tenant: str) -> StoreStats:
        since = hours_since(now_us())

        def read(conn: sqlite3.Connection) -> StoreStats:
            conn.execute("BEGIN")  # one snapshot for every count
            try:
                total = conn.execute(QUERIES["count_events"], (tenant,)).fetchone()[0]
                by_type = conn.execute(QUERIES["count_by_type"], (tenant, STATS_TOP)).fetchall()
                by_source = conn.execute(QUERIES["count_by_source"], (tenant, STATS_TOP)).fetchall()
                hours = conn.execute(QUERIES["count_by_hour"], (tenant, since)).fetchall()
                earliest = conn.execute(QUERIES["earliest"], (tenant,)).fetchone()[0]
            finally:
                conn.execute("COMMIT")
            return store_stats(
                total=total,
                by_type=by_type,
                by_source=by_source,
                by_hour=hours,
                head_seq=self._head,
                earliest_seq=earliest,
                size_bytes=self._file_bytes(),
            )

        return await self._readers.run(read)

    async def count_buckets(self, tenant: str, counts: CountQuery) -> list[BucketCount]:
        sql, params = count_sql(tenant, counts)
        return await self._readers.run(
            lambda conn: [BucketCount(s, k, n) for s, k, n in conn.execute(sql, params)]
        )

    async def size_bytes(self) -> int:
        return self._file_bytes()

    def _file_bytes(self) -> int:
        """The database file with its WAL and shared-memory files beside it."""
        total = 0
        for suffix in ("", "-wal", "-shm"):
            file = Path(str(self.path) + suffix)
            if file.exists():
                total += file.stat().st_size
        return total

    async def write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(conn)`` in its own write transaction on the writer thread.

        For the parts that keep their own tables here (deliveries, dead letters); the SQL
        stays in those parts' named queries.
        """
        result: T = await self._require_writer().call(fn)
        return result

    async def reload_position(self) -> None:
        """Read the head and the last ``received_at`` again, after rows were written with
        positions of their own (a copy from another store)."""
        writer = self._require_writer()

        def read(conn: sqlite3.Connection) -> int:
            last = int(conn.execute(QUERIES["last_position"]).fetchone()[1])
            writer.last_received_us = max(writer.last_received_us, last)  # on the writer thread
            return int(conn.execute(QUERIES["sequence_position"]).fetchone()[0])

        self._head = await writer.call(read)

    async def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(conn)`` on a pooled read connection in a worker thread."""
        return await self._readers.run(fn)

    async def ping(self) -> None:
        """Raise while the last write group failed (a full disk, an I/O error), else read.

        Readiness follows the writer. Once no write has failed for ``PROBE_AFTER_S``, a small
        write is tried (at most that often), so the store is ready again when space is back
        even with no publishes: a load balancer sends none to a node that is not ready.
        """
        writer = self._require_writer()
        if writer.failure is not None:
            now = time.monotonic()
            quiet = now - writer.failed_at >= PROBE_AFTER_S
            if quiet and now - self._last_probe >= PROBE_AFTER_S:
                self._last_probe = now
                with contextlib.suppress(Exception):  # a failure is recorded by the writer
                    await writer.call(_probe_write)
                    writer.failure = None
        if writer.failure is not None:
            raise TidingsError(503, "store_unavailable", f"the last write failed: {writer.failure}")
        await self._readers.run(lambda conn: conn.execute(QUERIES["ping"]).fetchone())


def _time_window_as_positions(conn: sqlite3.Connection, tenant: str, query: Query) -> Query | None:
    """``query`` with its ``since``/``until`` turned into seq bounds; None: nothing can match.

    received_at never decreases with seq, so a time window is a range of positions. Found in
    the received_at index, it lets the page walk an index in seq order instead of sorting
    the whole window (a quarter of a million rows: 300 ms against a few).
    """
    if query.since_us is None and query.until_us is None:
        return query
    after, before = query.after, query.before
    if query.since_us is not None:
        row = conn.execute(QUERIES["first_received_from"], (tenant, query.since_us)).fetchone()
        if row is None:
            return None
        after = row[0] - 1 if after is None else max(after, row[0] - 1)
    if query.until_us is not None:
        row = conn.execute(QUERIES["last_received_through"], (tenant, query.until_us)).fetchone()
        if row is None:
            return None
        before = row[0] + 1 if before is None else min(before, row[0] + 1)
    return replace(query, since_us=None, until_us=None, after=after, before=before)


def migrate(conn: sqlite3.Connection) -> int:
    """Apply every migration newer than ``PRAGMA user_version``; returns the version."""
    current = int(conn.execute("PRAGMA user_version").fetchone()[0])
    migrations = load_migrations("tidings.store.sqlite.migrations")
    latest = migrations[-1][0] if migrations else 0
    if current > latest:
        raise RuntimeError(
            f"the database schema is version {current}, newer than this Tidings knows ({latest}); "
            "upgrade Tidings"
        )
    for version, name, sql in migrations:
        if version <= current:
            continue
        log.info("migrating the SQLite store to version %d (%s)", version, name)
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in _statements(sql):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {version}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return max(current, latest)


def _statements(script: str) -> list[str]:
    statements, buffer = [], ""
    for line in script.splitlines(keepends=True):
        if line.lstrip().startswith("--"):
            continue
        buffer += line
        if sqlite3.complete_statement(buffer):
            statements.append(buffer.strip())
            buffer = ""
    return [s for s in statements if s]


def _purge_chunk(
    conn: sqlite3.Connection, older_than_us: int, chunk: int, keep_from: int | None
) -> int:
    limit = keep_from if keep_from is not None else 2**63 - 1
    rows = conn.execute(QUERIES["purge_chunk"], (older_than_us, limit, chunk)).fetchall()
    through: dict[str, int] = {}
    for tenant, seq in rows:
        through[tenant] = max(seq, through.get(tenant, 0))
    stamp = now_us()
    for tenant, seq in through.items():
        conn.execute(QUERIES["record_purge"], (tenant, seq, stamp))
    return len(rows)


def _probe_write(conn: sqlite3.Connection) -> None:
    """Rewrite the schema version unchanged: one page written, so the commit needs space."""
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    conn.execute(f"PRAGMA user_version = {version}")


def _checkpoint_and_close(writer: Writer) -> None:
    conn = writer._conn
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
