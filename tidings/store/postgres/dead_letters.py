"""``DeadLetterStore`` on PostgreSQL: each dead letter is committed before its input is
acknowledged; the raw bytes are kept as ``bytea``."""

from __future__ import annotations

from typing import Any

from tidings.envelope import DEFAULT_TENANT
from tidings.store import rows
from tidings.store.dead_letters import DeadLetter, DeadLetterQuery, DeadLetterWriter
from tidings.store.postgres.filter_sql import Params
from tidings.store.postgres.store import PostgresStore
from tidings.store.sql import load_queries

Q = load_queries("tidings.store.postgres", "dead_letters.sql")
_COLUMNS = "seq, id, tenant, source, reason_code, reason, raw, topic, headers, received_at_us"


def list_sql(tenant: str, query: DeadLetterQuery) -> tuple[str, list[Any]]:
    """The list query: fixed fragments joined by the filters that are set."""
    params = Params(tenant)
    conditions = ["tenant = $1"]
    for column, values in (
        ("source", query.sources),
        ("topic", query.topics),
        ("reason_code", query.reasons),
    ):
        if values:
            conditions.append(f"{column} = ANY({params.add(list(values))}::text[])")
    for condition, value in (
        ("received_at_us >=", query.since_us),
        ("received_at_us <=", query.until_us),
        ("seq >", query.after),
        ("seq <", query.before),
    ):
        if value is not None:
            conditions.append(f"{condition} {params.add(value)}")
    direction = "ASC" if query.order == "asc" else "DESC"
    sql = (
        f"SELECT {_COLUMNS} FROM dead_letters WHERE {' AND '.join(conditions)} "
        f"ORDER BY seq {direction} LIMIT {params.add(max(query.limit, 0))}"
    )
    return sql, params.values


class PostgresDeadLetters(DeadLetterWriter):
    def __init__(self, store: PostgresStore) -> None:
        self._store = store  # its pool

    async def _insert(self, letter: DeadLetter) -> int:
        values = rows.dead_letter_insert(letter)
        seq = await self._store.run(lambda conn: conn.fetchval(Q["insert_dead_letter"], *values))
        return int(seq)

    async def get(self, letter_id: str, tenant: str = DEFAULT_TENANT) -> DeadLetter | None:
        async def run(conn: Any) -> DeadLetter | None:
            found = await conn.fetchrow(Q["get_dead_letter"], tenant, letter_id)
            return rows.dead_letter(found) if found else None

        return await self._store.run(run)

    async def find(self, query: DeadLetterQuery, tenant: str = DEFAULT_TENANT) -> list[DeadLetter]:
        sql, params = list_sql(tenant, query)

        async def run(conn: Any) -> list[DeadLetter]:
            return [rows.dead_letter(r) for r in await conn.fetch(sql, *params)]

        return await self._store.run(run)

    async def delete(self, letter_id: str, tenant: str = DEFAULT_TENANT) -> bool:
        async def run(conn: Any) -> bool:
            status: str = await conn.execute(Q["delete_dead_letter"], tenant, letter_id)
            return status != "DELETE 0"

        return await self._store.run(run)

    async def last_seq(self, tenant: str = DEFAULT_TENANT) -> int:
        value = await self._store.run(lambda conn: conn.fetchval(Q["last_dead_letter"], tenant))
        return int(value)
