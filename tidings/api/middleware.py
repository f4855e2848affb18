"""Pure ASGI middleware (never BaseHTTPMiddleware, which breaks streaming responses)."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tidings import metrics


class RequestMetrics:
    """Counts answered HTTP requests by route template (bounded), method and status."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            metrics.labelled(metrics.HTTP_REQUESTS, template, scope["method"], str(status)).inc()
