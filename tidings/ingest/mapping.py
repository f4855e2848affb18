"""From input bytes to event candidates, or to the reason they cannot be (no I/O).

The rules of DESIGN.md section 6: a JSON object with a ``type`` is an event input; other JSON is
the ``data`` of an event of the source's default type; an MQTT ``kind`` envelope maps field by
field; anything else is ``Unmappable`` and becomes a dead letter. Drafts then go through the
same validation as ``POST /v1/events`` (``parse_event``/``to_candidate``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import orjson

from tidings.envelope import Candidate, Limits, PublishContext
from tidings.envelope.timefmt import parse_iso
from tidings.envelope.validate import parse_event, to_candidate
from tidings.errors import TidingsError

ReasonCode = Literal[
    "not_json",
    "invalid_event",
    "invalid_envelope",
    "too_large",
    "idempotency_conflict",
    "unmatched_topic",
    "unmappable",
]
# The fixed set of reason codes: dead letters are filtered and counted by these, never by text.
REASON_CODES: tuple[ReasonCode, ...] = (
    "not_json",
    "invalid_event",
    "invalid_envelope",
    "too_large",
    "idempotency_conflict",
    "unmatched_topic",
    "unmappable",
)
ENVELOPE_FIELDS = ("trace_id", "ts", "kind", "idempotency_key", "payload")
_HEX32 = re.compile(r"[0-9a-f]{32}")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MS_THRESHOLD = 100_000_000_000  # a numeric ts above this is in milliseconds (past year 5138 in s)


class Unmappable(Exception):
    """Input that cannot become events; ``reason`` is what a dead letter records."""

    def __init__(
        self, code: ReasonCode, message: str, details: list[dict[str, Any]] | None = None
    ) -> None:
        super().__init__(message)
        self.code: ReasonCode = code  # one of REASON_CODES
        self.message = message  # one human sentence
        self.details = details or []  # validation details, as a 422 would give them

    @property
    def reason(self) -> str:
        """``<code>: <message>`` with the first validation details: what an operator reads."""
        text = f"{self.code}: {self.message}"
        shown = [
            f"{'.'.join(str(p) for p in d.get('loc', []))}: {d.get('msg', '')}"
            for d in self.details[:5]
        ]
        return text + (" (" + "; ".join(shown) + ")" if shown else "")


def unmappable_from(error: TidingsError) -> Unmappable:
    """The dead-letter reason for a refusal of the validation or the store."""
    if error.status == 413:
        return Unmappable("too_large", error.message, error.details)
    if error.status == 409:
        return Unmappable("idempotency_conflict", error.message, error.details)
    return Unmappable("invalid_event", error.message, error.details)


@dataclass(frozen=True, slots=True)
class Draft:
    """An event input before validation, and the idempotency key its transport supplies."""

    raw: dict[str, Any]
    idempotency_key: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)  # added unless the input sets them


def parse_json(raw: bytes) -> Any:
    if not raw.strip():
        raise Unmappable("not_json", "the input is empty; expected JSON")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        raise Unmappable("not_json", f"the input is not valid JSON: {error}") from None


def generic_draft(value: Any, *, source: str, default_type: str, key: str | None = None) -> Draft:
    """A JSON object with ``type`` is an event input (source defaulting to ``source``);
    any other JSON value is the data of an event of ``default_type``."""
    if isinstance(value, dict) and "type" in value:
        raw = dict(value)
        raw.setdefault("source", source)
        return Draft(raw, key)
    return Draft({"type": default_type, "source": source, "data": value}, key)


def parse_ts(value: Any) -> datetime:
    """An envelope ``ts``: ISO 8601 text, or Unix time in seconds (milliseconds above 10^11)."""
    if isinstance(value, bool):
        raise ValueError("ts must be an ISO 8601 time or a Unix time, not a boolean")
    if isinstance(value, int | float):
        us = int(value * 1000) if abs(value) >= MS_THRESHOLD else int(value * 1_000_000)
        try:
            return _EPOCH + timedelta(microseconds=us)
        except OverflowError:
            raise ValueError(f"ts {value!r} is out of range") from None
    if isinstance(value, str):
        return _EPOCH + timedelta(microseconds=parse_iso(value))
    raise ValueError("ts must be an ISO 8601 time or a Unix time")


def envelope_draft(value: dict[str, Any], event_type: str, source: str) -> Draft:
    """``{trace_id, ts, kind, idempotency_key, payload}`` mapped to trace_id, time,
    metadata.kind, idempotency_key and data. All five are required; other fields are kept in
    ``metadata.extra`` rather than dropped."""
    missing = [
        name
        for name in ENVELOPE_FIELDS
        if name not in value or (value[name] is None and name != "payload")
    ]
    if missing:
        raise Unmappable("invalid_envelope", f"the kind envelope lacks {', '.join(missing)}")
    try:
        time = parse_ts(value["ts"])
    except (ValueError, OverflowError) as error:
        raise Unmappable("invalid_envelope", f"ts does not parse: {error}") from None
    trace = value["trace_id"]
    trace_id = trace.replace("-", "").lower() if isinstance(trace, str) else ""
    if not _HEX32.fullmatch(trace_id) or trace_id == "0" * 32:
        raise Unmappable(
            "invalid_envelope", "trace_id must be 32 hex digits (a W3C trace id or a UUID)"
        )
    key = value["idempotency_key"]
    if isinstance(key, int) and not isinstance(key, bool):
        key = str(key)
    if not isinstance(key, str) or not key:
        raise Unmappable("invalid_envelope", "idempotency_key must be a non-empty string")
    if not isinstance(value["kind"], str) or not value["kind"]:
        raise Unmappable("invalid_envelope", "kind must be a non-empty string")
    metadata: dict[str, Any] = {"kind": value["kind"]}
    extra = {k: v for k, v in value.items() if k not in ENVELOPE_FIELDS}
    if extra:
        metadata["extra"] = extra
    raw = {
        "type": event_type,
        "source": source,
        "time": time,
        "trace_id": trace_id,
        "idempotency_key": key,
        "data": value["payload"],
    }
    return Draft(raw, metadata=metadata)


def to_candidates(
    drafts: list[Draft],
    ctx: PublishContext,
    limits: Limits,
    *,
    dedupe_prefix: str | None = None,
) -> list[Candidate]:
    """Validate every draft as ``POST /v1/events`` would; ``Unmappable`` names what failed.

    ``dedupe_prefix`` gives keyless candidates a deduplication key of their own (a redrive
    uses the dead letter's id, so running it twice stores once).
    """
    if len(drafts) > limits.max_batch:
        raise Unmappable(
            "too_large", f"the input maps to {len(drafts)} events; at most {limits.max_batch}"
        )
    candidates: list[Candidate] = []
    details: list[dict[str, Any]] = []
    for index, draft in enumerate(drafts):
        raw = draft.raw
        given = raw.get("metadata")
        if draft.metadata and given is None:
            raw = {**raw, "metadata": draft.metadata}
        elif draft.metadata and isinstance(given, dict):
            raw = {**raw, "metadata": {**draft.metadata, **given}}  # the input's own keys win
        loc: list[str | int] = ["body", index] if len(drafts) > 1 else ["body"]
        try:
            model = parse_event(raw, ctx, limits, loc)
        except TidingsError as error:
            if error.status != 422:
                raise unmappable_from(error) from None
            details.extend(error.details)
            continue
        candidate = to_candidate(model, ctx, idempotency_key=draft.idempotency_key)
        if candidate.dedupe_key is None and dedupe_prefix is not None:
            candidate.dedupe_key = f"{dedupe_prefix}:{index}"
        candidates.append(candidate)
    if details:
        raise Unmappable("invalid_event", "the mapped event is not valid", details)
    return candidates
