"""The embedded store: SQLite in WAL mode, one group-committing writer thread, pooled readers."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from tidings.envelope import AppendResult, Candidate, Event, Filter
from tidings.envelope.timefmt import format_us, now_us
from tidings.errors import TidingsError
from tidings.store.base import CommitListener, GroupListener, Query, StoreStats
from tidings.store.sql import load_migrations, load_queries
from tidings.store.sqlite.connection import SYNCHRONOUS_MODES, connect
from tidings.store.sqlite.filter_sql import EVENT_COLUMNS, filter_clause, query_sql
from tidings.store.sqlite.readers import ReaderPool
from tidings.store.sqlite.writer import Writer

log = logging.getLogger("tidings.store")

T = TypeVar("T")
QUERIES = load_queries("tidings.store.sqlite", "queries.sql")
STATS_TOP = 100  # types and sources listed in stats


def _event(row: tuple[Any, ...]) -> Event:
    return Event(*row)


class SqliteStore:
    """``Store`` on one SQLite file. Open it inside the event loop that will use it."""

    def __init__(self, path: Path | str, *, synchronous: str = "FULL", readers: int = 4) -> None:
        synchronous = synchronous.upper()
        if synchronous not in SYNCHRONOUS_MODES:
            raise ValueError(
                f"TIDINGS_SQLITE_SYNCHRONOUS must be one of {', '.join(SYNCHRONOUS_MODES)}"
            )
        self.path = Path(path)  # the database file; -wal and -shm live beside it
        self._synchronous = synchronous  # FULL: acknowledged means on disk
        self._readers = ReaderPool(self.path, readers)
        self._writer: Writer | None = None
        self._listeners: list[CommitListener] = []  # told of every commit, in order
        self._group_listeners: list[GroupListener] = []  # metrics: group sizes, durations
        self._head = 0  # highest committed seq

    # -- life cycle ---------------------------------------------------------------------

    async def open(self) -> None:
        if self._writer is not None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn, self._head = await asyncio.to_thread(self._open_writer_connection)
        self._writer = Writer(conn, QUERIES, asyncio.get_running_loop(), self._committed)
        self._writer.start()
        self._readers.open()

    def _open_writer_connection(self) -> tuple[sqlite3.Connection, int]:
        conn = connect(self.path, synchronous=self._synchronous)
        try:
            migrate(conn)
            head = int(conn.execute(QUERIES["sequence_position"]).fetchone()[0])
        except BaseException:
            conn.close()  # a refused schema must not leave the file open
            raise
        return conn, head

    async def close(self) -> None:
        if self._writer is None:
            return
        writer, self._writer = self._writer, None
        await writer.stop()
        await self._readers.close()
        await asyncio.to_thread(_checkpoint_and_close, writer)

    def add_commit_listener(self, listener: CommitListener) -> None:
        self._listeners.append(listener)

    def add_group_listener(self, listener: GroupListener) -> None:
        self._group_listeners.append(listener)

    def _committed(self, count: int, events: list[Event], elapsed: float) -> None:
        if events:
            self._head = events[-1].seq
        for listener in self._group_listeners:
            try:
                listener(count, elapsed)
            except Exception:  # metrics must never keep events from the commit listeners
                log.exception("group listener failed")
        if not events:
            return
        for commit_listener in self._listeners:
            try:
                commit_listener(events)
            except Exception:  # one broken listener must not stop the others
                log.exception("commit listener failed")

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
        if chunk < 1:
            raise ValueError("purge chunk must be at least 1")
        writer = self._require_writer()
        total = 0
        while True:
            deleted: int = await writer.call(
                lambda c: _purge_chunk(c, older_than_us, chunk, keep_from)
            )
            total += deleted
            if deleted < chunk:
                return total

    # -- reads --------------------------------------------------------------------------

    def head(self) -> int:
        return self._head

    async def get(self, tenant: str, event_id: str) -> Event | None:
        def read(conn: sqlite3.Connection) -> Event | None:
            row = conn.execute(QUERIES["get_by_id"], (tenant, event_id)).fetchone()
            return _event(row) if row else None

        return await self._readers.run(read)

    async def query(self, tenant: str, query: Query) -> list[Event]:
        sql, params = query_sql(tenant, query)
        return await self._readers.run(lambda conn: [_event(r) for r in conn.execute(sql, params)])

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
        since = now_us() - 48 * 3_600_000_000

        def read(conn: sqlite3.Connection) -> StoreStats:
            conn.execute("BEGIN")  # one snapshot for every count
            try:
                total = conn.execute(QUERIES["count_events"], (tenant,)).fetchone()[0]
                by_type = dict(
                    conn.execute(QUERIES["count_by_type"], (tenant, STATS_TOP)).fetchall()
                )
                by_source = dict(
                    conn.execute(QUERIES["count_by_source"], (tenant, STATS_TOP)).fetchall()
                )
                hours = conn.execute(QUERIES["count_by_hour"], (tenant, since)).fetchall()
                earliest = conn.execute(QUERIES["earliest"], (tenant,)).fetchone()[0]
            finally:
                conn.execute("COMMIT")
            return StoreStats(
                total=total,
                by_type=by_type,
                by_source=by_source,
                by_hour=[{"hour": format_us(h * 3_600_000_000), "count": n} for h, n in hours],
                head_seq=self._head,
                earliest_seq=earliest,
                size_bytes=self._file_bytes(),
            )

        return await self._readers.run(read)

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

    async def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(conn)`` on a pooled read connection in a worker thread."""
        return await self._readers.run(fn)

    async def ping(self) -> None:
        self._require_writer()
        await self._readers.run(lambda conn: conn.execute(QUERIES["ping"]).fetchone())


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


def _checkpoint_and_close(writer: Writer) -> None:
    conn = writer._conn
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
