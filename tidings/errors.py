"""The one error type every part raises for input it refuses.

The API layer turns it into ``{"error": {"code", "message", "details"}}`` with ``status``; the
CLI prints it. Parts never build HTTP responses themselves.
"""

from __future__ import annotations

from typing import Any


class TidingsError(Exception):
    """A refusal with an HTTP status, a stable snake_case code and a human sentence."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status  # HTTP status the API answers with
        self.code = code  # stable machine-readable code, listed in docs/errors.md
        self.message = message  # one human sentence
        self.details = details or []  # for 422: [{"loc": [...], "msg": "..."}]
        self.headers = headers or {}  # extra response headers, e.g. Retry-After

    def to_body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details:
            error["details"] = self.details
        return {"error": error}


def bad_request(code: str, message: str, **kw: Any) -> TidingsError:
    return TidingsError(400, code, message, **kw)


def not_found(code: str, message: str) -> TidingsError:
    return TidingsError(404, code, message)


def invalid(message: str, details: list[dict[str, Any]]) -> TidingsError:
    """422: the JSON was well formed but an event in it is not valid."""
    return TidingsError(422, "validation_error", message, details=details)
