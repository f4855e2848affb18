"""Live SSE writes: a committed group goes to each live subscriber's transport in one write per
loop turn; anything that is not live (unsent bytes, a cursor behind, a shutdown) is handed to
the connection's task, which sends through the ASGI ``send``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tidings.backplane import Announcement
from tidings.envelope import Candidate, Filter
from tidings.envelope.ids import new_trace_id, uuid7
from tidings.router.router import Router
from tidings.streams.framing import http_chunk, sse_event
from tidings.streams.registry import StreamRegistry
from tidings.streams.sse import SSEConnection
from tidings.testing import MemoryStore


class FakeTransport:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.unsent = 0  # what get_write_buffer_size answers
        self.aborted = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def get_write_buffer_size(self) -> int:
        return self.unsent

    def is_closing(self) -> bool:
        return self.aborted

    def get_extra_info(self, name: str) -> Any:
        return None

    def abort(self) -> None:
        self.aborted = True


class Hub:
    def __init__(self, store: MemoryStore, router: Router) -> None:
        self.store = store
        self.router = router
        self.registry = StreamRegistry()
        self.sent: dict[SSEConnection, list[dict[str, Any]]] = {}

    def connect(self, *, position: int | None = None, heartbeat_s: float = 3600) -> SSEConnection:
        messages: list[dict[str, Any]] = []

        async def send(message: dict[str, Any]) -> None:
            messages.append(message)

        conn = SSEConnection(
            send, self.store, self.router, self.registry, heartbeat_s=heartbeat_s, stall_s=5.0
        )
        transport = FakeTransport()
        self.registry.transport_of = lambda scope: transport  # type: ignore[assignment,return-value]
        self.registry.add(conn)
        conn.direct = conn.socket_transport
        conn.add_subscription("", "default", Filter(), position)
        conn.start_heartbeats()
        self.sent[conn] = messages
        return conn

    async def publish(self, count: int, type: str = "t.x") -> None:
        await self.store.append([candidate(type) for _ in range(count)])


def candidate(type: str) -> Candidate:
    return Candidate(uuid7(), type, "api", None, 0, new_trace_id(), None, "{}", "{}")


def transport_of(conn: SSEConnection) -> FakeTransport:
    transport = conn.direct
    assert isinstance(transport, FakeTransport)
    return transport


async def turns(count: int = 3) -> None:
    for _ in range(count):
        await asyncio.sleep(0)


@pytest.fixture
async def hub() -> AsyncIterator[Hub]:
    store = MemoryStore()
    await store.open()
    router = Router(store)
    store.add_commit_listener(lambda events: router.on_announcement(Announcement.of(events)))
    yield Hub(store, router)
    await store.close()


async def test_a_committed_group_reaches_each_live_subscriber_in_one_write(hub: Hub) -> None:
    conns = [hub.connect() for _ in range(3)]
    await turns()
    for conn in conns:
        transport_of(conn).writes.clear()
    await hub.publish(5)
    await turns()
    events = await hub.store.read_after("default", 0, 100, Filter())
    expected = http_chunk(b"".join(sse_event(e) for e in events))
    for conn in conns:
        assert transport_of(conn).writes == [expected]
        assert hub.sent[conn] == []  # nothing went through the ASGI send
        assert conn.delivered == 5


async def test_the_connected_frame_is_the_first_live_write(hub: Hub) -> None:
    conn = hub.connect()
    conn.push(b"event: connected\ndata: {}\n\n")
    await hub.publish(1)
    await turns()
    (write,) = transport_of(conn).writes
    assert write.index(b"event: connected") < write.index(b"event: event")


async def test_unsent_bytes_hand_the_stream_to_its_task_which_sends_through_asgi(
    hub: Hub,
) -> None:
    conn = hub.connect()
    await turns()
    transport = transport_of(conn)
    transport.unsent = 10
    await hub.publish(2)
    await turns(5)
    assert transport.writes == []
    bodies = [m["body"] for m in hub.sent[conn]]
    assert b"".join(bodies).count(b"event: event") == 2
    transport.unsent = 0  # drained: the task hands back and live writes resume
    await asyncio.sleep(0.1)
    await hub.publish(1)
    await turns()
    assert len(transport.writes) == 1
    assert conn.delivered == 3


async def test_a_subscription_behind_catches_up_from_the_store_then_goes_live(hub: Hub) -> None:
    await hub.publish(7)
    conn = hub.connect(position=2)
    await turns(8)
    caught_up = b"".join(m["body"] for m in hub.sent[conn])
    assert caught_up.count(b"event: event") == 5
    assert transport_of(conn).writes == []
    await hub.publish(1)
    await turns()
    (live,) = transport_of(conn).writes
    assert b"id: 8\n" in live
    assert conn.delivered == 6


async def test_an_idle_live_stream_gets_heartbeats_from_the_clock(hub: Hub) -> None:
    conn = hub.connect(heartbeat_s=0.04)
    await asyncio.sleep(0.2)
    beats = [w for w in transport_of(conn).writes if b"event: heartbeat" in w]
    assert 2 <= len(beats) <= 6
    conn.stop()


async def test_shutdown_sends_the_shutdown_frame_and_ends_the_response(hub: Hub) -> None:
    conn = hub.connect()
    await turns()
    conn.begin_shutdown(2500)
    await turns(8)
    messages = hub.sent[conn]
    assert b"event: shutdown" in messages[-2]["body"]
    assert b"retry: 2500" in messages[-2]["body"]
    assert messages[-1] == {"type": "http.response.body", "body": b"", "more_body": False}
    assert conn.finished
    assert conn.end_reason == "shutdown"


async def test_a_stopped_stream_is_written_no_more(hub: Hub) -> None:
    conn = hub.connect()
    await turns()
    transport_of(conn).writes.clear()
    conn.stop()
    conn.remove_all()
    await hub.publish(3)
    await turns()
    assert transport_of(conn).writes == []
