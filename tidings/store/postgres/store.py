"""The PostgreSQL store: the event log on asyncpg, shared by every node that points at it."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from tidings.envelope import AppendResult, Candidate, Event, Filter
from tidings.envelope.timefmt import format_us, now_us
from tidings.errors import TidingsError
from tidings.store.base import CommitListener, GroupListener, Query, StoreStats
from tidings.store.postgres.connection import (
    UNAVAILABLE,
    StoreStartError,
    create_pool,
    start_error,
    translated,
)
from tidings.store.postgres.filter_sql import EVENT_COLUMNS, Params, filter_clause, needs_recheck
from tidings.store.postgres.migrate import migrate
from tidings.store.postgres.writer import Writer
from tidings.store.sql import load_queries

log = logging.getLogger("tidings.store")

T = TypeVar("T")
QUERIES = load_queries("tidings.store.postgres", "queries.sql")
STATS_TOP = 100  # types and sources listed in stats
HOUR_US = 3_600_000_000
NO_SEQ = 2**63 - 1


def _event(row: Any) -> Event:
    return Event(*row)


class PostgresStore:
    """``Store`` on a PostgreSQL database. Open it inside the event loop that will use it."""

    def __init__(self, url: str, *, pool_size: int = 10) -> None:
        self.url = url  # postgresql://user:password@host:port/database
        self._pool_size = pool_size  # connections, shared by the writer and the readers
        self._pool: Any = None
        self._writer: Writer | None = None
        self._listeners: list[CommitListener] = []  # told of every commit, in order
        self._group_listeners: list[GroupListener] = []  # metrics: group sizes, durations
        self._head = 0  # highest position this process knows committed

    # -- life cycle ---------------------------------------------------------------------

    async def open(self) -> None:
        if self._writer is not None:
            return
        try:
            pool = await create_pool(self.url, max_size=self._pool_size)
        except Exception as error:
            raise start_error(self.url, error) from None
        try:
            async with pool.acquire() as conn:
                await migrate(conn)
                async with conn.transaction():  # wait for a group in flight to be visible
                    await conn.execute(QUERIES["wait_for_writers"])
                    self._head = int(await conn.fetchval(QUERIES["sequence_position"]))
        except StoreStartError:
            await pool.close()
            raise
        except Exception as error:
            await pool.close()
            raise start_error(self.url, error) from None
        self._pool = pool
        self._writer = Writer(pool, QUERIES, self._committed)
        self._writer.start()

    async def close(self) -> None:
        if self._writer is None:
            return
        writer, self._writer = self._writer, None
        await writer.stop()
        pool, self._pool = self._pool, None
        await pool.close()

    def add_commit_listener(self, listener: CommitListener) -> None:
        self._listeners.append(listener)

    def add_group_listener(self, listener: GroupListener) -> None:
        self._group_listeners.append(listener)

    def _committed(self, count: int, events: list[Event], elapsed: float) -> None:
        if events:
            self._head = max(self._head, events[-1].seq)
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

    # -- access -------------------------------------------------------------------------

    def _require_pool(self) -> Any:
        if self._pool is None:
            raise TidingsError(503, "store_closed", "the store is not open")
        return self._pool

    async def run(self, fn: Callable[[Any], Awaitable[T]]) -> T:
        """Run ``fn(conn)`` on a pooled connection; a lost server answers 503.

        For the parts that keep their tables here (deliveries, dead letters...): their SQL
        stays in their own named queries.
        """
        pool = self._require_pool()
        with translated():
            async with pool.acquire() as conn:
                return await fn(conn)

    async def _fetch(self, sql: str, *args: Any) -> list[Any]:
        pool = self._require_pool()
        with translated():
            return list(await pool.fetch(sql, *args))

    async def _fetchval(self, sql: str, *args: Any) -> Any:
        pool = self._require_pool()
        with translated():
            return await pool.fetchval(sql, *args)

    # -- writes -------------------------------------------------------------------------

    async def append(self, candidates: Sequence[Candidate]) -> list[AppendResult]:
        if self._writer is None:
            raise TidingsError(503, "store_closed", "the store is not open")
        if not candidates:
            return []
        return await self._writer.append(candidates)

    async def purge(
        self, older_than_us: int, chunk: int = 1000, keep_from: int | None = None
    ) -> int:
        """Delete in chunks, each one statement and one short transaction."""
        if chunk < 1:
            raise ValueError("purge chunk must be at least 1")
        limit = keep_from if keep_from is not None else NO_SEQ
        total = 0
        while True:
            deleted = int(
                await self._fetchval(QUERIES["purge_chunk"], older_than_us, limit, chunk, now_us())
            )
            total += deleted
            if deleted < chunk:
                return total

    # -- reads --------------------------------------------------------------------------

    def head(self) -> int:
        return self._head

    async def get(self, tenant: str, event_id: str) -> Event | None:
        rows = await self._fetch(QUERIES["get_by_id"], tenant, event_id)
        return _event(rows[0]) if rows else None

    async def query(self, tenant: str, query: Query) -> list[Event]:
        if query.limit <= 0:
            return []

        async def read(conn: Any) -> list[Event]:
            after, before = query.after, query.before
            # received_at never decreases with seq: a time window is a range of positions,
            # found in the received_at index, so the page itself walks an index by seq
            if query.since_us is not None:
                first = await conn.fetchval(QUERIES["first_received_from"], tenant, query.since_us)
                if first is None:
                    return []
                after = first - 1 if after is None else max(after, first - 1)
            if query.until_us is not None:
                last = await conn.fetchval(QUERIES["last_received_through"], tenant, query.until_us)
                if last is None:
                    return []
                before = last + 1 if before is None else min(before, last + 1)
            params = Params(tenant)
            where = ["tenant = $1"]
            bounds = (
                ("time_us >=", query.time_since_us),
                ("time_us <=", query.time_until_us),
                ("seq >", after),
                ("seq <", before),
            )
            for sql, value in bounds:
                if value is not None:
                    where.append(f"{sql} {params.add(value)}")
            where.extend(filter_clause(query.filter, params))
            order = "ASC" if query.order == "asc" else "DESC"
            sql = (
                f"SELECT {EVENT_COLUMNS} FROM events WHERE {' AND '.join(where)} "
                f"ORDER BY seq {order} LIMIT {params.add(query.limit)}"
            )
            return _checked(query.filter, await conn.fetch(sql, *params.values))

        return await self.run(read)

    async def read_after(
        self, tenant: str, after: int, limit: int, filter: Filter | None = None
    ) -> list[Event]:
        if limit <= 0:
            return []
        flt = filter or Filter()
        params = Params(tenant, after)
        where = " AND ".join(["tenant = $1", "seq > $2", *filter_clause(flt, params)])
        sql = (
            f"SELECT {EVENT_COLUMNS} FROM events WHERE {where} "
            f"ORDER BY seq ASC LIMIT {params.add(limit)}"
        )
        return _checked(flt, await self._fetch(sql, *params.values))

    async def read_log(self, after: int, through: int, limit: int) -> list[Event]:
        if limit <= 0:
            return []
        return [_event(r) for r in await self._fetch(QUERIES["read_log"], after, through, limit)]

    async def position_before(self, tenant: str, received_at_us: int) -> int:
        return int(await self._fetchval(QUERIES["position_before"], tenant, received_at_us) or 0)

    async def earliest(self, tenant: str) -> int | None:
        value = await self._fetchval(QUERIES["earliest"], tenant)
        return None if value is None else int(value)

    async def purged_through(self, tenant: str) -> int:
        return int(await self._fetchval(QUERIES["purged_through"], tenant) or 0)

    async def stats(self, tenant: str) -> StoreStats:
        since = now_us() - 48 * HOUR_US

        async def read(conn: Any) -> StoreStats:
            async with conn.transaction(isolation="repeatable_read", readonly=True):
                total = await conn.fetchval(QUERIES["count_events"], tenant)
                by_type = await conn.fetch(QUERIES["count_by_type"], tenant, STATS_TOP)
                by_source = await conn.fetch(QUERIES["count_by_source"], tenant, STATS_TOP)
                hours = await conn.fetch(QUERIES["count_by_hour"], tenant, since)
                earliest = await conn.fetchval(QUERIES["earliest"], tenant)
                size = await conn.fetchval(QUERIES["size_bytes"])
            return StoreStats(
                total=int(total),
                by_type={r[0]: int(r[1]) for r in by_type},
                by_source={r[0]: int(r[1]) for r in by_source},
                by_hour=[{"hour": format_us(h * HOUR_US), "count": int(n)} for h, n in hours],
                head_seq=self._head,
                earliest_seq=earliest,
                size_bytes=int(size),
            )

        return await self.run(read)

    async def size_bytes(self) -> int:
        """The database's size on disk (every table of Tidings is in it)."""
        return int(await self._fetchval(QUERIES["database_size"]))

    async def ping(self) -> None:
        """Raise when the store cannot serve; a connection the server dropped is retried once."""
        self._require_pool()
        for attempt in (1, 2):
            try:
                await self._pool.fetchval(QUERIES["ping"], timeout=5)
                return
            except UNAVAILABLE as error:
                if attempt == 2:
                    raise TidingsError(
                        503, "store_unavailable", f"the store is unavailable: {error}"
                    ) from None


def _checked(flt: Filter, rows: list[Any]) -> list[Event]:
    events = [_event(r) for r in rows]
    if needs_recheck(flt):
        return [e for e in events if flt.matches(e)]
    return events
