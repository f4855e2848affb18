"""SSE against a real server process with a real client (httpx-sse): the ``connected`` hello,
event frames, filters, heartbeats, refused input and where a stream resumes (DESIGN.md §4)."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import orjson
import pytest
from httpx_sse import ServerSentEvent, aconnect_sse

from tests.integration.server import ServerProcess, ServerStore
from tests.integration.streams_helpers import (
    publish,
    server_env,
    stream_stats,
    unique,
    wait_until,
    ws_connect,
    ws_recv,
    ws_send,
)

STREAM = "/v1/events/stream"


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, server_store: ServerStore
) -> Iterator[ServerProcess]:
    data_dir = tmp_path_factory.mktemp("sse") / "data"
    process = ServerProcess(data_dir, env=server_env(heartbeat_s=0.5), store=server_store).start()
    yield process
    process.stop()


@pytest.fixture
async def client(server: ServerProcess) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url, timeout=10.0) as http:
        yield http


async def take_until(
    frames: AsyncIterator[ServerSentEvent],
    done: Callable[[ServerSentEvent], bool],
    timeout: float = 10.0,
) -> list[ServerSentEvent]:
    """Frames up to and including the first for which ``done`` is true."""
    taken: list[ServerSentEvent] = []
    async with asyncio.timeout(timeout):
        async for frame in frames:
            taken.append(frame)
            if done(frame):
                return taken
    raise AssertionError(f"the stream ended before the expected frame; got {taken}")


def is_event(seq: int) -> Callable[[ServerSentEvent], bool]:
    return lambda frame: frame.event == "event" and frame.id == str(seq)


def events_of(frames: list[ServerSentEvent]) -> list[int]:
    return [int(frame.id) for frame in frames if frame.event == "event"]


def assert_error(answer: httpx.Response, code: str) -> dict[str, Any]:
    assert answer.status_code == 400, answer.text
    assert answer.headers["content-type"].startswith("application/json")
    error: dict[str, Any] = answer.json()["error"]
    assert error["code"] == code
    assert error["message"]
    return error


async def test_stream_opens_with_connected_then_sends_each_event_with_its_seq_as_id(
    client: httpx.AsyncClient,
) -> None:
    source = unique("hello")
    before = (await client.get("/v1/stats")).json()["store"]["head_seq"]
    async with aconnect_sse(client, "GET", STREAM, params={"source": source}) as stream:
        assert stream.response.headers["content-type"].startswith("text/event-stream")
        frames = stream.aiter_sse()
        hello = await anext(frames)
        assert hello.event == "connected"
        greeting = hello.json()
        assert isinstance(greeting["connection_id"], str) and greeting["connection_id"]
        assert greeting["filter"] == {"source": source}
        assert greeting["position"] == before

        seqs = await publish(
            client, [{"type": "door.opened", "source": source, "data": {"n": n}} for n in range(3)]
        )
        got = await take_until(frames, is_event(seqs[-1]))

    assert {frame.event for frame in got} <= {"event", "heartbeat"}
    assert events_of(got) == seqs
    for frame in got:
        stored = await client.get(f"/v1/events/{frame.json()['id']}")
        assert frame.json() == stored.json()
        assert frame.json()["seq"] == int(frame.id)


FILTER_CASES: dict[str, tuple[dict[str, str], list[dict[str, Any]], list[int]]] = {
    # name: (filter, events published in order, indexes of the events that match)
    "type patterns": (
        {"type": "{p}.*.created,{p}.audit.#"},
        [
            {"type": "{p}.user.created"},
            {"type": "{p}.user.deleted"},
            {"type": "{p}.user.profile.created"},
            {"type": "{p}.audit"},
            {"type": "{p}.audit.login.failed"},
            {"type": "{p}.order.created"},
        ],
        [0, 3, 4, 5],
    ),
    "source": (
        {"type": "{p}.#", "source": "billing,crm"},
        [
            {"type": "{p}.a", "source": "billing"},
            {"type": "{p}.a", "source": "web"},
            {"type": "{p}.a"},
            {"type": "{p}.a", "source": "crm"},
        ],
        [0, 3],
    ),
    "exclude_source suppresses the subscriber's own echo": (
        {"type": "{p}.#", "exclude_source": "me"},
        [
            {"type": "{p}.a", "source": "me"},
            {"type": "{p}.a", "source": "them"},
            {"type": "{p}.a", "source": "me"},
            {"type": "{p}.a"},
        ],
        [1, 3],
    ),
    "subject": (
        {"type": "{p}.#", "subject": "device-1,device-2"},
        [
            {"type": "{p}.a", "subject": "device-2"},
            {"type": "{p}.a", "subject": "device-3"},
            {"type": "{p}.a"},
            {"type": "{p}.a", "subject": "device-1"},
        ],
        [0, 3],
    ),
    "data path equality": (
        {"type": "{p}.#", "data.category": "access,security", "data.reading.level": "5"},
        [
            {"type": "{p}.a", "data": {"category": "access", "reading": {"level": 5}}},
            {"type": "{p}.a", "data": {"category": "billing", "reading": {"level": 5}}},
            {"type": "{p}.a", "data": {"category": "security", "reading": {"level": 6}}},
            {"type": "{p}.a", "data": {"category": "access"}},
            {"type": "{p}.a", "data": {"category": "security", "reading": {"level": "5"}}},
        ],
        [0, 4],
    ),
}


@pytest.mark.parametrize("case", list(FILTER_CASES))
async def test_filter_delivers_exactly_the_matching_events(
    client: httpx.AsyncClient, case: str
) -> None:
    raw_filter, raw_events, matching = FILTER_CASES[case]
    prefix = unique("t")
    params = {key: value.replace("{p}", prefix) for key, value in raw_filter.items()}
    events = [orjson.loads(orjson.dumps(e).decode().replace("{p}", prefix)) for e in raw_events]
    assert matching[-1] == len(events) - 1, "the last event must match: it ends the read"

    async with aconnect_sse(client, "GET", STREAM, params=params) as stream:
        frames = stream.aiter_sse()
        hello = await anext(frames)
        assert hello.json()["filter"] == params
        seqs = await publish(client, events)
        got = await take_until(frames, is_event(seqs[-1]))

    assert events_of(got) == [seqs[i] for i in matching]


async def test_idle_stream_heartbeats_carry_the_head_position(client: httpx.AsyncClient) -> None:
    quiet = unique("quiet")
    async with aconnect_sse(client, "GET", STREAM, params={"source": quiet}) as stream:
        frames = stream.aiter_sse()
        start = (await anext(frames)).json()["position"]
        first = await take_until(frames, lambda f: f.event == "heartbeat", timeout=3.0)
        assert first[-1].id == str(start)
        assert first[-1].json() == {"position": start, "head": start}

        # Events this filter never matches still move its resume point to the head.
        noise = await publish(client, [{"type": "noise.made", "source": "other"}] * 5)
        fresh = await take_until(
            frames, lambda f: f.event == "heartbeat" and f.id == str(noise[-1]), timeout=3.0
        )
        assert {f.event for f in fresh} == {"heartbeat"}
        assert fresh[-1].json() == {"position": noise[-1], "head": noise[-1]}

        arrivals = []
        for _ in range(4):
            beat = await take_until(frames, lambda f: f.event == "heartbeat", timeout=3.0)
            assert beat[-1].id == str(noise[-1])
            arrivals.append(time.monotonic())
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    assert all(0.25 < gap < 2.0 for gap in gaps), gaps


@pytest.mark.parametrize(
    "params",
    [
        {"colour": "red"},
        {"type": "a..b"},
        {"type": "a.#.b"},
        {"data.": "x"},
        {"source": "x", "limit": "5"},
    ],
    ids=["unknown field", "empty type segment", "inner hash", "empty data path", "history param"],
)
async def test_bad_filter_is_refused_with_a_json_error_before_any_stream(
    client: httpx.AsyncClient, params: dict[str, str]
) -> None:
    answer = await client.get(STREAM, params=params)
    error = assert_error(answer, "invalid_filter")
    assert error["details"][0]["loc"][0] == "query"


@pytest.mark.parametrize(
    ("headers", "params"),
    [
        ({"Last-Event-ID": "abc"}, {}),
        ({"Last-Event-ID": "-5"}, {}),
        ({"Last-Event-ID": "1e3"}, {}),
        ({"Last-Event-ID": "12abc"}, {"last_event_id": "3"}),
        ({}, {"last_event_id": "x"}),
        ({}, {"last_event_id": "-1"}),
        ({}, {"since": "yesterday"}),
    ],
    ids=[
        "header word",
        "header negative",
        "header float",
        "bad header wins",
        "query word",
        "query negative",
        "since not a time",
    ],
)
async def test_malformed_resume_point_is_refused(
    client: httpx.AsyncClient, headers: dict[str, str], params: dict[str, str]
) -> None:
    answer = await client.get(STREAM, headers=headers, params=params)
    assert_error(answer, "invalid_resume_point")


@pytest.mark.parametrize(
    ("given", "replayed_from"),
    [
        (("header", "query", "since"), 2),
        (("query", "since"), 1),
        (("since",), 3),
        ((), None),
    ],
    ids=["header beats query and since", "query beats since", "since alone", "head"],
)
async def test_resume_point_is_the_header_then_the_query_then_since_then_the_head(
    client: httpx.AsyncClient, given: tuple[str, ...], replayed_from: int | None
) -> None:
    source = unique("resume")
    seqs = await publish(client, [{"type": "r.x", "source": source}] * 3)
    await asyncio.sleep(0.05)  # the fourth event is received in a later millisecond
    later = await publish(client, [{"type": "r.x", "source": source}] * 2)
    seqs += later
    fourth = (
        await client.get("/v1/events", params={"after": later[0] - 1, "order": "asc", "limit": 1})
    ).json()["events"][0]
    headers = {"Last-Event-ID": str(seqs[1])} if "header" in given else {}
    params = {"source": source}
    if "query" in given:
        params["last_event_id"] = str(seqs[0])
    if "since" in given:
        params["since"] = fourth["received_at"]

    async with aconnect_sse(client, "GET", STREAM, params=params, headers=headers) as stream:
        frames = stream.aiter_sse()
        hello = await anext(frames)
        assert hello.event == "connected"
        sentinel = (await publish(client, [{"type": "r.x", "source": source}]))[0]
        got = await take_until(frames, is_event(sentinel))

    if replayed_from is None:
        assert hello.json()["position"] >= seqs[-1]
        assert events_of(got) == [sentinel]
    else:
        assert hello.json()["position"] == seqs[replayed_from - 1]
        assert events_of(got) == [*seqs[replayed_from:], sentinel]


async def test_stats_count_open_streams_by_transport(
    client: httpx.AsyncClient, server: ServerProcess
) -> None:
    base = (await stream_stats(client))["connections"]

    async def counts_are(sse: int, websocket: int) -> bool:
        connections: dict[str, int] = (await stream_stats(client))["connections"]
        return connections == {"sse": sse, "websocket": websocket}

    async with (
        aconnect_sse(client, "GET", STREAM, params={"source": unique("s")}) as one,
        aconnect_sse(client, "GET", STREAM, params={"source": unique("s")}) as two,
        ws_connect(server) as ws,
    ):
        opened = [stream.aiter_sse() for stream in (one, two)]  # kept: dropping one closes it
        for frames in opened:
            assert (await anext(frames)).event == "connected"
        await ws_send(ws, {"op": "subscribe", "id": "a", "filter": {"source": unique("w")}})
        await ws_send(ws, {"op": "subscribe", "id": "b", "filter": {"source": unique("w")}})
        assert (await ws_recv(ws))["op"] == "subscribed"
        assert (await ws_recv(ws))["op"] == "subscribed"
        assert await wait_until(
            lambda: counts_are(base["sse"] + 2, base["websocket"] + 1), timeout=5.0
        ), await stream_stats(client)
        streams = await stream_stats(client)
        assert streams["subscriptions"] >= 4
    assert await wait_until(lambda: counts_are(base["sse"], base["websocket"]), timeout=5.0), (
        await stream_stats(client)
    )
