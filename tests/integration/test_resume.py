"""Resuming streams against a real server process: reconnects while a publisher keeps writing
end with exactly the published sequence; a resume from far back catches up and goes live; a
sparse filter's heartbeats keep its resume point fresh; a resume from before a purge is told
``history_truncated`` before the replay (DESIGN.md §2 "A subscription is a cursor", §3, §4)."""

from __future__ import annotations

import asyncio
import random
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from httpx_sse import aconnect_sse
from websockets.asyncio.client import ClientConnection

from tests.integration.server import ServerProcess, ServerStore
from tests.integration.streams_helpers import (
    head,
    publish,
    server_env,
    stream_stats,
    unique,
    ws_connect,
    ws_recv,
    ws_send,
    ws_until,
)

STREAM = "/v1/events/stream"
ROUNDS = 30


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, server_store: ServerStore
) -> Iterator[ServerProcess]:
    data_dir = tmp_path_factory.mktemp("resume") / "data"
    process = ServerProcess(data_dir, env=server_env(heartbeat_s=0.2), store=server_store).start()
    yield process
    process.stop()


@pytest.fixture
async def client(server: ServerProcess) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url, timeout=30.0) as http:
        yield http


class Publisher:
    """Publishes small batches of one source until stopped; remembers every acknowledged seq."""

    def __init__(self, client: httpx.AsyncClient, source: str, rng: random.Random) -> None:
        self.client = client
        self.source = source
        self.rng = rng
        self.acknowledged: list[int] = []
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Publisher:
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            await self._task
            self._task = None

    async def _run(self) -> None:
        while not self._stop.is_set() and len(self.acknowledged) < 20_000:
            size = self.rng.randint(1, 6)
            batch = [
                {
                    "type": "chaos.tick",
                    "source": self.source,
                    "data": {"n": len(self.acknowledged) + i},
                }
                for i in range(size)
            ]
            self.acknowledged += await publish(self.client, batch)
            await asyncio.sleep(self.rng.uniform(0, 0.01))


async def test_sse_reconnects_with_last_event_id_end_with_exactly_the_published_sequence(
    client: httpx.AsyncClient,
) -> None:
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    source = unique("chaos")
    last = await head(client)
    received: list[int] = []
    async with Publisher(client, source, rng) as publisher:
        for _ in range(ROUNDS):
            wanted = rng.randint(1, 40)
            headers = {"Last-Event-ID": str(last)}
            params = {"source": source}
            async with aconnect_sse(client, "GET", STREAM, params=params, headers=headers) as es:
                frames = es.aiter_sse()
                hello = await anext(frames)
                assert hello.event == "connected" and hello.json()["position"] == last
                taken = 0
                async with asyncio.timeout(10):
                    async for frame in frames:
                        if frame.id:  # events and heartbeats alike move the resume point
                            last = int(frame.id)
                        if frame.event == "event":
                            received.append(last)
                            taken += 1
                            if taken >= wanted:
                                break
            # Leaving the block drops the connection, whatever the server had sent meanwhile.
            await asyncio.sleep(rng.uniform(0, 0.05))
    final = publisher.acknowledged[-1]
    headers = {"Last-Event-ID": str(last)}
    async with (
        aconnect_sse(client, "GET", STREAM, params={"source": source}, headers=headers) as es,
        asyncio.timeout(20),
    ):
        async for frame in es.aiter_sse():
            if frame.event == "event":
                received.append(int(frame.id))
                if int(frame.id) == final:
                    break
    assert received == publisher.acknowledged, f"seed {seed}"
    assert len(received) > ROUNDS


async def test_websocket_resubscribes_with_last_event_id_end_with_exactly_the_published_sequence(
    client: httpx.AsyncClient, server: ServerProcess
) -> None:
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    source = unique("chaos")
    last = await head(client)
    received: list[int] = []

    def take(message: dict[str, Any]) -> None:
        """Events and heartbeats alike move the resume point."""
        nonlocal last
        if message["op"] == "heartbeat" and message["positions"]["s"] is not None:
            last = message["positions"]["s"]
        elif message["op"] == "event":
            assert message["sub"] == "s", message
            last = message["event"]["seq"]
            received.append(last)

    async def read_until(ws: ClientConnection, done: Callable[[], bool]) -> None:
        await ws_send(
            ws, {"op": "subscribe", "id": "s", "filter": {"source": source}, "last_event_id": last}
        )
        ack = await ws_recv(ws)
        assert ack == {
            "op": "subscribed",
            "id": "s",
            "position": last,
            "filter": {"source": source},
        }, f"seed {seed}"
        async with asyncio.timeout(20):
            while not done():
                take(await ws_recv(ws, heartbeats=True))

    async with Publisher(client, source, rng) as publisher:
        rounds = 0
        while rounds < ROUNDS:
            async with ws_connect(server) as ws:
                # Several subscriptions in turn on one socket, then the socket goes.
                for turn in range(rng.randint(1, 3)):
                    if turn:
                        await ws_send(ws, {"op": "unsubscribe", "id": "s"})
                        async with asyncio.timeout(10):
                            while (message := await ws_recv(ws))["op"] != "unsubscribed":
                                take(message)
                    goal = len(received) + rng.randint(1, 40)
                    await read_until(ws, lambda goal=goal: len(received) >= goal)  # type: ignore[misc]
                    rounds += 1
                if rng.random() < 0.5:
                    ws.transport.abort()  # no close handshake
            await asyncio.sleep(rng.uniform(0, 0.05))
    final = publisher.acknowledged[-1]
    async with ws_connect(server) as ws:
        await read_until(ws, lambda: last >= final)
    assert received == publisher.acknowledged, f"seed {seed}"


async def test_resume_from_100_000_events_back_catches_up_on_one_connection_then_goes_live(
    client: httpx.AsyncClient,
) -> None:
    source = unique("deep")
    batch = orjson.dumps(
        [{"type": "deep.item", "source": source, "data": {"i": i}} for i in range(1000)]
    )

    async def publish_batch() -> list[int]:
        answer = await client.post(
            "/v1/events", content=batch, headers={"content-type": "application/json"}
        )
        assert answer.status_code == 201, answer.text
        return [item["seq"] for item in answer.json()["events"]]

    stored: list[int] = []
    for _ in range(25):
        for seqs in await asyncio.gather(*(publish_batch() for _ in range(4))):
            stored += seqs
    stored.sort()
    assert len(stored) == 100_000

    headers = {"Last-Event-ID": str(stored[0] - 1)}
    received: list[int] = []
    live: list[int] = []
    async with aconnect_sse(
        client, "GET", STREAM, params={"source": source}, headers=headers
    ) as es:
        frames = es.aiter_sse()
        assert (await anext(frames)).event == "connected"
        async with asyncio.timeout(60):
            async for frame in frames:
                if frame.event == "event":
                    received.append(int(frame.id))
                    if len(received) == len(stored):
                        break
            assert received == stored
            streams = await stream_stats(client)
            assert streams["connections"]["sse"] >= 1
            assert not any(key.endswith(":stalled") for key in streams["closed"])

            live = await publish(client, [{"type": "deep.live", "source": source}] * 10)
            async for frame in frames:
                if frame.event == "event":
                    received.append(int(frame.id))
                    if int(frame.id) == live[-1]:
                        break
    assert received[len(stored) :] == live


# -- retention -----------------------------------------------------------------------------


async def purge_everything(server: ServerProcess) -> None:
    """``tidings purge --older-than-days 0`` while the server runs."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tidings",
        "purge",
        *server.store_options(),
        "--older-than-days",
        "0",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, output.decode()
    assert output.startswith(b"deleted "), output.decode()


async def sse_frames_until(
    client: httpx.AsyncClient,
    params: dict[str, str],
    last_event_id: int,
    done: Callable[[list[Any]], bool],
) -> list[Any]:
    frames: list[Any] = []
    headers = {"Last-Event-ID": str(last_event_id)}
    async with (
        aconnect_sse(client, "GET", STREAM, params=params, headers=headers) as es,
        asyncio.timeout(10),
    ):
        async for frame in es.aiter_sse():
            if frame.event != "heartbeat":
                frames.append(frame)
            if done(frames):
                break
    return frames


async def test_sparse_filter_heartbeats_keep_the_resume_point_fresh_across_a_purge(
    start_server: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    server = start_server(env=server_env(heartbeat_s=0.2), data_dir=tmp_path / "sparse")
    rare = unique("rare")
    async with httpx.AsyncClient(base_url=server.url, timeout=30.0) as client:
        params = {"type": f"{rare}.#"}
        last = await head(client)
        matched: list[int] = []
        async with aconnect_sse(
            client, "GET", STREAM, params=params, headers={"Last-Event-ID": str(last)}
        ) as es:
            frames = es.aiter_sse()
            assert (await anext(frames)).event == "connected"
            for _ in range(3):  # one match in a thousand
                batch = [{"type": "noise.tick", "data": {"i": i}} for i in range(1000)]
                batch[random.randrange(1000)] = {"type": f"{rare}.seen"}
                seqs = await publish(client, batch)
                matched.append(
                    next(s for s, e in zip(seqs, batch, strict=True) if e["type"] != "noise.tick")
                )
            final = seqs[-1]
            events: list[int] = []
            async with asyncio.timeout(10):
                async for frame in frames:
                    if frame.id:
                        last = int(frame.id)
                    if frame.event == "event":
                        events.append(last)
                    if frame.event == "heartbeat" and last == final:
                        break
        assert events == matched
        assert last == final, "a heartbeat carried the head, far past the last match"

        await purge_everything(server)
        after = await publish(client, [{"type": "noise.tick"}, {"type": f"{rare}.after"}])

        fresh = await sse_frames_until(
            client, params, last, lambda fs: any(f.id == str(after[1]) for f in fs)
        )
        assert [f.event for f in fresh] == ["connected", "event"]
        assert fresh[0].json()["position"] == final

        # From the last *matching* event instead, the purged noise is a hole in the history.
        stale = await sse_frames_until(
            client, params, matched[-1], lambda fs: any(f.id == str(after[1]) for f in fs)
        )
        assert [f.event for f in stale] == ["connected", "system", "event"]
        assert stale[1].json()["code"] == "history_truncated"


async def test_resume_from_before_a_purge_is_told_history_truncated_before_the_replay(
    start_server: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    server = start_server(data_dir=tmp_path / "retained")
    source = unique("kept")
    async with httpx.AsyncClient(base_url=server.url, timeout=30.0) as client:
        gone = await publish(client, [{"type": "r.old", "source": source}] * 20)
        await purge_everything(server)
        kept = await publish(client, [{"type": "r.new", "source": source}] * 5)
        assert (await client.get("/v1/stats")).json()["store"]["earliest_seq"] == kept[0]

        frames = await sse_frames_until(
            client, {"source": source}, gone[0] - 1, lambda fs: len(fs) == 2 + len(kept)
        )
        assert [f.event for f in frames] == ["connected", "system"] + ["event"] * len(kept)
        notice = frames[1].json()
        assert notice["code"] == "history_truncated"
        assert notice["earliest"] == kept[0]
        assert notice["message"]
        assert [int(f.id) for f in frames[2:]] == kept

        async with ws_connect(server) as ws:
            await ws_send(
                ws,
                {
                    "op": "subscribe",
                    "id": "old",
                    "filter": {"source": source},
                    "last_event_id": gone[5],
                },
            )
            messages = await ws_until(
                ws, lambda m: m["op"] == "event" and m["event"]["seq"] == kept[-1]
            )
        assert [m["op"] for m in messages] == ["subscribed", "system"] + ["event"] * len(kept)
        assert messages[1]["code"] == "history_truncated"
        assert messages[1]["sub"] == "old"
        assert messages[1]["earliest"] == kept[0]
        assert [m["event"]["seq"] for m in messages[2:]] == kept

        # A resume point at or after the purge is not truncated.
        frames = await sse_frames_until(
            client, {"source": source}, gone[-1], lambda fs: len(fs) == 1 + len(kept)
        )
        assert [f.event for f in frames] == ["connected"] + ["event"] * len(kept)
