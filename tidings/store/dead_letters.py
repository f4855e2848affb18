"""Dead letters: input that could not become events, parked with its raw bytes and the reason
until it is redriven or deleted. A dead letter is durable before its input is acknowledged."""

from __future__ import annotations

import base64
from abc import ABC, abstractmethod
from dataclasses import dataclass, replace
from typing import Any, Literal, Protocol

from tidings.envelope import DEFAULT_TENANT
from tidings.envelope.ids import uuid7
from tidings.envelope.timefmt import format_us, now_us


@dataclass(frozen=True, slots=True)
class DeadLetter:
    seq: int  # its position among dead letters: orders and pages the list
    id: str
    tenant: str
    source: str
    reason_code: str  # one of ingest.mapping.REASON_CODES
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

    def matches(self, letter: DeadLetter) -> bool:
        """Whether a dead letter passes the filters (the limit and order aside)."""
        checks = (
            not self.sources or letter.source in self.sources,
            not self.topics or letter.topic in self.topics,
            not self.reasons or letter.reason_code in self.reasons,
            self.since_us is None or letter.received_at_us >= self.since_us,
            self.until_us is None or letter.received_at_us <= self.until_us,
            self.after is None or letter.seq > self.after,
            self.before is None or letter.seq < self.before,
        )
        return all(checks)


class DeadLetterStore(Protocol):
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
        """Store one dead letter (a new id, received now) and answer once it is committed."""

    async def get(self, letter_id: str, tenant: str = DEFAULT_TENANT) -> DeadLetter | None: ...

    async def find(
        self, query: DeadLetterQuery, tenant: str = DEFAULT_TENANT
    ) -> list[DeadLetter]: ...

    async def delete(self, letter_id: str, tenant: str = DEFAULT_TENANT) -> bool:
        """Delete one dead letter; False when there was none with this id."""

    async def last_seq(self, tenant: str = DEFAULT_TENANT) -> int:
        """The newest dead letter's position (0 when none): a bulk redrive stops there."""


class DeadLetterWriter(ABC):
    """The one :meth:`DeadLetterStore.add` every store shares: a new id, received now, and
    its own copies of the bytes and headers. A store only writes the letter and gives it its
    position."""

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
            0, uuid7(), tenant, source, reason_code, reason, bytes(raw), topic,
            dict(headers or {}), self._received_us(),
        )  # fmt: skip
        return replace(letter, seq=await self._insert(letter))

    def _received_us(self) -> int:
        """When a dead letter arriving now is received (microseconds since the epoch)."""
        return now_us()

    @abstractmethod
    async def _insert(self, letter: DeadLetter) -> int:
        """Commit ``letter`` (its ``seq`` is 0) and answer the position it was given."""
