"""Start ``tidings`` with an experimental change applied in memory, to measure a suggestion.

Not Tidings as shipped: each option replaces one function at start-up, so that the benchmark
can put a number on a change before anyone makes it in the package. The files in tidings/
are untouched.

  --lean-client      tidings/delivery/sender.py ``Sender.send`` without httpx2 for plain
                     http:// destinations: a keep-alive connection pool per origin on
                     ``asyncio.Protocol`` with the httptools response parser (already installed
                     with uvicorn). The request, its signature headers and the attempt result
                     are built by Tidings' own functions as before; https:// still goes through
                     httpx2.
  --dispatch-budget  tidings/delivery/engine.py ``Engine.dispatch_once`` reads at most
                     ``N // active endpoints`` events per round (at least 1, at most the usual
                     1,000), so that one round creates about N deliveries instead of up to
                     1,000 per endpoint, and the event loop and the SQLite writer are held
                     for that long only; and an endpoint's cursor waits once it has
                     ``4 N // active endpoints`` first attempts queued in memory (instead of
                     2,000 each, 200,000 for 100 endpoints), so that deliveries are created
                     about as fast as they are attempted, not far ahead of it.

    .venv/bin/python bench/delivery/variant.py --lean-client -- serve --port 18441 ...
"""

from __future__ import annotations

import argparse
import asyncio
import codecs
import sys
import time
from typing import Any
from urllib.parse import urlsplit

import httptools

from tidings.delivery import engine as engine_module
from tidings.delivery import sender as sender_module
from tidings.delivery.destinations import DestinationRefused, vet
from tidings.delivery.schedule import parse_retry_after
from tidings.delivery.signing import signature_headers
from tidings.envelope import Event
from tidings.envelope.timefmt import now_us
from tidings.store.deliveries import Endpoint

AttemptResult = sender_module.AttemptResult
LIMIT = sender_module.RESPONSE_BODY_LIMIT


class _Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection: one request at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.done: asyncio.Future[None] | None = None
        self.status = 0
        self.headers: dict[bytes, bytes] = {}
        self.body = bytearray()
        self.keep_alive = False
        self.closed = False

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as error:
            self._fail(ConnectionError(f"invalid response: {error}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail(exc or ConnectionError("the server closed the connection"))

    def _fail(self, error: BaseException) -> None:
        if self.done is not None and not self.done.done():
            self.done.set_exception(error)

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.lower()] = value

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        self.keep_alive = self.parser.should_keep_alive()

    def on_body(self, body: bytes) -> None:
        if len(self.body) < LIMIT:
            self.body.extend(body[: LIMIT - len(self.body)])

    def on_message_complete(self) -> None:
        if self.done is not None and not self.done.done():
            self.done.set_result(None)

    async def exchange(self, request: bytes) -> None:
        assert self.transport is not None
        self.parser = httptools.HttpResponseParser(self)
        self.status, self.headers, self.body = 0, {}, bytearray()
        self.done = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        await self.done


class _Pool:
    def __init__(self) -> None:
        self.idle: dict[tuple[str, int], list[_Connection]] = {}

    async def request(self, host: str, port: int, request: bytes) -> _Connection:
        idle = self.idle.setdefault((host, port), [])
        conn = None
        while idle:
            candidate = idle.pop()
            if not candidate.closed:
                conn = candidate
                break
        if conn is None:
            loop = asyncio.get_running_loop()
            _, conn = await loop.create_connection(_Connection, host, port)
        try:
            await conn.exchange(request)
        except BaseException:
            if conn.transport is not None:
                conn.transport.abort()
            raise
        if conn.keep_alive and not conn.closed:
            idle.append(conn)
        elif conn.transport is not None:
            conn.transport.close()
        return conn


_POOL = _Pool()
_httpx_send = sender_module.Sender.send


async def lean_send(
    self: sender_module.Sender, endpoint: Endpoint, event: Event, message_id: str
) -> AttemptResult:
    """Sender.send with the same request and result, without httpx2 for http:// URLs."""
    if not endpoint.url.startswith("http://"):
        return await _httpx_send(self, endpoint, event, message_id)
    at = now_us()
    started = time.perf_counter()
    body = sender_module.request_body(event, at)
    headers = dict(endpoint.headers)
    headers.update(signature_headers(endpoint.live_secrets(at), message_id, at // 1_000_000, body))
    headers["Content-Type"] = "application/json"
    headers["User-Agent"] = self.user_agent
    headers["traceparent"] = f"00-{event.trace_id}-{sender_module.os.urandom(8).hex()}-01"
    try:
        target = await vet(endpoint.url, self.allow_private)
    except DestinationRefused as error:
        return AttemptResult(at, None, 0.0, f"destination refused: {error}", None, False, None)
    parts = urlsplit(target.url)
    host, port = parts.hostname or "", parts.port or 80
    headers.setdefault("Host", target.host_header or parts.netloc)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    request = f"POST {path} HTTP/1.1\r\n{head}Content-Length: {len(body)}\r\n\r\n".encode() + body
    timeout = self.client.timeout.read or 10.0
    try:
        async with asyncio.timeout(timeout):
            conn = await _POOL.request(host, port, request)
    except TimeoutError:
        latency = (time.perf_counter() - started) * 1000
        return AttemptResult(at, None, latency, "timed out", None, True, None)
    except OSError as error:
        latency = (time.perf_counter() - started) * 1000
        return AttemptResult(at, None, latency, f"ConnectError: {error}", None, False, None)
    latency = (time.perf_counter() - started) * 1000
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    text = decoder.decode(bytes(conn.body), final=False)
    retry_value = conn.headers.get(b"retry-after")
    retry_after = parse_retry_after(
        retry_value.decode("latin-1") if retry_value else None, time.time()
    )
    return AttemptResult(at, conn.status, latency, None, text, False, retry_after)


def budget_dispatch(budget: int) -> Any:
    original = engine_module.Engine.dispatch_once

    async def dispatch_once(self: engine_module.Engine) -> bool:
        active = sum(1 for e in self.endpoints.values() if e.active) or 1
        engine_module.PAGE = max(1, min(1000, budget // active))
        engine_module.MAX_QUEUED_PER_ENDPOINT = max(1, min(2000, 4 * budget // active))
        return await original(self)

    return dispatch_once


def main() -> None:
    argv = sys.argv[1:]
    split = argv.index("--") if "--" in argv else len(argv)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lean-client", action="store_true")
    parser.add_argument("--dispatch-budget", type=int, metavar="N")
    args = parser.parse_args(argv[:split])
    if args.lean_client:
        sender_module.Sender.send = lean_send  # type: ignore[method-assign]
    if args.dispatch_budget:
        engine_module.Engine.dispatch_once = budget_dispatch(args.dispatch_budget)  # type: ignore[method-assign]
    sys.argv = ["tidings", *argv[split + 1 :]]
    from tidings.cli import main as tidings_main

    tidings_main()


if __name__ == "__main__":
    main()
