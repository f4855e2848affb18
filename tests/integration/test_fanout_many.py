"""Fan-out at scale: hundreds of SSE connections on one server each get a burst, complete and
in order. The bulk clients are bare asyncio connections, to keep the client's CPU low."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import httpx

from tests.integration.server import ServerProcess
from tests.integration.streams_helpers import (
    RawSSE,
    event_ids,
    publish,
    stream_stats,
    unique,
    wait_until,
)

CONNECTIONS = 500
BURST = 200


async def test_every_one_of_500_sse_streams_receives_a_burst_complete_and_in_order(
    start_server: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    server = start_server(data_dir=tmp_path / "fanout")
    source = unique("fan")
    target = f"/v1/events/stream?source={source}"
    streams: list[RawSSE] = []
    async with httpx.AsyncClient(base_url=server.url, timeout=30.0) as client:
        try:
            for _ in range(CONNECTIONS // 50):  # in waves, not one thundering herd
                streams += await asyncio.gather(
                    *(RawSSE.connect(server.port, target) for _ in range(50))
                )
            assert [s.status for s in streams] == [200] * CONNECTIONS
            hellos = await asyncio.gather(
                *(s.collect(lambda frames: len(frames) >= 1, timeout=30) for s in streams)
            )
            assert {frames[0].event for frames in hellos} == {"connected"}

            async def all_open() -> bool:
                streams_now = await stream_stats(client)
                return bool(streams_now["connections"]["sse"] == CONNECTIONS)

            assert await wait_until(all_open, timeout=10), await stream_stats(client)

            burst = [
                {"type": "fan.burst", "source": source, "data": {"i": i}} for i in range(BURST)
            ]
            seqs = await publish(client, burst)

            last = str(seqs[-1])

            async def read_burst(stream: RawSSE) -> list[int]:
                frames = await stream.collect(
                    lambda got: any(f.id == last for f in got[-3:]), timeout=60
                )
                return event_ids(frames)

            received = await asyncio.gather(*(read_burst(s) for s in streams))
            incomplete = [i for i, ids in enumerate(received) if ids != seqs]
            assert not incomplete, f"{len(incomplete)} streams differ, e.g. #{incomplete[0]}"
            delivered = (await stream_stats(client))["events_delivered"]["sse"]
            assert delivered >= CONNECTIONS * BURST
        finally:
            for stream in streams:
                stream.close()
