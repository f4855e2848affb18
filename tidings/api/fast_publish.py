"""``POST /v1/events`` in front of the whole FastAPI application.

Publishing is the hot path. Measured with bench/asgi_publish_probe.py and
bench/profile_publish.py on this project's machine, FastAPI's routing, dependency solving,
exception and telemetry layers cost more event-loop time per single-event publish than
Tidings' own work, which capped Tidings below its throughput target. This ASGI callable sits
outermost, hands plain publishes to the very same handler (``tidings.api.events.publish``)
and everything else, lifespan included, to the app. The FastAPI route stays for OpenAPI and
behaves the same; the request is counted in ``tidings_http_requests_total`` here, since
``RequestMetrics`` never sees it.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from tidings import metrics
from tidings.api.events import HUB_SCOPE_KEY, publish
from tidings.api.responses import error_response
from tidings.errors import TidingsError

log = logging.getLogger("tidings.api")
PATH = "/v1/events"


class FastPublish:
    def __init__(self, app: FastAPI) -> None:
        self.app = app  # everything else
        self.hub = app.state.hub

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != PATH:
            await self.app(scope, receive, send)
            return
        scope["app"] = self.app  # what Starlette sets
        scope[HUB_SCOPE_KEY] = self.hub
        status = 500
        try:
            response = await self._answer(Request(scope, receive))
            status = response.status_code
            await response(scope, receive, send)
        finally:
            metrics.labelled(metrics.HTTP_REQUESTS, PATH, "POST", str(status)).inc()

    async def _answer(self, request: Request) -> Response:
        try:
            return await publish(request)
        except TidingsError as error:
            return error_response(error)
        except Exception as error:  # the same answer as the app's last-resort handler
            log.error("unhandled error on POST %s", PATH, exc_info=error)
            return error_response(
                TidingsError(500, "internal_error", "an unexpected error occurred")
            )
