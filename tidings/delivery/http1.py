"""A small keep-alive HTTP/1.1 client for webhook delivery: ``POST`` one body, read the answer.

Why not httpx2: delivery is bound by the event loop, and httpx2 measured as its bottleneck
(BENCHMARKS.md, "Webhook delivery"): 480-790 µs of CPU per request on the benchmark machine,
against 15-20 µs for a client on ``asyncio.Protocol`` with the httptools response parser (the
parser uvicorn already brings). Delivery needs one method, no redirects, no cookies, no proxies
and no HTTP/2, so this module is only that:

* one pool of keep-alive connections per origin (scheme, host, port, TLS server name), idle ones
  reused newest first, at most ``max_connections`` open per origin; callers beyond the cap wait
  in line (FIFO) within their deadline; a connection idle for ``idle_timeout`` seconds is not
  reused and is closed (one pool-wide timer looks every half of it), and one the peer closes
  gives its slot back at once;
* one request at a time per connection (no pipelining), written with one ``transport.write``;
* the answer's status, headers (at most ``header_limit`` bytes of head, so a hostile receiver
  cannot grow memory) and the first ``body_limit`` bytes of its body; the rest is read and
  thrown away so the connection can be reused, unless it is huge (then the connection is
  closed instead);
* one deadline per request covering the wait for a connection, connect, TLS, write and read;
* a reused connection that the peer had closed meanwhile (nothing of the answer arrived) is
  retried once on a fresh connection: the usual keep-alive race, not a failure of the receiver.

Errors are ``HTTPClientError`` subclasses whose class names are what the attempt log shows
(``ConnectError: ...``, ``RemoteProtocolError: ...``, ``ReadError: ...``).
"""

from __future__ import annotations

import asyncio
import functools
import re
import ssl
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final, cast
from urllib.parse import quote, urlsplit

import httptools

DEFAULT_BODY_LIMIT: Final = 4096  # bytes of an answer's body kept
DEFAULT_DRAIN_LIMIT: Final = 64 * 1024  # body bytes past the limit read to keep the connection
DEFAULT_HEADER_LIMIT: Final = 64 * 1024  # bytes of an answer's status line and headers
DEFAULT_IDLE_TIMEOUT: Final = 30.0  # seconds an unused keep-alive connection stays open
CLOSE_WAIT_S: Final = 1.0  # how long close() waits for the aborted connections to be gone

# RFC 9110 token characters: anything else in a header name could split or smuggle a header.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_BAD_VALUE = re.compile(r"[\r\n\0]")
# Characters of a request target that must not go out raw (controls, space, non-ASCII).
_UNSAFE_TARGET = re.compile(r"[\x00-\x20\x7f-\U0010ffff]")
_TARGET_SAFE = "/?#[]@!$&'()*+,;=:%-._~"
_OWN_HEADERS = frozenset({"content-length", "transfer-encoding"})


class HTTPClientError(Exception):
    """Base of every failure of a request; the subclass name says which kind."""


class InvalidRequest(HTTPClientError, ValueError):
    """The request cannot be sent as given (bad URL, a header with CR/LF, ...)."""


class PoolClosed(HTTPClientError):
    """The pool was closed before or while the request ran."""


class ConnectError(HTTPClientError):
    """No connection could be made: refused, unreachable, unresolvable, or TLS failed."""


class RemoteProtocolError(HTTPClientError):
    """The peer broke HTTP: a malformed answer, or it hung up before the answer was complete."""


class ReadError(HTTPClientError):
    """The connection failed with an OS error (reset, ...) while the request was in flight."""


class RequestTimeout(HTTPClientError):
    """The whole request (waiting, connecting, sending, reading) overran its deadline."""


@dataclass(frozen=True, slots=True)
class Response:
    """An answer: its status, its headers (names lower-case, repeats joined with ``, ``) and
    the first ``body_limit`` bytes of its body."""

    status: int
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True, slots=True)
class _URL:
    scheme: str
    host: str  # what to connect to (IPv6 without brackets)
    port: int
    target: str  # path and query as sent in the request line
    host_header: str  # the URL's host[:port] as written


@functools.lru_cache(maxsize=1024)
def _parse_url(url: str) -> _URL:
    """Split a URL once: webhook URLs repeat, and urlsplit is a noticeable part of a request."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise InvalidRequest(f"invalid URL: {error}") from None
    if parts.scheme not in ("http", "https"):
        raise InvalidRequest(f"unsupported URL scheme {parts.scheme!r}")
    if not parts.hostname:
        raise InvalidRequest("the URL has no host")
    target = parts.path or "/"
    if parts.query:
        target = f"{target}?{parts.query}"
    if _UNSAFE_TARGET.search(target):
        target = quote(target, safe=_TARGET_SAFE)
    host_header = parts.netloc.rsplit("@", 1)[-1]
    default_port = 443 if parts.scheme == "https" else 80
    return _URL(parts.scheme, parts.hostname, port or default_port, target, host_header)


def encode_request(target: str, host: str, headers: Mapping[str, str], body: bytes) -> bytes:
    """The bytes of ``POST target``: Host first, the given headers, then Content-Length.

    Header names and values come from users (endpoint headers): a CR or LF would let them
    add headers or a whole second request, so such headers are refused, not cleaned.
    """
    lines = []
    for name, value in headers.items():
        if not _TOKEN.fullmatch(name):
            raise InvalidRequest(f"invalid header name {name!r}")
        if _BAD_VALUE.search(value):
            raise InvalidRequest(f"the value of header {name!r} contains CR, LF or NUL")
        lower = name.lower()
        if lower == "host":
            host = value
        elif lower in _OWN_HEADERS:
            raise InvalidRequest(f"{name} is set by the client")
        else:
            lines.append(f"{name}: {value}\r\n")
    if _BAD_VALUE.search(host):
        raise InvalidRequest("the Host header contains CR, LF or NUL")
    if not host.isascii():
        host = _ascii_host(host)
    head = f"POST {target} HTTP/1.1\r\nHost: {host}\r\n{''.join(lines)}"
    return b"%sContent-Length: %d\r\n\r\n%s" % (head.encode(), len(body), body)


def _ascii_host(host: str) -> str:
    """An internationalised ``name[:port]`` in its IDNA form, as HTTP requires (and httpx2
    sent); only IPv6 literals contain more colons, and they are ASCII."""
    name, colon, port = host.partition(":")
    try:
        return name.encode("idna").decode("ascii") + colon + port
    except UnicodeError as error:
        raise InvalidRequest(f"invalid host name {name!r}: {error}") from None


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 connection carrying one request at a time; httptools calls back into it."""

    def __init__(
        self,
        body_limit: int,
        drain_limit: int,
        forget: Callable[[_Connection], None],
        header_limit: int = DEFAULT_HEADER_LIMIT,
        origin_key: _OriginKey | None = None,
    ) -> None:
        self.transport: asyncio.Transport | None = None
        self.origin_key = origin_key  # the pool's origin this connection belongs to
        self.idle_since = 0.0  # loop time it was last put back idle
        self.exchanges = 0  # requests started on this connection
        self.closed = False  # connection_lost was called
        self.broken = False  # something makes it unfit for another request
        self.received_any = False  # a byte of the current answer arrived
        self.reusable = False  # the last answer allows keep-alive
        self.pool_closed = False
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._forget = forget
        self._body_limit = body_limit
        self._drain_limit = drain_limit
        self._header_limit = header_limit
        self._head_seen = 0  # bytes received of the current answer before its headers ended
        self._done: asyncio.Future[Response] | None = None
        self._parser = httptools.HttpResponseParser(self)
        self._reset_answer()

    def _reset_answer(self) -> None:
        self._status = 0
        self._headers: list[tuple[bytes, bytes]] = []
        self._header_bytes = 0  # as sent: names, values, ": " and CRLF
        self._body = bytearray()
        self._body_seen = 0
        self._headers_done = False
        self._framed = False  # Content-Length or chunked: the body does not end at EOF
        self._keep_alive = False

    def usable(self) -> bool:
        """Idle and still open: fit to carry the next request."""
        transport = self.transport
        return (
            not self.closed
            and not self.broken
            and transport is not None
            and not transport.is_closing()
        )

    def abort(self) -> None:
        """Drop the connection now; used whenever its state is uncertain."""
        self.broken = True
        if self.transport is not None:
            self.transport.abort()

    async def exchange(self, request: bytes) -> Response:
        """Send one request and wait for its complete answer (informational ones skipped)."""
        if self.transport is None:  # the pool only hands out connected ones
            raise RemoteProtocolError("not connected")
        self.exchanges += 1
        self.received_any = False
        self._head_seen = 0
        self.reusable = False
        self._parser = httptools.HttpResponseParser(self)
        self._reset_answer()
        done: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
        self._done = done
        try:
            self.transport.write(request)
        except (OSError, RuntimeError) as error:  # a transport that went away meanwhile
            raise ReadError(str(error) or type(error).__name__) from error
        return await done

    def _fail(self, error: HTTPClientError) -> None:
        if self._done is not None and not self._done.done():
            self._done.set_exception(error)

    def _finish(self, keep_alive: bool) -> None:
        if self._done is None or self._done.done():
            return
        headers: dict[str, str] = {}
        for raw_name, raw_value in self._headers:
            name = raw_name.decode("latin-1").lower()
            value = raw_value.decode("latin-1")
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        self.reusable = keep_alive
        self._done.set_result(Response(self._status, headers, bytes(self._body)))

    # -- asyncio.Protocol ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A cast, not an isinstance check: uvloop's transports do not subclass asyncio's.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self._done is None or self._done.done():
            # Nobody asked: unsolicited bytes on an idle connection, or more after the answer.
            self.abort()
            return
        self.received_any = True
        if not self._headers_done:
            self._head_seen += len(data)
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(RemoteProtocolError("the server switched protocols"))
            self.abort()
        except httptools.HttpParserError as error:
            # Garbage after a complete answer leaves the answer as it was (_fail does nothing
            # then) but still makes the connection unfit for another request.
            self._fail(RemoteProtocolError(f"malformed answer: {error}"))
            self.abort()
            return
        if self._header_bytes > self._header_limit or (
            not self._headers_done and self._head_seen > self._header_limit
        ):
            # The parser buffers a header until it ends: stop before a peer that never ends
            # one, or sends endless ones, grows memory without bound.
            self._fail(
                RemoteProtocolError(f"the answer's headers exceed {self._header_limit} bytes")
            )
            self.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._forget(self)
        if not self.lost.done():
            self.lost.set_result(None)
        if self._done is None or self._done.done():
            return
        if self.pool_closed:
            self._fail(PoolClosed("the client was closed"))
        elif self._headers_done and not self._framed:
            self._finish(keep_alive=False)  # a body delimited by the end of the connection
        elif exc is not None:
            self._fail(ReadError(str(exc) or type(exc).__name__))
        elif self.received_any:
            self._fail(RemoteProtocolError("server disconnected before the answer was complete"))
        else:
            self._fail(RemoteProtocolError("server disconnected without sending an answer"))

    # -- httptools callbacks --------------------------------------------------------------------

    def on_message_begin(self) -> None:
        if self._done is None or self._done.done():
            self.broken = True  # a second answer to one request
        self._reset_answer()

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_bytes += len(name) + len(value) + 4
        if self._header_bytes > self._header_limit:
            return  # refused after this feed; keep no more of them meanwhile
        self._headers.append((name, value))
        lower = name.lower()
        if lower == b"content-length" or (
            lower == b"transfer-encoding" and b"chunked" in value.lower()
        ):
            self._framed = True

    def on_headers_complete(self) -> None:
        self._status = self._parser.get_status_code()
        self._keep_alive = self._parser.should_keep_alive()
        self._headers_done = True

    def on_body(self, body: bytes) -> None:
        if self._done is None or self._done.done():
            return
        room = self._body_limit - len(self._body)
        if room > 0:
            self._body += body[:room]
        self._body_seen += len(body)
        if self._body_seen > self._body_limit + self._drain_limit:
            # Draining this one would cost more than a new connection: answer and hang up.
            self._finish(keep_alive=False)
            self.abort()

    def on_message_complete(self) -> None:
        if self._done is None or self._done.done():
            return
        if self._header_bytes > self._header_limit:
            return  # refused once the parser returns
        if self._status == 101:
            self._fail(RemoteProtocolError("the server switched protocols"))
            self.abort()
        elif self._status < 200:
            self._headers_done = False  # 100 Continue and the like: the answer follows
        else:
            self._finish(self._keep_alive)


_OriginKey = tuple[str, str, int, str | None]


class _Origin:
    """The connections to one origin, and the callers waiting for one."""

    __slots__ = ("idle", "key", "open", "waiters")

    def __init__(self, key: _OriginKey) -> None:
        self.key = key
        self.idle: list[_Connection] = []
        self.open = 0  # slots taken: connecting, busy or idle connections
        # Each waiter gets an idle connection, or None: a slot to open a connection with.
        self.waiters: deque[asyncio.Future[_Connection | None]] = deque()


class ConnectionPool:
    """Keep-alive HTTP/1.1 connections, pooled per origin, for ``POST`` requests."""

    def __init__(
        self,
        *,
        max_connections: int = 10,
        body_limit: int = DEFAULT_BODY_LIMIT,
        drain_limit: int = DEFAULT_DRAIN_LIMIT,
        header_limit: int = DEFAULT_HEADER_LIMIT,
        idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        if max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        self.max_connections = max_connections  # per origin
        self.body_limit = body_limit
        self.drain_limit = drain_limit
        self.header_limit = header_limit
        # Receivers close idle connections too (often after 5-75 s); closing ours first frees
        # the slot and the socket, and avoids most requests sent into a closing connection.
        self.idle_timeout = idle_timeout
        self._ssl_context = ssl_context
        self._origins: dict[_OriginKey, _Origin] = {}
        self._connections: set[_Connection] = set()
        self._sweep: asyncio.TimerHandle | None = None  # the next look for expired idle ones
        self._closed = False

    @property
    def ssl_context(self) -> ssl.SSLContext:
        """The context for https:// origins; the system's default trust, built on first use
        (loading the CA store takes milliseconds, which plain-http users need not pay)."""
        if self._ssl_context is None:
            self._ssl_context = ssl.create_default_context()
        return self._ssl_context

    def open_connections(self, url: str, server_hostname: str | None = None) -> int:
        """Slots taken for the URL's origin: connecting, busy and idle connections."""
        origin = self._origins.get(self._key(_parse_url(url), server_hostname))
        return origin.open if origin is not None else 0

    def idle_connections(self, url: str, server_hostname: str | None = None) -> int:
        """Idle keep-alive connections kept for the URL's origin."""
        origin = self._origins.get(self._key(_parse_url(url), server_hostname))
        return len(origin.idle) if origin is not None else 0

    async def post(
        self,
        url: str,
        headers: Mapping[str, str],
        body: bytes,
        *,
        timeout: float,
        server_hostname: str | None = None,
    ) -> Response:
        """``POST body`` to ``url`` and return the answer, within ``timeout`` seconds overall.

        ``server_hostname`` is the TLS name (SNI and certificate check) for https:// when the
        URL's host is a pinned address; by default the URL's host. A ``Host`` header in
        ``headers`` replaces the URL's.
        """
        if self._closed:
            raise PoolClosed("the client is closed")
        parsed = _parse_url(url)
        request = encode_request(parsed.target, parsed.host_header, headers, body)
        key = self._key(parsed, server_hostname)
        try:
            async with asyncio.timeout(timeout):
                return await self._send(key, request)
        except TimeoutError:
            raise RequestTimeout(f"no complete answer within {timeout:g} s") from None

    async def close(self) -> None:
        """Abort every connection and refuse further requests; requests in flight fail."""
        self._closed = True
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None
        for origin in self._origins.values():
            while origin.waiters:
                waiter = origin.waiters.popleft()
                if not waiter.done():
                    waiter.set_exception(PoolClosed("the client was closed"))
            origin.idle.clear()
        self._origins.clear()
        connections = list(self._connections)
        for connection in connections:
            connection.pool_closed = True
            connection.abort()
        lost = [c.lost for c in connections if not c.lost.done()]
        if lost:
            await asyncio.wait(lost, timeout=CLOSE_WAIT_S)

    # -- internals ------------------------------------------------------------------------------

    @staticmethod
    def _key(parsed: _URL, server_hostname: str | None) -> _OriginKey:
        if parsed.scheme == "https":
            return (parsed.scheme, parsed.host, parsed.port, server_hostname or parsed.host)
        return (parsed.scheme, parsed.host, parsed.port, None)

    async def _send(self, key: _OriginKey, request: bytes) -> Response:
        origin = self._origins.get(key)
        if origin is None:
            origin = self._origins[key] = _Origin(key)
        connection = await self._checkout(origin)  # holds one of the origin's slots
        try:
            try:
                response = await connection.exchange(request)
            except (ReadError, RemoteProtocolError):
                connection.abort()
                if connection.exchanges == 1 or connection.received_any:
                    raise
                # A kept-alive connection the peer had closed while idle: the request never
                # reached anyone who answered, so one more try on a new connection is safe.
                connection = await self._connect(origin.key)
                response = await connection.exchange(request)
        except BaseException:
            # Timeout, cancellation or failure: its state is unknown, so it is not reused.
            connection.abort()
            self._release_slot(origin)
            raise
        self._checkin(origin, connection)
        return response

    async def _checkout(self, origin: _Origin) -> _Connection:
        """An idle connection (newest first), else a new one if under the cap, else wait."""
        stale = asyncio.get_running_loop().time() - self.idle_timeout
        while origin.idle:
            connection = origin.idle.pop()
            if connection.usable() and connection.idle_since > stale:
                return connection
            connection.abort()
            origin.open -= 1  # no waiters while connections are idle: nobody to hand it to
        if origin.open < self.max_connections and not origin.waiters:
            origin.open += 1
        else:
            waiter: asyncio.Future[_Connection | None]
            waiter = asyncio.get_running_loop().create_future()
            origin.waiters.append(waiter)
            try:
                handed = await waiter
            except BaseException:
                if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                    # Handed a connection or slot just as we gave up: pass it on.
                    given = waiter.result()
                    if given is not None:
                        self._checkin(origin, given)
                    else:
                        self._release_slot(origin)
                elif waiter in origin.waiters:
                    origin.waiters.remove(waiter)
                raise
            if handed is not None:
                if handed.usable():
                    return handed
                handed.abort()  # keep its slot for a new connection
        try:
            return await self._connect(origin.key)
        except BaseException:
            self._release_slot(origin)
            raise

    async def _connect(self, key: _OriginKey) -> _Connection:
        scheme, host, port, server_hostname = key
        loop = asyncio.get_running_loop()

        def factory() -> _Connection:
            return _Connection(
                self.body_limit, self.drain_limit, self._lost, self.header_limit, key
            )

        try:
            if scheme == "https":
                _, connection = await loop.create_connection(
                    factory, host, port, ssl=self.ssl_context, server_hostname=server_hostname
                )
            else:
                _, connection = await loop.create_connection(factory, host, port)
        except OSError as error:  # refused, unreachable, DNS, TLS (ssl.SSLError is an OSError)
            raise ConnectError(str(error) or type(error).__name__) from error
        if self._closed:
            connection.abort()
            raise PoolClosed("the client was closed")
        self._connections.add(connection)
        return connection

    def _checkin(self, origin: _Origin, connection: _Connection) -> None:
        """Back to the idle list (or straight to the first waiter) if reusable; else closed."""
        if self._closed or not connection.reusable or not connection.usable():
            connection.abort()
            self._release_slot(origin)
            return
        while origin.waiters:
            waiter = origin.waiters.popleft()
            if not waiter.done():
                waiter.set_result(connection)
                return
        loop = asyncio.get_running_loop()
        connection.idle_since = loop.time()
        origin.idle.append(connection)
        if self._sweep is None:
            self._sweep = loop.call_later(self.idle_timeout / 2, self._expire_idle)

    def _expire_idle(self) -> None:
        """Close the connections idle for ``idle_timeout`` or longer. One timer for the pool,
        not one per request: checking a connection in costs a time stamp."""
        self._sweep = None
        if self._closed:
            return
        loop = asyncio.get_running_loop()
        cutoff = loop.time() - self.idle_timeout
        kept = False
        for origin in list(self._origins.values()):
            for connection in list(origin.idle):
                if connection.idle_since <= cutoff:
                    connection.abort()  # connection_lost gives its slot back
                else:
                    kept = True
        if kept:
            self._sweep = loop.call_later(self.idle_timeout / 2, self._expire_idle)

    def _lost(self, connection: _Connection) -> None:
        """A connection ended. An idle one gives its slot back now: waiting for the next
        request to that origin to notice would hold a socket and a slot for nothing."""
        self._connections.discard(connection)
        origin = self._origins.get(connection.origin_key) if connection.origin_key else None
        if origin is not None and connection in origin.idle:
            origin.idle.remove(connection)
            self._release_slot(origin)

    def _release_slot(self, origin: _Origin) -> None:
        """A slot came free: the first waiter takes it over, else the origin has one less."""
        while origin.waiters:
            waiter = origin.waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        origin.open -= 1
        if origin.open <= 0 and not origin.idle and self._origins.get(origin.key) is origin:
            del self._origins[origin.key]
