"""WebSocket streams against a real server process with the ``websockets`` client: several
subscriptions per socket, unsubscribe, ping, errors that keep the socket open, heartbeats and
no compression (DESIGN.md §4)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection

from tests.integration.server import ServerProcess, ServerStore
from tests.integration.streams_helpers import (
    head,
    publish,
    server_env,
    unique,
    ws_connect,
    ws_recv,
    ws_send,
    ws_until,
)


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, server_store: ServerStore
) -> Iterator[ServerProcess]:
    data_dir = tmp_path_factory.mktemp("ws") / "data"
    process = ServerProcess(data_dir, env=server_env(heartbeat_s=0.5), store=server_store).start()
    yield process
    process.stop()


@pytest.fixture
async def client(server: ServerProcess) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url, timeout=10.0) as http:
        yield http


@pytest.fixture
async def ws(server: ServerProcess) -> AsyncIterator[ClientConnection]:
    async with ws_connect(server) as connection:
        yield connection


def is_event(sub: str, seq: int) -> Any:
    return lambda m: m["op"] == "event" and m["sub"] == sub and m["event"]["seq"] == seq


def events_by_sub(messages: list[dict[str, Any]]) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for message in messages:
        if message["op"] == "event":
            out.setdefault(message["sub"], []).append(message["event"]["seq"])
    return out


async def subscribe(ws: ClientConnection, sub: str, **fields: Any) -> dict[str, Any]:
    """Subscribe and return the ``subscribed`` acknowledgement."""
    await ws_send(ws, {"op": "subscribe", "id": sub, **fields})
    ack = await ws_recv(ws)
    assert ack["op"] == "subscribed" and ack["id"] == sub, ack
    return ack


async def test_one_socket_carries_several_subscriptions_each_with_its_own_filter_and_start(
    client: httpx.AsyncClient, ws: ClientConnection
) -> None:
    p = unique("t")
    old = await publish(client, [{"type": f"{p}.b.old", "data": {"n": n}} for n in range(3)])
    now = await head(client)

    live = await subscribe(ws, "live", filter={"type": f"{p}.a.#,{p}.shared"})
    assert live["position"] == now
    assert live["filter"] == {"type": f"{p}.a.#,{p}.shared"}
    replay = await subscribe(
        ws, "replay", filter={"type": f"{p}.b.#,{p}.shared"}, last_event_id=old[0]
    )
    assert replay["position"] == old[0]

    new = await publish(
        client,
        [
            {"type": f"{p}.a.x"},
            {"type": f"{p}.b.y"},
            {"type": f"{p}.c.z"},
            {"type": f"{p}.a.x.deeper"},
            {"type": f"{p}.shared", "data": {"both": True}},
        ],
    )
    seen: set[str] = set()

    def both_have_the_last(message: dict[str, Any]) -> bool:
        if message["op"] == "event" and message["event"]["seq"] == new[-1]:
            seen.add(message["sub"])
        return seen == {"live", "replay"}

    messages = await ws_until(ws, both_have_the_last)
    assert {m["op"] for m in messages} == {"event"}
    assert events_by_sub(messages) == {
        "live": [new[0], new[3], new[4]],
        "replay": [old[1], old[2], new[1], new[4]],
    }
    shared = [m["event"] for m in messages if m["event"]["seq"] == new[4]]
    assert shared[0] == shared[1]
    stored = (await client.get(f"/v1/events/{shared[0]['id']}")).json()
    assert shared[0] == stored


async def test_unsubscribe_stops_that_subscription_and_keeps_the_others(
    client: httpx.AsyncClient, ws: ClientConnection
) -> None:
    p = unique("t")
    await subscribe(ws, "a", filter={"type": f"{p}.#"})
    await subscribe(ws, "b", filter={"type": f"{p}.#"})
    first = (await publish(client, [{"type": f"{p}.one"}]))[0]
    seen: set[str] = set()

    def both_got_it(message: dict[str, Any]) -> bool:
        if message["op"] == "event":
            seen.add(message["sub"])
        return seen == {"a", "b"}

    got = await ws_until(ws, both_got_it)
    assert events_by_sub(got) == {"a": [first], "b": [first]}

    await ws_send(ws, {"op": "unsubscribe", "id": "a"})
    assert await ws_recv(ws) == {"op": "unsubscribed", "id": "a"}
    second = await publish(client, [{"type": f"{p}.two"}, {"type": f"{p}.three"}])
    after = await ws_until(ws, is_event("b", second[-1]))
    assert events_by_sub(after) == {"b": second}

    await ws_send(ws, {"op": "unsubscribe", "id": "a"})
    error = await ws_recv(ws)
    assert error["op"] == "error" and error["id"] == "a"
    assert error["code"] == "unknown_subscription"


async def test_ping_is_answered_with_pong(ws: ClientConnection) -> None:
    await ws_send(ws, {"op": "ping", "id": "p-1"})
    pong = await ws_recv(ws)
    assert pong["op"] == "pong" and pong["id"] == "p-1"
    await ws_send(ws, {"op": "ping"})
    assert (await ws_recv(ws))["op"] == "pong"


BAD_MESSAGES: dict[str, tuple[list[str | dict[str, Any] | bytes], str, Any]] = {
    # name: (messages sent (the last one is the bad one), error code, error id)
    "malformed JSON": (["{not json"], "malformed_json", None),
    "not an object": (["[1, 2]"], "invalid_message", None),
    "binary frame": ([b'{"op":"ping"}'], "invalid_message", None),
    "unknown op": ([{"op": "dance", "id": "x"}], "unknown_op", "x"),
    "missing op": ([{"id": "x"}], "unknown_op", "x"),
    "duplicate id": (
        [
            {"op": "subscribe", "id": "dup", "filter": {"source": "nobody"}},
            {"op": "subscribe", "id": "dup", "filter": {"source": "nobody"}},
        ],
        "duplicate_subscription",
        "dup",
    ),
    "unknown filter field": (
        [{"op": "subscribe", "id": "f", "filter": {"colour": "red"}}],
        "invalid_filter",
        "f",
    ),
    "bad type pattern": (
        [{"op": "subscribe", "id": "f", "filter": {"type": "a.#.b"}}],
        "invalid_filter",
        "f",
    ),
    "filter not an object": (
        [{"op": "subscribe", "id": "f", "filter": "type=a"}],
        "invalid_filter",
        "f",
    ),
    "bad last_event_id": (
        [{"op": "subscribe", "id": "f", "last_event_id": "abc"}],
        "invalid_resume_point",
        "f",
    ),
    "bad since": (
        [{"op": "subscribe", "id": "f", "since": "last tuesday"}],
        "invalid_resume_point",
        "f",
    ),
    "subscription id not a string": ([{"op": "subscribe", "id": 7}], "invalid_subscription_id", 7),
    "unknown field": (
        [{"op": "subscribe", "id": "f", "last_event": 3}],
        "invalid_message",
        "f",
    ),
}


@pytest.mark.parametrize("case", list(BAD_MESSAGES))
async def test_bad_message_answers_an_error_and_the_socket_stays_open(
    client: httpx.AsyncClient, ws: ClientConnection, case: str
) -> None:
    sent, code, error_id = BAD_MESSAGES[case]
    for message in sent:
        if isinstance(message, bytes):
            await ws.send(message)
        else:
            await ws_send(ws, message)
    replies = await ws_until(ws, lambda m: m["op"] == "error")
    assert [m["op"] for m in replies[:-1]] == ["subscribed"] * (len(sent) - 1)
    error = replies[-1]
    assert error["code"] == code
    assert error["id"] == error_id
    assert isinstance(error["message"], str) and error["message"]

    # Still open and working: the refused id is free, and events flow.
    p = unique("t")
    await subscribe(ws, "f", filter={"type": f"{p}.#"})
    seq = (await publish(client, [{"type": f"{p}.after"}]))[0]
    got = await ws_until(ws, is_event("f", seq))
    assert events_by_sub(got) == {"f": [seq]}


async def test_idle_socket_heartbeats_carry_the_head_position(
    client: httpx.AsyncClient, ws: ClientConnection
) -> None:
    quiet = unique("quiet")
    ack = await subscribe(ws, "q", filter={"source": quiet})
    beat = (await ws_until(ws, lambda m: m["op"] == "heartbeat", timeout=3.0, heartbeats=True))[-1]
    assert beat["position"] == ack["position"]
    assert beat["positions"] == {"q": ack["position"]}

    noise = await publish(client, [{"type": "noise.made", "source": "other"}] * 4)
    fresh = await ws_until(
        ws,
        lambda m: m["op"] == "heartbeat" and m["position"] == noise[-1],
        timeout=3.0,
        heartbeats=True,
    )
    assert {m["op"] for m in fresh} == {"heartbeat"}
    assert fresh[-1]["positions"] == {"q": noise[-1]}
    assert fresh[-1]["head"] == noise[-1]


async def test_subscription_resumes_after_last_event_id_which_beats_since(
    client: httpx.AsyncClient, ws: ClientConnection
) -> None:
    source = unique("resume")
    seqs = await publish(client, [{"type": "r.x", "source": source}] * 4)
    newest = (await client.get("/v1/events", params={"source": source, "limit": 1})).json()
    since = newest["events"][0]["received_at"]

    ack = await subscribe(ws, "r", filter={"source": source}, last_event_id=seqs[1], since=since)
    assert ack["position"] == seqs[1]
    got = await ws_until(ws, is_event("r", seqs[-1]))
    assert events_by_sub(got) == {"r": seqs[2:]}

    await ws_send(ws, {"op": "unsubscribe", "id": "r"})
    assert (await ws_recv(ws))["op"] == "unsubscribed"
    ack = await subscribe(ws, "r", filter={"source": source}, since="2000-01-01T00:00:00Z")
    got = await ws_until(ws, is_event("r", seqs[-1]))
    assert events_by_sub(got) == {"r": seqs}


async def test_permessage_deflate_is_not_negotiated_even_when_the_client_offers_it(
    server: ServerProcess,
) -> None:
    async with ws_connect(server, compression="deflate") as ws:
        assert ws.request is not None and ws.response is not None
        assert "permessage-deflate" in ws.request.headers.get("Sec-WebSocket-Extensions", "")
        extensions = ws.response.headers.get_all("Sec-WebSocket-Extensions")
        assert not any("permessage-deflate" in value for value in extensions)
        await ws_send(ws, {"op": "ping"})
        assert (await ws_recv(ws))["op"] == "pong"


async def test_resubscribing_an_id_during_its_catch_up_never_delivers_the_old_subscription(
    client: httpx.AsyncClient, ws: ClientConnection
) -> None:
    old_source, new_source = unique("old"), unique("new")
    pad = "x" * 500
    for _ in range(2):  # more than one catch-up page
        await publish(client, [{"type": "c.x", "source": old_source, "data": {"pad": pad}}] * 600)
    wanted = await publish(client, [{"type": "c.x", "source": new_source}] * 3)

    for round_ in range(3):
        sub = f"s{round_}"
        # Subscribe far back; once acknowledged its catch-up read is running: replace it at
        # once under the same id.
        await subscribe(ws, sub, filter={"source": old_source}, last_event_id=0)
        await ws_send(ws, {"op": "unsubscribe", "id": sub})
        await ws_send(
            ws, {"op": "subscribe", "id": sub, "filter": {"source": new_source}, "last_event_id": 0}
        )
        messages = await ws_until(ws, is_event(sub, wanted[-1]), timeout=20)
        ops = [m["op"] for m in messages]
        gone = ops.index("unsubscribed")
        assert "subscribed" in ops[gone:]
        after = [m for m in messages[gone:] if m["op"] == "event"]
        assert [m["event"]["seq"] for m in after] == wanted, f"round {round_}"
        assert all(m["sub"] == sub for m in messages if m["op"] == "event")
