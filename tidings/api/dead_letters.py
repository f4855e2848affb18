"""``/v1/dead-letters``: list, show, delete and redrive parked input."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import replace
from typing import Any, Literal

import orjson
from fastapi import APIRouter, Request
from fastapi import Query as Q
from starlette.convertors import Convertor, register_url_convertor
from starlette.responses import Response

from tidings.api.body import parse_json, read_body
from tidings.api.ingest import ingest_of
from tidings.api.params import multi_dict
from tidings.api.responses import json_response
from tidings.api.schemas import error_responses
from tidings.api.tenancy import acting_tenant, owner_of, query_tenant
from tidings.auth.principal import principal_of
from tidings.envelope.timefmt import parse_iso
from tidings.errors import TidingsError
from tidings.ingest.manager import IngestManager
from tidings.ingest.mapping import REASON_CODES
from tidings.store.dead_letters import DeadLetter, DeadLetterQuery


class LetterId(Convertor[str]):
    """Any path segment but ``redrive``: ``/v1/dead-letters/redrive`` is the bulk redrive
    (POST only), and must not also read as the dead letter ``redrive`` for GET and DELETE."""

    regex = "(?!redrive$)[^/]+"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("dead_letter_id", LetterId())
router = APIRouter(prefix="/v1/dead-letters", tags=["dead letters"])
MAX_LIMIT = 1000
FILTERS = ("source", "topic", "reason", "since", "until")
LIST_PARAMS = (*FILTERS, "order", "limit", "cursor", "tenant")
MAX_BULK_BODY = 65_536


def _bad(name: str, message: str) -> TidingsError:
    return TidingsError(
        400, "invalid_parameter", message, details=[{"loc": ["query", name], "msg": message}]
    )


def _values(params: Mapping[str, Any], name: str) -> tuple[str, ...]:
    """A comma list, repeated or not (``?source=a&source=b`` is ``source=a,b``)."""
    raw = params.get(name)
    items = raw if isinstance(raw, list) else [raw] if raw is not None else []
    return tuple(v.strip() for item in items for v in str(item).split(",") if v.strip())


def _time(params: Mapping[str, Any], name: str) -> int | None:
    value = params.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise _bad(name, f"{name} must be an ISO 8601 time given once")
    try:
        moment = parse_iso(value)
    except ValueError as error:
        raise _bad(name, str(error)) from None
    if name == "until" and moment % 1000 == 0:
        # Shown to the millisecond, stored to the microsecond: an upper bound given to the
        # millisecond covers all of it, as for /v1/events.
        moment += 999
    return moment


def parse_filters(params: Mapping[str, Any], allowed: tuple[str, ...]) -> DeadLetterQuery:
    for name in params:
        if name not in allowed:
            raise _bad(name, f"unknown parameter {name!r}; expected one of {', '.join(allowed)}")
    reasons = _values(params, "reason")
    for reason in reasons:
        if reason not in REASON_CODES:
            raise _bad("reason", f"reason must be one of {', '.join(REASON_CODES)}")
    return DeadLetterQuery(
        sources=_values(params, "source"),
        topics=_values(params, "topic"),
        reasons=reasons,
        since_us=_time(params, "since"),
        until_us=_time(params, "until"),
    )


def make_cursor(order: str, seq: int) -> str:
    return base64.urlsafe_b64encode(orjson.dumps({"o": order, "s": seq})).decode().rstrip("=")


def apply_cursor(query: DeadLetterQuery, cursor: str) -> DeadLetterQuery:
    try:
        decoded = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        order, seq = decoded["o"], decoded["s"]
        if type(seq) is not int or not 0 <= seq < 2**63:  # a seq the store can compare
            raise ValueError(seq)
    except (binascii.Error, ValueError, KeyError, TypeError, orjson.JSONDecodeError):
        raise _bad("cursor", "cursor is not one this server made; pass `next` as is") from None
    if order != query.order:
        raise _bad("cursor", "the cursor was made for the other order; keep the same parameters")
    return replace(query, after=seq) if order == "asc" else replace(query, before=seq)


def _list_query(params: Mapping[str, Any]) -> DeadLetterQuery:
    query = parse_filters(params, LIST_PARAMS)
    order = params.get("order") or "desc"
    if order not in ("asc", "desc"):
        raise _bad("order", "order must be 'asc' or 'desc'")
    limit_text = params.get("limit") or "100"
    try:
        limit = int(limit_text)
    except (TypeError, ValueError):
        raise _bad("limit", "limit must be an integer") from None
    if not 1 <= limit <= MAX_LIMIT:
        raise _bad("limit", f"limit must be between 1 and {MAX_LIMIT}")
    direction: Literal["asc", "desc"] = "asc" if order == "asc" else "desc"
    query = replace(query, order=direction, limit=limit)
    cursor = params.get("cursor")
    return apply_cursor(query, cursor) if isinstance(cursor, str) and cursor else query


async def _audit(request: Request, tenant: str, action: str, data: dict[str, Any]) -> None:
    """An audit event in the log of the tenant the action touched."""
    actor = principal_of(request.scope)
    await request.app.state.hub.auditor.record(tenant, "dead_letter", action, actor, data)


async def _owner(request: Request, manager: IngestManager, letter_id: str) -> str:
    """The tenant of the dead letter (any tenant's for a root key)."""
    return await owner_of(request, lambda tenant: manager.dead_letters.get(letter_id, tenant))


async def _letter(manager: IngestManager, letter_id: str, tenant: str) -> DeadLetter:
    letter = await manager.dead_letters.get(letter_id, tenant)
    if letter is None:
        raise TidingsError(404, "dead_letter_not_found", f"no dead letter with id {letter_id!r}")
    return letter


@router.get("", summary="List dead letters, newest first", responses=error_responses(400))
async def list_dead_letters(
    request: Request,
    source: str | None = Q(None, description="comma list of sources"),
    topic: str | None = Q(None, description="comma list of MQTT topics or PG NOTIFY channels"),
    reason: str | None = Q(None, description="comma list of reason codes"),
    since: str | None = Q(None, description="received_at >= this ISO 8601 time"),
    until: str | None = Q(None, description="received_at <= this ISO 8601 time"),
    order: str | None = Q(None, description="`desc` (default) or `asc`"),
    limit: str | None = Q(None, description="1-1000, default 100"),
    cursor: str | None = Q(None, description="the `next` of the previous page"),
    tenant: str | None = Q(None, description="root only: the dead letters of this tenant"),
) -> Response:
    manager = ingest_of(request)
    query = _list_query(multi_dict(request.query_params))
    owner = await query_tenant(request)
    letters = await manager.dead_letters.find(replace(query, limit=query.limit + 1), owner)
    more = len(letters) > query.limit
    letters = letters[: query.limit]
    next_cursor = make_cursor(query.order, letters[-1].seq) if more and letters else None
    return json_response({"dead_letters": [d.to_dict() for d in letters], "next": next_cursor})


@router.post(
    "/redrive",
    summary="Redrive every dead letter matching source, topic, reason, since, until",
    responses=error_responses(400, 403, 422),
    openapi_extra={
        "description": "The filters come as query parameters or as a JSON object body; "
        "a root key may name another tenant with `tenant` in either."
    },
)
async def redrive_many(request: Request) -> Response:
    manager = ingest_of(request)
    params: dict[str, Any] = dict(multi_dict(request.query_params))
    body = await read_body(request, MAX_BULK_BODY)
    where: Literal["body", "query"] = "query"
    if body.strip():
        given = parse_json(body)
        if not isinstance(given, dict):
            raise TidingsError(400, "invalid_parameter", "the body must be a JSON object")
        if given.get("tenant") is not None:
            where = "body"
        params.update({k: v for k, v in given.items() if v is not None})
    tenant = await acting_tenant(request, params.pop("tenant", None), where)
    query = parse_filters(params, FILTERS)
    outcome = await manager.redriver.redrive_many(query, tenant)
    await _audit(request, tenant, "redriven", {"filter": params, **outcome})
    return json_response(outcome)


@router.get(
    "/{letter_id:dead_letter_id}", summary="One dead letter", responses=error_responses(404)
)
async def get_dead_letter(request: Request, letter_id: str) -> Response:
    manager = ingest_of(request)
    letter = await _letter(manager, letter_id, await _owner(request, manager, letter_id))
    return json_response(letter.to_dict())


@router.delete(
    "/{letter_id:dead_letter_id}",
    summary="Delete a dead letter",
    status_code=204,
    responses=error_responses(404),
)
async def delete_dead_letter(request: Request, letter_id: str) -> Response:
    manager = ingest_of(request)
    tenant = await _owner(request, manager, letter_id)
    if not await manager.dead_letters.delete(letter_id, tenant):
        raise TidingsError(404, "dead_letter_not_found", f"no dead letter with id {letter_id!r}")
    await _audit(request, tenant, "deleted", {"dead_letter": letter_id})
    return Response(status_code=204)


@router.post(
    "/{letter_id:dead_letter_id}/redrive",
    summary="Map a dead letter again with its source's current configuration",
    responses=error_responses(404, 422),
)
async def redrive_one(request: Request, letter_id: str) -> Response:
    manager = ingest_of(request)
    tenant = await _owner(request, manager, letter_id)
    letter = await _letter(manager, letter_id, tenant)
    results = await manager.redriver.redrive(letter)
    await _audit(request, tenant, "redriven", {"dead_letter": letter.id, "events": len(results)})
    return json_response({"dead_letter": letter.id, "events": [r.to_dict() for r in results]})
