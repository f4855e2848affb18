"""SIGTERM while clients stream: every stream gets what was acknowledged, then its ``shutdown``
with a jittered retry, and the process exits 0 within ``TIDINGS_SHUTDOWN_TIMEOUT_S``
(DESIGN.md §2 "Own the shutdown", §4)."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
from httpx_sse import aconnect_sse
from websockets.exceptions import ConnectionClosed

from tests.integration.server import ServerProcess
from tests.integration.streams_helpers import (
    RawSSE,
    publish,
    server_env,
    stream_stats,
    unique,
    wait_until,
    ws_connect,
    ws_send,
)

CLIENTS = 3  # of each transport


class Stream:
    """What one client saw: events (seq), the shutdown notice and how the stream ended."""

    def __init__(self) -> None:
        self.events: list[int] = []
        self.last_id: int | None = None  # the resume point (events and heartbeats)
        self.shutdown: dict[str, Any] | None = None
        self.retry: int | None = None  # SSE `retry:` line
        self.after_shutdown: list[str] = []  # anything that came after the shutdown notice
        self.close_code: int | None = None  # WebSocket
        self.connected = asyncio.Event()  # the stream started


async def follow_sse(
    client: httpx.AsyncClient, source: str, seen: Stream, headers: dict[str, str] | None = None
) -> None:
    params = {"source": source}
    async with aconnect_sse(
        client, "GET", "/v1/events/stream", params=params, headers=headers or {}
    ) as es:
        async for frame in es.aiter_sse():
            seen.connected.set()
            if seen.shutdown is not None:
                seen.after_shutdown.append(frame.event)
            elif frame.event == "event":
                seen.events.append(int(frame.id))
            elif frame.event == "shutdown":
                seen.shutdown = frame.json()
                seen.retry = frame.retry
            if frame.id:
                seen.last_id = int(frame.id)


async def follow_ws(server: ServerProcess, source: str, seen: Stream) -> None:
    async with ws_connect(server) as ws:
        await ws_send(ws, {"op": "subscribe", "id": "s", "filter": {"source": source}})
        try:
            while True:
                message = orjson.loads(await ws.recv())
                if seen.shutdown is not None:
                    seen.after_shutdown.append(message["op"])
                elif message["op"] == "event":
                    seen.events.append(message["event"]["seq"])
                    seen.last_id = message["event"]["seq"]
                elif message["op"] == "shutdown":
                    seen.shutdown = message
                elif message["op"] == "heartbeat" and message["position"] is not None:
                    seen.last_id = message["position"]
        except ConnectionClosed as closed:
            seen.close_code = closed.rcvd.code if closed.rcvd is not None else None


async def test_sigterm_ends_each_stream_with_shutdown_after_every_acknowledged_event(
    start_server: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    timeout_s = 10.0
    env = server_env(shutdown_timeout_s=timeout_s, heartbeat_s=0.5)
    server = start_server(env=env, data_dir=tmp_path / "data")
    source = unique("sd")
    sse = [Stream() for _ in range(CLIENTS)]
    ws = [Stream() for _ in range(CLIENTS)]
    acked: list[tuple[int, float]] = []  # (seq, when the acknowledgement arrived)
    signalled = 0.0

    async def publisher(client: httpx.AsyncClient, size: int) -> None:
        """Publish batches of ``size`` until refused; big ones keep commits in flight."""
        while True:
            batch = [{"type": "sd.tick", "source": source, "data": {"pad": "x" * 200}}] * size
            try:
                seqs = await publish(client, batch)
            except (httpx.HTTPError, AssertionError):
                return  # refused or cut off: the server is going
            now = time.monotonic()
            acked.extend((seq, now) for seq in seqs)
            await asyncio.sleep(0.005)

    async with (
        httpx.AsyncClient(base_url=server.url, timeout=20.0) as readers,
        httpx.AsyncClient(base_url=server.url, timeout=5.0) as writers,
    ):
        followers = [asyncio.create_task(follow_sse(readers, source, s)) for s in sse]
        followers += [asyncio.create_task(follow_ws(server, source, s)) for s in ws]

        async def all_connected() -> bool:
            streams = await stream_stats(writers)
            opened = streams["connections"] == {"sse": CLIENTS, "websocket": CLIENTS}
            return bool(opened and streams["subscriptions"] == 2 * CLIENTS)

        assert await wait_until(all_connected, timeout=10)
        publishing = asyncio.gather(publisher(writers, 3), publisher(writers, 1000))
        await asyncio.sleep(1.0)
        assert acked, "nothing was published before the signal"
        # One more joins from the very start: it is still catching up when the signal comes.
        late = Stream()
        sse.append(late)
        followers.append(
            asyncio.create_task(follow_sse(readers, source, late, {"Last-Event-ID": "0"}))
        )
        await asyncio.wait_for(late.connected.wait(), 10)

        assert server.proc is not None
        signalled = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(server.proc.wait, 30)
        took = time.monotonic() - signalled
        async with asyncio.timeout(10):
            await asyncio.gather(*followers)
            await publishing

    assert code == 0, server.log()
    assert took < timeout_s / 2, f"exit took {took:.1f}s"

    before = {seq for seq, at in acked if at < signalled}
    retries = []
    for seen in sse + ws:
        assert seen.shutdown is not None, "no shutdown notice"
        assert seen.after_shutdown == [], "frames after the shutdown notice"
        assert before <= set(seen.events), "an event acknowledged before the signal is missing"
        retries.append(seen.shutdown["retry_ms"])
    for seen in sse:
        assert seen.shutdown is not None and seen.shutdown["code"] == "shutdown"
        assert seen.retry is not None and seen.retry == seen.shutdown["retry_ms"]
    for seen in ws:
        assert seen.shutdown is not None and seen.shutdown["op"] == "shutdown"
        assert set(seen.shutdown) == {"op", "retry_ms"}
        assert seen.close_code == 1012
    assert all(1000 <= retry <= 60_000 for retry in retries), retries
    assert len(set(retries)) > 1, f"no jitter: {retries}"

    # After a restart the log holds every acknowledged event, each stream got a gapless prefix
    # of it, and resuming from where each stream was brings exactly the rest.
    server.start()
    async with httpx.AsyncClient(base_url=server.url, timeout=10.0) as client:
        stored = await stored_seqs(client, source)
        assert {seq for seq, _ in acked} <= set(stored)
        for seen in sse + ws:
            assert seen.events == stored[: len(seen.events)], "a gap, a repeat or disorder"
            resumed: list[int] = []
            start = seen.last_id or 0
            if start < stored[-1]:
                async with (
                    aconnect_sse(
                        client,
                        "GET",
                        "/v1/events/stream",
                        params={"source": source},
                        headers={"Last-Event-ID": str(start)},
                    ) as es,
                    asyncio.timeout(10),
                ):
                    async for frame in es.aiter_sse():
                        if frame.event == "event":
                            resumed.append(int(frame.id))
                            if resumed[-1] == stored[-1]:
                                break
            assert seen.events + resumed == stored


async def stored_seqs(client: httpx.AsyncClient, source: str) -> list[int]:
    """Every stored position of ``source``, oldest first (paging the history)."""
    seqs: list[int] = []
    params: dict[str, Any] = {"source": source, "order": "asc", "limit": 1000}
    for _ in range(1000):
        page = (await client.get("/v1/events", params=params)).json()
        seqs += [event["seq"] for event in page["events"]]
        if page["next"] is None:
            return seqs
        params = {**params, "cursor": page["next"]}
    raise AssertionError("history paging did not end")


async def test_a_stream_stuck_on_a_full_socket_does_not_hold_up_the_exit(
    start_server: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    timeout_s = 4.0
    env = server_env(shutdown_timeout_s=timeout_s, stream_stall_s=60)
    server = start_server(env=env, data_dir=tmp_path / "data")
    source = unique("stuck")
    async with httpx.AsyncClient(base_url=server.url, timeout=10.0) as client:
        stuck = await RawSSE.connect(
            server.port, f"/v1/events/stream?source={source}", rcvbuf=4096, buffer_limit=1024
        )
        try:
            heavy = {"type": "bulk.item", "source": source, "data": {"pad": "x" * 5000}}
            for _ in range(8):  # far more than the socket buffers hold
                await publish(client, [heavy] * 100)
            await asyncio.sleep(0.5)
            assert (await stream_stats(client))["connections"]["sse"] == 1

            assert server.proc is not None
            signalled = time.monotonic()
            server.proc.send_signal(signal.SIGTERM)
            code = await asyncio.to_thread(server.proc.wait, 30)
            took = time.monotonic() - signalled
        finally:
            stuck.close()
    assert code == 0, server.log()
    assert took < timeout_s, f"exit took {took:.1f}s"
