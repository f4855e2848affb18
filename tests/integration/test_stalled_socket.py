"""A client that stops reading is reset: its socket leaves ESTABLISHED and the kernel keeps no
send queue for it, rather than a FIN waiting behind megabytes of unsent bytes."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.integration.server import ServerProcess
from tests.integration.streams_helpers import (
    TCP_ESTABLISHED,
    RawSSE,
    publish,
    server_env,
    server_side_send_queue,
    stream_stats,
    unique,
    wait_until,
)

pytestmark = pytest.mark.skipif(
    not Path("/proc/net/tcp").exists(), reason="needs /proc/net/tcp to see the server's socket"
)


async def test_a_stalled_sse_socket_is_reset_within_the_stall_time_and_holds_no_send_queue(
    start_server: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    stall_s = 2.0
    server = start_server(env=server_env(stream_stall_s=stall_s), data_dir=tmp_path / "data")
    source = unique("stalled")
    async with httpx.AsyncClient(base_url=server.url, timeout=30.0) as client:
        stuck = await RawSSE.connect(
            server.port, f"/v1/events/stream?source={source}", rcvbuf=4096, buffer_limit=1024
        )
        port = stuck.local_port
        try:
            heavy = {"type": "bulk.item", "source": source, "data": {"pad": "x" * 5000}}
            for _ in range(8):  # 4 MB: far more than the socket buffers of both ends hold
                await publish(client, [heavy] * 100)
            published = time.monotonic()
            entry = server_side_send_queue(server.port, port)
            assert entry is not None
            assert entry[0] == TCP_ESTABLISHED and entry[1] > 0, entry  # stuck, not idle

            async def released() -> bool:
                entry = server_side_send_queue(server.port, port)
                return entry is None or (entry[0] != TCP_ESTABLISHED and entry[1] == 0)

            assert await wait_until(released, timeout=stall_s + 1.0), (
                server_side_send_queue(server.port, port),
                time.monotonic() - published,
            )
            closed = (await stream_stats(client))["closed"]
            assert closed.get("sse:stalled") == 1, closed
            assert await stuck.read_to_end(timeout=10) in ("eof", "reset")
        finally:
            stuck.close()
