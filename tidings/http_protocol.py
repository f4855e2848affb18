"""uvicorn's httptools protocol with the limits a server facing the network needs.

As uvicorn ships it, a connection that never sends a request is held for ever, a request's
headers may grow without bound and take as long as they like (slowloris), and a process
accepts connections until it runs out of descriptors, after which even ``/healthz`` goes
unanswered. This protocol adds, per connection:

- a deadline for the request line and headers (``TIDINGS_HEADER_TIMEOUT_S``), counted from
  the connection's opening or the request's first byte; keep-alive idleness between requests
  stays uvicorn's ``timeout_keep_alive`` (``TIDINGS_KEEPALIVE_S``);
- a size limit on the request line and headers (``TIDINGS_MAX_HEADER_BYTES``): 414 or 431;
- a cap on open connections (``TIDINGS_MAX_CONNECTIONS``): a new connection over it makes
  the longest-idle one close, or is answered 503 when every connection is busy;

and answers malformed requests (WebSocket handshakes included) with the error shape instead
of the plain text of uvicorn and the WebSocket library.

It also holds less per connection than uvicorn's, since every open SSE stream keeps one
(``bench/fanout/memory_breakdown.py``): its own attributes in slots (with them in the instance
dict, the dict outgrows the keys shared between instances and weighs 1.6 KB), lists instead of
the 0.6 KB deques of uvicorn's pipeline and of its two ``asyncio.Event``s, and, once a stream
only writes (``settle_stream``), no parser and no request headers.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
from typing import Any, ClassVar, TypeVar

import httptools
import orjson
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import (
    STATUS_LINE,
    HttpToolsProtocol,
    RequestResponseCycle,
)
from uvicorn.server import ServerState

from tidings.connection_limits import CapReport, ConnectionLimits, IdleConnections

log = logging.getLogger("tidings.http")


class _Refused(Exception):
    """Raised in a parser callback to stop parsing; ``_refusal`` holds the answer."""


class ConnectionGuard:
    """What every connection of one server shares: the limits, the idle set, the report."""

    def __init__(self, limits: ConnectionLimits) -> None:
        self.limits = limits
        self.idle: IdleConnections[GuardedHttpProtocol] = IdleConnections()
        self.report = CapReport(limits.max_connections)

    def note_cap(self, loop: asyncio.AbstractEventLoop, *, refused: bool) -> None:
        line = self.report.note(loop.time(), refused=refused)
        if line is not None:
            log.warning(line)


PROTOCOL_SCOPE_KEY = "tidings.protocol"
"""The scope entry naming the protocol that serves the request, so that a stream finds its
connection's transport in one lookup rather than by looking through every open connection."""


def error_bytes(status: int, code: str, message: str, default_headers: list[Any]) -> bytes:
    """A complete ``Connection: close`` response carrying the error shape."""
    body = orjson.dumps({"error": {"code": code, "message": message}})
    head = [STATUS_LINE[status]]
    for name, value in default_headers:
        head += [name, b": ", value, b"\r\n"]
    head += [
        b"content-type: application/json\r\n",
        b"content-length: " + str(len(body)).encode() + b"\r\n",
        b"connection: close\r\n",
    ]
    if status == 503:
        head.append(b"retry-after: 1\r\n")
    return b"".join([*head, b"\r\n", body])


def websocket_handshake_problem(headers: list[tuple[bytes, bytes]]) -> str | None:
    """What makes a WebSocket upgrade request invalid (RFC 6455 4.2.1), or None."""
    values = dict(headers)
    key = values.get(b"sec-websocket-key")
    if key is None:
        return "the request is not a valid WebSocket handshake: Sec-WebSocket-Key is missing"
    try:
        decoded = base64.b64decode(key, validate=True)
    except binascii.Error:
        decoded = b""
    if len(decoded) != 16:
        return "the request is not a valid WebSocket handshake: Sec-WebSocket-Key is not 16 bytes"
    if values.get(b"sec-websocket-version") != b"13":
        return "the request is not a valid WebSocket handshake: Sec-WebSocket-Version must be 13"
    return None


T = TypeVar("T")


class _Pipeline(list[T]):
    """uvicorn's queue of pipelined requests as a list: an empty deque weighs 0.6 KB, an empty
    list 56 bytes, and a pipeline rarely holds more than one request."""

    __slots__ = ()

    def appendleft(self, item: T) -> None:
        self.insert(0, item)


def _lighten(event: asyncio.Event) -> asyncio.Event:
    """A new ``asyncio.Event`` whose waiters are kept in a list instead of a deque (0.6 KB).

    ``Event`` only appends, removes and iterates its waiters, and an event of a connection
    rarely has more than one."""
    event._waiters = []  # type: ignore[assignment]
    return event


class GuardedHttpProtocol(HttpToolsProtocol):
    """One HTTP connection under the guard's limits (see the module's docstring)."""

    guard: ClassVar[ConnectionGuard]  # set on the subclass made by ``guarded_protocol``
    # Tidings' own state in slots: uvicorn's attributes alone fit the instance dict's shared
    # keys, and with these in the dict as well it becomes a dict of its own.
    __slots__ = (
        "_answered_early",
        "_header_bytes",
        "_header_timer",
        "_message_complete",
        "_parser_idle",
        "_reading_headers",
        "_refusal",
        "_request_begun",
        "_stream_gone",
    )

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.pipeline = _Pipeline()  # type: ignore[assignment]  # the deque methods it uses
        self._reading_headers = True  # between requests or inside a request's headers
        self._header_bytes = 0  # bytes received while reading this request's headers
        self._request_begun = False  # a byte of the current request has arrived
        self._message_complete = True  # the current request's body has been read to its end
        self._parser_idle = True  # the parser holds no part of a next request
        self._answered_early = False  # answered before its body ended: wait for that end
        self._header_timer: asyncio.TimerHandle | None = None
        self._refusal: tuple[int, str, str] | None = None  # set by a callback that stops parsing
        self._stream_gone: asyncio.Future[None] | None = None  # see ``settle_stream``

    # -- the connection ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.flow._is_writable_event = _lighten(asyncio.Event())
        self.flow._is_writable_event.set()
        guard = self.guard
        if len(self.connections) > guard.limits.max_connections:
            victim = guard.idle.take_oldest(besides=self)
            if victim is None:
                guard.note_cap(self.loop, refused=True)
                self._answer_and_close(
                    503, "too_many_connections", "the server holds as many connections as it may"
                )
                return
            guard.note_cap(self.loop, refused=False)
            victim.transport.close()
        self._await_request(deadline=True)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_timer()
        self._stream_over()
        self.guard.idle.busy(self)
        super().connection_lost(exc)

    def _await_request(self, *, deadline: bool) -> None:
        """Idle until the next request's headers are complete.

        A new connection must start its request within the header deadline; between two
        requests uvicorn's keep-alive timer applies instead, and the deadline starts with the
        next request's first byte.
        """
        self._reading_headers = True
        self._header_bytes = 0
        self._request_begun = False
        self.guard.idle.idle(self)
        self._cancel_header_timer()
        if deadline:
            self._restart_header_timer()

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _header_timeout(self) -> None:
        self._header_timer = None
        if self.transport.is_closing():
            return
        if self._request_begun:
            self._answer_and_close(
                408,
                "request_timeout",
                f"the request headers did not arrive within "
                f"{self.guard.limits.header_timeout_s:g}s",
            )
        else:  # a connection that never asked for anything gets no answer
            self.transport.close()

    def _answer_and_close(self, status: int, code: str, message: str) -> None:
        self._cancel_header_timer()
        self.guard.idle.busy(self)
        if not self.transport.is_closing():
            self.transport.write(
                error_bytes(status, code, message, self.server_state.default_headers)
            )
            self.transport.close()

    # -- bytes in ----------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        self._unset_keepalive_if_required()
        begun = False
        if self._reading_headers:
            self._header_bytes += len(data)
            if not self._request_begun:
                # the keep-alive wait ended: the header deadline counts from this request
                self._request_begun = begun = True
        parser = self.parser
        if parser is None:  # let go by ``settle_stream``: these bytes begin a next request
            parser = self.parser = _new_parser(self)
        try:
            parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                problem = websocket_handshake_problem(self.headers)
                if problem is not None:  # else the WebSocket library answers in plain text
                    self._answer_and_close(400, "bad_request", problem)
                    return
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        except httptools.HttpParserError as error:
            refusal, self._refusal = self._refusal, None
            if refusal is not None:  # raised by a callback below, which said why
                self._answer_and_close(*refusal)
            else:
                self.send_400_response(str(error) or type(error).__name__)
            return
        if self._reading_headers:
            if self._header_bytes > self.guard.limits.max_header_bytes:
                self._answer_and_close(*self._oversize())
            elif begun:
                # Started only now: headers that arrived whole in this read (nearly every
                # request) need no deadline, and a timer set and cancelled per request costs.
                self._restart_header_timer()

    def _oversize(self) -> tuple[int, str, str]:
        limit = self.guard.limits.max_header_bytes
        if not self.headers:  # still on the request line
            return 414, "uri_too_long", f"the request line is longer than {limit} bytes"
        message = f"the request line and headers are larger than {limit} bytes"
        return 431, "headers_too_large", message

    def _restart_header_timer(self) -> None:
        self._cancel_header_timer()
        self._header_timer = self.loop.call_later(
            self.guard.limits.header_timeout_s, self._header_timeout
        )

    def send_400_response(self, msg: str) -> None:
        log.debug("malformed request from %s: %s", self.client, msg)
        self._answer_and_close(400, "bad_request", f"the request is not valid HTTP: {msg}")

    # -- parser callbacks ---------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._parser_idle = False
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        self._reading_headers = False
        self._message_complete = False
        self._cancel_header_timer()
        self.guard.idle.busy(self)
        # Headers that arrived whole in one read are measured here (``data_received`` sees
        # only those still incomplete after a read).
        size = len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)
        if size > self.guard.limits.max_header_bytes:
            self._refusal = self._oversize()
            raise _Refused
        previous = self.cycle
        try:
            super().on_headers_complete()
        except httptools.HttpParserInvalidURLError as error:
            self._refusal = (400, "bad_request", f"the request target is not a valid URL: {error}")
            raise _Refused from None
        if self.cycle is not previous:  # a new request's cycle, whose event nothing awaits yet
            self.scope[PROTOCOL_SCOPE_KEY] = self  # type: ignore[literal-required]
            self.cycle.message_event = _lighten(self.cycle.message_event)
            self.cycle.__class__ = OneWriteCycle  # a subclass adding one method, no state

    def on_message_complete(self) -> None:
        self._message_complete = True
        self._parser_idle = True
        super().on_message_complete()
        if self._answered_early:
            self._answered_early = False
            self._await_request(deadline=False)

    def on_response_complete(self) -> None:
        self._stream_over()
        pipelined = bool(self.pipeline)  # then the next request's headers are complete
        super().on_response_complete()
        if pipelined or self.transport.is_closing():
            return
        if self._message_complete:
            self._await_request(deadline=False)
        else:
            # Answered before its body ended (a 413, say): the rest of that body is still to
            # come on this connection and is not the next request's headers.
            self._answered_early = True

    # -- streams ------------------------------------------------------------------------

    def settle_stream(self, scope: Any) -> asyncio.Future[None] | None:
        """The response to ``scope`` has started and will only write from now on (an SSE
        stream, which may stay open for days): let go of what reading its request needed, and
        answer a future that is done when the connection is lost or the response is over.

        The future is what the stream's task awaits instead of the ASGI ``receive`` (whose
        coroutines, event wait and message weigh 0.6 KB more); None when ``scope`` is not
        this connection's current request.

        What goes is the parser (0.9 KB with the callbacks it binds), the request's raw target
        and its header list, which the handler has read. A parser between two keep-alive
        requests is in the state of a new one, so the next request's first bytes get a new
        parser; a request that is not complete, bytes of a pipelined one or a connection that
        closes after this response keep their parser.
        """
        if scope is not self.scope:
            return None
        self._stream_over()
        gone = self._stream_gone = self.loop.create_future()
        if self._parser_idle and self._message_complete:
            self._release_request(scope)
        return gone

    def _stream_over(self) -> None:
        gone, self._stream_gone = self._stream_gone, None
        if gone is not None and not gone.done():
            gone.set_result(None)

    def _release_request(self, scope: Any) -> None:
        if not self.pipeline and self.cycle is not None and self.cycle.keep_alive:
            self.parser = None  # type: ignore[assignment]
        self.url = b""  # read into the scope's path and query string
        self.headers.clear()
        headers = scope.get("headers")
        if isinstance(headers, list):  # a copy of it, when Starlette's ``Headers`` has read it
            headers.clear()


class _HeadFirst:
    """Stands in for the transport of a response whose head is held: the first write keeps
    the head, the next one sends it with the first part of the body; closing sends what is
    held first."""

    __slots__ = ("head", "transport")

    def __init__(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        self.head: bytes | None = None  # None until the head is written

    def write(self, data: bytes) -> None:
        head = self.head
        if head is None:
            self.head = data
        elif head:
            self.head = b""
            self.transport.write(head + data)
        else:
            self.transport.write(data)

    def release(self) -> asyncio.Transport:
        """Send the head if it is still held; the transport it stood in for."""
        if self.head:
            self.transport.write(self.head)
            self.head = b""
        return self.transport

    def close(self) -> None:
        self.release().close()

    def is_closing(self) -> bool:
        return self.transport.is_closing()


class OneWriteCycle(RequestResponseCycle):
    """uvicorn's request/response cycle, sending the head of a response whose length is
    declared together with its body: one socket write per answer instead of two.

    A socket write is a system call made holding the GIL (uvloop), and on the loopback it
    also runs the receiver's TCP work: the two writes of a small answer were 38% of the event
    loop's samples under single-event publishes (BENCHMARKS.md). The head is held only when
    the body must follow (``Content-Length`` above zero, not ``HEAD``) and the start needs no
    wait for a paused transport, so holding it changes no ordering: nothing else writes to
    the connection between a response's start and its body. Streamed (chunked) answers are
    written as before.

    Its start also skips the access log line's arguments when the access logger would
    drop the line (a level above INFO).
    """

    async def send(self, message: Any) -> None:
        if (
            self.response_started
            or message["type"] != "http.response.start"
            or self.flow.write_paused
            or self.disconnected
        ):
            await super().send(message)
            if self.response_complete and isinstance(self.transport, _HeadFirst):
                self.transport = self.transport.release()
            return
        if self.access_log and not self.access_logger.isEnabledFor(logging.INFO):
            # ``info`` would drop the line, but only after its arguments (the client's
            # address, the path) were worked out
            self.access_log = False
        transport = self.transport
        held = _HeadFirst(transport)
        self.transport = held  # type: ignore[assignment]
        try:
            await super().send(message)  # no await inside: the transport is not paused
        finally:
            if not (
                self.chunked_encoding is False
                and self.expected_content_length > 0
                and self.scope["method"] != "HEAD"
            ):
                self.transport = held.release()


def _new_parser(protocol: HttpToolsProtocol) -> httptools.HttpRequestParser:
    """A request parser set up as uvicorn sets up the one it makes for a new connection."""
    parser = httptools.HttpRequestParser(protocol)
    parser.set_dangerous_leniencies(lenient_data_after_close=True)
    return parser


def guarded_protocol(limits: ConnectionLimits) -> type[GuardedHttpProtocol]:
    """A protocol class for one server (uvicorn's ``http=``): its connections share a guard."""
    return type("TidingsHttpProtocol", (GuardedHttpProtocol,), {"guard": ConnectionGuard(limits)})
