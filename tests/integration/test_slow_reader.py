"""A reader far slower than the stall time allows for a whole write, but steady, stays open."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

import httpx

from tests.integration.server import ServerProcess


def test_a_steady_reader_at_a_few_kilobytes_a_second_is_never_closed_as_stalled(
    start_server: Callable[..., ServerProcess],
) -> None:
    server = start_server(env={"TIDINGS_STREAM_STALL_S": "1"})
    for _ in range(3):  # about 1 MB of history to catch up on
        batch = [{"type": "a.b", "data": {"pad": "x" * 300}} for _ in range(1000)]
        assert httpx.post(server.url + "/v1/events", json=batch).status_code == 201
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
        sock.connect(("127.0.0.1", server.port))
        sock.sendall(b"GET /v1/events/stream?last_event_id=0 HTTP/1.1\r\nHost: t\r\n\r\n")
        sock.settimeout(5)
        received = 0
        started = time.monotonic()
        while time.monotonic() - started < 8:  # 8 stall periods at about 16 KB/s
            chunk = sock.recv(4096)
            assert chunk, "the server closed a slow but steady reader"
            received += len(chunk)
            time.sleep(0.25)
    assert received > 64_000
    closed = httpx.get(server.url + "/v1/stats").json()["streams"]["closed"]
    assert "sse:stalled" not in closed
