"""Turn publish input (JSON objects) into candidates, or explain precisely what is wrong.

Validation is pydantic's (its Rust core is fast enough for the publish path); this module
adds the rules pydantic cannot state and reshapes its errors into the 422 ``details`` form of
DESIGN.md section 4: ``{"loc": ["body", <index in a batch>, <field>], "msg": "..."}``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, cast

import orjson
from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    field_validator,
)

from tidings.envelope.common_shape import CommonEvent, check_common
from tidings.envelope.ids import new_trace_id, new_trace_ids, uuid7, uuid7s
from tidings.envelope.model import DEFAULT_TENANT, Candidate
from tidings.envelope.timefmt import now_us, to_us
from tidings.envelope.types import type_error
from tidings.errors import TidingsError, invalid

_Printable = Annotated[
    str, StringConstraints(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$")
]
_TraceId = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{32}$")]


class EventIn(BaseModel):
    """One event as a producer sends it (DESIGN.md section 4, "Input")."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: str
    source: _Printable = "api"
    subject: Annotated[str, StringConstraints(max_length=1000)] | None = None
    data: Any = Field(default=None, validation_alias=AliasChoices("data", "payload"))
    metadata: dict[str, Any] = Field(default_factory=dict)
    id: _Printable | None = None
    time: datetime | None = None
    trace_id: _TraceId | None = None
    idempotency_key: _Printable | None = None

    @field_validator("type")
    @classmethod
    def _valid_type(cls, value: str) -> str:
        problem = type_error(value)
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("time", mode="before")
    @classmethod
    def _iso_time(cls, value: Any) -> Any:
        if value is not None and not isinstance(value, str | datetime):
            raise ValueError("time must be an ISO 8601 string such as 2026-11-23T10:00:00Z")
        return value

    @field_validator("trace_id")
    @classmethod
    def _nonzero_trace(cls, value: str | None) -> str | None:
        if value == "0" * 32:
            raise ValueError("trace_id must not be all zeros (W3C Trace Context)")
        return value


_ONE = TypeAdapter(EventIn)


@dataclass(frozen=True, slots=True)
class Limits:
    max_event_bytes: int = 262_144
    max_batch: int = 1000


@dataclass(frozen=True, slots=True)
class PublishContext:
    """Defaults that come from the request rather than the body."""

    trace_id: str | None = None  # from a W3C traceparent header
    idempotency_key: str | None = None  # from the Idempotency-Key header
    tenant: str = DEFAULT_TENANT


def _details(error: ValidationError, prefix: tuple[str | int, ...]) -> list[dict[str, Any]]:
    details = []
    for item in error.errors(include_url=False):
        message = item["msg"].removeprefix("Value error, ")
        loc = list(prefix) + [part for part in item["loc"] if part not in ("function-after",)]
        if item["type"] == "extra_forbidden":
            message = "unknown field"
        elif item["type"] == "missing":
            message = "field required"
        details.append({"loc": loc, "msg": message})
    return details


def check_size(raw: Any, limits: Limits, loc: list[str | int]) -> None:
    """413 when one event's JSON is larger than ``TIDINGS_MAX_EVENT_BYTES``."""
    try:
        size = len(orjson.dumps(raw))
    except orjson.JSONEncodeError as error:
        raise invalid(
            "the event cannot be encoded as JSON", [{"loc": loc, "msg": str(error)}]
        ) from None
    if size > limits.max_event_bytes:
        raise TidingsError(
            413,
            "event_too_large",
            f"an event is {size} bytes of JSON; the limit is {limits.max_event_bytes} "
            "(TIDINGS_MAX_EVENT_BYTES)",
            details=[{"loc": loc, "msg": f"{size} bytes > {limits.max_event_bytes}"}],
        )


def to_candidate(
    model: EventIn,
    ctx: PublishContext,
    *,
    idempotency_key: str | None = None,
    dedupe_key: str | None = None,
) -> Candidate:
    key = model.idempotency_key or idempotency_key
    return Candidate(
        id=model.id or uuid7(),
        type=model.type,
        source=model.source,
        subject=model.subject,
        time_us=to_us(model.time) if model.time is not None else now_us(),
        trace_id=model.trace_id or ctx.trace_id or new_trace_id(),
        idempotency_key=key,
        data_json=orjson.dumps(model.data).decode(),
        metadata_json=orjson.dumps(model.metadata).decode(),
        tenant=ctx.tenant,
        dedupe_key=dedupe_key or (f"k:{key}" if key else None),
    )


def parse_event(raw: Any, ctx: PublishContext, limits: Limits, loc: list[str | int]) -> EventIn:
    """Validate one event object; raise 413 or 422 naming ``loc`` and the field."""
    if not isinstance(raw, dict):
        raise invalid(
            "an event must be a JSON object", [{"loc": loc, "msg": "expected a JSON object"}]
        )
    check_size(raw, limits, loc)
    try:
        return _ONE.validate_python(raw)
    except ValidationError as error:
        raise invalid("the event is not valid", _details(error, tuple(loc))) from None


def candidates_from_json(
    body: Any, ctx: PublishContext, limits: Limits
) -> tuple[list[Candidate], bool]:
    """Validate a publish body: one event object, or a JSON array of them (a batch).

    Returns the candidates and whether the body was a batch. A batch is all or nothing: any
    invalid item refuses the whole request, naming each bad item's index. Events in the
    common shape are checked by hand (``common_shape``); every other one, and every one that
    check is unsure of, goes through the full validator, which words the errors.
    """
    if isinstance(body, dict):
        common = check_common(body, limits.max_event_bytes)
        if common is not None:
            return _from_common([common], ctx, [ctx.idempotency_key]), False
        model = parse_event(body, ctx, limits, ["body"])
        return [to_candidate(model, ctx, idempotency_key=ctx.idempotency_key)], False
    if not isinstance(body, list):
        raise invalid(
            "the body must be an event object or an array of events",
            [{"loc": ["body"], "msg": "expected a JSON object or array"}],
        )
    check_batch(len(body), limits)
    keys = [batch_key(ctx.idempotency_key, index) for index in range(len(body))]
    commons = [check_common(raw, limits.max_event_bytes) for raw in body]
    if None not in commons:  # the usual batch: every event in the common shape
        return _from_common(cast(list[CommonEvent], commons), ctx, keys), True
    models: list[EventIn | CommonEvent] = []
    details: list[dict[str, Any]] = []
    for index, (raw, common) in enumerate(zip(body, commons, strict=True)):
        if common is not None:
            models.append(common)
            continue
        try:
            models.append(parse_event(raw, ctx, limits, ["body", index]))
        except TidingsError as error:
            if error.status != 422:
                raise
            details.extend(error.details)
    if details:
        raise invalid(f"{_count_items(details)} of {len(body)} events are not valid", details)
    return [
        _from_common([model], ctx, [keys[index]])[0]
        if isinstance(model, CommonEvent)
        else to_candidate(model, ctx, idempotency_key=keys[index])
        for index, model in enumerate(models)
    ], True


def _from_common(
    events: list[CommonEvent], ctx: PublishContext, keys: list[str | None]
) -> list[Candidate]:
    """Candidates for hand-checked events: ids, trace ids and the time drawn once per batch."""
    count = len(events)
    ids = uuid7s(count)
    traces = [ctx.trace_id] * count if ctx.trace_id else new_trace_ids(count)
    time_us = now_us()
    tenant = ctx.tenant
    return [
        Candidate(
            id=ids[index],
            type=event.type,
            source=event.source,
            subject=event.subject,
            time_us=time_us,
            trace_id=traces[index],
            idempotency_key=key,
            data_json=event.data_json,
            metadata_json=event.metadata_json,
            tenant=tenant,
            dedupe_key=f"k:{key}" if key else None,
        )
        for index, (event, key) in enumerate(zip(events, keys, strict=True))
    ]


def batch_key(header_key: str | None, index: int) -> str | None:
    """An ``Idempotency-Key`` header on a batch makes item i's key ``<key>:<i>``.

    A retried batch request then deduplicates item by item.
    """
    return f"{header_key}:{index}" if header_key else None


def check_batch(count: int, limits: Limits) -> None:
    if count == 0:
        raise invalid("the batch is empty", [{"loc": ["body"], "msg": "expected 1 or more events"}])
    if count > limits.max_batch:
        raise TidingsError(
            413,
            "batch_too_large",
            f"a batch holds at most {limits.max_batch} events (TIDINGS_MAX_BATCH); "
            f"this one has {count}",
        )


def _count_items(details: list[dict[str, Any]]) -> int:
    return len({d["loc"][1] for d in details if len(d["loc"]) > 1})
