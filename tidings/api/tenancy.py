"""The tenant an admin or read request acts in: the caller's own, or one a root key names.

``root`` may do everything in every tenant (DESIGN.md section 4). Routes that create objects
take a ``tenant`` field in the body, list and read routes ``?tenant=``, and routes by id find
the object in whichever tenant holds it. A key without ``root`` that names a tenant other than
its own gets 403 ``forbidden``; a tenant that does not exist is refused as ``POST /v1/keys``
refuses it (in a query string with 400, as every malformed parameter). With auth off the
caller may do everything, so it acts like a root key.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Literal

from starlette.requests import HTTPConnection

from tidings.auth.principal import principal_of
from tidings.auth.scopes import check_tenant_id
from tidings.errors import TidingsError
from tidings.store.auth import AuthStore

Where = Literal["body", "query"]
QUERY_NAME = "tenant"  # the query parameter and the body field


def _store(request: HTTPConnection) -> AuthStore:
    store: AuthStore = request.app.state.hub.auth.store
    return store


def unknown_tenant(tenant: str, where: Where) -> TidingsError:
    """A tenant named that does not exist: 422 in a body (as ``POST /v1/keys`` answers),
    400 ``invalid_parameter`` in a query string."""
    message = f"no tenant {tenant!r}; create it first"
    details = [{"loc": [where, QUERY_NAME], "msg": message}]
    if where == "body":
        return TidingsError(422, "validation_error", f"no tenant {tenant!r}", details)
    return TidingsError(400, "invalid_parameter", message, details)


async def acting_tenant(request: HTTPConnection, named: object, where: Where) -> str:
    """The tenant a request acts in: ``named`` when given (root only), else the caller's."""
    actor = principal_of(request.scope)
    if named is None:
        return actor.tenant
    try:
        checked = check_tenant_id(named, [where, QUERY_NAME])
    except TidingsError as error:
        if where == "body":
            raise
        # a malformed parameter is a 400 (DESIGN.md section 4), a malformed body field a 422
        raise TidingsError(400, error.code, error.message, error.details) from None
    tenant = actor.tenant_for(checked)
    if tenant != actor.tenant and await _store(request).get_tenant(tenant) is None:
        raise unknown_tenant(tenant, where)
    return tenant


async def query_tenant(request: HTTPConnection) -> str:
    """The tenant of a list or read route: ``?tenant=`` from a root key, else the caller's."""
    values = request.query_params.getlist(QUERY_NAME)
    if len(values) > 1:
        message = "tenant may be given once"
        raise TidingsError(
            400, "invalid_parameter", message, [{"loc": ["query", QUERY_NAME], "msg": message}]
        )
    return await acting_tenant(request, values[0] if values else None, "query")


async def owner_of(request: HTTPConnection, lookup: Callable[[str], Awaitable[Any]]) -> str:
    """The tenant holding an object asked for by id.

    A key without ``root`` looks in its own tenant only. A root key looks in its own, then
    in every other tenant (one indexed lookup each: few tenants, and only for root's
    requests). When no tenant holds it, the caller's own is answered, so that the route
    gives its usual 404.
    """
    actor = principal_of(request.scope)
    if not actor.is_root:
        return actor.tenant
    if await lookup(actor.tenant) is not None:
        return actor.tenant
    for tenant in await _store(request).list_tenants():
        if tenant.id != actor.tenant and await lookup(tenant.id) is not None:
            return tenant.id
    return actor.tenant
