"""Operations: liveness, readiness, Prometheus metrics and stats."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi import Query as Q
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.responses import Response

from tidings import __version__, metrics
from tidings.api.responses import json_response
from tidings.api.schemas import error_responses
from tidings.api.tenancy import query_tenant
from tidings.hub import Hub

router = APIRouter(tags=["operations"])


def _hub(request: Request) -> Hub:
    hub: Hub = request.app.state.hub
    return hub


@router.get("/healthz", summary="Liveness: the process answers")
async def healthz() -> Response:
    return json_response({"status": "ok", "version": __version__})


@router.get("/readyz", summary="Readiness: the store answers", responses=error_responses(503))
async def readyz(request: Request) -> Response:
    hub = _hub(request)
    checks: dict[str, str] = {}
    ready = not hub.draining
    if hub.draining:
        checks["server"] = "shutting down"
    try:
        await hub.store.ping()
        checks["store"] = "ok"
    except Exception as error:
        checks["store"] = f"unavailable: {error}"
        ready = False
    body = {"status": "ready" if ready else "not_ready", "checks": checks}
    if not ready:
        body["error"] = {"code": "not_ready", "message": "the server is not ready to serve"}
    body["ingest"] = hub.ingest.status()  # reported, never failing readiness
    return json_response(body, 200 if ready else 503)


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def prometheus(request: Request) -> Response:
    metrics.STORE_BYTES.set(await _hub(request).store.size_bytes())
    return Response(generate_latest(metrics.REGISTRY), media_type=CONTENT_TYPE_LATEST)


@router.get(
    "/v1/stats",
    summary="Counts by type, source and hour; store size",
    tags=["events"],
    responses=error_responses(400, 403),
)
async def stats(
    request: Request,
    tenant: str | None = Q(None, description="root only: the stats of this tenant"),
) -> Response:
    hub = _hub(request)
    owner = await query_tenant(request)
    s = await hub.store.stats(owner)
    return json_response(
        {
            "events": {
                "total": s.total,
                "by_type": s.by_type,
                "by_source": s.by_source,
                "by_hour": s.by_hour,
            },
            "store": {
                "head_seq": s.head_seq,
                "earliest_seq": s.earliest_seq,
                "size_bytes": s.size_bytes,
                "retention_days": hub.settings.retention_days,
            },
            "streams": hub.streams.stats(owner),
            "deliveries": await hub.delivery.stats(owner) if hub.delivery else None,
        }
    )
