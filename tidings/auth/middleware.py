"""Authentication, scopes, stream limits and origin checks: pure ASGI around the whole app.

It wraps the fast paths too (publish and SSE are answered in front of FastAPI), so no route
can be reached around it. The decision is made from the method, the path and the headers;
the caller is put into the scope (``tidings.principal``) for the handlers.
"""

from __future__ import annotations

import functools
import ipaddress
from urllib.parse import parse_qsl

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

from tidings.auth.keys import malformed, shown_prefix
from tidings.auth.policy import STREAM_PATHS, TOKEN_IN_QUERY, Access, required
from tidings.auth.principal import SCOPE_KEY, Principal, client_address
from tidings.auth.scopes import Scope as KeyScope
from tidings.auth.service import AuthService, is_loopback
from tidings.errors import TidingsError

_BEARER = b"bearer "


def _headers(scope: Scope) -> tuple[str | None, str | None, str | None]:
    """The key (X-API-Key, else Authorization: Bearer), Origin and Host, in one pass."""
    api_key = bearer = origin = host = None
    for name, value in scope["headers"]:
        if name == b"x-api-key":
            api_key = value
        elif name == b"authorization":
            # a scheme other than Bearer is kept whole, and refused as malformed
            bearer = value[7:].strip() if value[:7].lower() == _BEARER else value
        elif name == b"origin":
            origin = value
        elif name == b"host":
            host = value
    key = api_key if api_key is not None else bearer
    return (
        key.decode("latin-1") if key is not None else None,
        origin.decode("latin-1") if origin is not None else None,
        host.decode("latin-1") if host is not None else None,
    )


def _query_token(scope: Scope) -> str | None:
    query = scope.get("query_string", b"")
    if b"access_token=" not in query:
        return None
    for name, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
        if name == "access_token":
            return str(value)
    return None


class AuthMiddleware:
    def __init__(self, app: ASGIApp, service: AuthService) -> None:
        self.app = app
        self.service = service
        # With auth off the server listens on loopback only; a Host header naming anything
        # else is a browser that was pointed here by DNS rebinding, and is refused.
        self.guard_host = not service.enabled and is_loopback(service.settings.host)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind != "http" and kind != "websocket":
            await self.app(scope, receive, send)
            return
        service = self.service
        secret, origin, host = _headers(scope)
        if kind == "websocket" and not service.origins.permits(origin, host):
            service.refused("origin", None, client_address(scope))
            await _refuse(
                scope,
                send,
                TidingsError(
                    403,
                    "origin_not_allowed",
                    f"WebSocket connections from {origin!r} are not allowed; "
                    "add the origin to TIDINGS_CORS_ORIGINS",
                ),
            )
            return
        if not service.enabled:
            if self.guard_host and host is not None and not _local_host(host):
                await _refuse(
                    scope,
                    send,
                    TidingsError(
                        403,
                        "host_not_allowed",
                        f"this server answers requests for localhost only, not {host!r}",
                    ),
                )
                return
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        need = required(scope.get("method", "GET"), path)
        if need is Access.OPEN:
            await self.app(scope, receive, send)
            return
        if secret is None and path in TOKEN_IN_QUERY:
            secret = _query_token(scope)
        address = client_address(scope)
        if secret is None:
            service.refused("missing", None, address)
            await _refuse(scope, send, _unauthorized("send an API key as X-API-Key: <key>"))
            return
        problem = malformed(secret)
        if problem is not None:
            service.refused("malformed", None, address)
            await _refuse(scope, send, _unauthorized(problem))
            return
        key = await service.authenticate(secret)
        if key is None:
            service.refused("unknown", shown_prefix(secret), address)
            await _refuse(scope, send, _unauthorized("unknown or revoked API key"))
            return
        principal = Principal(key.tenant, _scopes(key.scopes), address, key)
        if isinstance(need, KeyScope) and not principal.can(need):
            service.refused("forbidden", key.prefix, address, key.tenant)
            await _refuse(
                scope,
                send,
                TidingsError(403, "forbidden", f"this key lacks the {need.value!r} scope"),
            )
            return
        scope[SCOPE_KEY] = principal
        if path not in STREAM_PATHS:
            await self.app(scope, receive, send)
            return
        if not service.slots.acquire(key.id, key.max_streams):
            service.refused("too_many_streams", key.prefix, address, key.tenant)
            await _refuse(scope, send, service.too_many_streams(key))
            return
        try:
            await self.app(scope, receive, send)
        finally:
            service.slots.release(key.id)


@functools.lru_cache(maxsize=64)
def _scopes(names: tuple[str, ...]) -> frozenset[KeyScope]:
    return frozenset(KeyScope(name) for name in names)


@functools.lru_cache(maxsize=256)  # a server sees few distinct Host values
def _local_host(host: str) -> bool:
    """Whether a Host header can name this loopback server without DNS rebinding.

    Rebinding needs a name the attacker's DNS answers: a dotted domain. IP literals,
    ``localhost`` (and ``*.localhost``) and single-label names (a proxy's or a test's) pass.
    """
    name = host.strip().lower()
    if name.startswith("["):
        return True  # an IPv6 literal
    name = name.rsplit(":", 1)[0]
    if is_loopback(name) or "." not in name:
        return True
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def _unauthorized(message: str) -> TidingsError:
    return TidingsError(401, "unauthorized", message, headers={"WWW-Authenticate": "Bearer"})


async def _refuse(scope: Scope, send: Send, error: TidingsError) -> None:
    """The error as an HTTP answer (for a WebSocket, as its denial response when the server
    supports one, else as a close before the handshake, which the server answers with 403)."""
    body = orjson.dumps(error.to_body())
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *[(k.lower().encode(), v.encode()) for k, v in error.headers.items()],
    ]
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": error.status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        return
    if "websocket.http.response" in scope.get("extensions", {}):
        start = {"type": "websocket.http.response.start", "status": error.status}
        await send({**start, "headers": headers})
        await send({"type": "websocket.http.response.body", "body": body})
        return
    await send({"type": "websocket.close", "code": 1008, "reason": error.code})
