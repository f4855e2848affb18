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


class _Created(Response):
    """``201 Created`` with a JSON body and a Location, its header list built directly."""

    media_type = "application/json"

    def __init__(self, body: bytes, location: str) -> None:
        self.status_code = 201
        self.background = None
        self.body = body
        self.raw_headers = [
            (b"location", location.encode("latin-1")),
            (b"content-length", str(len(body)).encode()),
            (b"content-type", b"application/json"),
        ]


def created_response(body: bytes, location: str) -> Response:
    """What ``json_response(content, 201, headers={"Location": location})`` answers (the same
    headers in the same order) for already encoded ``body``, without Starlette's general
    header handling: the answer to every single-event publish."""
    return _Created(body, location)


def raw_json_response(
    body: bytes, status: int = 200, media_type: str = "application/json"
) -> Response:
    """A response whose JSON is already encoded (events are encoded once)."""
    return Response(body, status, media_type=media_type)


def error_response(error: TidingsError) -> Response:
    return json_response(error.to_body(), error.status, headers=error.headers or None)
