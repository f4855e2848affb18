"""``/v1/events``: publish, history, one event, export. Handlers parse, call a part, answer."""

from __future__ import annotations

import csv
import io
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any
from urllib.parse import quote

import orjson
from fastapi import APIRouter, Request
from fastapi import Query as Q
from starlette.responses import Response, StreamingResponse

from tidings.api.body import JSON_TYPES, media_type, parse_json, read_body
from tidings.api.params import EXPORT_PARAMS, make_cursor, parse_query
from tidings.api.responses import created_response, json_response, raw_json_response
from tidings.api.schemas import (
    PUBLISH_BODY,
    PUBLISH_RESPONSES,
    EventOut,
    EventPage,
    error_responses,
)
from tidings.api.tenancy import query_tenant
from tidings.auth.principal import principal_of
from tidings.envelope import Candidate, Event, PublishContext, candidates_from_json
from tidings.envelope import cloudevents as ce
from tidings.envelope.ids import trace_id_from_traceparent
from tidings.errors import TidingsError
from tidings.hub import Hub

router = APIRouter(prefix="/v1/events", tags=["events"])
EXPORT_PAGE = 1000
log = logging.getLogger("tidings.api")
CSV_COLUMNS = (
    "seq",
    "id",
    "type",
    "source",
    "subject",
    "time",
    "received_at",
    "trace_id",
    "idempotency_key",
    "data",
    "metadata",
)

# Query parameters shown in OpenAPI; handlers read request.query_params themselves because
# `data.<path>` filters are open-ended and unknown parameters must be refused.
_FILTER_DOC: dict[str, Any] = {
    "type": Q(None, description="comma list of type patterns; `*` one segment, `#` the rest"),
    "source": Q(None, description="comma list of sources"),
    "exclude_source": Q(None, description="comma list of sources to leave out"),
    "subject": Q(None, description="comma list of subjects"),
    "trace_id": Q(None, description="comma list of trace ids"),
    "since": Q(None, description="received_at >= this ISO 8601 time"),
    "until": Q(None, description="received_at <= this ISO 8601 time"),
    "time_since": Q(None, description="the producer's time >= this"),
    "time_until": Q(None, description="the producer's time <= this"),
    "after": Q(None, description="seq > after"),
    "before": Q(None, description="seq < before"),
    "order": Q(None, description="`desc` (default) or `asc`"),
    "tenant": Q(None, description="root only: read this tenant's events (default: the key's)"),
}


HUB_SCOPE_KEY = "tidings.hub"


def hub_of(request: Request) -> Hub:
    hub: Hub | None = request.scope.get(HUB_SCOPE_KEY)  # put there by the publish fast path
    if hub is None:
        hub = request.app.state.hub
    return hub


def _context(request: Request) -> PublishContext:
    key = request.headers.get("idempotency-key")
    if key is not None and (not key or len(key) > 200 or not key.isprintable()):
        raise TidingsError(
            400, "invalid_idempotency_key", "Idempotency-Key must be 1-200 printable characters"
        )
    return PublishContext(
        trace_id=trace_id_from_traceparent(request.headers.get("traceparent")),
        idempotency_key=key,
        tenant=principal_of(request.scope).tenant,
    )


async def _candidates(
    request: Request, hub: Hub, binary: bool, kind: str
) -> tuple[list[Candidate], bool]:
    body = await read_body(request, hub.settings.max_body_bytes)
    ctx = _context(request)
    if binary:
        return ce.from_binary(request.headers, body, ctx, hub.limits), False
    if kind in JSON_TYPES or kind == "":
        return candidates_from_json(parse_json(body), ctx, hub.limits)
    if kind == ce.STRUCTURED:
        return ce.from_structured(parse_json(body), ctx, hub.limits), False
    if kind == ce.BATCH:
        return ce.from_batch(parse_json(body), ctx, hub.limits), True
    raise TidingsError(
        415,
        "unsupported_media_type",
        f"Content-Type {kind!r} is not accepted; send application/json, "
        f"{ce.STRUCTURED}, {ce.BATCH}, or CloudEvents binary mode (ce-* headers)",
    )


@router.post(
    "",
    status_code=201,
    summary="Publish one event, a batch, or CloudEvents",
    openapi_extra=PUBLISH_BODY,
    responses=PUBLISH_RESPONSES,
)
async def publish(request: Request) -> Response:
    started = time.perf_counter()
    hub = hub_of(request)
    binary = "ce-specversion" in request.headers  # binary mode; the lookup ignores case
    kind = media_type(request)
    candidates, batch = await _candidates(request, hub, binary, kind)
    hub.auth.check_rate(principal_of(request.scope), len(candidates))
    transport = "cloudevents" if binary or kind.startswith("application/cloudevents") else "http"
    try:
        results = await hub.publisher.publish(candidates, transport=transport, started=started)
    except TidingsError as error:
        if not batch:  # a single event's fields are at ["body", field], not ["body", 0, ...]
            for detail in error.details:
                loc = detail.get("loc")
                if isinstance(loc, list) and loc[:2] == ["body", 0]:
                    detail["loc"] = ["body", *loc[2:]]
        raise
    fresh = any(not r.duplicate for r in results)
    status = 201 if fresh else 200
    if batch:
        return json_response({"events": [r.to_dict() for r in results]}, status)
    result = results[0]
    if not fresh:
        return json_response(result.to_dict(), status)
    # A client-chosen id may hold any character; a header holds only ASCII (stored already:
    # a failure to encode the answer must not turn an acknowledged event into a 500). A
    # generated id needs no quoting.
    id_ = result.id
    plain = id_.isascii() and id_.replace("-", "").isalnum()
    return created_response(
        orjson.dumps(result.to_dict()), f"/v1/events/{id_ if plain else quote(id_, safe='')}"
    )


def _page_body(events: list[Event], next_cursor: str | None) -> bytes:
    """``{"events": [...], "next": ...}`` built from each event's cached encoding."""
    return b"".join(
        (
            b'{"events":[',
            b",".join(e.encode() for e in events),
            b'],"next":',
            orjson.dumps(next_cursor),
            b"}",
        )
    )


@router.get(
    "",
    summary="Query history",
    response_model=EventPage,
    responses=error_responses(400, 403),
    openapi_extra={
        "description": (
            "Also accepts `data.<path>=v1,v2` and `metadata.<path>=...` equality filters."
        )
    },
)
async def list_events(
    request: Request,
    type: str | None = _FILTER_DOC["type"],
    source: str | None = _FILTER_DOC["source"],
    exclude_source: str | None = _FILTER_DOC["exclude_source"],
    subject: str | None = _FILTER_DOC["subject"],
    trace_id: str | None = _FILTER_DOC["trace_id"],
    since: str | None = _FILTER_DOC["since"],
    until: str | None = _FILTER_DOC["until"],
    time_since: str | None = _FILTER_DOC["time_since"],
    time_until: str | None = _FILTER_DOC["time_until"],
    after: str | None = _FILTER_DOC["after"],
    before: str | None = _FILTER_DOC["before"],
    order: str | None = _FILTER_DOC["order"],
    limit: str | None = Q(None, description="1-1000, default 100"),
    cursor: str | None = Q(None, description="the `next` of the previous page"),
    tenant: str | None = _FILTER_DOC["tenant"],
) -> Response:
    hub = hub_of(request)
    query = parse_query(request.query_params)
    owner = await query_tenant(request)
    events = await hub.store.query(owner, replace(query, limit=query.limit + 1))
    more = len(events) > query.limit
    events = events[: query.limit]
    next_cursor = make_cursor(query, events[-1].seq) if more and events else None
    return raw_json_response(_page_body(events, next_cursor))


@router.get(
    "/export",
    summary="Export history as NDJSON or CSV (streamed)",
    responses={
        200: {"content": {"application/x-ndjson": {}, "text/csv": {}}},
        **error_responses(400, 403),
    },
)
async def export_events(
    request: Request,
    format: str | None = Q(None, description="`ndjson` (default) or `csv`"),
    type: str | None = _FILTER_DOC["type"],
    source: str | None = _FILTER_DOC["source"],
    trace_id: str | None = _FILTER_DOC["trace_id"],
    since: str | None = _FILTER_DOC["since"],
    until: str | None = _FILTER_DOC["until"],
    order: str | None = Q(None, description="`asc` (default) or `desc`"),
    limit: str | None = Q(None, description="stop after this many events (default: all)"),
    tenant: str | None = _FILTER_DOC["tenant"],
) -> Response:
    hub = hub_of(request)
    kind = request.query_params.get("format") or "ndjson"  # empty: not given, as elsewhere
    if kind not in ("ndjson", "csv"):
        raise TidingsError(400, "invalid_parameter", "format must be 'ndjson' or 'csv'")
    query = parse_query(
        request.query_params, allowed=EXPORT_PARAMS, default_order="asc", default_limit=None
    )
    # Bound the export to what was committed when it started, so it ends.
    if query.order == "asc":
        head = hub.store.head()
        query = replace(
            query, before=head + 1 if query.before is None else min(query.before, head + 1)
        )
    total = query.limit or None
    owner = await query_tenant(request)
    encode = _ndjson_lines if kind == "ndjson" else _csv_lines

    async def pages() -> AsyncIterator[bytes]:
        if kind == "csv":
            yield _csv_row(CSV_COLUMNS)
        current, sent = query, 0
        while True:
            size = EXPORT_PAGE if total is None else min(EXPORT_PAGE, total - sent)
            if size <= 0:
                return
            try:
                events = await hub.store.query(owner, replace(current, limit=size))
            except Exception as error:  # the status line is long gone: say it in the body
                log.warning("export ended early: the store read failed: %s", error)
                yield _export_error(kind, sent)
                return
            if not events:
                return
            yield encode(events)
            sent += len(events)
            last = events[-1].seq
            current = (
                replace(current, after=last)
                if current.order == "asc"
                else replace(current, before=last)
            )
            if len(events) < size:
                return

    media = "application/x-ndjson" if kind == "ndjson" else "text/csv; charset=utf-8"
    filename = f"tidings-events.{'ndjson' if kind == 'ndjson' else 'csv'}"
    return StreamingResponse(
        pages(),
        media_type=media,
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


def _export_error(kind: str, sent: int) -> bytes:
    """The last line of an export cut short: an error object (NDJSON) or an ``error`` row."""
    message = f"the store could not be read after {sent} events; the export is incomplete"
    if kind == "ndjson":
        return orjson.dumps({"error": {"code": "store_error", "message": message}}) + b"\n"
    return _csv_row(["error", "store_error", message])


def _ndjson_lines(events: list[Event]) -> bytes:
    return b"".join(e.encode() + b"\n" for e in events)


def _csv_row(values: tuple[Any, ...] | list[Any]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(values)
    return buffer.getvalue().encode()


def _csv_lines(events: list[Event]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    for e in events:
        d = e.to_dict()
        writer.writerow(
            [
                d["seq"],
                d["id"],
                d["type"],
                d["source"],
                d["subject"] or "",
                d["time"],
                d["received_at"],
                d["trace_id"],
                d["idempotency_key"] or "",
                e.data_json,
                e.metadata_json,
            ]
        )
    return buffer.getvalue().encode()


@router.get(
    "/{event_id}",
    summary="One event (CloudEvents with Accept: application/cloudevents+json)",
    response_model=EventOut,
    responses=error_responses(400, 403, 404),
)
async def get_event(
    request: Request, event_id: str, tenant: str | None = _FILTER_DOC["tenant"]
) -> Response:
    event = await hub_of(request).store.get(await query_tenant(request), event_id)
    if event is None:
        raise TidingsError(404, "event_not_found", f"no event with id {event_id!r}")
    if ce.STRUCTURED in request.headers.get("accept", ""):
        return json_response(ce.to_structured(event), headers={"Content-Type": ce.STRUCTURED})
    return raw_json_response(event.encode())
