"""The PostgreSQL store: the event log on asyncpg, shared by every node that points at it."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
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
from tidings.store.postgres import time_pages
from tidings.store.postgres.connection import (
    UNAVAILABLE,
    create_pool,
    describe,
    start_error,
    translated,
)
from tidings.store.postgres.filter_sql import EVENT_COLUMNS, Params, filter_clause, needs_recheck
from tidings.store.postgres.migrate import migrate
from tidings.store.postgres.pages import Page, read_page
from tidings.store.postgres.writer import IN_FLIGHT, Writer
from tidings.store.sql import load_queries
from tidings.store.stats import STATS_TOP, hours_since, store_stats
from tidings.store.time_blocks import Catchup

log = logging.getLogger("tidings.store")

T = TypeVar("T")
QUERIES = load_queries("tidings.store.postgres", "queries.sql")
NO_SEQ = 2**63 - 1


def _event(row: Any) -> Event:
    return Event(*row)


class PostgresStore:
    """``Store`` on a PostgreSQL database. Open it inside the event loop that will use it."""

    def __init__(self, url: str, *, pool_size: int = 10) -> None:
        self.url = url  # postgresql://user:password@host:port/database
        self._pool_size = pool_size  # connections, shared by the writer and the readers
        self._pool: Any = None  # reads and the other parts' writes
        self._write_pool: Any = None  # the group commits: one connection per group in flight
        self._writer: Writer | None = None
        self._listeners = Listeners(log)  # told of every commit, in order
        self._head = 0  # highest position this process knows committed
        self._hot: list[str] = []  # statements prepared on every connection as it opens
        self._migrated = False  # the tables they name exist
        self.time_summary = Catchup(self._summarise)  # summary of producer times, by block

    # -- life cycle ---------------------------------------------------------------------

    async def open(self) -> None:
        if self._writer is not None:
            return
        try:
            pool = await create_pool(
                self.url, max_size=self._pool_size, init=self._prepare_hot, keep_idle=True
            )
        except Exception as error:
            raise start_error(self.url, error) from None
        write_pool: Any = None
        try:
            async with pool.acquire() as conn:
                await migrate(conn, where=describe(self.url))
                self._migrated = True
                await self._prepare_hot(conn)
                async with conn.transaction():  # wait for a group in flight to be visible
                    await conn.execute(QUERIES["wait_for_writers"])
                    self._head = int(await conn.fetchval(QUERIES["sequence_position"]))
                self.time_summary.summarised = await time_pages.summarised(conn)
            await self._fill(pool)
            # the writer's statements leave no session state (its locks end with each
            # transaction), so a connection goes back without a reset round trip
            write_pool = await create_pool(
                self.url,
                min_size=IN_FLIGHT,
                max_size=IN_FLIGHT + 1,
                custom_plans=False,
                keep_idle=True,
                reset=False,
            )
        except StoreOpenError:
            await pool.close()
            raise
        except Exception as error:
            await pool.close()
            raise start_error(self.url, error) from None
        self._pool, self._write_pool = pool, write_pool
        self._writer = Writer(write_pool, QUERIES, self._committed, self._head)
        self._writer.start()

    def prepare_on_connect(self, *statements: str) -> None:
        """Statements that must answer within milliseconds from the first call (recording
        attempt results: a crash re-sends what is not recorded yet). A connection's first
        use of a statement with array parameters costs a round of type introspection, tens
        of milliseconds on a loaded server; preparing them as the connection opens moves
        that cost to start-up. Call before ``open``."""
        self._hot.extend(statements)

    async def _prepare_hot(self, conn: Any) -> None:
        if self._migrated:  # before the migrations, the tables do not exist yet
            for statement in self._hot:
                await conn.prepare(statement)

    async def _fill(self, pool: Any) -> None:
        """Open every connection of the pool now, each prepared by ``_prepare_hot``, rather
        than one at a time in the middle of the first burst of work."""
        held = [await pool.acquire() for _ in range(self._pool_size)]
        for conn in held:
            await pool.release(conn)

    async def close(self) -> None:
        if self._writer is None:
            return
        await self.time_summary.stop()
        writer, self._writer = self._writer, None
        await writer.stop()
        pool, self._pool = self._pool, None
        write_pool, self._write_pool = self._write_pool, None
        await write_pool.close()
        await pool.close()

    def add_commit_listener(self, listener: CommitListener) -> None:
        self._listeners.commit.append(listener)

    def add_group_listener(self, listener: GroupListener) -> None:
        self._listeners.group.append(listener)

    def _committed(self, count: int, events: list[Event], elapsed: float) -> None:
        if events:
            self._head = max(self._head, events[-1].seq)
            self.time_summary.nudge(self._head)
        self._listeners.tell_group(count, elapsed)
        if events:
            self._listeners.tell_commit(events)

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

    async def reload_position(self) -> None:
        """Read the head again, after rows were written with positions of their own (a copy
        from another store)."""
        self._head = max(self._head, int(await self._fetchval(QUERIES["sequence_position"])))

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
        limit = keep_from if keep_from is not None else NO_SEQ

        async def delete_chunk() -> int:
            return int(
                await self._fetchval(QUERIES["purge_chunk"], older_than_us, limit, chunk, now_us())
            )

        deleted = await purge_in_chunks(delete_chunk, chunk)
        if deleted:
            await self.run(time_pages.prune)
        return deleted

    async def _summarise(self, start: int) -> int | None:
        """Summarise producer times past block ``start``, up to what is complete."""
        end = await self.run(time_pages.summarise)
        return end if end > start else None

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
            page = Page(
                tenant,
                query.filter,
                query.order,
                query.limit,
                after,
                before,
                query.time_since_us,
                query.time_until_us,
            )
            if query.time_since_us is None and query.time_until_us is None:
                return _checked(query.filter, await read_page(conn, page))
            return _checked(query.filter, await time_pages.read_time_page(conn, page))

        if query.time_since_us is not None or query.time_until_us is not None:
            self.time_summary.nudge(self._head)
        return await self.run(read)

    async def read_after(
        self, tenant: str, after: int, limit: int, filter: Filter | None = None
    ) -> list[Event]:
        flt = filter or Filter()
        page = Page(tenant, flt, "asc", limit, after)
        return _checked(flt, await self.run(lambda conn: read_page(conn, page)))

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
        since = hours_since(now_us())

        async def read(conn: Any) -> StoreStats:
            async with conn.transaction(isolation="repeatable_read", readonly=True):
                total = await conn.fetchval(QUERIES["count_events"], tenant)
                by_type = await conn.fetch(QUERIES["count_by_type"], tenant, STATS_TOP)
                by_source = await conn.fetch(QUERIES["count_by_source"], tenant, STATS_TOP)
                hours = await conn.fetch(QUERIES["count_by_hour"], tenant, since)
                earliest = await conn.fetchval(QUERIES["earliest"], tenant)
                size = await conn.fetchval(QUERIES["size_bytes"])
            return store_stats(
                total=total,
                by_type=by_type,
                by_source=by_source,
                by_hour=hours,
                head_seq=self._head,
                earliest_seq=earliest,
                size_bytes=size,
            )

        return await self.run(read)

    async def count_buckets(self, tenant: str, counts: CountQuery) -> list[BucketCount]:
        query, width, origin = counts.query, counts.width_us, counts.origin_us
        key = _GROUP_COLUMNS[counts.by]
        params = Params(tenant)
        where = ["tenant = $1"]
        bounds = (
            ("received_at_us >=", query.since_us),
            ("received_at_us <=", query.until_us),
            ("time_us >=", query.time_since_us),
            ("time_us <=", query.time_until_us),
            ("seq >", query.after),
            ("seq <", query.before),
        )
        for sql, value in bounds:
            if value is not None:
                where.append(f"{sql} {params.add(value)}")
        where.extend(filter_clause(query.filter, params))
        condition = " AND ".join(where)
        if needs_recheck(query.filter):
            # Rows SQL cannot decide alone (see needs_recheck) are counted here after the check.
            rows = await self._fetch(
                f"SELECT {EVENT_COLUMNS} FROM events WHERE {condition}", *params.values
            )
            tally: dict[tuple[int, str | None], int] = {}
            for event in _checked(query.filter, rows):
                start = origin + (event.received_at_us - origin) // width * width
                group = None if counts.by is None else getattr(event, counts.by)
                tally[start, group] = tally.get((start, group), 0) + 1
            return [BucketCount(s, k, n) for (s, k), n in sorted(tally.items(), key=_bucket_key)]
        # received_at_us >= origin (0 <= origin < width), so integer division floors here
        o, w = params.add(origin), params.add(width)
        sql = (
            f"SELECT (received_at_us - {o}) / {w} * {w} + {o} AS bucket, {key} AS key, COUNT(*) "
            f"FROM events WHERE {condition} GROUP BY 1, 2 ORDER BY 1"
        )
        return [
            BucketCount(int(b), k, int(n)) for b, k, n in await self._fetch(sql, *params.values)
        ]

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


_GROUP_COLUMNS = {None: "NULL::text", "type": "type", "source": "source", "subject": "subject"}


def _bucket_key(item: tuple[tuple[int, str | None], int]) -> tuple[int, str]:
    (start, key), _ = item
    return start, key or ""


def _checked(flt: Filter, rows: list[Any]) -> list[Event]:
    events = [_event(r) for r in rows]
    if needs_recheck(flt):
        return [e for e in events if flt.matches(e)]
    return events
