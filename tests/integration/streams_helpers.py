"""Shared pieces of the stream tests: publishing, an SSE client on a bare socket, stats and
bounded waits.

httpx-sse and the ``websockets`` client are the real clients most tests use; the bare-socket
client exists for what they hide: how many bytes are read and when (backpressure), and many
hundreds of connections at a low client CPU cost (fan-out).
"""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
from websockets.asyncio.client import ClientConnection, connect

from tests.integration.server import ServerProcess


def ws_url(server: ServerProcess) -> str:
    return f"ws://127.0.0.1:{server.port}/v1/ws"


def unique(prefix: str) -> str:
    return f"{prefix}-{os.urandom(5).hex()}"


def server_env(**settings: float | str) -> dict[str, str]:
    """``TIDINGS_*`` environment from keyword settings: ``server_env(heartbeat_s=0.5)``."""
    return {f"TIDINGS_{name.upper()}": str(value) for name, value in settings.items()}


# -- publishing and stats ---------------------------------------------------------------------


async def publish(client: httpx.AsyncClient, events: list[dict[str, Any]]) -> list[int]:
    """Publish one batch; the acknowledged positions, in order."""
    answer = await client.post(
        "/v1/events",
        content=orjson.dumps(events),
        headers={"content-type": "application/json"},
    )
    assert answer.status_code == 201, answer.text
    return [item["seq"] for item in answer.json()["events"]]


async def publish_one(client: httpx.AsyncClient, event: dict[str, Any]) -> int:
    answer = await client.post("/v1/events", json=event)
    assert answer.status_code == 201, answer.text
    seq: int = answer.json()["seq"]
    return seq


async def head(client: httpx.AsyncClient) -> int:
    answer = await client.get("/v1/stats")
    assert answer.status_code == 200, answer.text
    position: int = answer.json()["store"]["head_seq"]
    return position


async def stream_stats(client: httpx.AsyncClient) -> dict[str, Any]:
    answer = await client.get("/v1/stats")
    assert answer.status_code == 200, answer.text
    streams: dict[str, Any] = answer.json()["streams"]
    return streams


async def wait_until(
    check: Callable[[], Awaitable[bool]], *, timeout: float, interval: float = 0.05
) -> bool:
    """Poll ``check`` until it is true or ``timeout`` seconds passed; its last answer."""
    deadline = time.monotonic() + timeout
    while True:
        if await check():
            return True
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(interval)


# -- SSE frames ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Frame:
    """One Server-Sent Event as a client sees it."""

    event: str
    data: str
    id: str | None = None
    retry: int | None = None

    def json(self) -> Any:
        return orjson.loads(self.data)


def parse_block(block: bytes) -> Frame | None:
    """One SSE block (the lines between blank lines); None for a comment-only block."""
    event, id_, retry = "message", None, None
    data: list[str] = []
    for raw_line in block.split(b"\n"):
        line = raw_line.decode()
        if not line or line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            event = value
        elif name == "data":
            data.append(value)
        elif name == "id":
            id_ = value
        elif name == "retry":
            retry = int(value)
    if not data and id_ is None and event == "message":
        return None
    return Frame(event, "\n".join(data), id_, retry)


class SSEDecoder:
    """Incremental decoder: bytes of a chunked ``text/event-stream`` body in, frames out."""

    def __init__(self) -> None:
        self._raw = bytearray()  # received bytes not yet de-chunked
        self._body = bytearray()  # de-chunked body not yet split into frames
        self._left = 0  # >0: bytes left in the chunk; -1: its CRLF is due; 0: a size line is due
        self.ended = False  # the terminating zero-size chunk arrived

    def feed(self, data: bytes) -> list[Frame]:
        self._raw += data
        self._dechunk()
        return self._frames()

    def _dechunk(self) -> None:
        raw, pos = self._raw, 0
        while not self.ended:
            if self._left > 0:
                take = min(self._left, len(raw) - pos)
                if take == 0:
                    break
                self._body += raw[pos : pos + take]
                pos += take
                self._left -= take
                if self._left == 0:
                    self._left = -1
            elif self._left == -1:
                if len(raw) - pos < 2:
                    break
                pos += 2
                self._left = 0
            else:
                end = raw.find(b"\r\n", pos)
                if end < 0:
                    break
                size = int(bytes(raw[pos:end]).split(b";")[0], 16)
                pos = end + 2
                if size == 0:
                    self.ended = True
                else:
                    self._left = size
        del raw[:pos]

    def _frames(self) -> list[Frame]:
        body, start, frames = self._body, 0, []
        while (end := body.find(b"\n\n", start)) >= 0:
            frame = parse_block(bytes(body[start:end]))
            start = end + 2
            if frame is not None:
                frames.append(frame)
        del body[:start]
        return frames


class RawSSE:
    """An SSE client on a bare asyncio connection: reads only when and as much as it is told."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.decoder = SSEDecoder()
        self.status = 0
        self.bytes_read = 0

    @classmethod
    async def connect(
        cls,
        port: int,
        target: str,
        *,
        headers: dict[str, str] | None = None,
        rcvbuf: int | None = None,
        buffer_limit: int = 65_536,
    ) -> RawSSE:
        """Send the request and read the response head (status and headers)."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:  # before connect, so that the window is small from the start
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
        reader, writer = await asyncio.open_connection(sock=sock, limit=buffer_limit)
        stream = cls(reader, writer)
        lines = [f"GET {target} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Accept: text/event-stream"]
        lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10.0)
        stream.status = int(head.split(b" ", 2)[1])
        return stream

    async def read(self, size: int = 65_536, timeout: float = 10.0) -> list[Frame]:
        """One read of at most ``size`` bytes; the frames it completed. EOFError at the end."""
        data = await asyncio.wait_for(self.reader.read(size), timeout)
        if not data:
            raise EOFError("the server closed the stream")
        self.bytes_read += len(data)
        return self.decoder.feed(data)

    async def collect(
        self, done: Callable[[list[Frame]], bool], *, timeout: float, size: int = 65_536
    ) -> list[Frame]:
        """Read until ``done(frames so far)`` or the stream ends; TimeoutError after ``timeout``."""
        frames: list[Frame] = []
        async with asyncio.timeout(timeout):
            while not done(frames):
                try:
                    frames += await self.read(size, timeout)
                except EOFError:
                    break
                if self.decoder.ended:
                    break
        return frames

    async def read_to_end(self, *, timeout: float, limit: int = 64 << 20) -> str:
        """Read and discard until the server ends the connection: "eof" or "reset"."""
        total = 0
        async with asyncio.timeout(timeout):
            while total < limit:
                try:
                    data = await self.reader.read(1 << 16)
                except ConnectionResetError:
                    return "reset"
                if not data:
                    return "eof"
                total += len(data)
        raise AssertionError(f"still open after reading {total} bytes")

    @property
    def local_port(self) -> int:
        port: int = self.writer.get_extra_info("sockname")[1]
        return port

    def close(self) -> None:
        self.writer.transport.abort()


def event_ids(frames: list[Frame]) -> list[int]:
    return [int(f.id) for f in frames if f.event == "event" and f.id is not None]


# -- WebSocket ------------------------------------------------------------------------------


def ws_connect(server: ServerProcess, *, query: str = "", **options: Any) -> connect:
    """A ``websockets`` client connection to ``/v1/ws`` (compression offered, as by default).

    A test stops reading mid-burst and closes; with the library's default ``max_queue`` (16
    messages) its reading would be paused, the server's close frame would go unread and the
    close would wait out ``close_timeout``, so the queue is larger and the wait bounded.
    """
    settings: dict[str, Any] = {"max_queue": 4096, "close_timeout": 2, **options}
    return connect(ws_url(server) + query, proxy=None, open_timeout=10, **settings)


async def ws_recv(
    ws: ClientConnection, timeout: float = 10.0, *, heartbeats: bool = False
) -> dict[str, Any]:
    """The next message; heartbeats are skipped unless asked for."""
    async with asyncio.timeout(timeout):
        while True:
            decoded: dict[str, Any] = orjson.loads(await ws.recv())
            if heartbeats or decoded.get("op") != "heartbeat":
                return decoded


async def ws_send(ws: ClientConnection, message: dict[str, Any] | str) -> None:
    await ws.send(message if isinstance(message, str) else orjson.dumps(message).decode())


async def ws_until(
    ws: ClientConnection,
    done: Callable[[dict[str, Any]], bool],
    *,
    timeout: float = 10.0,
    heartbeats: bool = False,
) -> list[dict[str, Any]]:
    """Messages up to and including the first for which ``done`` is true."""
    messages: list[dict[str, Any]] = []
    async with asyncio.timeout(timeout):
        while True:
            message = await ws_recv(ws, timeout, heartbeats=heartbeats)
            messages.append(message)
            if done(message):
                return messages


async def raw_websocket(
    port: int, messages: list[dict[str, Any]], *, rcvbuf: int | None = None
) -> socket.socket:
    """A WebSocket opened by hand on a bare socket that then sends ``messages`` and never
    reads again (unlike a client library, which reads in the background)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    await loop.sock_connect(sock, ("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    request = (
        f"GET /v1/ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    await loop.sock_sendall(sock, request.encode())
    head = b""
    async with asyncio.timeout(10):
        while not head.endswith(b"\r\n\r\n"):  # byte by byte: nothing past the head is taken
            byte = await loop.sock_recv(sock, 1)
            if not byte:
                raise EOFError(f"the server closed the handshake: {head!r}")
            head += byte
    assert head.split(b"\r\n")[0].split(b" ")[1] == b"101", head
    for message in messages:
        await loop.sock_sendall(sock, masked_text_frame(orjson.dumps(message)))
    return sock


def masked_text_frame(payload: bytes) -> bytes:
    """One client-to-server text frame (clients must mask, RFC 6455 section 5.3)."""
    mask = os.urandom(4)
    size = len(payload)
    if size < 126:
        head = bytes([0x81, 0x80 | size])
    elif size < 65_536:
        head = bytes([0x81, 0x80 | 126]) + size.to_bytes(2, "big")
    else:
        head = bytes([0x81, 0x80 | 127]) + size.to_bytes(8, "big")
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


async def read_to_end(sock: socket.socket, *, timeout: float, limit: int = 64 << 20) -> str:
    """Read and discard until the server ends the connection: "eof" or "reset"."""
    loop = asyncio.get_running_loop()
    total = 0
    async with asyncio.timeout(timeout):
        while total < limit:
            try:
                data = await loop.sock_recv(sock, 1 << 16)
            except ConnectionResetError:
                return "reset"
            if not data:
                return "eof"
            total += len(data)
    raise AssertionError(f"still open after reading {total} bytes")


TCP_ESTABLISHED = "01"


def server_side_tcp_state(server_port: int, client_port: int) -> str | None:
    """The state (hex, as in /proc/net/tcp) of the server's end of one connection from this
    host, or None when that socket is gone."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote = fields[1].split(":")[1], fields[2].split(":")[1]
        if int(local, 16) == server_port and int(remote, 16) == client_port:
            return fields[3]
    return None


def server_side_send_queue(server_port: int, client_port: int) -> tuple[str, int] | None:
    """The state (hex) and the send queue in bytes of the server's end of one connection
    from this host (from /proc/net/tcp), or None when that socket is gone."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote = fields[1].split(":")[1], fields[2].split(":")[1]
        if int(local, 16) == server_port and int(remote, 16) == client_port:
            return fields[3], int(fields[4].split(":")[0], 16)
    return None
