"""The ``trace_id`` filter everywhere filters apply, against a real server: history, export,
SSE, the WebSocket ``filter`` object and webhook endpoints."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator

import httpx
import orjson
import pytest

from tests.integration.receiver import Receiver
from tests.integration.server import ServerProcess
from tests.integration.streams_helpers import (
    RawSSE,
    event_ids,
    publish,
    ws_connect,
    ws_send,
    ws_until,
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    env = {"TIDINGS_WEBHOOK_ALLOW_PRIVATE": "true", "TIDINGS_HEARTBEAT_S": "60"}
    process = ServerProcess(tmp_path_factory.mktemp("trace") / "data", env=env).start()
    yield process
    process.stop()


@pytest.fixture
async def client(server: ServerProcess) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url, timeout=30.0) as http:
        yield http


def trace() -> str:
    return os.urandom(16).hex()


async def publish_traced(
    client: httpx.AsyncClient, kind: str, traces: list[str]
) -> dict[str, list[int]]:
    """One event per trace id (in order); the positions of each trace's events."""
    seqs = await publish(client, [{"type": kind, "trace_id": t} for t in traces])
    found: dict[str, list[int]] = {}
    for trace_id, seq in zip(traces, seqs, strict=True):
        found.setdefault(trace_id, []).append(seq)
    return found


async def test_history_and_export_filter_by_a_list_of_trace_ids(
    client: httpx.AsyncClient,
) -> None:
    kind = "trace.history." + os.urandom(4).hex()
    one, two, other = trace(), trace(), trace()
    seqs = await publish_traced(client, kind, [one, other, two, one, other])
    wanted = sorted(seqs[one] + seqs[two])

    page = await client.get("/v1/events", params={"trace_id": f"{one},{two}", "order": "asc"})
    assert page.status_code == 200, page.text
    assert [e["seq"] for e in page.json()["events"]] == wanted
    repeated = await client.get("/v1/events", params=[("trace_id", one), ("trace_id", two)])
    assert sorted(e["seq"] for e in repeated.json()["events"]) == wanted
    single = await client.get("/v1/events", params={"trace_id": one, "type": kind})
    assert {e["trace_id"] for e in single.json()["events"]} == {one}

    export = await client.get("/v1/events/export", params={"trace_id": f"{one},{two}"})
    assert export.status_code == 200, export.text
    lines = [orjson.loads(line) for line in export.text.splitlines()]
    assert [e["seq"] for e in lines] == wanted


async def test_sse_and_websocket_streams_filter_by_trace_id(
    server: ServerProcess, client: httpx.AsyncClient
) -> None:
    kind = "trace.stream." + os.urandom(4).hex()
    wanted, other = trace(), trace()
    start = (await client.get("/v1/stats")).json()["store"]["head_seq"]

    sse = await RawSSE.connect(server.port, f"/v1/events/stream?trace_id={wanted}&type={kind}")
    try:
        assert sse.status == 200
        await sse.collect(lambda fs: any(f.event == "connected" for f in fs), timeout=10)
        async with ws_connect(server) as ws:
            await ws_send(
                ws,
                {"op": "subscribe", "id": "s1", "filter": {"trace_id": [wanted], "type": kind}},
            )
            await ws_until(ws, lambda m: m["op"] == "subscribed", timeout=10)
            seqs = await publish_traced(client, kind, [other, wanted, other, wanted])

            frames = await sse.collect(lambda fs: len(event_ids(fs)) == 2, timeout=10)
            assert event_ids(frames) == seqs[wanted]
            got = await ws_until(
                ws, lambda m: m["op"] == "event" and m["event"]["seq"] == max(seqs[wanted])
            )
            assert [m["event"]["seq"] for m in got if m["op"] == "event"] == seqs[wanted]
            assert all(s > start for s in seqs[wanted])
    finally:
        sse.close()


async def test_a_webhook_endpoint_filtered_by_trace_id_receives_only_that_trace(
    client: httpx.AsyncClient,
) -> None:
    kind = "trace.hook." + os.urandom(4).hex()
    wanted, other = trace(), trace()
    with Receiver() as receiver:
        created = await client.post(
            "/v1/webhooks",
            json={"url": receiver.url, "events": [kind], "trace_id": wanted},
        )
        assert created.status_code == 201, created.text
        assert created.json()["filter"] == {"trace_id": wanted}
        # The filter object spells it the same way; this endpoint's trace is never published.
        in_filter = await client.post(
            "/v1/webhooks",
            json={"url": receiver.url, "events": [kind], "filter": {"trace_id": trace()}},
        )
        assert in_filter.status_code == 201, in_filter.text
        seqs = await publish_traced(client, kind, [other, wanted, other])
        (request,) = receiver.wait_count(1)
        body = request.json()
        assert (body["event"]["seq"], body["event"]["trace_id"]) == (seqs[wanted][0], wanted)
        await client.delete(f"/v1/webhooks/{created.json()['id']}")
        await client.delete(f"/v1/webhooks/{in_filter.json()['id']}")
    assert len(receiver.received()) == 1


async def test_a_trace_id_filter_that_is_not_strings_is_refused(
    server: ServerProcess, client: httpx.AsyncClient
) -> None:
    async with ws_connect(server) as ws:
        await ws_send(ws, {"op": "subscribe", "id": "s", "filter": {"trace_id": [{"a": 1}]}})
        reply = (await ws_until(ws, lambda m: m["op"] in ("subscribed", "error")))[-1]
        assert (reply["op"], reply["code"]) == ("error", "invalid_filter")
    answer = await client.post(
        "/v1/webhooks", json={"url": "http://127.0.0.1:9/", "trace_id": {"a": 1}}
    )
    assert answer.status_code == 422, answer.text
