"""What both clients share: where the server is, how to present a key, and how a failure to
talk to it reads."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

import httpx2

from tidings import __version__
from tidings.client._calls import Answer
from tidings.client._errors import TidingsError
from tidings.client._policy import Lost

DEFAULT_URL = "http://127.0.0.1:8000"
USER_AGENT = f"tidings-python/{__version__}"

H = TypeVar("H")


@dataclass(frozen=True, slots=True)
class Connection:
    """The server and the credentials, resolved from arguments, then the environment."""

    url: str  # the server's base URL, without a trailing slash
    headers: dict[str, str]  # sent with every request
    timeout: httpx2.Timeout  # for ordinary requests
    stream_timeout: httpx2.Timeout  # for streams: a read waits through several heartbeats

    @classmethod
    def resolve(
        cls,
        url: str | None,
        key: str | None,
        timeout: float,
        stream_read_timeout: float,
        headers: Mapping[str, str] | None,
    ) -> Connection:
        base = (url or os.environ.get("TIDINGS_URL") or DEFAULT_URL).rstrip("/")
        secret = key if key is not None else os.environ.get("TIDINGS_KEY")
        sent = {"User-Agent": USER_AGENT, **(headers or {})}
        if secret:
            sent["X-API-Key"] = secret
        return cls(
            base,
            sent,
            httpx2.Timeout(timeout, connect=min(timeout, 10.0)),
            httpx2.Timeout(timeout, read=stream_read_timeout),
        )

    def open(
        self,
        factory: Callable[..., H],
        transport: httpx2.BaseTransport | httpx2.AsyncBaseTransport | None,
    ) -> H:
        """An ``httpx2`` client (``Client`` or ``AsyncClient``) for this server."""
        try:
            return factory(
                base_url=self.url,
                headers=self.headers,
                timeout=self.timeout,
                transport=transport,
                follow_redirects=False,
            )
        except (httpx2.InvalidURL, httpx2.UnsupportedProtocol) as error:
            raise failure(error, self.url) from None


def failure(error: Exception, base: str) -> TidingsError:
    """The error for a request to ``base`` that got no answer."""
    if isinstance(error, httpx2.ConnectError):
        reason = "connection refused" if "refused" in str(error).lower() else str(error)
        return TidingsError("unreachable", f"cannot reach the Tidings server at {base} ({reason})")
    if isinstance(error, httpx2.TimeoutException):
        return TidingsError("timeout", f"the Tidings server at {base} did not answer in time")
    if isinstance(error, httpx2.UnsupportedProtocol | httpx2.InvalidURL):
        return TidingsError("invalid_url", f"invalid server URL {base!r}: {error}")
    detail = str(error) or type(error).__name__
    return TidingsError(
        "transport_error", f"request to the Tidings server at {base} failed: {detail}"
    )


def connection_was_refused(error: Exception) -> bool:
    """Whether nothing of the request reached the server (so sending it again is harmless)."""
    return isinstance(error, httpx2.ConnectError)


# What a request that got no answer raises (an invalid URL is not an ``HTTPError``).
REQUEST_ERRORS = (httpx2.HTTPError, httpx2.InvalidURL)


def lost(error: Exception, base: str) -> Lost:
    """What became of a request to ``base`` that raised ``error`` instead of answering."""
    return Lost(
        failure(error, base),
        transient=isinstance(error, httpx2.TransportError),
        sent=not connection_was_refused(error),
    )


def answer_of(response: httpx2.Response) -> Answer:
    """The response, as the calls and the stream state read it (its body already read)."""
    return Answer(response.status_code, response.headers, response.content, str(response.url))
