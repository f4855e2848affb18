"""JSON responses encoded with orjson, and the one error shape."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response

from tidings.errors import TidingsError


def json_response(
    content: Any, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return Response(orjson.dumps(content), status, headers=headers, media_type="application/json")


def raw_json_response(
    body: bytes, status: int = 200, media_type: str = "application/json"
) -> Response:
    """A response whose JSON is already encoded (events are encoded once)."""
    return Response(body, status, media_type=media_type)


def error_response(error: TidingsError) -> Response:
    return json_response(error.to_body(), error.status, headers=error.headers or None)
