"""One HTTP attempt of one delivery: build the signed request, send it, read the answer."""

from __future__ import annotations

import asyncio
import codecs
import os
import ssl
import time
from dataclasses import dataclass

from tidings import __version__
from tidings.delivery.destinations import DestinationRefused, Target, vet
from tidings.delivery.http1 import (
    ConnectError,
    ConnectionPool,
    HTTPClientError,
    RequestTimeout,
    Response,
)
from tidings.delivery.schedule import parse_retry_after
from tidings.delivery.signing import signature_headers
from tidings.envelope import Event
from tidings.envelope.timefmt import format_us, now_us
from tidings.store.deliveries import Endpoint

RESPONSE_BODY_LIMIT = 4096  # bytes of the receiver's answer kept in the attempt log
PREFERRED_CAP = 10_000  # endpoints whose last working address is remembered
RESERVED_HEADERS = {
    "host",
    "content-length",
    "content-type",
    "transfer-encoding",
    "connection",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
    "x-signature",
    "user-agent",
    "traceparent",
}


@dataclass(frozen=True, slots=True)
class AttemptResult:
    at_us: int
    status_code: int | None
    latency_ms: float
    error: str | None
    response_body: str | None
    timed_out: bool
    retry_after_s: float | None


def request_body(event: Event, delivered_at_us: int) -> bytes:
    """``{"event": {...}, "delivered_at": "..."}`` splicing the event's cached JSON."""
    return b'{"event":%s,"delivered_at":"%s"}' % (
        event.encode(),
        format_us(delivered_at_us).encode(),
    )


class Sender:
    """Sends attempts through Tidings' own HTTP/1.1 client (``tidings.delivery.http1``):
    httpx2 cost 25-50 times more CPU per request, and delivery is bound by the event loop."""

    def __init__(
        self,
        *,
        timeout_s: float,
        allow_private: bool,
        max_connections: int,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.allow_private = allow_private  # let private and loopback addresses through
        self.timeout_s = timeout_s  # the whole attempt: connect, TLS, send and read the answer
        # No redirects are followed by the client: a 3xx is a failed attempt. ``ssl_context``
        # is for tests (a receiver with its own certificate); by default the pool builds
        # ``ssl.create_default_context()`` (the system's trust) on its first https:// request.
        self.pool = ConnectionPool(
            max_connections=max_connections,
            body_limit=RESPONSE_BODY_LIMIT,
            ssl_context=ssl_context,
        )
        self.user_agent = f"tidings/{__version__}"
        # The pinned URL that last answered, per endpoint URL: tried first next time, so a
        # name with an address nobody listens on (localhost's ::1, say) costs one failed
        # connect, not one per attempt.
        self._preferred: dict[str, str] = {}

    async def close(self) -> None:
        """Close every pooled connection; attempts still running fail."""
        await self.pool.close()

    async def send(self, endpoint: Endpoint, event: Event, message_id: str) -> AttemptResult:
        at = now_us()
        started = time.perf_counter()
        body = request_body(event, at)
        headers = dict(endpoint.headers)
        headers.update(
            signature_headers(endpoint.live_secrets(at), message_id, at // 1_000_000, body)
        )
        headers["Content-Type"] = "application/json"
        headers["User-Agent"] = self.user_agent
        headers["traceparent"] = f"00-{event.trace_id}-{os.urandom(8).hex()}-01"
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout_s  # resolution, connects, the answer: all of it
        try:
            async with asyncio.timeout_at(deadline):
                target = await vet(endpoint.url, self.allow_private)
        except DestinationRefused as error:
            return AttemptResult(at, None, 0.0, f"destination refused: {error}", None, False, None)
        except TimeoutError:
            latency = (time.perf_counter() - started) * 1000
            slow = "timed out resolving the host"
            return AttemptResult(at, None, latency, slow, None, True, None)
        if target.host_header:
            headers["Host"] = target.host_header
        try:
            response = await self._post(endpoint.url, target, headers, body, deadline)
        except RequestTimeout:
            latency = (time.perf_counter() - started) * 1000
            return AttemptResult(at, None, latency, "timed out", None, True, None)
        except HTTPClientError as error:
            latency = (time.perf_counter() - started) * 1000
            message = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
            return AttemptResult(at, None, latency, message, None, False, None)
        latency = (time.perf_counter() - started) * 1000
        # Incremental decoding drops a character cut in half at the limit, instead of storing
        # a replacement character that would also push the text past the limit.
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        text = decoder.decode(response.body[:RESPONSE_BODY_LIMIT], final=False)
        retry_after = parse_retry_after(response.headers.get("retry-after"), time.time())
        return AttemptResult(at, response.status, latency, None, text, False, retry_after)

    async def _post(
        self, url: str, target: Target, headers: dict[str, str], body: bytes, deadline: float
    ) -> Response:
        """POST to each vetted address in turn until one accepts a connection.

        Only a failed connect moves on: once a request may have reached a receiver, its
        outcome is the attempt's, and a second address must not get it again.
        """
        urls = list(target.urls)
        preferred = self._preferred.get(url)
        if preferred in urls and urls[0] != preferred:
            urls.remove(preferred)
            urls.insert(0, preferred)
        loop = asyncio.get_running_loop()
        failures: list[str] = []
        for pinned in urls:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise RequestTimeout(f"no complete answer within {self.timeout_s:g} s")
            try:
                response = await self.pool.post(
                    pinned, headers, body, timeout=remaining, server_hostname=target.sni_hostname
                )
            except ConnectError as error:
                failures.append(f"{_address_of(pinned)}: {error}")
                continue
            if len(urls) > 1:
                if len(self._preferred) >= PREFERRED_CAP and url not in self._preferred:
                    self._preferred.pop(next(iter(self._preferred)))
                self._preferred[url] = pinned
            return response
        raise ConnectError("; ".join(failures))


def _address_of(url: str) -> str:
    return url.split("://", 1)[-1].split("/", 1)[0]
