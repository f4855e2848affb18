"""What the HTTP protocol holds per connection, and that holding less changes no answer.

An open SSE stream keeps its connection's protocol for as long as it lives, so the protocol
lets go of the parser and the request headers once the stream only writes
(``settle_stream``), and keeps uvicorn's queues in lists. These drive the protocol with a fake
transport and a small ASGI app on the test's event loop.
"""

from __future__ import annotations

import asyncio
import sys
from collections import deque
from types import SimpleNamespace
from typing import Any

import pytest
from uvicorn.config import Config
from uvicorn.server import ServerState

from tidings.connection_limits import ConnectionLimits
from tidings.http_protocol import PROTOCOL_SCOPE_KEY, GuardedHttpProtocol, guarded_protocol
from tidings.server import TidingsServer
from tidings.streams.registry import StreamRegistry

STREAM = (
    b"GET /stream HTTP/1.1\r\nHost: test\r\nAccept: text/event-stream\r\nX-Big: "
    + (b"x" * 200)
    + b"\r\n\r\n"
)
PING = b"GET /ping HTTP/1.1\r\nHost: test\r\n\r\n"


class FakeTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.written = bytearray()
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += data

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 40000)}.get(
            name, default
        )

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0


class App:
    """``/stream`` starts a chunked response, settles it and ends when told; ``/ping`` pongs."""

    def __init__(self) -> None:
        self.protocol: GuardedHttpProtocol | None = None
        self.streaming = asyncio.Event()
        self.end_stream = asyncio.Event()
        self.stream_headers: list[tuple[bytes, bytes]] = []
        self.gone: asyncio.Future[None] | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        if scope["path"] == "/stream":
            self.stream_headers = list(scope["headers"])
            assert self.protocol is not None
            self.gone = self.protocol.settle_stream(scope)
            await send(
                {"type": "http.response.body", "body": b"data: hello\n\n", "more_body": True}
            )
            self.streaming.set()
            await self.end_stream.wait()
        body = b"pong" + scope["query_string"] if scope["path"] == "/ping" else b""
        await send({"type": "http.response.body", "body": body})


def make_protocol(app: App) -> tuple[GuardedHttpProtocol, FakeTransport]:
    config = Config(app, log_level="warning", lifespan="off", proxy_headers=False)
    protocol_class = guarded_protocol(ConnectionLimits(100, 10.0, 8192))
    protocol = protocol_class(config, ServerState(), {}, asyncio.get_running_loop())
    app.protocol = protocol
    transport = FakeTransport()
    protocol.connection_made(transport)
    return protocol, transport


async def settle_loop() -> None:
    for _ in range(10):
        await asyncio.sleep(0)


async def test_a_settled_stream_holds_no_parser_or_headers_and_the_next_request_is_answered() -> (
    None
):
    app = App()
    protocol, transport = make_protocol(app)
    protocol.data_received(STREAM)
    await asyncio.wait_for(app.streaming.wait(), 5)
    assert (b"x-big", b"x" * 200) in app.stream_headers  # the handler read them before
    assert protocol.parser is None
    assert protocol.headers == [] and protocol.scope["headers"] == []
    assert protocol.url == b"" and protocol.scope["path"] == "/stream"
    assert b"data: hello" in transport.written

    app.end_stream.set()  # the stream ends (a revoked key, say) and the connection stays open
    await settle_loop()
    assert transport.written.endswith(b"0\r\n\r\n") and not transport.closed
    del transport.written[:]
    protocol.data_received(PING)  # a new parser reads the next request
    await settle_loop()
    assert transport.written.startswith(b"HTTP/1.1 200 OK")
    assert transport.written.endswith(b"pong\r\n0\r\n\r\n")
    assert protocol.parser is not None


@pytest.mark.parametrize("split", [0, 7, len(PING) - 1])
async def test_a_next_request_arriving_in_pieces_after_a_settled_stream_is_read_whole(
    split: int,
) -> None:
    app = App()
    protocol, transport = make_protocol(app)
    protocol.data_received(STREAM)
    await asyncio.wait_for(app.streaming.wait(), 5)
    app.end_stream.set()
    await settle_loop()
    del transport.written[:]
    if split:
        protocol.data_received(PING[:split])
    protocol.data_received(PING[split:])
    await settle_loop()
    assert transport.written.endswith(b"pong\r\n0\r\n\r\n")


async def test_a_request_pipelined_behind_a_stream_keeps_the_parser_and_is_answered_after_it() -> (
    None
):
    app = App()
    protocol, transport = make_protocol(app)
    second = PING.replace(b"/ping", b"/ping?2")
    protocol.data_received(STREAM + PING + second)  # two requests queued behind the stream
    await asyncio.wait_for(app.streaming.wait(), 5)
    assert protocol.parser is not None  # it holds the pipelined requests' state
    assert len(protocol.pipeline) == 2
    app.end_stream.set()
    await settle_loop()
    assert transport.written.count(b"pong") == 2
    assert transport.written.index(b"pong\r\n") < transport.written.index(b"pong2")  # in order
    assert not protocol.pipeline


async def test_a_stream_whose_request_asked_to_close_keeps_its_parser() -> None:
    app = App()
    protocol, transport = make_protocol(app)
    protocol.data_received(STREAM.replace(b"Host: test", b"Host: test\r\nConnection: close"))
    await asyncio.wait_for(app.streaming.wait(), 5)
    assert protocol.parser is not None  # a closing parser is not a new one's state
    app.end_stream.set()
    await settle_loop()
    assert transport.closed


async def test_a_settle_for_another_scope_changes_nothing() -> None:
    app = App()
    protocol, _ = make_protocol(app)
    protocol.data_received(PING)
    await settle_loop()
    protocol.data_received(b"GET /ping HTTP/1.1\r\nHost: t")  # a next request half read
    assert protocol.settle_stream({"headers": []}) is None  # not its request
    protocol.settle_stream(protocol.scope)  # its headers are not complete: nothing goes
    assert protocol.parser is not None and protocol.headers == []
    protocol.data_received(b"est\r\n\r\n")
    await settle_loop()
    assert protocol.headers == [(b"host", b"test")]


async def test_the_protocol_instance_dict_stays_small() -> None:
    """Tidings' own attributes live in slots: with them in the instance dict as well, the dict
    stops sharing its keys with the other connections' and weighs about 1.6 KB."""
    app = App()
    protocol, _ = make_protocol(app)
    protocol.data_received(STREAM)
    await asyncio.wait_for(app.streaming.wait(), 5)
    assert sys.getsizeof(protocol.__dict__) < 800
    assert not isinstance(protocol.pipeline, deque)
    app.end_stream.set()
    await settle_loop()


async def test_writes_paused_by_the_transport_wait_for_it_to_resume() -> None:
    """The flow control's event keeps its waiters in a list: a paused send still waits."""
    app = App()
    protocol, transport = make_protocol(app)
    protocol.pause_writing()
    protocol.data_received(PING)
    await settle_loop()
    assert b"pong" not in transport.written
    protocol.resume_writing()
    await settle_loop()
    assert transport.written.endswith(b"pong\r\n0\r\n\r\n")


async def test_the_future_of_a_settled_stream_is_done_when_the_connection_is_lost() -> None:
    app = App()
    protocol, _ = make_protocol(app)
    protocol.data_received(STREAM)
    await asyncio.wait_for(app.streaming.wait(), 5)
    assert app.gone is not None and not app.gone.done()
    protocol.connection_lost(None)
    assert app.gone.done()
    app.end_stream.set()
    await settle_loop()


async def test_the_future_of_a_settled_stream_is_done_when_its_response_is_over() -> None:
    app = App()
    protocol, transport = make_protocol(app)
    protocol.data_received(STREAM)
    await asyncio.wait_for(app.streaming.wait(), 5)
    assert app.gone is not None and not app.gone.done()
    app.end_stream.set()
    await settle_loop()
    assert app.gone.done() and not transport.closed


class _Conn:
    def __init__(self, scope: dict[str, Any]) -> None:
        self.scope = scope
        self.client = scope["client"]


def test_the_server_finds_a_protocol_named_in_its_scope_while_its_connection_is_open() -> None:
    """Tidings' protocol names itself in the scope: one lookup, no walk through the open
    connections; a connection that has gone answers None."""
    hub = SimpleNamespace(streams=StreamRegistry())
    server = TidingsServer(Config(App()), hub)  # type: ignore[arg-type]
    first = _Conn({"client": ("10.0.0.1", 1)})
    second = _Conn({"client": ("10.0.0.2", 2)})
    for conn in (first, second):
        conn.scope[PROTOCOL_SCOPE_KEY] = conn
    server.server_state.connections.update({first, second})  # type: ignore[arg-type]
    assert server._protocol_of(first.scope) is first
    assert server._protocol_of(second.scope) is second
    server.server_state.connections.discard(first)  # type: ignore[arg-type]
    assert server._protocol_of(first.scope) is None  # gone
    assert server._protocol_of(second.scope) is second
    assert server._protocol_of(None) is None


def test_the_server_finds_an_unnamed_scope_by_identity_then_by_peer() -> None:
    """A protocol that does not name itself (another server's) is found by the scope it
    holds, then by the peer's address."""
    hub = SimpleNamespace(streams=StreamRegistry())
    server = TidingsServer(Config(App()), hub)  # type: ignore[arg-type]
    first = _Conn({"client": ("10.0.0.1", 1)})
    server.server_state.connections.add(first)  # type: ignore[arg-type]
    assert server._protocol_of(first.scope) is first
    assert server._protocol_of({"client": ["10.0.0.1", 1]}) is first  # by peer
    assert server._protocol_of({"client": ("10.0.0.9", 9)}) is None


async def test_a_request_scope_names_the_protocol_serving_it() -> None:
    app = App()
    protocol, _ = make_protocol(app)
    protocol.data_received(STREAM)
    await asyncio.wait_for(app.streaming.wait(), 5)
    assert protocol.scope[PROTOCOL_SCOPE_KEY] is protocol
    app.end_stream.set()
    await settle_loop()


async def test_headers_arriving_whole_set_no_deadline_and_headers_in_pieces_do() -> None:
    app = App()
    protocol, _ = make_protocol(app)
    await settle_loop()
    protocol.data_received(PING)
    assert protocol._header_timer is None
    await settle_loop()
    protocol.data_received(PING[:10])
    assert protocol._header_timer is not None
    protocol.data_received(PING[10:])
    assert protocol._header_timer is None
