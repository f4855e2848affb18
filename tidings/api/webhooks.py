"""``/v1/webhooks`` and ``/v1/deliveries``: outbound endpoints and their delivery log."""

from __future__ import annotations

from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from fastapi import APIRouter, Request
from fastapi import Query as Q
from pydantic import BaseModel, ConfigDict, Field, field_validator
from starlette.responses import Response

from tidings.api.body import M, parse_json, read_body, validated
from tidings.api.responses import json_response
from tidings.api.schemas import error_responses
from tidings.api.tenancy import acting_tenant, owner_of, query_tenant
from tidings.auth.principal import principal_of
from tidings.delivery.sender import RESERVED_HEADERS
from tidings.delivery.service import DeliveryService
from tidings.delivery.signing import MIN_SECRET_LENGTH
from tidings.envelope import parse_filter
from tidings.envelope.timefmt import format_us, parse_iso
from tidings.envelope.types import split_pattern
from tidings.errors import TidingsError, invalid
from tidings.store.deliveries import Attempt, Delivery, Endpoint

router = APIRouter(tags=["webhooks"])
_FILTER_KEYS = ("source", "exclude_source", "subject", "trace_id")
# Header values often carry the receiver's credentials: after creation they are shown masked,
# like the secret, and a PATCH that sends the mask back keeps the stored value.
MASK = "********"
ENDPOINT_BODY_LIMIT = 1 << 20  # an endpoint's definition is small; a fixed limit is plenty


async def _owner(request: Request, webhook_id: str) -> str:
    """The tenant of the endpoint (any tenant's for a root key)."""
    state = _service(request).state
    return await owner_of(request, lambda tenant: state.get_endpoint(tenant, webhook_id))


async def _delivery_owner(request: Request, delivery_id: str) -> str:
    state = _service(request).state
    return await owner_of(request, lambda tenant: state.get_delivery(tenant, delivery_id))


async def _audit(
    request: Request, tenant: str, action: str, endpoint_id: str, data: dict[str, Any]
) -> None:
    """An audit event in the log of the tenant the action touched."""
    actor = principal_of(request.scope)
    await request.app.state.hub.auditor.record(
        tenant,
        "webhook",
        action,
        actor,
        {"webhook": endpoint_id, **data},
        subject=endpoint_id,
    )


def _service(request: Request) -> DeliveryService:
    service: DeliveryService | None = request.app.state.hub.delivery
    if service is None:
        raise TidingsError(503, "not_ready", "webhook delivery is not running")
    return service


def _check_patterns(value: list[str]) -> list[str]:
    for pattern in value:
        split_pattern(pattern)
    return value


def _check_headers(value: dict[str, str] | None) -> dict[str, str] | None:
    for name in value or {}:
        if name.lower() in RESERVED_HEADERS:
            raise ValueError(f"header {name!r} is set by Tidings and cannot be overridden")
        if not name or any(c in name for c in " :\r\n"):
            raise ValueError(f"{name!r} is not a valid header name")
    return value


def _check_filter(value: dict[str, Any]) -> dict[str, Any]:
    if "type" in value:
        raise ValueError("put type patterns in `events`")
    try:
        parse_filter(value, location="filter")
    except TidingsError as error:  # a field of a valid JSON body: 422 like the others
        raise ValueError(error.message) from None
    return value


class WebhookIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid", strict=True
    )  # no "0" for false: the schema says boolean

    url: Annotated[str, Field(min_length=1, max_length=2048)]
    events: Annotated[list[str], Field(min_length=1, max_length=100)] = ["#"]
    filter: dict[str, Any] = Field(default_factory=dict)
    source: str | list[str] | None = None
    exclude_source: str | list[str] | None = None
    subject: str | list[str] | None = None
    trace_id: str | list[str] | None = None
    secret: Annotated[str, Field(min_length=MIN_SECRET_LENGTH, max_length=200)] | None = None
    active: bool = True
    description: Annotated[str, Field(max_length=1000)] | None = None
    rate_limit: Annotated[float, Field(gt=0, le=100_000)] | None = None
    headers: dict[str, Annotated[str, Field(max_length=4096)]] | None = None
    tenant: str | None = Field(
        None, description="root only: create the endpoint in this tenant (default: the key's)"
    )

    _events = field_validator("events")(_check_patterns)
    _headers = field_validator("headers")(_check_headers)
    _filter = field_validator("filter")(_check_filter)


class WebhookPatch(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    url: Annotated[str, Field(min_length=1, max_length=2048)] | None = None
    events: Annotated[list[str], Field(min_length=1, max_length=100)] | None = None
    filter: dict[str, Any] | None = None
    active: bool | None = None
    description: Annotated[str, Field(max_length=1000)] | None = None
    rate_limit: Annotated[float, Field(gt=0, le=100_000)] | None = None
    headers: dict[str, Annotated[str, Field(max_length=4096)]] | None = None

    _events = field_validator("events")(lambda v: _check_patterns(v) if v is not None else v)
    _headers = field_validator("headers")(_check_headers)
    _filter = field_validator("filter")(lambda v: _check_filter(v) if v is not None else v)


class RotateIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    secret: Annotated[str, Field(min_length=MIN_SECRET_LENGTH, max_length=200)] | None = None


class ReplayIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    since: str | None = None
    until: str | None = None
    only_failed: bool = False


async def _parse(request: Request, model: type[M], *, allow_empty: bool = False) -> M:
    body = await read_body(request, ENDPOINT_BODY_LIMIT, setting=None)
    return validated({} if allow_empty and not body.strip() else parse_json(body), model)


def masked_headers(headers: dict[str, str]) -> dict[str, str]:
    """The header names, each with the mask for its value."""
    return dict.fromkeys(headers, MASK)


def endpoint_dict(
    endpoint: Endpoint, *, with_secret: bool = False, with_headers: bool = False
) -> dict[str, Any]:
    """An endpoint as the API shows it: the secret (on creation and rotation) and the header
    values (on creation) only when the caller has just sent or been given them."""
    shown: dict[str, Any] = {
        "id": endpoint.id,
        "url": endpoint.url,
        "events": endpoint.events,
        "filter": endpoint.filter,
        "active": endpoint.active,
        "description": endpoint.description,
        "rate_limit": endpoint.rate_limit,
        "headers": endpoint.headers if with_headers else masked_headers(endpoint.headers),
        "created_at": format_us(endpoint.created_at_us),
        "disabled_reason": endpoint.disabled_reason,
    }
    if with_secret:
        shown["secret"] = endpoint.secrets[0].secret
    return shown


def delivery_dict(delivery: Delivery, attempts: list[Attempt]) -> dict[str, Any]:
    return {
        "id": delivery.id,
        "webhook_id": delivery.webhook_id,
        "event_id": delivery.event_id,
        "event_seq": delivery.event_seq,
        "message_id": delivery.message_id,
        "status": delivery.status,
        "attempts": [
            {
                "at": format_us(a.at_us),
                "status_code": a.status_code,
                "latency_ms": a.latency_ms,
                "error": a.error,
                "response_body": a.response_body,
            }
            for a in attempts
        ],
        "next_attempt_at": format_us(delivery.next_attempt_at_us)
        if delivery.status == "pending" and delivery.next_attempt_at_us
        else None,
        "created_at": format_us(delivery.created_at_us),
    }


def _merged_filter(spec: WebhookIn) -> dict[str, Any]:
    merged = dict(spec.filter)
    for key in _FILTER_KEYS:
        value = getattr(spec, key)
        if value is not None:
            merged[key] = value
    try:
        parse_filter(merged, location="filter")
    except TidingsError as error:
        raise invalid(error.message, [{"loc": ["body", "filter"], "msg": error.message}]) from None
    return merged


@router.post(
    "/v1/webhooks",
    status_code=201,
    summary="Register an endpoint",
    responses=error_responses(400, 403, 422),
    openapi_extra={
        "requestBody": {"content": {"application/json": {"schema": WebhookIn.model_json_schema()}}}
    },
)
async def create_webhook(request: Request) -> Response:
    spec = await _parse(request, WebhookIn)
    tenant = await acting_tenant(request, spec.tenant, "body")
    values = {
        "url": spec.url,
        "events": spec.events,
        "filter": _merged_filter(spec),
        "secret": spec.secret,
        "active": spec.active,
        "description": spec.description,
        "rate_limit": spec.rate_limit,
        "headers": spec.headers,
    }
    endpoint = await _service(request).create(tenant, values)
    # Audit events are readable with the subscribe scope: no secret, header or URL path.
    shown = {"host": urlsplit(endpoint.url).hostname, "events": endpoint.events}
    await _audit(request, tenant, "created", endpoint.id, shown)
    return json_response(
        endpoint_dict(endpoint, with_secret=True, with_headers=True),
        201,
        headers={"Location": f"/v1/webhooks/{endpoint.id}"},
    )


@router.get("/v1/webhooks", summary="List endpoints", responses=error_responses(400, 403))
async def list_webhooks(
    request: Request,
    tenant: str | None = Q(None, description="root only: the endpoints of this tenant"),
) -> Response:
    endpoints = await _service(request).list_endpoints(await query_tenant(request))
    return json_response({"webhooks": [endpoint_dict(e) for e in endpoints]})


@router.get("/v1/webhooks/{webhook_id}", summary="One endpoint", responses=error_responses(404))
async def get_webhook(request: Request, webhook_id: str) -> Response:
    tenant = await _owner(request, webhook_id)
    return json_response(endpoint_dict(await _service(request).get(tenant, webhook_id)))


@router.patch(
    "/v1/webhooks/{webhook_id}",
    summary="Change an endpoint",
    responses=error_responses(404, 422),
    openapi_extra={
        "requestBody": {
            "content": {"application/json": {"schema": WebhookPatch.model_json_schema()}}
        }
    },
)
async def patch_webhook(request: Request, webhook_id: str) -> Response:
    patch = await _parse(request, WebhookPatch)
    changes = patch.model_dump(exclude_unset=True)
    for key in ("url", "events", "active", "filter"):
        if key in changes and changes[key] is None:
            raise invalid(
                f"{key} cannot be null", [{"loc": ["body", key], "msg": "cannot be null"}]
            )
    tenant = await _owner(request, webhook_id)
    if "headers" in changes and changes["headers"] is None:
        changes["headers"] = {}
    elif MASK in (changes.get("headers") or {}).values():
        current = (await _service(request).get(tenant, webhook_id)).headers
        changes["headers"] = _unmask(changes["headers"], current)
    endpoint = await _service(request).update(tenant, webhook_id, changes)
    await _audit(request, tenant, "changed", endpoint.id, {"changes": sorted(changes)})
    return json_response(endpoint_dict(endpoint))


@router.delete(
    "/v1/webhooks/{webhook_id}",
    status_code=204,
    summary="Delete an endpoint (pending deliveries are cancelled)",
    responses=error_responses(404),
)
async def delete_webhook(request: Request, webhook_id: str) -> Response:
    tenant = await _owner(request, webhook_id)
    await _service(request).delete(tenant, webhook_id)
    await _audit(request, tenant, "deleted", webhook_id, {})
    return Response(status_code=204)


@router.post(
    "/v1/webhooks/{webhook_id}/rotate-secret",
    summary="Rotate the signing secret",
    responses=error_responses(404, 422),
)
async def rotate_secret(request: Request, webhook_id: str) -> Response:
    spec = await _parse(request, RotateIn, allow_empty=True)
    tenant = await _owner(request, webhook_id)
    endpoint = await _service(request).rotate(tenant, webhook_id, spec.secret)
    await _audit(request, tenant, "rotated", endpoint.id, {})
    return json_response(endpoint_dict(endpoint, with_secret=True))


def _unmask(headers: dict[str, str], current: dict[str, str]) -> dict[str, str]:
    """``headers`` with each masked value replaced by the stored one of the same name."""
    kept: dict[str, str] = {}
    for name, value in headers.items():
        if value == MASK:
            stored = next((v for k, v in current.items() if k.lower() == name.lower()), None)
            if stored is None:
                message = f"header {name!r} has no stored value to keep; send its value"
                raise invalid(message, [{"loc": ["body", "headers", name], "msg": message}])
            value = stored
        kept[name] = value
    return kept


def _time(value: str | None, field: str) -> int | None:
    if value is None:
        return None
    try:
        return parse_iso(value)
    except ValueError as error:
        raise invalid(str(error), [{"loc": ["body", field], "msg": str(error)}]) from None


@router.post(
    "/v1/webhooks/{webhook_id}/replay",
    status_code=202,
    summary="Send a window of events again",
    responses=error_responses(404, 409, 422),
)
async def replay(request: Request, webhook_id: str) -> Response:
    spec = await _parse(request, ReplayIn, allow_empty=True)
    tenant = await _owner(request, webhook_id)
    count = await _service(request).replay(
        tenant,
        webhook_id,
        _time(spec.since, "since"),
        _time(spec.until, "until"),
        spec.only_failed,
    )
    await _audit(
        request,
        tenant,
        "replayed",
        webhook_id,
        {"since": spec.since, "until": spec.until, "only_failed": spec.only_failed, "count": count},
    )
    return json_response({"replayed": count}, 202)


@router.get(
    "/v1/webhooks/{webhook_id}/deliveries",
    summary="An endpoint's deliveries, newest first",
    responses=error_responses(400, 404),
)
async def list_deliveries(
    request: Request,
    webhook_id: str,
    status: Literal["pending", "succeeded", "failed", "cancelled"] | None = Q(None),
    limit: int = Q(50, ge=1, le=1000),
    cursor: str | None = Q(None, description="the `next` of the previous page"),
) -> Response:
    tenant = await _owner(request, webhook_id)
    found = await _service(request).deliveries(tenant, webhook_id, status, limit + 1, cursor)
    more = len(found) > limit
    page = found[:limit]
    next_cursor = page[-1][0].id if more and page else None
    return json_response(
        {"deliveries": [delivery_dict(d, a) for d, a in page], "next": next_cursor}
    )


@router.get(
    "/v1/deliveries/{delivery_id}",
    summary="One delivery with its attempts",
    responses=error_responses(404),
)
async def get_delivery(request: Request, delivery_id: str) -> Response:
    tenant = await _delivery_owner(request, delivery_id)
    delivery, attempts = await _service(request).delivery(tenant, delivery_id)
    return json_response(delivery_dict(delivery, attempts))


@router.post(
    "/v1/deliveries/{delivery_id}/retry",
    status_code=202,
    summary="Send a delivery once more now",
    responses=error_responses(404, 409, 410),
)
async def retry_delivery(request: Request, delivery_id: str) -> Response:
    tenant = await _delivery_owner(request, delivery_id)
    delivery, attempts = await _service(request).retry(tenant, delivery_id)
    return json_response(delivery_dict(delivery, attempts), 202)
