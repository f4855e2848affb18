"""``POST /v1/ingest/{source}``: inbound webhooks of the sources in the config file."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from tidings.api.body import read_body
from tidings.api.responses import json_response
from tidings.api.schemas import error_responses
from tidings.errors import TidingsError
from tidings.ingest.manager import IngestManager
from tidings.ingest.signatures import SignedRequest

router = APIRouter(tags=["ingest"])

_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "a repeat (every event a duplicate), or a SmartThings lifecycle answer"},
    201: {"description": 'stored: `{"events": [{"id", "seq", "duplicate"}]}`'},
    202: {"description": 'verified but not mappable: parked, `{"dead_letter": {"id", "reason"}}`'},
    **error_responses(401, 404, 413, 422, 502, 503),
}


def ingest_of(request: Request) -> IngestManager:
    manager: IngestManager | None = getattr(request.app.state.hub, "ingest", None)
    if manager is None:
        raise TidingsError(503, "ingest_unavailable", "ingest is not running on this server")
    return manager


def _target(request: Request) -> str:
    """The request target as sent (HTTP Signatures sign it): raw path and query string."""
    raw_path = request.scope.get("raw_path")
    path = raw_path.decode("latin-1") if isinstance(raw_path, bytes) else request.url.path
    query = request.scope.get("query_string", b"").decode("latin-1")
    return f"{path}?{query}" if query else path


@router.post(
    "/v1/ingest/{source}",
    summary="Receive a signed webhook for a configured source",
    responses=_RESPONSES,
    status_code=201,
)
async def ingest(request: Request, source: str) -> Response:
    manager = ingest_of(request)
    config = manager.sources.get(source)
    if config is None:
        raise TidingsError(
            404,
            "unknown_source",
            f"no source named {source!r} is configured ([sources.{source}] in the config file)",
        )
    body = await read_body(request, manager.settings.max_body_bytes)
    signed = SignedRequest.of(request.method, _target(request), request.headers.items(), body)
    answer = await manager.webhooks.receive(config, signed, str(request.url))
    return json_response(answer.body, answer.status)
