"""The Python client against a real server: every call, its typed results and its errors."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator

import pytest

from tests.integration.server import ServerProcess
from tidings.client import (
    AsyncClient,
    Client,
    Event,
    Published,
    SystemMessage,
    TidingsError,
    event_body,
)


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    env = {"TIDINGS_WEBHOOK_ALLOW_PRIVATE": "true", "TIDINGS_HEARTBEAT_S": "1"}
    server = ServerProcess(tmp_path_factory.mktemp("client") / "data", env=env).start()
    yield server
    server.stop()


@pytest.fixture
def client(hub: ServerProcess) -> Iterator[Client]:
    with Client(hub.url) as tidings:
        yield tidings


def unique() -> str:
    return f"s{uuid.uuid4().hex[:12]}"


def test_publish_returns_id_and_seq_and_a_repeated_key_is_a_duplicate(client: Client) -> None:
    key, source = unique(), unique()
    first = client.publish("door.opened", {"door": "front"}, source=source, idempotency_key=key)
    again = client.publish("door.opened", {"door": "front"}, source=source, idempotency_key=key)
    assert isinstance(first, Published) and not first.duplicate
    assert (again.id, again.seq, again.duplicate) == (first.id, first.seq, True)
    stored = client.get_event(first.id)
    assert (stored.seq, stored.data, stored.idempotency_key) == (first.seq, {"door": "front"}, key)


def test_a_batch_is_stored_in_order(client: Client) -> None:
    source = unique()
    results = client.publish_batch(
        [event_body("room.entered", {"n": n}, source=source) for n in range(3)]
    )
    assert [r.seq for r in results] == sorted(r.seq for r in results)
    assert [e.data["n"] for e in client.query(source=source, order="asc")] == [0, 1, 2]


def test_an_invalid_event_raises_the_error_shape_with_details(client: Client) -> None:
    with pytest.raises(TidingsError) as raised:
        client.publish_batch([{"type": "ok"}, {"type": "not valid!"}])
    error = raised.value
    assert (error.status, error.code) == (422, "validation_error")
    assert error.details and error.details[0]["loc"][:2] == ["body", 1]


def test_a_missing_event_raises_404_with_its_code(client: Client) -> None:
    with pytest.raises(TidingsError) as raised:
        client.get_event("no-such-event")
    assert (raised.value.status, raised.value.code) == (404, "event_not_found")


def test_query_follows_the_pages_to_the_last_event(client: Client) -> None:
    source = unique()
    published = client.publish_batch(
        [event_body("tick", {"n": n}, source=source) for n in range(7)]
    )
    seen = [event.seq for event in client.query(source=source, order="asc", limit=2)]
    assert seen == [p.seq for p in published]
    page = client.query_page(source=source, limit=5)
    assert len(page.items) == 5 and page.next is not None
    rest = client.query_page(source=source, limit=5, cursor=page.next)
    assert [e.seq for e in page.items + rest.items] == [p.seq for p in reversed(published)]


def test_query_filters_by_data(client: Client) -> None:
    source = unique()
    client.publish("door.opened", {"room": "hall"}, source=source)
    client.publish("door.opened", {"room": "attic"}, source=source)
    found = client.query(source=source, where={"data.room": ["hall", "cellar"]})
    assert [e.data["room"] for e in found] == ["hall"]


def test_export_reads_events_and_csv_lines(client: Client) -> None:
    source = unique()
    published = client.publish_batch(
        [event_body("tick", {"n": n}, source=source) for n in range(3)]
    )
    assert [e.seq for e in client.export(source=source)] == [p.seq for p in published]
    lines = list(client.export_lines(format="csv", source=source))
    assert lines[0].startswith("seq,id,type") and len(lines) == 4


def test_export_refused_raises_before_any_line(client: Client) -> None:
    with pytest.raises(TidingsError) as raised:
        list(client.export(since="not a time"))
    assert (raised.value.status, raised.value.code) == (400, "invalid_parameter")


def test_a_server_that_is_not_running_is_named_in_the_error() -> None:
    with Client("http://127.0.0.1:9", retries=0) as client, pytest.raises(TidingsError) as raised:
        client.stats()
    assert raised.value.code == "unreachable" and "127.0.0.1:9" in raised.value.message


def test_stream_hands_out_connected_then_events_matching_the_filter(client: Client) -> None:
    source = unique()
    items = client.stream(source=source)
    connected = next(items)
    assert isinstance(connected, SystemMessage) and connected.kind == "connected"
    client.publish("other", source=unique())
    published = [client.publish("door.opened", {"n": n}, source=source) for n in range(3)]
    events = list(itertools.islice(items, 3))
    assert [e.seq for e in events if isinstance(e, Event)] == [p.seq for p in published]
    items.close()


def test_stream_resumes_after_a_restart_with_no_gap_and_no_duplicate(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    server = ServerProcess(tmp_path_factory.mktemp("resume") / "data").start()
    try:
        with Client(server.url) as client:
            told: list[SystemMessage] = []
            items = client.subscribe(type="tick", last_event_id=0, on_system=told.append)
            before = [client.publish("tick", {"n": n}) for n in range(3)]
            first = [next(items) for _ in range(3)]  # connects here, from before the first
            server.stop()
            server.start()
            after = [client.publish("tick", {"n": n}) for n in range(3, 6)]
            rest = [next(items) for _ in range(3)]
            items.close()
        assert [e.seq for e in first + rest] == [p.seq for p in before + after]
        assert [m.kind for m in told] == ["connected", "shutdown", "connected"]
    finally:
        server.stop()


def test_webhook_admin_from_create_to_delete(client: Client) -> None:
    created = client.create_webhook(
        "http://127.0.0.1:9/hook", ["door.*"], source="hallway", description="front door"
    )
    assert created.secret and created.secret.startswith("whsec_")
    assert created.filter.get("source") == "hallway"
    assert created.id in [w.id for w in client.list_webhooks()]
    assert client.get_webhook(created.id).secret is None
    changed = client.update_webhook(created.id, active=False, description=None)
    assert (changed.active, changed.description) == (False, None)
    rotated = client.rotate_secret(created.id, "a-new-secret-of-enough-length")
    assert rotated.secret == "a-new-secret-of-enough-length"
    with pytest.raises(TidingsError) as refused:
        client.replay(created.id)
    assert (refused.value.status, refused.value.code) == (409, "webhook_disabled")
    client.update_webhook(created.id, active=True)
    assert client.replay(created.id, since="2000-01-01T00:00:00Z", only_failed=True) == 0
    assert list(client.deliveries(created.id, status="failed")) == []
    client.delete_webhook(created.id)
    with pytest.raises(TidingsError) as raised:
        client.get_webhook(created.id)
    assert raised.value.status == 404


def test_a_webhook_the_server_refuses_raises_with_details(client: Client) -> None:
    with pytest.raises(TidingsError) as raised:
        client.create_webhook("not a url")
    assert raised.value.status in (400, 422) and raised.value.details


def test_dead_letters_list_and_a_missing_one_raises(client: Client) -> None:
    assert list(client.dead_letters(source=unique())) == []
    with pytest.raises(TidingsError) as raised:
        client.get_dead_letter("dl_" + "0" * 20)
    assert raised.value.status == 404
    summary = client.redrive_dead_letters(source=unique())
    assert (summary.redriven, summary.failed) == (0, 0)


def test_stats_and_ready(client: Client) -> None:
    assert client.stats()["events"]["total"] >= 0
    assert client.ready()


async def test_the_async_client_publishes_queries_and_streams(hub: ServerProcess) -> None:
    source = unique()
    async with AsyncClient(hub.url) as client:
        stream = client.stream(source=source)
        connected = await anext(stream)
        published = await client.publish("door.opened", {"n": 1}, source=source)
        received = await anext(stream)
        await stream.aclose()
        assert isinstance(connected, SystemMessage) and isinstance(received, Event)
        assert received.seq == published.seq
        assert [e.seq async for e in client.query(source=source)] == [published.seq]
        assert [e.seq async for e in client.export(source=source)] == [published.seq]
        with pytest.raises(TidingsError) as raised:
            await client.get_event("nope")
        assert raised.value.code == "event_not_found"


def test_a_cloudevent_with_a_non_ascii_id_is_acknowledged_with_an_encoded_location(
    hub: ServerProcess,
) -> None:
    import httpx2

    event_id = "J\u00b4\u0104\u00ea"
    body = {"specversion": "1.0", "id": event_id, "source": unique(), "type": "door.opened"}
    answer = httpx2.post(
        hub.url + "/v1/events",
        json=body,
        headers={"Content-Type": "application/cloudevents+json"},
    )
    assert answer.status_code == 201, answer.text
    assert answer.headers["Location"] == "/v1/events/J%C2%B4%C4%84%C3%AA"
    with Client(hub.url) as client:
        assert client.get_event(event_id).source == body["source"]
