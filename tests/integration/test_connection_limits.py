"""Connection limits of a real server: header deadline and size, keep-alive, the cap, and
malformed requests answered with the error shape rather than uvicorn's plain text."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from contextlib import ExitStack

import httpx
import pytest

from tests.integration.server import ServerProcess

HEADER_TIMEOUT_S = 1.0
MAX_HEADER_BYTES = 4096
MAX_BODY_BYTES = 16_384
CAP = 4


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    env = {
        "TIDINGS_HEADER_TIMEOUT_S": str(HEADER_TIMEOUT_S),
        "TIDINGS_MAX_HEADER_BYTES": str(MAX_HEADER_BYTES),
        "TIDINGS_KEEPALIVE_S": "0.5",
        "TIDINGS_MAX_BODY_BYTES": str(MAX_BODY_BYTES),
    }
    process = ServerProcess(tmp_path_factory.mktemp("limits") / "data", env=env).start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def capped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    env = {"TIDINGS_MAX_CONNECTIONS": str(CAP), "TIDINGS_LOG_LEVEL": "info"}
    process = ServerProcess(tmp_path_factory.mktemp("capped") / "data", env=env).start()
    yield process
    process.stop()


def connect(server: ServerProcess) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=10.0)


def read_until_closed(sock: socket.socket, timeout: float = 10.0) -> bytes:
    """Everything the server sends until it closes the connection."""
    sock.settimeout(timeout)
    received = b""
    try:
        while chunk := sock.recv(65_536):
            received += chunk
    except ConnectionResetError:  # closed with our unread bytes still queued: a reset
        pass
    return received


def answer(sock: socket.socket, request: bytes) -> tuple[int, dict[str, str], bytes]:
    sock.sendall(request)
    return parse(read_until_closed(sock))


def parse(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    assert lines[0].startswith("HTTP/1.1 "), raw[:200]
    headers = dict(line.lower().split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, body


def assert_error(raw: tuple[int, dict[str, str], bytes], status: int, code: str) -> None:
    got, headers, body = raw
    assert got == status, body
    assert headers["content-type"] == "application/json"
    assert json.loads(body)["error"]["code"] == code


# -- header deadline, header size, keep-alive --------------------------------------------


def test_headers_trickled_slower_than_the_deadline_get_408(server: ServerProcess) -> None:
    with connect(server) as sock:
        started = time.monotonic()
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        for _ in range(20):  # a slowloris client: one header every 0.2s, never the blank line
            try:
                sock.sendall(b"X-a: b\r\n")
            except OSError:
                break
            time.sleep(0.2)
            if time.monotonic() - started > HEADER_TIMEOUT_S + 1:
                break
        assert_error(parse(read_until_closed(sock, 5.0)), 408, "request_timeout")
        assert time.monotonic() - started < HEADER_TIMEOUT_S + 2


def test_a_connection_that_never_sends_a_request_is_closed(server: ServerProcess) -> None:
    with connect(server) as sock:
        started = time.monotonic()
        assert read_until_closed(sock, 5.0) == b""
        assert time.monotonic() - started < HEADER_TIMEOUT_S + 2


def test_an_idle_keep_alive_connection_is_closed_after_the_keepalive_time(
    server: ServerProcess,
) -> None:
    with connect(server) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        started = time.monotonic()
        status, _, body = parse(read_until_closed(sock, 5.0))
        assert status == 200 and json.loads(body)["status"] == "ok"
        assert time.monotonic() - started < 2.0


def test_headers_larger_than_the_limit_get_431(server: ServerProcess) -> None:
    big = b"X-Big: " + b"a" * MAX_HEADER_BYTES + b"\r\n"
    with connect(server) as sock:  # complete headers, arriving in one piece
        raw = answer(sock, b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + big + b"\r\n")
        assert_error(raw, 431, "headers_too_large")
    with connect(server) as sock:  # a header that never ends
        raw = answer(sock, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 200_000)
        assert_error(raw, 431, "headers_too_large")


def test_the_rest_of_a_body_refused_early_is_not_read_as_the_next_requests_headers(
    server: ServerProcess,
) -> None:
    body = b"[" + b'{"type": "a.b"},' * (MAX_BODY_BYTES // 4) + b'{"type": "a.b"}]'
    with httpx.Client(base_url=server.url, timeout=10.0) as client:  # one keep-alive connection
        refused = client.post(
            "/v1/events", content=body, headers={"content-type": "application/json"}
        )
        assert refused.status_code == 413, refused.text
        for _ in range(3):
            answered = client.get("/healthz")
            assert answered.status_code == 200, answered.text


def test_a_megabyte_query_string_gets_414_in_the_error_shape(server: ServerProcess) -> None:
    with connect(server) as sock:
        request = b"GET /v1/events?type=" + b"a" * 1_000_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"
        assert_error(answer(sock, request), 414, "uri_too_long")


# -- malformed requests ------------------------------------------------------------------


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: appl\x01ication/json\r\n"
        b"Content-Length: 2\r\n\r\n{}",
        b"GARBAGE\r\n\r\n",
        b"GET /healthz HTTP/9.9\r\nHost: x\r\n\r\n",
        b"GET http://[::1 HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nBad Header Name: x\r\n\r\n",
        b"GET /v1/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
        b"GET /v1/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: abc\r\nSec-WebSocket-Version: 13\r\n\r\n",
    ],
    ids=[
        "control-char-in-content-type",
        "no-request-line",
        "version",
        "url",
        "header-name",
        "websocket-without-key",
        "websocket-bad-key",
    ],
)
def test_malformed_requests_get_400_in_the_error_shape(
    server: ServerProcess, request_bytes: bytes
) -> None:
    with connect(server) as sock:
        status, headers, body = answer(sock, request_bytes)
        assert_error((status, headers, body), 400, "bad_request")
        assert json.loads(body)["error"]["message"].startswith("the request")


# -- the connection cap -----------------------------------------------------------------


def test_over_the_cap_the_longest_idle_connection_makes_room(capped: ServerProcess) -> None:
    with ExitStack() as stack:
        idle = [stack.enter_context(connect(capped)) for _ in range(CAP * 2)]
        with connect(capped) as sock:
            status, _, body = answer(sock, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert status == 200, body
        assert read_until_closed(idle[0], 5.0) == b""  # the first was let go
    assert "connection cap reached (4 open, TIDINGS_MAX_CONNECTIONS)" in capped.log()


def test_over_the_cap_with_every_connection_busy_a_new_one_gets_503(
    capped: ServerProcess,
) -> None:
    with ExitStack() as stack:
        for _ in range(CAP):  # streams are busy connections: none of them is let go
            stream = stack.enter_context(connect(capped))
            stream.sendall(b"GET /v1/events/stream HTTP/1.1\r\nHost: x\r\n\r\n")
            assert stream.recv(1024).startswith(b"HTTP/1.1 200")
        with connect(capped) as sock:
            raw = parse(read_until_closed(sock, 5.0))
        assert_error(raw, 503, "too_many_connections")
        assert raw[1]["retry-after"] == "1"
    assert "refused with 503" in capped.log()
    assert "holding at most 4 connections" in capped.log()
