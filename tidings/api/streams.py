"""``/v1/events/stream`` (SSE) and ``/v1/ws`` (WebSocket): parse, resolve the resume point, hand
the connection to the streams part."""

from __future__ import annotations

from fastapi import APIRouter, Request, WebSocket
from fastapi import Query as Q
from starlette.responses import Response

from tidings.api.events import HUB_SCOPE_KEY
from tidings.api.params import multi_dict
from tidings.api.schemas import error_responses
from tidings.api.tenancy import query_tenant
from tidings.envelope import parse_filter
from tidings.errors import TidingsError
from tidings.hub import Hub
from tidings.router.router import Router
from tidings.streams import resume
from tidings.streams.sse import SSEResponse
from tidings.streams.websocket import serve_websocket

router = APIRouter(tags=["streams"])
# access_token: the key of a browser that cannot set headers; auth reads it, the filter must not
# tenant: root only, the tenant whose events to stream (tidings.api.tenancy)
STREAM_PARAMS = ("last_event_id", "since", "access_token", "tenant")


def _hub(request: Request | WebSocket) -> Hub:
    hub: Hub | None = request.scope.get(HUB_SCOPE_KEY)  # put there by the fast paths
    if hub is None:
        hub = request.app.state.hub
    return hub


def _router(hub: Hub) -> Router:
    if hub.router is None:
        raise TidingsError(503, "not_ready", "the server is starting")
    return hub.router


@router.get(
    "/v1/events/stream",
    summary="Server-Sent Events stream of matching events",
    response_class=Response,
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "an endless event stream"},
        **error_responses(400, 403, 503),
    },
)
async def stream(
    request: Request,
    type: str | None = Q(None, description="comma list of type patterns"),
    source: str | None = Q(None),
    exclude_source: str | None = Q(
        None, description="leave out events from these sources (echo suppression)"
    ),
    subject: str | None = Q(None),
    trace_id: str | None = Q(None, description="comma list of trace ids"),
    last_event_id: str | None = Q(
        None, description="resume after this position (the Last-Event-ID header wins)"
    ),
    since: str | None = Q(None, description="resume from this time (ISO 8601)"),
    tenant: str | None = Q(None, description="root only: stream this tenant's events"),
) -> Response:
    hub = _hub(request)
    if hub.draining:
        raise TidingsError(
            503,
            "shutting_down",
            "the server is shutting down; reconnect shortly",
            headers={"Retry-After": "2"},
        )
    owner = await query_tenant(request)
    params = multi_dict(request.query_params)
    flt = parse_filter(params, ignore=STREAM_PARAMS)
    start = await resume.resolve(
        hub.store,
        owner,
        header=request.headers.get("last-event-id"),
        last_event_id=request.query_params.get("last_event_id"),
        since=request.query_params.get("since"),
    )
    truncated = (
        await resume.truncation(hub.store, owner, start.position)
        if start.position is not None
        else None
    )
    return SSEResponse(
        store=hub.store,
        router=_router(hub),
        registry=hub.streams,
        tenant=owner,
        filter=flt,
        position=start.position,
        truncated=truncated,
        heartbeat_s=hub.settings.heartbeat_s,
        stall_s=hub.settings.stream_stall_s,
    )


@router.websocket("/v1/ws")
async def websocket_stream(websocket: WebSocket) -> None:
    hub = _hub(websocket)
    if hub.draining:
        await websocket.close(1012, "server shutting down")
        return
    if hub.router is None:
        await websocket.close(1013, "server starting")
        return
    try:
        owner = await query_tenant(websocket)
    except TidingsError as error:  # before the handshake: refused as auth refuses (1008)
        await websocket.close(1008, error.code)
        return
    await serve_websocket(
        websocket,
        store=hub.store,
        router=hub.router,
        registry=hub.streams,
        tenant=owner,
        heartbeat_s=hub.settings.heartbeat_s,
        stall_s=hub.settings.stream_stall_s,
    )
