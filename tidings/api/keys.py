"""``/v1/keys`` and ``/v1/tenants``: API keys (shown once) and tenants."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi import Query as Q
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from starlette.responses import Response

from tidings.api.body import M, parse_json, read_body, validated
from tidings.api.responses import json_response
from tidings.api.schemas import error_responses
from tidings.api.tenancy import acting_tenant
from tidings.auth.principal import Principal, principal_of
from tidings.auth.scopes import check_tenant_id, parse_scopes
from tidings.auth.service import DEFAULT_MAX_STREAMS, AuthService, KeySpec, key_dict, tenant_dict

router = APIRouter(tags=["auth"])
MAX_BODY = 64 * 1024


def _number(value: object) -> object:
    """A JSON number (4 or 4.0), never false or "4": what the OpenAPI document says."""
    if isinstance(value, bool | str):
        raise ValueError("must be a number")
    return value


class KeyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    scopes: list[Any]  # checked by parse_scopes, which names every unknown one
    tenant: str | None = None
    rate_limit: Annotated[float | None, BeforeValidator(_number)] = Field(
        None, gt=0, le=1_000_000, description="events per second"
    )
    max_streams: Annotated[int, BeforeValidator(_number)] = Field(
        DEFAULT_MAX_STREAMS, ge=0, le=100_000
    )


class TenantIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str
    name: str | None = Field(None, max_length=200)


def _auth(request: Request) -> tuple[AuthService, Principal]:
    service: AuthService = request.app.state.hub.auth
    return service, principal_of(request.scope)


async def _body(request: Request, model: type[M]) -> M:
    return validated(parse_json(await read_body(request, MAX_BODY)), model)


@router.post(
    "/v1/keys",
    status_code=201,
    summary="Create an API key (the key is shown in this answer only)",
    responses=error_responses(403, 422),
)
async def create_key(request: Request) -> Response:
    service, actor = _auth(request)
    given: KeyIn = await _body(request, KeyIn)
    spec = KeySpec(
        name=given.name,
        scopes=parse_scopes(given.scopes, ["body", "scopes"]),
        tenant=(
            check_tenant_id(given.tenant, ["body", "tenant"]) if given.tenant is not None else None
        ),
        rate_limit=given.rate_limit,
        max_streams=given.max_streams,
    )
    key, secret = await service.create_key(actor, spec)
    return json_response(key_dict(key, secret), 201, headers={"Location": f"/v1/keys/{key.id}"})


@router.get(
    "/v1/keys",
    summary="List API keys (never the keys themselves)",
    responses=error_responses(400, 403),
)
async def list_keys(
    request: Request,
    tenant: str | None = Q(None, description="root only: the keys of this tenant"),
) -> Response:
    service, actor = _auth(request)
    named = await acting_tenant(request, tenant, "query") if tenant is not None else None
    found = await service.list_keys(actor, named)
    return json_response({"keys": [key_dict(k) for k in found]})


@router.get("/v1/keys/{key_id}", summary="One API key", responses=error_responses(404))
async def get_key(request: Request, key_id: str) -> Response:
    service, actor = _auth(request)
    return json_response(key_dict(await service.visible_key(actor, key_id)))


@router.delete(
    "/v1/keys/{key_id}",
    status_code=204,
    summary="Revoke an API key: at once, closing its open streams",
    responses=error_responses(404),
)
async def revoke_key(request: Request, key_id: str) -> Response:
    service, actor = _auth(request)
    await service.revoke_key(actor, key_id)
    return Response(status_code=204)


@router.post(
    "/v1/tenants",
    status_code=201,
    summary="Create a tenant (root)",
    responses=error_responses(403, 409, 422),
)
async def create_tenant(request: Request) -> Response:
    service, actor = _auth(request)
    given: TenantIn = await _body(request, TenantIn)
    tenant_id = check_tenant_id(given.id, ["body", "id"])
    tenant = await service.create_tenant(actor, tenant_id, given.name or tenant_id)
    return json_response(tenant_dict(tenant), 201)


@router.get("/v1/tenants", summary="List tenants (root)")
async def list_tenants(request: Request) -> Response:
    service, _ = _auth(request)
    return json_response({"tenants": [tenant_dict(t) for t in await service.list_tenants()]})
