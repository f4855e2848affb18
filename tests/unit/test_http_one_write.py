"""A response of declared length goes out in one socket write; everything else as before.

Drives the protocol with a transport that records each write, and an ASGI app whose answer
the test picks by path.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from uvicorn.config import Config
from uvicorn.server import ServerState

from tests.unit.test_http_protocol_state import FakeTransport, settle_loop
from tidings.connection_limits import ConnectionLimits
from tidings.http_protocol import GuardedHttpProtocol, guarded_protocol

BODY = b'{"ok":true}'
LENGTH = [(b"content-type", b"application/json"), (b"content-length", b"11")]


class Writes(FakeTransport):
    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self.closed:
            raise AssertionError("written after close")
        self.writes.append(bytes(data))
        super().write(data)


class App:
    def __init__(self) -> None:
        self.go_on = asyncio.Event()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        path = scope["path"]
        if path == "/chunked":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await self.go_on.wait()
            await send({"type": "http.response.body", "body": b"a", "more_body": True})
            await send({"type": "http.response.body", "body": b""})
            return
        await send({"type": "http.response.start", "status": 201, "headers": LENGTH})
        if path == "/slow":
            await self.go_on.wait()
        if path == "/unfinished":
            return
        if path == "/parts":
            await send({"type": "http.response.body", "body": BODY[:4], "more_body": True})
            await send({"type": "http.response.body", "body": BODY[4:]})
            return
        await send({"type": "http.response.body", "body": BODY})


def connect(app: App) -> tuple[GuardedHttpProtocol, Writes]:
    config = Config(app, log_level="critical", lifespan="off", proxy_headers=False)
    protocol_class = guarded_protocol(ConnectionLimits(100, 10.0, 8192))
    protocol = protocol_class(config, ServerState(), {}, asyncio.get_running_loop())
    transport = Writes()
    protocol.connection_made(transport)
    return protocol, transport


def request(path: str, method: str = "GET", extra: bytes = b"") -> bytes:
    return f"{method} {path} HTTP/1.1\r\nHost: test\r\n".encode() + extra + b"\r\n"


async def test_a_response_of_declared_length_is_one_write_and_the_next_request_is_answered() -> (
    None
):
    protocol, transport = connect(App())
    protocol.data_received(request("/"))
    await settle_loop()
    assert len(transport.writes) == 1
    head, _, body = transport.writes[0].partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 201 Created\r\n") and b"content-length: 11" in head
    assert body == BODY
    protocol.data_received(request("/"))
    await settle_loop()
    assert len(transport.writes) == 2 and transport.writes[1] == transport.writes[0]
    assert not transport.closed


async def test_the_head_waits_for_the_body_and_goes_with_it() -> None:
    app = App()
    protocol, transport = connect(app)
    protocol.data_received(request("/slow"))
    await settle_loop()
    assert transport.writes == []
    app.go_on.set()
    await settle_loop()
    assert len(transport.writes) == 1 and transport.writes[0].endswith(b"\r\n\r\n" + BODY)


async def test_a_body_in_parts_sends_the_head_with_the_first() -> None:
    protocol, transport = connect(App())
    protocol.data_received(request("/parts"))
    await settle_loop()
    assert transport.writes[1:] == [BODY[4:]]
    assert transport.writes[0].endswith(b"\r\n\r\n" + BODY[:4])


async def test_a_streamed_response_writes_its_head_at_once() -> None:
    app = App()
    protocol, transport = connect(app)
    protocol.data_received(request("/chunked"))
    await settle_loop()
    assert len(transport.writes) == 1 and b"transfer-encoding: chunked" in transport.writes[0]
    app.go_on.set()
    await settle_loop()
    assert transport.writes[1:] == [b"1\r\na\r\n", b"0\r\n\r\n"]


async def test_a_head_request_gets_its_head() -> None:
    protocol, transport = connect(App())
    protocol.data_received(request("/", method="HEAD"))
    await settle_loop()
    assert len(transport.writes) == 1 and transport.writes[0].endswith(b"\r\n\r\n")
    assert b"content-length: 11" in transport.writes[0]


async def test_connection_close_sends_head_and_body_then_closes() -> None:
    protocol, transport = connect(App())
    protocol.data_received(request("/", extra=b"Connection: close\r\n"))
    await settle_loop()
    assert len(transport.writes) == 1 and transport.writes[0].endswith(BODY)
    assert b"connection: close" in transport.writes[0]
    assert transport.closed


async def test_an_app_that_stops_before_its_body_still_sends_the_head_then_closes() -> None:
    protocol, transport = connect(App())
    protocol.data_received(request("/unfinished"))
    await settle_loop()
    assert len(transport.writes) == 1
    assert transport.writes[0].startswith(b"HTTP/1.1 201 Created\r\n")
    assert transport.writes[0].endswith(b"\r\n\r\n")
    assert transport.closed


async def test_a_paused_transport_gets_the_head_and_the_body_after_it_resumes() -> None:
    protocol, transport = connect(App())
    protocol.pause_writing()
    protocol.data_received(request("/"))
    await settle_loop()
    assert transport.writes == []
    protocol.resume_writing()
    await settle_loop()
    assert b"".join(transport.writes).endswith(b"\r\n\r\n" + BODY)
    assert transport.writes[0].startswith(b"HTTP/1.1 201 Created\r\n")


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.mark.parametrize("level", [logging.INFO, logging.WARNING])
async def test_the_access_line_is_logged_exactly_when_the_access_logger_takes_it(
    level: int,
) -> None:
    protocol, transport = connect(App())
    access = logging.getLogger("uvicorn.access")
    lines, before = Lines(), access.level
    access.addHandler(lines)
    access.setLevel(level)
    try:
        protocol.data_received(request("/?q=1"))
        await settle_loop()
    finally:
        access.removeHandler(lines)
        access.setLevel(before)
    expected = ['127.0.0.1:40000 - "GET /?q=1 HTTP/1.1" 201'] if level == logging.INFO else []
    assert lines.lines == expected
    assert transport.writes[0].endswith(BODY)
