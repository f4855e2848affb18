"""Pure ASGI middleware (never BaseHTTPMiddleware, which breaks streaming responses)."""

from __future__ import annotations

import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tidings import metrics


class RequestMetrics:
    """Counts answered HTTP requests by route template (bounded), method and status, and
    times them by route template and method."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        started = time.perf_counter()

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            route = getattr(scope.get("route"), "path", None)
            template = metrics.route_template(route, scope["path"])
            method = scope["method"]
            metrics.labelled(metrics.HTTP_REQUESTS, template, method, str(status)).inc()
            metrics.labelled(metrics.HTTP_DURATION, template, method).observe(
                time.perf_counter() - started
            )
