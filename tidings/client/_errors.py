"""The one exception the client raises: the server's error shape, or why there was no answer."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson


class TidingsError(Exception):
    """A request that did not succeed.

    A refusal carries the server's ``{"error": {"code", "message", "details"}}`` and its HTTP
    status. When no Tidings answer arrived (connection refused, timeout, a proxy's page),
    ``status`` is ``None`` or the foreign status, and ``code`` says which:
    ``unreachable``, ``timeout``, ``transport_error``, ``invalid_url`` or ``not_tidings``.
    """

    def __init__(
        self,
        code: str,
        message: str,
        *,
        status: int | None = None,
        details: list[Any] | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code  # the stable snake_case code (docs/errors.md), or a client-side one
        self.message = message  # one human sentence
        self.status = status  # the HTTP status; None when no answer arrived
        self.details = details or []  # for 409/413/422: [{"loc": [...], "msg": "..."}]
        self.retry_after = retry_after  # seconds the server asked to wait (429, 503)

    def __repr__(self) -> str:
        return f"TidingsError(code={self.code!r}, status={self.status!r}, message={self.message!r})"

    @classmethod
    def from_answer(
        cls, status: int, headers: Mapping[str, str], body: bytes, url: str
    ) -> TidingsError:
        """Read a refusal; an answer that is not one Tidings gives still becomes an error."""
        retry_after = parse_retry_after(headers.get("retry-after"))
        try:
            error = orjson.loads(body)["error"]
            return cls(
                str(error["code"]),
                str(error["message"]),
                status=status,
                details=list(error.get("details") or []),
                retry_after=retry_after,
            )
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return cls(
                "not_tidings",
                f"{url} answered HTTP {status}, not as a Tidings server does",
                status=status,
                retry_after=retry_after,
            )


def parse_retry_after(value: str | None) -> float | None:
    """``Retry-After`` in seconds (the HTTP-date form is not used by Tidings)."""
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if seconds >= 0 else None
