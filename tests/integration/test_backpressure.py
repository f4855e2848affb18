"""Backpressure over real sockets: a slow reader falls behind and still gets everything (caught up
from the store); a reader that takes nothing is dropped after ``TIDINGS_STREAM_STALL_S`` while
a fast reader and the publishers on the same server carry on (DESIGN.md §2)."""

from __future__ import annotations

import asyncio
import functools
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from httpx_sse import aconnect_sse

from tests.integration.server import ServerProcess
from tests.integration.streams_helpers import (
    TCP_ESTABLISHED,
    RawSSE,
    event_ids,
    publish,
    publish_one,
    raw_websocket,
    read_to_end,
    server_env,
    server_side_tcp_state,
    stream_stats,
    unique,
    wait_until,
)

PAD = "x" * 5000  # about 5 KiB per event: buffers fill with a few hundred events
BIG_PAD = "x" * 10_000
HAS_PROC_NET = Path("/proc/net/tcp").exists()


async def test_slow_reader_falls_behind_and_still_receives_everything_in_order(
    start_server: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    env = server_env(stream_stall_s=2, heartbeat_s=0.5)
    server = start_server(env=env, data_dir=tmp_path / "slow")
    source = unique("slow")
    async with httpx.AsyncClient(base_url=server.url, timeout=30.0) as client:
        reader = await RawSSE.connect(
            server.port, f"/v1/events/stream?source={source}", rcvbuf=65_536, buffer_limit=65_536
        )
        assert reader.status == 200
        frames = await reader.collect(lambda fs: len(fs) >= 1, timeout=5)
        assert frames[0].event == "connected"

        behind_seen = 0
        published: list[int] = []
        last_ack = 0.0

        async def watch_behind() -> None:
            nonlocal behind_seen
            while True:
                behind_seen = max(behind_seen, (await stream_stats(client))["subscriptions_behind"])
                await asyncio.sleep(0.05)

        async def publisher() -> None:
            nonlocal last_ack
            for _ in range(16):  # 8 MB, several times faster than the reader takes it
                batch = [{"type": "slow.item", "source": source, "data": {"pad": BIG_PAD}}] * 50
                published.extend(await publish(client, batch))
                last_ack = time.monotonic()
                await asyncio.sleep(0.05)

        watcher = asyncio.create_task(watch_behind())
        writer = asyncio.create_task(publisher())
        received: list[int] = []
        try:
            # 1.2 MB/s: a 500-event catch-up page (5 MB) takes longer than the stall time to
            # drain, yet the socket never stops accepting bytes. (The kernel lets the server
            # write again only once a third of its send buffer, up to 4 MB, has drained: a
            # reader taking much less than 1.3 MB per stall time looks stalled.)
            rate = 1_200_000
            began = time.monotonic()
            async with asyncio.timeout(40):
                while not (writer.done() and received and received[-1] == published[-1]):
                    allowed = rate * (time.monotonic() - began) - reader.bytes_read
                    if allowed < 4096:
                        await asyncio.sleep(0.01)
                        continue
                    received += event_ids(await reader.read(min(int(allowed), 65_536)))
            finished = time.monotonic()
        finally:
            watcher.cancel()
            await writer
            reader.close()
        assert received == published
        assert behind_seen >= 1, "the reader never fell behind the live feed"
        assert "sse:stalled" not in (await stream_stats(client))["closed"]
        lag = finished - last_ack
        assert lag > 2.0, f"the reader was never far behind ({lag:.2f}s)"


async def test_reader_that_takes_nothing_is_dropped_while_others_carry_on(
    start_server: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    """Readers that take nothing hold up neither publishers nor a reader that keeps up: every
    event published while they are connected is acknowledged and reaches the fast reader, in
    order, before the stuck ones are dropped as stalled. (How fast is a benchmark's question.)"""
    stall_s = 5.0
    server = start_server(env=server_env(stream_stall_s=stall_s), data_dir=tmp_path / "stall")
    fast, bulk = unique("fast"), unique("bulk")
    async with httpx.AsyncClient(base_url=server.url, timeout=30.0) as client:
        arrivals: dict[int, float] = {}

        async def fast_reader() -> None:
            params = {"source": fast}
            async with aconnect_sse(client, "GET", "/v1/events/stream", params=params) as es:
                async for frame in es.aiter_sse():
                    if frame.event == "event":
                        arrivals[int(frame.id)] = time.monotonic()

        async def bulk_load(source: str) -> None:
            """4 MB of events: more than the kernel buffers of a reader that takes nothing."""
            heavy = {"type": "bulk.item", "source": source, "data": {"pad": PAD}}
            for _ in range(8):
                await publish(client, [heavy] * 100)

        async def stalled() -> dict[str, int]:
            closed: dict[str, int] = (await stream_stats(client))["closed"]
            return {k: v for k, v in closed.items() if k.endswith(":stalled")}

        reading = asyncio.create_task(fast_reader())
        stuck_sse: list[RawSSE] = []
        stuck_ws: socket.socket | None = None
        try:
            assert await wait_until(lambda: connections_are(client, sse=1, websocket=0), timeout=5)
            # Two SSE readers and one WebSocket that never read, with tiny receive windows; one
            # comes through a (trusted, local) proxy that names another client address.
            target = f"/v1/events/stream?source={bulk}"
            for headers in ({}, {"X-Forwarded-For": "203.0.113.9"}):
                stuck_sse.append(
                    await RawSSE.connect(
                        server.port, target, headers=headers, rcvbuf=4096, buffer_limit=1024
                    )
                )
            subscribe = {"op": "subscribe", "id": "b", "filter": {"source": bulk}}
            stuck_ws = await raw_websocket(server.port, [subscribe], rcvbuf=4096)
            assert await wait_until(lambda: connections_are(client, sse=3, websocket=1), timeout=5)
            await bulk_load(bulk)  # the stuck readers' buffers are full: they take nothing more

            # One event at a time, each acknowledged and seen by the fast reader before the
            # next is sent: a fan-out waiting on a stuck socket would hold it until the drop.
            acked: list[int] = []
            for _ in range(20):
                seq = await publish_one(client, {"type": "fast.tick", "source": fast})
                acked.append(seq)
                reached = functools.partial(has_all, arrivals, {seq: 0.0})
                assert await wait_until(reached, timeout=30, interval=0.01)
            # ... all of it while the stuck readers were still connected, never dropped yet.
            assert await stalled() == {}
            assert await connections_are(client, sse=3, websocket=1)
            assert list(arrivals) == acked

            async def dropped() -> bool:
                closed = (await stream_stats(client))["closed"]
                return bool(closed.get("sse:stalled") == 2 and closed.get("websocket:stalled") == 1)

            assert await wait_until(dropped, timeout=stall_s + 10), await stream_stats(client)
            assert await connections_are(client, sse=1, websocket=0)

            if HAS_PROC_NET:  # the server let go of the sockets, not waiting for a drain
                ports = [stuck.local_port for stuck in stuck_sse] + [stuck_ws.getsockname()[1]]

                async def released() -> bool:
                    states = [server_side_tcp_state(server.port, port) for port in ports]
                    return TCP_ESTABLISHED not in states

                assert await wait_until(released, timeout=3), [
                    server_side_tcp_state(server.port, port) for port in ports
                ]
            for stuck in stuck_sse:
                assert await stuck.read_to_end(timeout=10) in ("eof", "reset")
            assert await read_to_end(stuck_ws, timeout=10) in ("eof", "reset")

            # The fast reader still streams.
            seq = await publish_one(client, {"type": "fast.tick", "source": fast})
            assert await wait_until(lambda: has_all(arrivals, {seq: 0.0}), timeout=5)
        finally:
            reading.cancel()
            for stuck in stuck_sse:
                stuck.close()
            if stuck_ws is not None:
                stuck_ws.close()


async def connections_are(client: httpx.AsyncClient, *, sse: int, websocket: int) -> bool:
    connections: dict[str, Any] = (await stream_stats(client))["connections"]
    return connections == {"sse": sse, "websocket": websocket}


async def has_all(arrivals: dict[int, float], wanted: dict[int, float]) -> bool:
    return all(seq in arrivals for seq in wanted)
