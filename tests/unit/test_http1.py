"""The delivery HTTP/1.1 client against real servers on 127.0.0.1 (no mocked sockets).

Each server is an ``asyncio.start_server`` whose per-connection behaviour the test writes, and
which counts the connections it accepted and how many were open at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import inspect
import ipaddress
import socket
import ssl
import struct
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tidings.delivery import destinations
from tidings.delivery import sender as sender_module
from tidings.delivery.destinations import Target
from tidings.delivery.http1 import (
    ConnectError,
    ConnectionPool,
    HTTPClientError,
    InvalidRequest,
    PoolClosed,
    ReadError,
    RemoteProtocolError,
    RequestTimeout,
    encode_request,
)
from tidings.delivery.sender import RESPONSE_BODY_LIMIT, Sender
from tidings.envelope import Event
from tidings.store.deliveries import Endpoint, Secret

# -- a scriptable server ---------------------------------------------------------------------


@dataclass
class Request:
    method: str
    target: str
    headers: dict[str, str]  # names lower-case
    body: bytes
    connection: int  # which accepted connection (1, 2, ...) carried it


@dataclass
class Conn:
    """One accepted connection, as the handler sees it."""

    number: int
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    server: Server

    async def read_request(self) -> Request | None:
        """The next request, or None when the client closed the connection first."""
        try:
            head = await self.reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            return None
        lines = head.decode("latin-1").split("\r\n")
        method, target, _ = lines[0].split(" ", 2)
        headers = {}
        for line in lines[1:]:
            if line:
                name, value = line.split(":", 1)
                headers[name.strip().lower()] = value.strip()
        body = await self.reader.readexactly(int(headers.get("content-length", "0")))
        request = Request(method, target, headers, body, self.number)
        self.server.requests.append(request)
        self.server.arrived.set()
        return request

    def send(self, data: bytes) -> None:
        self.writer.write(data)

    async def wait_closed_by_client(self) -> None:
        """Until the client closes or aborts the connection."""
        with contextlib.suppress(ConnectionError):
            while await self.reader.read(65536):
                pass
        self.server.note_client_close()


Handler = Callable[[Conn], Awaitable[None]]


@dataclass
class Server:
    handler: Handler
    port: int = 0
    accepted: int = 0
    open_now: int = 0
    max_open: int = 0
    closed_by_client: int = 0
    requests: list[Request] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    client_closed: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    writers: set[asyncio.StreamWriter] = field(default_factory=set)

    def url(self, path: str = "/hook", scheme: str = "http") -> str:
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    async def on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.tasks.add(task)
        self.writers.add(writer)
        self.accepted += 1
        self.open_now += 1
        self.max_open = max(self.max_open, self.open_now)
        try:
            await self.handler(Conn(self.accepted, reader, writer, self))
            await writer.drain()
        except ConnectionError:
            pass
        finally:
            self.open_now -= 1
            writer.close()
            self.tasks.discard(task)

    def note_client_close(self) -> None:
        self.closed_by_client += 1
        self.client_closed.set()

    async def wait_client_closes(self, count: int = 1) -> None:
        async with asyncio.timeout(2):
            while self.closed_by_client < count:
                self.client_closed.clear()
                await self.client_closed.wait()

    async def wait_requests(self, count: int) -> None:
        async with asyncio.timeout(2):
            while len(self.requests) < count:
                self.arrived.clear()
                await self.arrived.wait()


def answer(
    status: int = 200,
    body: bytes = b"ok",
    headers: tuple[tuple[str, str], ...] = (),
    version: str = "1.1",
    length: bool = True,
) -> bytes:
    head = f"HTTP/{version} {status} X\r\n" + "".join(f"{n}: {v}\r\n" for n, v in headers)
    if length:
        head += f"Content-Length: {len(body)}\r\n"
    return head.encode() + b"\r\n" + body


def answers_each(response: bytes) -> Handler:
    """A keep-alive server: ``response`` to every request."""

    async def handler(conn: Conn) -> None:
        while await conn.read_request() is not None:
            conn.send(response)

    return handler


answer_all = answers_each(answer())  # well-behaved: 200 ``ok`` to every request


def answers_once(response: bytes) -> Handler:
    """``response`` to the first request of each connection, which it then closes."""

    async def handler(conn: Conn) -> None:
        if await conn.read_request() is not None:
            conn.send(response)

    return handler


async def keeps(conn: Conn) -> None:
    """200 ``ok`` to every request until the client closes the connection, which it counts."""
    while await conn.read_request() is not None:
        conn.send(answer())
    conn.server.note_client_close()


async def hangs(conn: Conn) -> None:
    """Reads a request and never answers, until the client closes the connection."""
    if await conn.read_request() is not None:
        await conn.wait_closed_by_client()


async def drops(conn: Conn) -> None:
    """Reads a request and closes the connection without a word."""
    await conn.read_request()


def gated(gate: asyncio.Event) -> Handler:
    """Answers each request once ``gate`` is set."""

    async def handler(conn: Conn) -> None:
        while await conn.read_request() is not None:
            await gate.wait()
            conn.send(answer())

    return handler


ServerFactory = Callable[..., Awaitable[Server]]
PoolFactory = Callable[..., ConnectionPool]


@contextlib.asynccontextmanager
async def serving() -> AsyncIterator[ServerFactory]:
    """Start servers (``await serve(handler, ssl=None)``); all are stopped at the end."""
    servers: list[tuple[Server, asyncio.Server]] = []

    async def start(handler: Handler, ssl: ssl.SSLContext | None = None) -> Server:
        state = Server(handler)
        listener = await asyncio.start_server(state.on_connect, "127.0.0.1", 0, ssl=ssl)
        state.port = listener.sockets[0].getsockname()[1]
        servers.append((state, listener))
        return state

    try:
        yield start
    finally:
        for state, listener in servers:
            listener.close()
            for task in list(state.tasks):
                task.cancel()
            await asyncio.gather(*state.tasks, return_exceptions=True)
            # Abort, not close: a graceful TLS shutdown could outlive the test's event loop.
            for writer in state.writers:
                writer.transport.abort()
            async with asyncio.timeout(2):
                for writer in state.writers:
                    with contextlib.suppress(Exception):
                        await writer.wait_closed()
            await listener.wait_closed()


@contextlib.asynccontextmanager
async def pooling() -> AsyncIterator[PoolFactory]:
    """Make pools (``make_pool(**options)``); all are closed at the end."""
    pools: list[ConnectionPool] = []

    def make(**options: Any) -> ConnectionPool:
        pools.append(ConnectionPool(**options))
        return pools[-1]

    try:
        yield make
    finally:
        for pool in pools:
            await pool.close()


@pytest.fixture
async def serve() -> AsyncIterator[ServerFactory]:
    async with serving() as start:
        yield start


@pytest.fixture
async def make_pool() -> AsyncIterator[PoolFactory]:
    async with pooling() as make:
        yield make


async def post(pool: ConnectionPool, url: str, body: bytes = b"{}", timeout: float = 0.5) -> bytes:
    response = await pool.post(url, {"Content-Type": "application/json"}, body, timeout=timeout)
    assert response.status == 200
    return response.body


# -- keep-alive and framing ------------------------------------------------------------------


async def test_sequential_requests_share_one_kept_alive_connection(
    serve: ServerFactory, make_pool: PoolFactory
) -> None:
    server = await serve(answer_all)
    pool = make_pool()
    for i in range(5):
        assert await post(pool, server.url("/hook?n=1"), b'{"i":%d}' % i) == b"ok"
    assert server.accepted == 1
    assert [r.body for r in server.requests] == [b'{"i":%d}' % i for i in range(5)]
    first = server.requests[0]
    assert (first.method, first.target) == ("POST", "/hook?n=1")
    assert first.headers["host"] == f"127.0.0.1:{server.port}"
    assert first.headers["content-length"] == "7"
    assert pool.open_connections(server.url()) == 1


async def test_an_answer_with_connection_close_is_not_reused(
    serve: ServerFactory, make_pool: PoolFactory
) -> None:
    server = await serve(answers_each(answer(headers=(("Connection", "close"),))))  # and stays
    pool = make_pool()
    await post(pool, server.url())
    await post(pool, server.url())
    assert server.accepted == 2
    assert pool.open_connections(server.url()) == 0


CHUNKED = answer(headers=(("Transfer-Encoding", "chunked"),), body=b"", length=False)


@pytest.mark.parametrize(
    ("handler", "options", "body", "connections"),
    [
        pytest.param(
            answers_each(CHUNKED + b"2\r\nhe\r\n3\r\nllo\r\n0\r\n\r\n"),
            {},
            b"hello",
            1,
            id="a_chunked_body_is_read_whole_and_the_connection_reused",
        ),
        pytest.param(
            answers_each(answer(body=b"0123456789" * 1000)),
            {"body_limit": 25},
            b"0123456789012345678901234",
            1,
            id="a_body_over_the_limit_is_cut_but_drained_so_the_connection_is_reused",
        ),
        *(
            pytest.param(
                answers_once(answer(body=b"all of it", version=version, length=False)),
                {},
                b"all of it",
                2,
                id=f"a_body_delimited_by_the_end_of_the_connection_in_http_{version}",
            )
            for version in ("1.0", "1.1")
        ),
        pytest.param(
            answers_each(answer(version="1.0", headers=(("Connection", "keep-alive"),))),
            {},
            b"ok",
            1,
            id="http_1_0_with_keep_alive_and_a_length_is_reused",
        ),
        pytest.param(
            answers_each(answer() + b"junk\r\n\r\n"),
            {},
            b"ok",
            2,
            id="garbage_after_a_complete_answer_keeps_the_answer_but_not_the_connection",
        ),
    ],
)
async def test_answers_are_read_whole_and_connections_reused_as_their_framing_allows(
    serve: ServerFactory,
    make_pool: PoolFactory,
    handler: Handler,
    options: dict[str, Any],
    body: bytes,
    connections: int,
) -> None:
    server = await serve(handler)
    pool = make_pool(**options)
    assert await post(pool, server.url()) == body
    assert await post(pool, server.url()) == body
    assert server.accepted == connections


async def test_a_huge_body_is_not_drained_the_connection_is_closed_instead(
    serve: ServerFactory, make_pool: PoolFactory
) -> None:
    async def endless(conn: Conn) -> None:
        if await conn.read_request() is None:
            return
        conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 100000000\r\n\r\n")
        with contextlib.suppress(ConnectionError):
            for _ in range(1000):  # 64 MiB at most, never reached: the client hangs up
                conn.send(b"x" * 65536)
                await conn.writer.drain()
        conn.server.note_client_close()

    server = await serve(endless)
    pool = make_pool(body_limit=10, drain_limit=1000)
    started = time.monotonic()
    assert await post(pool, server.url(), timeout=2) == b"xxxxxxxxxx"
    assert time.monotonic() - started < 1
    assert pool.open_connections(server.url()) == 0
    await server.wait_client_closes()


async def test_100_continue_is_not_the_answer(serve: ServerFactory, make_pool: PoolFactory) -> None:
    async def continues(conn: Conn) -> None:
        while await conn.read_request() is not None:
            conn.send(b"HTTP/1.1 100 Continue\r\n\r\n")
            await asyncio.sleep(0.02)  # the final answer in a later packet
            conn.send(answer(201, b"made"))

    server = await serve(continues)
    pool = make_pool()
    for _ in range(2):
        response = await pool.post(server.url(), {}, b"{}", timeout=0.5)
        assert (response.status, response.body) == (201, b"made")
    assert server.accepted == 1


async def test_a_redirect_is_returned_not_followed(
    serve: ServerFactory, make_pool: PoolFactory
) -> None:
    async def redirects(conn: Conn) -> None:
        while await conn.read_request() is not None:
            conn.send(answer(302, b"", (("Location", conn.server.url("/elsewhere")),)))

    server = await serve(redirects)
    pool = make_pool()
    response = await pool.post(server.url(), {}, b"{}", timeout=0.5)
    assert response.status == 302
    assert response.headers["location"].endswith("/elsewhere")
    assert len(server.requests) == 1


async def test_response_headers_are_lower_case_and_repeats_joined(
    serve: ServerFactory, make_pool: PoolFactory
) -> None:
    server = await serve(
        answers_each(answer(429, headers=(("Retry-After", "3"), ("X-A", "1"), ("x-a", "2"))))
    )
    response = await make_pool().post(server.url(), {}, b"", timeout=0.5)
    assert response.headers["retry-after"] == "3"
    assert response.headers["x-a"] == "1, 2"


async def eventually(check: Callable[[], bool], timeout: float = 2.0) -> None:
    """Until ``check()`` holds, yielding to the loop; AssertionError after ``timeout``."""
    async with asyncio.timeout(timeout):
        while not check():  # noqa: ASYNC110 - the pool's state has no event to wait on
            await asyncio.sleep(0.005)


# -- connections that go bad -----------------------------------------------------------------


async def test_unsolicited_data_on_an_idle_connection_discards_it(
    serve: ServerFactory, make_pool: PoolFactory
) -> None:
    async def chatty(conn: Conn) -> None:
        while await conn.read_request() is not None:
            conn.send(answer())
            if conn.number == 1:
                await asyncio.sleep(0.02)
                conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")  # nobody asked

    server = await serve(chatty)
    pool = make_pool()
    await post(pool, server.url())
    await eventually(lambda: pool.open_connections(server.url()) == 0)  # its slot is free
    await post(pool, server.url())
    assert server.accepted == 2
    assert [r.connection for r in server.requests] == [1, 2]


async def test_an_idle_connection_the_peer_closed_is_replaced_without_error(
    serve: ServerFactory, make_pool: PoolFactory
) -> None:
    server = await serve(answers_once(answer()))  # answers keep-alive, then closes anyway
    pool = make_pool()
    await post(pool, server.url())
    await asyncio.sleep(0.05)  # the close has arrived
    await post(pool, server.url())
    assert server.accepted == 2


def hangs_up_on_the_second_request(hang_up: Callable[[Conn], None]) -> Handler:
    """Reads the second request on the first connection, then ``hang_up(conn)`` instead of an
    answer (the keep-alive race); every other request is answered."""

    async def handler(conn: Conn) -> None:
        while await conn.read_request() is not None:
            if conn.number == 1 and len(conn.server.requests) == 2:
                return hang_up(conn)
            conn.send(answer())

    return handler


async def test_a_reused_connection_closed_before_any_answer_is_retried_once_on_a_new_one(
    serve: ServerFactory, make_pool: PoolFactory
) -> None:
    server = await serve(hangs_up_on_the_second_request(lambda conn: None))  # without a word
    pool = make_pool()
    await post(pool, server.url(), b"1")
    await post(pool, server.url(), b"2")
    assert [(r.body, r.connection) for r in server.requests] == [(b"1", 1), (b"2", 1), (b"2", 2)]


def reset(conn: Conn) -> None:
    """Close with a TCP reset (SO_LINGER 0) instead of a FIN."""
    sock = conn.writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.writer.transport.abort()


async def test_a_reset_reused_connection_is_retried_too(
    serve: ServerFactory, make_pool: PoolFactory
) -> None:
    server = await serve(hangs_up_on_the_second_request(reset))
    pool = make_pool()
    await post(pool, server.url(), b"1")
    await post(pool, server.url(), b"2")
    assert server.accepted == 2


async def test_a_reset_fresh_connection_is_a_read_error(
    serve: ServerFactory, make_pool: PoolFactory
) -> None:
    async def resets(conn: Conn) -> None:
        if await conn.read_request() is not None:
            reset(conn)

    server = await serve(resets)
    with pytest.raises(ReadError, match="reset"):
        await post(make_pool(), server.url())
    assert server.accepted == 1


async def test_a_fresh_connection_closed_without_answer_is_not_retried(
    serve: ServerFactory, make_pool: PoolFactory
) -> None:
    server = await serve(drops)
    pool = make_pool()
    with pytest.raises(RemoteProtocolError, match="disconnected without sending an answer"):
        await post(pool, server.url())
    assert server.accepted == 1
    assert pool.open_connections(server.url()) == 0


async def test_a_partial_answer_then_close_is_an_error_and_not_retried(
    serve: ServerFactory, make_pool: PoolFactory
) -> None:
    async def partial(conn: Conn) -> None:
        while await conn.read_request() is not None:
            if len(conn.server.requests) == 2:
                conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc")
                return
            conn.send(answer())

    server = await serve(partial)
    pool = make_pool()
    await post(pool, server.url())
    with pytest.raises(RemoteProtocolError, match="before the answer was complete"):
        await post(pool, server.url())
    assert server.accepted == 1
    assert len(server.requests) == 2


async def test_a_malformed_answer_is_a_protocol_error(
    serve: ServerFactory, make_pool: PoolFactory
) -> None:
    async def garbage(conn: Conn) -> None:
        if await conn.read_request() is not None:
            conn.send(b"SMTP ready\r\n\r\n")
            await conn.wait_closed_by_client()

    server = await serve(garbage)
    pool = make_pool()
    with pytest.raises(RemoteProtocolError, match="malformed answer"):
        await post(pool, server.url())
    assert pool.open_connections(server.url()) == 0


# -- deadlines, refusals and limits ----------------------------------------------------------


async def test_a_server_that_never_answers_times_out_and_the_connection_is_aborted(
    serve: ServerFactory, make_pool: PoolFactory
) -> None:
    server = await serve(hangs)
    pool = make_pool()
    started = time.monotonic()
    with pytest.raises(RequestTimeout):
        await post(pool, server.url(), timeout=0.3)
    assert 0.29 <= time.monotonic() - started < 0.6
    await server.wait_client_closes()
    assert pool.open_connections(server.url()) == 0


async def test_a_refused_connection_is_a_connect_error(make_pool: PoolFactory) -> None:
    with socket.socket() as unlistened:  # bound, never listening: connections are refused
        unlistened.bind(("127.0.0.1", 0))
        port = unlistened.getsockname()[1]
        pool = make_pool()
        with pytest.raises(ConnectError, match=r"\[Errno 111\]") as caught:
            await post(pool, f"http://127.0.0.1:{port}/hook")
    assert isinstance(caught.value, HTTPClientError)
    assert pool.open_connections(f"http://127.0.0.1:{port}/hook") == 0


async def test_at_most_max_connections_per_origin_the_rest_wait_their_turn(
    serve: ServerFactory, make_pool: PoolFactory
) -> None:
    async def slow(conn: Conn) -> None:
        while await conn.read_request() is not None:
            await asyncio.sleep(0.05)
            conn.send(answer())

    server = await serve(slow)
    pool = make_pool(max_connections=2)
    bodies = await asyncio.gather(*(post(pool, server.url(), b"%d" % i) for i in range(5)))
    assert bodies == [b"ok"] * 5
    assert server.max_open <= 2
    assert server.accepted == 2
    assert pool.open_connections(server.url()) == 2


async def test_waiters_are_served_in_order_and_one_that_times_out_frees_its_place(
    serve: ServerFactory, make_pool: PoolFactory
) -> None:
    gate = asyncio.Event()
    server = await serve(gated(gate))
    pool = make_pool(max_connections=1)
    first = asyncio.create_task(post(pool, server.url(), b"a", timeout=2))
    await server.wait_requests(1)
    impatient = asyncio.create_task(post(pool, server.url(), b"x", timeout=0.1))
    second = asyncio.create_task(post(pool, server.url(), b"b", timeout=2))
    third = asyncio.create_task(post(pool, server.url(), b"c", timeout=2))
    with pytest.raises(RequestTimeout):
        await impatient
    gate.set()
    await asyncio.gather(first, second, third)
    assert [r.body for r in server.requests] == [b"a", b"b", b"c"]
    assert server.accepted == 1
    assert pool.open_connections(server.url()) == 1


async def test_idle_connections_are_reused_newest_first(
    serve: ServerFactory, make_pool: PoolFactory
) -> None:
    async def a_then_b(conn: Conn) -> None:
        while (request := await conn.read_request()) is not None:
            await conn.server.wait_requests(2)  # a and b both in flight
            await asyncio.sleep(0.05 if request.body == b"b" else 0)
            conn.send(answer())

    server = await serve(a_then_b)
    pool = make_pool(max_connections=2)
    await asyncio.gather(post(pool, server.url(), b"a"), post(pool, server.url(), b"b"))
    await post(pool, server.url(), b"c")  # on b's connection: the last one back
    where = {r.body: r.connection for r in server.requests}
    assert where[b"a"] != where[b"b"] and where[b"c"] == where[b"b"]


async def test_other_origins_have_their_own_cap(
    serve: ServerFactory, make_pool: PoolFactory
) -> None:
    gate = asyncio.Event()
    busy = await serve(gated(gate))
    free = await serve(answer_all)
    pool = make_pool(max_connections=1)
    stuck = asyncio.create_task(post(pool, busy.url(), timeout=2))
    await busy.wait_requests(1)
    assert await post(pool, free.url(), timeout=0.3) == b"ok"
    gate.set()
    await stuck


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Evil": "1\r\nX-Injected: 2"},
        {"X-Evil": "1\nX-Injected: 2"},
        {"X-Evil\r\nX-Injected": "2"},
        {"X-Evil: 2\r\nX": "1"},
        {"Bad Name": "1"},
        {"Host": "example.com\r\nX-Injected: 2"},
        {"Content-Length": "5"},
    ],
)
async def test_headers_that_could_inject_are_refused_before_connecting(
    serve: ServerFactory, make_pool: PoolFactory, headers: dict[str, str]
) -> None:
    server = await serve(answer_all)
    pool = make_pool()
    with pytest.raises(InvalidRequest) as caught:
        await pool.post(server.url(), headers, b"{}", timeout=0.5)
    assert isinstance(caught.value, ValueError)
    assert server.accepted == 0


def test_the_request_head_is_host_first_then_the_headers_then_the_length() -> None:
    request = encode_request("/h?x=1", "bücher.example:8080", {"X-A": "é"}, b"{}")
    assert request == (
        b"POST /h?x=1 HTTP/1.1\r\nHost: xn--bcher-kva.example:8080\r\n"
        b"X-A: \xc3\xa9\r\nContent-Length: 2\r\n\r\n{}"
    )


async def test_a_non_http_url_is_refused(make_pool: PoolFactory) -> None:
    with pytest.raises(InvalidRequest):
        await make_pool().post("ftp://127.0.0.1/x", {}, b"", timeout=0.5)


async def test_a_cancelled_request_aborts_its_connection(
    serve: ServerFactory, make_pool: PoolFactory
) -> None:
    server = await serve(hangs)
    pool = make_pool()
    task = asyncio.create_task(post(pool, server.url(), timeout=5))
    await server.wait_requests(1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert pool.open_connections(server.url()) == 0
    await server.wait_client_closes()


async def test_close_aborts_connections_and_later_requests_fail(
    serve: ServerFactory, make_pool: PoolFactory
) -> None:
    idle_server = await serve(keeps)
    busy_server = await serve(hangs)
    pool = make_pool()
    await post(pool, idle_server.url())
    in_flight = asyncio.create_task(post(pool, busy_server.url(), timeout=5))
    await busy_server.wait_requests(1)
    await pool.close()
    with pytest.raises(PoolClosed):
        await in_flight
    with pytest.raises(PoolClosed):
        await post(pool, idle_server.url())
    await idle_server.wait_client_closes()
    await busy_server.wait_client_closes()


# -- TLS ------------------------------------------------------------------------------------


@dataclass
class Certificate:
    cert_pem: bytes
    cert_file: Path
    key_file: Path


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    """A self-signed certificate for ``localhost`` and 127.0.0.1."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    (folder / "cert.pem").write_bytes(cert_pem)
    (folder / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return Certificate(cert_pem, folder / "cert.pem", folder / "key.pem")


def server_context(certificate: Certificate, names: list[str | None]) -> ssl.SSLContext:
    """Serves ``certificate``; records the SNI name of each handshake in ``names``."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certificate.cert_file, certificate.key_file)

    def sni(sock: ssl.SSLObject, name: str | None, ctx: ssl.SSLContext) -> None:
        names.append(name)

    context.sni_callback = sni
    return context


def trusting(certificate: Certificate) -> ssl.SSLContext:
    return ssl.create_default_context(cadata=certificate.cert_pem.decode())


async def test_https_with_a_trusted_certificate_and_the_given_server_name(
    serve: ServerFactory, make_pool: PoolFactory, certificate: Certificate
) -> None:
    names: list[str | None] = []
    server = await serve(answer_all, ssl=server_context(certificate, names))
    pool = make_pool(ssl_context=trusting(certificate))
    url = server.url(scheme="https")
    for _ in range(2):
        response = await pool.post(url, {}, b"{}", timeout=2, server_hostname="localhost")
        assert (response.status, response.body) == (200, b"ok")
    assert names == ["localhost"]  # one handshake: the connection was reused
    assert server.accepted == 1
    # Without a server name, the URL's host is checked (an IP address: no SNI is sent).
    await pool.post(url, {}, b"{}", timeout=2)
    assert server.accepted == 2


async def test_https_with_an_untrusted_certificate_is_a_connect_error(
    serve: ServerFactory, make_pool: PoolFactory, certificate: Certificate
) -> None:
    server = await serve(answer_all, ssl=server_context(certificate, []))
    pool = make_pool(ssl_context=ssl.create_default_context())  # the system's trust only
    with pytest.raises(ConnectError, match="certificate verify failed"):
        await pool.post(server.url(scheme="https"), {}, b"{}", timeout=2)
    assert pool.open_connections(server.url(scheme="https")) == 0


async def test_https_with_the_wrong_server_name_is_a_connect_error(
    serve: ServerFactory, make_pool: PoolFactory, certificate: Certificate
) -> None:
    server = await serve(answer_all, ssl=server_context(certificate, []))
    pool = make_pool(ssl_context=trusting(certificate))
    with pytest.raises(ConnectError, match="certificate verify failed"):
        await pool.post(
            server.url(scheme="https"), {}, b"{}", timeout=2, server_hostname="example.com"
        )


# -- the Sender on top of it -------------------------------------------------------------------


def endpoint(url: str, headers: dict[str, str] | None = None) -> Endpoint:
    return Endpoint(
        id="wh_1",
        tenant="default",
        url=url,
        events=["#"],
        filter={},
        secrets=[Secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")],
        active=True,
        description=None,
        rate_limit=None,
        headers=headers or {},
        created_at_us=0,
        updated_at_us=0,
    )


EVENT = Event(
    seq=1,
    id="ev_1",
    type="order.created",
    source="shop",
    subject=None,
    time_us=1_700_000_000_000_000,
    received_at_us=1_700_000_000_000_000,
    trace_id="4bf92f3577b34da6a3ce929d0e0e4736",
    idempotency_key=None,
    data_json='{"n":1}',
    metadata_json="{}",
)


@pytest.fixture
async def make_sender() -> AsyncIterator[Callable[..., Sender]]:
    senders: list[Sender] = []

    def make(**options: Any) -> Sender:
        settings: dict[str, Any] = {"timeout_s": 0.5, "allow_private": True, "max_connections": 2}
        senders.append(Sender(**(settings | options)))
        return senders[-1]

    yield make
    for sender in senders:
        await sender.close()


async def test_sender_posts_the_signed_event_and_reads_the_answer(
    serve: ServerFactory, make_sender: Callable[..., Sender]
) -> None:
    server = await serve(answers_each(answer(429, b"slow down", (("Retry-After", "7"),))))
    sender = make_sender()
    result = await sender.send(endpoint(server.url(), {"X-Team": "blue"}), EVENT, "msg_1")
    assert (result.status_code, result.error, result.timed_out) == (429, None, False)
    assert result.response_body == "slow down"
    assert result.retry_after_s == 7
    assert result.latency_ms > 0
    request = server.requests[0]
    assert request.headers["webhook-id"] == "msg_1"
    assert request.headers["webhook-signature"].startswith("v1,")
    assert request.headers["x-signature"].startswith("sha256=")
    assert request.headers["webhook-timestamp"].isdigit()
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"].startswith("tidings/")
    assert request.headers["traceparent"].startswith("00-4bf92f3577b34da6a3ce929d0e0e4736-")
    assert request.headers["x-team"] == "blue"
    assert request.headers["host"] == f"127.0.0.1:{server.port}"
    assert request.body.startswith(b'{"event":{')


async def test_sender_uses_the_vetted_host_header_and_server_name(
    serve: ServerFactory,
    make_sender: Callable[..., Sender],
    certificate: Certificate,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    names: list[str | None] = []
    server = await serve(answer_all, ssl=server_context(certificate, names))

    async def pinned(url: str, allow_private: bool) -> Target:
        # What vet() gives for a public name: the address pinned, the name kept for Host/SNI.
        return Target((server.url(scheme="https"),), "localhost:8443", "localhost")

    monkeypatch.setattr(sender_module, "vet", pinned)
    sender = make_sender(allow_private=False, ssl_context=trusting(certificate))
    result = await sender.send(endpoint("https://localhost:8443/hook"), EVENT, "msg_1")
    assert (result.status_code, result.error) == (200, None)
    assert server.requests[0].headers["host"] == "localhost:8443"
    assert names == ["localhost"]


async def test_sender_keeps_4_kib_of_the_body_without_half_characters(
    serve: ServerFactory, make_sender: Callable[..., Sender]
) -> None:
    text = "a" + "é" * 3000  # 4096 bytes cut the 2048th "é" in half

    server = await serve(answers_each(answer(body=text.encode())))
    result = await make_sender().send(endpoint(server.url()), EVENT, "msg_1")
    assert result.response_body == text[:2048]
    assert len(result.response_body.encode()) == RESPONSE_BODY_LIMIT - 1


async def test_sender_reports_a_timeout(
    serve: ServerFactory, make_sender: Callable[..., Sender]
) -> None:
    server = await serve(hangs)
    result = await make_sender(timeout_s=0.2).send(endpoint(server.url()), EVENT, "msg_1")
    assert (result.status_code, result.error, result.timed_out) == (None, "timed out", True)
    assert result.response_body is None
    assert result.latency_ms >= 200  # measured up to the time-out


async def test_sender_reports_errors_with_the_class_name(
    serve: ServerFactory, make_sender: Callable[..., Sender]
) -> None:
    server = await serve(drops)
    sender = make_sender()
    dropped = await sender.send(endpoint(server.url()), EVENT, "msg_1")
    assert dropped.error == "RemoteProtocolError: server disconnected without sending an answer"
    with socket.socket() as unlistened:
        unlistened.bind(("127.0.0.1", 0))
        port = unlistened.getsockname()[1]
        refused = await sender.send(endpoint(f"http://127.0.0.1:{port}/"), EVENT, "msg_1")
    assert refused.error is not None and refused.error.startswith("ConnectError: ")
    assert refused.status_code is None and not refused.timed_out
    injected = await sender.send(endpoint(server.url(), {"X-A": "1\r\nX-B: 2"}), EVENT, "msg_1")
    assert injected.error is not None and injected.error.startswith("InvalidRequest: ")


@pytest.fixture
def fake_dns(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[list[str]]]:
    """Names resolved from a table: each lookup of a name takes the next of its answers (the
    last one repeats), as a rebinding DNS server would hand them out."""
    table: dict[str, list[list[str]]] = {}

    async def resolve(host: str, port: int) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
        answers = table[host]
        found = answers.pop(0) if len(answers) > 1 else answers[0]
        return [ipaddress.ip_address(a) for a in found]

    monkeypatch.setattr(destinations, "resolve", resolve)
    return table


async def test_sender_tries_each_vetted_address_in_turn_and_then_prefers_the_one_that_answered(
    serve: ServerFactory, make_sender: Callable[..., Sender], fake_dns: dict[str, list[list[str]]]
) -> None:
    server = await serve(answer_all)  # on 127.0.0.1 only; nothing listens on 127.0.0.2
    fake_dns["receiver.test"] = [["127.0.0.2", "127.0.0.1"]]
    sender = make_sender(allow_private=True)
    hook = endpoint(f"http://receiver.test:{server.port}/hook")
    for _ in range(3):
        result = await sender.send(hook, EVENT, "msg_1")
        assert (result.status_code, result.error) == (200, None)
    assert server.accepted == 1  # the working address first, on its kept-alive connection
    assert {r.headers["host"] for r in server.requests} == {f"receiver.test:{server.port}"}

    fake_dns["nobody.test"] = [["127.0.0.2", "127.0.0.3"]]
    port = server.port
    failed = await sender.send(endpoint(f"http://nobody.test:{port}/hook"), EVENT, "msg_1")
    assert failed.error is not None and failed.error.startswith("ConnectError: ")
    assert f"127.0.0.2:{port}" in failed.error and f"127.0.0.3:{port}" in failed.error


async def test_sender_pins_the_vetted_address_even_when_private_destinations_are_allowed(
    serve: ServerFactory, make_sender: Callable[..., Sender], fake_dns: dict[str, list[list[str]]]
) -> None:
    server = await serve(answer_all)
    # Vetted as loopback, then the name turns to the metadata address (DNS rebinding): the
    # connection must go where the vetting looked, not resolve the name again.
    fake_dns["rebind.test"] = [["127.0.0.1"], ["169.254.169.254"]]
    sender = make_sender(allow_private=True)
    hook = endpoint(f"http://rebind.test:{server.port}/hook")
    first = await sender.send(hook, EVENT, "msg_1")
    assert (first.status_code, first.error) == (200, None)
    assert server.requests[0].headers["host"] == f"rebind.test:{server.port}"
    second = await sender.send(hook, EVENT, "msg_1")  # the next attempt vets again
    assert second.error is not None and "cloud metadata" in second.error
    assert len(server.requests) == 1


async def test_a_slow_name_lookup_counts_within_the_attempts_deadline(
    serve: ServerFactory, make_sender: Callable[..., Sender], monkeypatch: pytest.MonkeyPatch
) -> None:
    async def slow_dns(host: str, port: int) -> list[ipaddress.IPv4Address]:
        await asyncio.sleep(30)
        return [ipaddress.IPv4Address("127.0.0.1")]

    monkeypatch.setattr(destinations, "resolve", slow_dns)
    started = time.monotonic()
    result = await make_sender(timeout_s=0.2).send(endpoint("http://slow.test/"), EVENT, "m")
    assert (result.status_code, result.timed_out) == (None, True)
    assert result.error == "timed out resolving the host"
    assert time.monotonic() - started < 2


async def test_sender_still_refuses_private_destinations(
    serve: ServerFactory, make_sender: Callable[..., Sender]
) -> None:
    server = await serve(answer_all)
    result = await make_sender(allow_private=False).send(endpoint(server.url()), EVENT, "msg_1")
    assert result.error is not None and result.error.startswith("destination refused: ")
    assert result.status_code is None
    assert server.accepted == 0


async def test_sender_close_closes_its_connections(
    serve: ServerFactory, make_sender: Callable[..., Sender]
) -> None:
    server = await serve(keeps)
    sender = make_sender()
    assert sender.timeout_s == 0.5
    assert (await sender.send(endpoint(server.url()), EVENT, "msg_1")).status_code == 200
    await sender.close()
    await server.wait_client_closes()


# -- bounds: header bytes, idle connections, addresses, resolution -----------------------------


async def test_an_answer_whose_headers_never_end_fails_at_the_header_cap(
    serve: ServerFactory, make_pool: PoolFactory
) -> None:
    async def endless_header(conn: Conn) -> None:
        if await conn.read_request() is not None:
            conn.send(b"HTTP/1.1 200 OK\r\nX-Grow: ")
            while True:  # one header that never ends, as fast as the client reads
                conn.send(b"a" * 16384)
                await conn.writer.drain()

    server = await serve(endless_header)
    pool = make_pool(header_limit=32768)
    with pytest.raises(RemoteProtocolError, match="headers exceed 32768 bytes"):
        await pool.post(server.url(), {}, b"{}", timeout=5)
    assert pool.open_connections(server.url()) == 0


async def test_many_small_headers_count_toward_the_cap_too(
    serve: ServerFactory, make_pool: PoolFactory
) -> None:
    many = tuple((f"X-H{i}", "v" * 50) for i in range(2000))  # about 120 KB of headers

    server = await serve(answers_each(answer(headers=many)))
    with pytest.raises(RemoteProtocolError, match="headers exceed"):
        await make_pool().post(server.url(), {}, b"{}", timeout=5)  # the default cap: 64 KiB
    roomy = make_pool(header_limit=256 * 1024)
    assert (await roomy.post(server.url(), {}, b"{}", timeout=5)).headers["x-h1999"]


async def test_an_idle_connection_the_peer_closes_gives_its_slot_back_at_once(
    serve: ServerFactory, make_pool: PoolFactory
) -> None:
    server = await serve(answers_once(answer()))  # keep-alive, then it closes anyway
    pool = make_pool(max_connections=1)
    await post(pool, server.url())
    # No request to that origin follows: the pool notices the close by itself.
    await eventually(lambda: pool.open_connections(server.url()) == 0)
    assert pool.idle_connections(server.url()) == 0
    await post(pool, server.url())
    assert server.accepted == 2


async def test_an_idle_connection_is_closed_after_the_idle_timeout(
    serve: ServerFactory, make_pool: PoolFactory
) -> None:
    server = await serve(keeps)
    pool = make_pool(idle_timeout=0.05)
    await post(pool, server.url())
    await server.wait_client_closes()  # the client hung up on its own
    await eventually(lambda: pool.open_connections(server.url()) == 0)
    await post(pool, server.url())
    assert server.accepted == 2


async def test_a_connection_reused_in_time_is_not_closed_by_its_idle_timer(
    serve: ServerFactory, make_pool: PoolFactory
) -> None:
    server = await serve(answer_all)
    pool = make_pool(idle_timeout=1.0)
    for _ in range(6):  # longer than the idle timeout in all, never idle that long at once
        await post(pool, server.url())
        await asyncio.sleep(0.2)
    assert server.accepted == 1


# -- the same under uvloop, the loop ``tidings serve`` runs on ------------------------------


_PARAM = type(pytest.param(None))


def _cases(function: Callable[..., Any]) -> list[tuple[str, dict[str, Any]]]:
    """A test's cases, each an id and its parameters (one case without any when the test is
    not parametrized; the tests here have one ``parametrize`` at most)."""
    marks = [m for m in getattr(function, "pytestmark", []) if m.name == "parametrize"]
    if not marks:
        return [("", {})]
    [mark] = marks
    names, values = mark.args
    if isinstance(names, str):
        names = [name.strip() for name in names.split(",")]
    cases = []
    for i, value in enumerate(values):
        case = value if isinstance(value, _PARAM) else pytest.param(value)
        cases.append((case.id or str(i), dict(zip(names, case.values, strict=True))))
    return cases


def _scenarios() -> list[Any]:
    """The tests above that need only servers, pools, the certificate and their parameters."""
    runnable = {"serve", "make_pool", "certificate"}
    found = []
    for name, function in sorted(globals().items()):
        if not (name.startswith("test_") and inspect.iscoroutinefunction(function)):
            continue
        for case_id, args in _cases(function):
            if set(inspect.signature(function).parameters) <= runnable | set(args):
                label = f"{name[5:]}-{case_id}" if case_id else name[5:]
                found.append(pytest.param(function, args, id=label))
    return found


@pytest.mark.parametrize(("scenario", "args"), _scenarios())
def test_under_uvloop(
    scenario: Callable[..., Awaitable[None]], args: dict[str, Any], certificate: Certificate
) -> None:
    uvloop = pytest.importorskip("uvloop")

    async def main() -> None:
        async with serving() as serve, pooling() as make_pool:
            available = {"serve": serve, "make_pool": make_pool, "certificate": certificate}
            wanted = inspect.signature(scenario).parameters
            given = available | args
            await scenario(**{name: given[name] for name in wanted})

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main())
