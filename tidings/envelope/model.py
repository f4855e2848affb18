"""The envelope: one shape for every event, whatever brought it in."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from tidings.envelope.timefmt import format_us

DEFAULT_TENANT = "default"


@dataclass(slots=True)
class Candidate:
    """A validated event not yet stored: everything but ``seq`` and ``received_at``."""

    id: str
    type: str
    source: str
    subject: str | None
    time_us: int
    trace_id: str
    idempotency_key: str | None
    data_json: str  # the event's data, already JSON-encoded once, as stored
    metadata_json: str
    tenant: str = DEFAULT_TENANT
    # The unique key that makes a repeat a duplicate: the idempotency key, or for a
    # CloudEvent with a client-chosen id, (source, id). None: never a duplicate.
    dedupe_key: str | None = None

    def stored(self, seq: int, received_at_us: int) -> Event:
        """The event this candidate became when the store gave it a position."""
        return Event(
            seq,
            self.id,
            self.type,
            self.source,
            self.subject,
            self.time_us,
            received_at_us,
            self.trace_id,
            self.idempotency_key,
            self.data_json,
            self.metadata_json,
            self.tenant,
        )


@dataclass(slots=True)
class Event:
    """A stored event. ``seq`` is its position; ``received_at_us`` never decreases with seq."""

    seq: int
    id: str
    type: str
    source: str
    subject: str | None
    time_us: int
    received_at_us: int
    trace_id: str
    idempotency_key: str | None
    data_json: str
    metadata_json: str
    tenant: str = DEFAULT_TENANT
    _encoded: bytes | None = field(default=None, repr=False, compare=False)
    # Frames built from the encoding, by wire format ("sse"...), shared by every consumer.
    wire: dict[str, bytes] = field(default_factory=dict, repr=False, compare=False)

    # data and metadata decoded once, for filters that look inside them (read-only use)
    _parsed: tuple[Any, dict[str, Any]] | None = field(default=None, repr=False, compare=False)

    @property
    def data(self) -> Any:
        """A fresh copy of the event's data, safe to change."""
        return orjson.loads(self.data_json)

    @property
    def metadata(self) -> dict[str, Any]:
        value = orjson.loads(self.metadata_json)
        return value if isinstance(value, dict) else {}

    def parsed(self) -> tuple[Any, dict[str, Any]]:
        """``(data, metadata)`` decoded once and shared: for matching, never to be changed."""
        if self._parsed is None:
            self._parsed = (self.data, self.metadata)
        return self._parsed

    def to_dict(self) -> dict[str, Any]:
        """The event as the public API returns it (DESIGN.md section 4)."""
        out = self._head()
        out["data"] = self.data
        out["metadata"] = self.metadata
        return out

    def _head(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "seq": self.seq,
            "type": self.type,
            "source": self.source,
            "subject": self.subject,
            "time": format_us(self.time_us),
            "received_at": format_us(self.received_at_us),
            "trace_id": self.trace_id,
            "idempotency_key": self.idempotency_key,
        }

    def encode(self) -> bytes:
        """The event's JSON, built once and reused for every consumer and wire format."""
        if self._encoded is None:
            head = self._head()
            # Splice the stored JSON of data and metadata in rather than decode and re-encode.
            self._encoded = b"".join(
                (
                    orjson.dumps(head)[:-1],
                    b',"data":',
                    self.data_json.encode(),
                    b',"metadata":',
                    self.metadata_json.encode(),
                    b"}",
                )
            )
        return self._encoded


@dataclass(slots=True)
class AppendResult:
    """What the store answers for one stored (or deduplicated) event."""

    id: str
    seq: int
    duplicate: bool

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "seq": self.seq, "duplicate": self.duplicate}
