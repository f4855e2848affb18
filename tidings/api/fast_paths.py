"""``POST /v1/events`` and ``GET /v1/events/stream`` in front of the whole FastAPI application.

Publishing and streaming are the hot paths. Measured with bench/profile_publish.py and
bench/fanout/run.py on this project's machine, FastAPI's routing, dependency solving,
exception and telemetry layers cost more event-loop time per publish than Tidings' own work,
and every event written to a stream passed through three of their ``send`` wrappers. This
ASGI callable sits outermost, hands these requests to the very same handlers
(``tidings.api.events.publish``, ``tidings.api.streams.stream``, which read their parameters
from the request themselves) and everything else, lifespan included, to the app. The FastAPI
routes stay for OpenAPI and behave the same; these requests are counted in
``tidings_http_requests_total`` here, since ``RequestMetrics`` never sees them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from tidings import metrics
from tidings.api.events import HUB_SCOPE_KEY, publish
from tidings.api.responses import error_response
from tidings.api.streams import stream
from tidings.errors import TidingsError

log = logging.getLogger("tidings.api")
Handler = Callable[[Request], Awaitable[Response]]
ROUTES: dict[tuple[str, str], Handler] = {
    ("POST", "/v1/events"): publish,
    ("GET", "/v1/events/stream"): stream,
}


class IndexedHeaders(Headers):
    """Starlette's ``Headers`` with a name lookup in one dict built once per request.

    A publish looks up five headers (Content-Type, Content-Length, ce-specversion,
    Idempotency-Key, traceparent), most of them absent; ``Headers`` scans the whole list for
    each and raises ``KeyError`` for every absent one ``get`` asks for. Lookups answer as
    ``Headers`` does (the first of repeated names); everything else is ``Headers``' own.
    """

    def __init__(self, scope: Scope) -> None:
        super().__init__(scope=scope)
        self._first = dict(reversed(self._list))

    def __getitem__(self, key: str) -> str:
        value = self._first.get(key.lower().encode("latin-1"))
        if value is None:
            raise KeyError(key)
        return value.decode("latin-1")

    def get(self, key: str, default: Any = None) -> Any:
        value = self._first.get(key.lower().encode("latin-1"))
        return default if value is None else value.decode("latin-1")

    def __contains__(self, key: Any) -> bool:
        return key.lower().encode("latin-1") in self._first


class FastRequest(Request):
    """A Request whose headers are ``IndexedHeaders``."""

    @property
    def headers(self) -> Headers:
        if not hasattr(self, "_headers"):
            self._headers = IndexedHeaders(self.scope)
        return self._headers


class FastPaths:
    def __init__(self, app: FastAPI) -> None:
        self.app = app  # everything else
        self.hub = app.state.hub
        # (method, path, status) -> the request counter's and duration histogram's children
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        handler = ROUTES.get((scope["method"], scope["path"])) if scope["type"] == "http" else None
        if handler is None:
            await self.app(scope, receive, send)
            return
        scope["app"] = self.app  # what Starlette sets
        scope[HUB_SCOPE_KEY] = self.hub
        status = 500
        started = time.perf_counter()
        try:
            response = await self._answer(handler, FastRequest(scope, receive))
            status = response.status_code
            await response(scope, receive, send)
        finally:
            key = (scope["method"], scope["path"], status)
            children = self._children.get(key)
            if children is None:
                children = self._children[key] = _children_of(*key)
            children[0].inc()
            children[1].observe(time.perf_counter() - started)

    async def _answer(self, handler: Handler, request: Request) -> Response:
        try:
            return await handler(request)
        except TidingsError as error:
            return error_response(error)
        except Exception as error:  # the same answer as the app's last-resort handler
            log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=error)
            return error_response(
                TidingsError(500, "internal_error", "an unexpected error occurred")
            )


def _children_of(method: str, path: str, status: int) -> tuple[Any, Any]:
    """The labelled children one answer of these routes counts in (a bounded set: two
    routes, the few statuses they answer)."""
    return (
        metrics.labelled(metrics.HTTP_REQUESTS, path, method, str(status)),
        metrics.labelled(metrics.HTTP_DURATION, path, method),
    )
