"""``POST /v1/events`` ahead of FastAPI's request path.

Publishing is the hot path. Measured with bench/asgi_publish_probe.py on this project's
machine, FastAPI's routing, dependency solving and exception layers cost about 250 of the 350
microseconds of event-loop time per single-event publish, which capped Tidings below its
throughput target. This pure-ASGI middleware hands the request to the very same handler
(``tidings.api.events.publish``); the FastAPI route stays for OpenAPI and behaves the same.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from tidings.api.events import publish
from tidings.api.responses import error_response
from tidings.errors import TidingsError

log = logging.getLogger("tidings.api")
PATH = "/v1/events"


@dataclass(frozen=True, slots=True)
class _Route:
    """What ``tidings.api.middleware.RequestMetrics`` reads to label the request."""

    path: str = PATH


_ROUTE = _Route()


class FastPublish:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != PATH:
            await self.app(scope, receive, send)
            return
        scope["route"] = _ROUTE
        request = Request(scope, receive)
        try:
            response = await publish(request)
        except TidingsError as error:
            response = error_response(error)
        except Exception as error:  # the same answer as the app's last-resort handler
            log.error("unhandled error on POST %s", PATH, exc_info=error)
            response = error_response(
                TidingsError(500, "internal_error", "an unexpected error occurred")
            )
        await response(scope, receive, send)
