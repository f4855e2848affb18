"""``DeadLetterStore`` on the embedded SQLite store.

Writes go through the store's one writer thread, each in its own committed transaction, so a
dead letter is durable before the input is acknowledged. Reads use the store's reader pool.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from tidings.envelope import DEFAULT_TENANT
from tidings.store import rows
from tidings.store.dead_letters import DeadLetter, DeadLetterQuery, DeadLetterWriter
from tidings.store.sql import load_queries
from tidings.store.sqlite.store import SqliteStore

Q = load_queries("tidings.store.sqlite", "dead_letters.sql")
_COLUMNS = "seq, id, tenant, source, reason_code, reason, raw, topic, headers, received_at_us"


def list_sql(tenant: str, query: DeadLetterQuery) -> tuple[str, list[Any]]:
    """The list query: fixed fragments joined by the filters that are set."""
    conditions, params = ["tenant = ?"], list[Any]([tenant])
    for column, values in (
        ("source", query.sources),
        ("topic", query.topics),
        ("reason_code", query.reasons),
    ):
        if values:
            conditions.append(f"{column} IN ({', '.join('?' for _ in values)})")
            params.extend(values)
    for condition, value in (
        ("received_at_us >= ?", query.since_us),
        ("received_at_us <= ?", query.until_us),
        ("seq > ?", query.after),
        ("seq < ?", query.before),
    ):
        if value is not None:
            conditions.append(condition)
            params.append(value)
    direction = "ASC" if query.order == "asc" else "DESC"
    sql = (
        f"SELECT {_COLUMNS} FROM dead_letters WHERE {' AND '.join(conditions)} "
        f"ORDER BY seq {direction} LIMIT ?"
    )
    return sql, [*params, max(query.limit, 0)]


class SqliteDeadLetters(DeadLetterWriter):
    def __init__(self, store: SqliteStore) -> None:
        self._store = store  # its writer thread and reader pool do the work

    async def _insert(self, letter: DeadLetter) -> int:
        values = rows.dead_letter_insert(letter)

        def insert(conn: sqlite3.Connection) -> int:
            seq = conn.execute(Q["insert_dead_letter"], values).lastrowid
            assert seq is not None
            return seq

        seq: int = await self._store.write(insert)
        return seq

    async def get(self, letter_id: str, tenant: str = DEFAULT_TENANT) -> DeadLetter | None:
        def read(conn: sqlite3.Connection) -> DeadLetter | None:
            found = conn.execute(Q["get_dead_letter"], (tenant, letter_id)).fetchone()
            return rows.dead_letter(found) if found else None

        return await self._store.read(read)

    async def find(self, query: DeadLetterQuery, tenant: str = DEFAULT_TENANT) -> list[DeadLetter]:
        sql, params = list_sql(tenant, query)
        return await self._store.read(
            lambda conn: [rows.dead_letter(r) for r in conn.execute(sql, params)]
        )

    async def delete(self, letter_id: str, tenant: str = DEFAULT_TENANT) -> bool:
        return await self._store.write(
            lambda conn: conn.execute(Q["delete_dead_letter"], (tenant, letter_id)).rowcount > 0
        )

    async def last_seq(self, tenant: str = DEFAULT_TENANT) -> int:
        return await self._store.read(
            lambda conn: int(conn.execute(Q["last_dead_letter"], (tenant,)).fetchone()[0])
        )
