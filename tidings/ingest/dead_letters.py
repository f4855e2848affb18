"""Dead letters in the SQLite store: input parked with its raw bytes and the reason.

Writes go through the store's one writer thread, each in its own committed transaction, so a
dead letter is durable before the input is acknowledged. Reads use the store's reader pool.
"""

from __future__ import annotations

import base64
import sqlite3
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from tidings.envelope import DEFAULT_TENANT
from tidings.envelope.ids import uuid7
from tidings.envelope.timefmt import format_us, now_us
from tidings.store.sql import load_queries
from tidings.store.sqlite import SqliteStore

QUERIES = load_queries("tidings.ingest", "dead_letters.sql")
_COLUMNS = "seq, id, tenant, source, reason_code, reason, raw, topic, headers, received_at_us"


@dataclass(frozen=True, slots=True)
class DeadLetter:
    seq: int  # its position among dead letters: orders and pages the list
    id: str
    tenant: str
    source: str
    reason_code: str  # one of mapping.REASON_CODES
    reason: str  # "<code>: <human sentence>"
    raw: bytes  # the input exactly as received
    topic: str | None  # the MQTT topic or the PG NOTIFY channel
    headers: dict[str, str]  # the webhook headers its mapping reads
    received_at_us: int

    def to_dict(self) -> dict[str, Any]:
        """As the API returns it: ``raw`` as text when it is UTF-8, else base64."""
        out: dict[str, Any] = {
            "id": self.id,
            "source": self.source,
            "reason": self.reason,
            "raw": None,
            "received_at": format_us(self.received_at_us),
            "topic": self.topic,
        }
        try:
            out["raw"] = self.raw.decode("utf-8")
        except UnicodeDecodeError:
            out["raw"] = base64.b64encode(self.raw).decode()
            out["raw_encoding"] = "base64"
        return out


@dataclass(frozen=True, slots=True)
class DeadLetterQuery:
    """Filters of the list and the bulk redrive; bounds on seq are exclusive."""

    sources: tuple[str, ...] = ()
    topics: tuple[str, ...] = ()
    reasons: tuple[str, ...] = ()  # reason codes
    since_us: int | None = None  # received_at >= since
    until_us: int | None = None  # received_at <= until
    after: int | None = None
    before: int | None = None
    order: Literal["asc", "desc"] = "desc"
    limit: int = 100


def _row(row: tuple[Any, ...]) -> DeadLetter:
    seq, id_, tenant, source, code, reason, raw, topic, headers, received = row
    decoded = orjson.loads(headers) if headers else {}
    return DeadLetter(seq, id_, tenant, source, code, reason, bytes(raw), topic, decoded, received)


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


class DeadLetters:
    """Add, read, list and delete dead letters of one SQLite store."""

    def __init__(self, store: SqliteStore) -> None:
        self.store = store  # its writer thread and reader pool do the work

    async def add(
        self,
        *,
        source: str,
        reason_code: str,
        reason: str,
        raw: bytes,
        topic: str | None = None,
        headers: dict[str, str] | None = None,
        tenant: str = DEFAULT_TENANT,
    ) -> DeadLetter:
        """Store one dead letter and answer once it is committed."""
        letter = DeadLetter(
            0, uuid7(), tenant, source, reason_code, reason, raw, topic, headers or {}, now_us()
        )
        row = (
            letter.tenant,
            letter.id,
            letter.source,
            letter.reason_code,
            letter.reason,
            sqlite3.Binary(letter.raw),
            letter.topic,
            orjson.dumps(letter.headers).decode(),
            letter.received_at_us,
        )

        def insert(conn: sqlite3.Connection) -> int:
            seq = conn.execute(QUERIES["insert_dead_letter"], row).lastrowid
            assert seq is not None
            return seq

        # The store offers no public write hook yet; its writer runs fn(conn) in a transaction.
        seq: int = await self.store.write(insert)
        return DeadLetter(
            seq,
            letter.id,
            tenant,
            source,
            reason_code,
            reason,
            raw,
            topic,
            letter.headers,
            letter.received_at_us,
        )

    async def get(self, letter_id: str, tenant: str = DEFAULT_TENANT) -> DeadLetter | None:
        def read(conn: sqlite3.Connection) -> DeadLetter | None:
            found = conn.execute(QUERIES["get_dead_letter"], (tenant, letter_id)).fetchone()
            return _row(found) if found else None

        return await self.store.read(read)

    async def find(self, query: DeadLetterQuery, tenant: str = DEFAULT_TENANT) -> list[DeadLetter]:
        sql, params = list_sql(tenant, query)
        return await self.store.read(lambda conn: [_row(r) for r in conn.execute(sql, params)])

    async def delete(self, letter_id: str, tenant: str = DEFAULT_TENANT) -> bool:
        """Delete one dead letter; False when there was none with this id."""

        def remove(conn: sqlite3.Connection) -> bool:
            return conn.execute(QUERIES["delete_dead_letter"], (tenant, letter_id)).rowcount > 0

        deleted: bool = await self.store.write(remove)
        return deleted

    async def last_seq(self, tenant: str = DEFAULT_TENANT) -> int:
        """The newest dead letter's position: a bulk redrive stops there."""
        return await self.store.read(
            lambda conn: int(conn.execute(QUERIES["last_dead_letter"], (tenant,)).fetchone()[0])
        )


class MemoryDeadLetters:
    """``DeadLetters`` in a list, for a store without SQLite (tests, ``tidings.testing``)."""

    def __init__(self) -> None:
        self._letters: list[DeadLetter] = []  # in seq order
        self._seq = 0

    async def add(
        self,
        *,
        source: str,
        reason_code: str,
        reason: str,
        raw: bytes,
        topic: str | None = None,
        headers: dict[str, str] | None = None,
        tenant: str = DEFAULT_TENANT,
    ) -> DeadLetter:
        self._seq += 1
        letter = DeadLetter(
            self._seq,
            uuid7(),
            tenant,
            source,
            reason_code,
            reason,
            raw,
            topic,
            dict(headers or {}),
            now_us(),
        )
        self._letters.append(letter)
        return letter

    async def get(self, letter_id: str, tenant: str = DEFAULT_TENANT) -> DeadLetter | None:
        return next((d for d in self._letters if (d.tenant, d.id) == (tenant, letter_id)), None)

    async def find(self, query: DeadLetterQuery, tenant: str = DEFAULT_TENANT) -> list[DeadLetter]:
        found = [d for d in self._letters if d.tenant == tenant and _matches(d, query)]
        if query.order == "desc":
            found.reverse()
        return found[: max(query.limit, 0)]

    async def delete(self, letter_id: str, tenant: str = DEFAULT_TENANT) -> bool:
        before = len(self._letters)
        self._letters = [d for d in self._letters if (d.tenant, d.id) != (tenant, letter_id)]
        return len(self._letters) < before

    async def last_seq(self, tenant: str = DEFAULT_TENANT) -> int:
        return max((d.seq for d in self._letters if d.tenant == tenant), default=0)


def _matches(letter: DeadLetter, query: DeadLetterQuery) -> bool:
    checks = (
        not query.sources or letter.source in query.sources,
        not query.topics or letter.topic in query.topics,
        not query.reasons or letter.reason_code in query.reasons,
        query.since_us is None or letter.received_at_us >= query.since_us,
        query.until_us is None or letter.received_at_us <= query.until_us,
        query.after is None or letter.seq > query.after,
        query.before is None or letter.seq < query.before,
    )
    return all(checks)


DeadLetterStore = DeadLetters | MemoryDeadLetters


def open_dead_letters(store: object) -> DeadLetterStore:
    """Dead letters beside ``store``: in its SQLite file, else in memory."""
    return DeadLetters(store) if isinstance(store, SqliteStore) else MemoryDeadLetters()
