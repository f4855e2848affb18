"""Publishing against a real server: plain JSON, batches, idempotency and CloudEvents."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from cloudevents.core.bindings.http import HTTPMessage, from_structured, to_binary, to_structured
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent

from tests.integration.server import ServerProcess, ServerStore

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"
CE_BATCH = "application/cloudevents-batch+json"


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, server_store: ServerStore
) -> Iterator[ServerProcess]:
    process = ServerProcess(tmp_path_factory.mktemp("publish") / "data", store=server_store).start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def client(server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30.0) as http:
        yield http


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def stored(client: httpx.Client, source: str) -> list[dict[str, Any]]:
    """Every stored event of ``source``, oldest first."""
    answer = client.get("/v1/events", params={"source": source, "order": "asc", "limit": 1000})
    assert answer.status_code == 200, answer.text
    events: list[dict[str, Any]] = answer.json()["events"]
    return events


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def assert_error(answer: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("application/json")
    error: dict[str, Any] = answer.json()["error"]
    assert error["code"] == code
    assert isinstance(error["message"], str) and error["message"]
    return error


def test_a_single_event_is_created_with_its_position_and_location(client: httpx.Client) -> None:
    answer = client.post("/v1/events", json={"type": "door.locked", "data": {"by": "al"}})
    assert answer.status_code == 201
    body = answer.json()
    assert set(body) == {"id", "seq", "duplicate"}
    assert body["duplicate"] is False
    assert isinstance(body["seq"], int) and body["seq"] > 0
    assert answer.headers["location"] == f"/v1/events/{body['id']}"
    event = client.get(answer.headers["location"]).json()
    assert (event["id"], event["seq"], event["type"]) == (body["id"], body["seq"], "door.locked")
    assert event["data"] == {"by": "al"}


def test_a_bare_event_gets_source_api_a_uuid7_id_the_time_now_and_the_traceparent_trace(
    client: httpx.Client,
) -> None:
    before = datetime.now(UTC)
    answer = client.post(
        "/v1/events", json={"type": "bare.event"}, headers={"traceparent": TRACEPARENT}
    )
    after = datetime.now(UTC)
    assert answer.status_code == 201
    event = client.get(f"/v1/events/{answer.json()['id']}").json()
    assert event["source"] == "api"
    identifier = uuid.UUID(event["id"])
    assert identifier.version == 7 and identifier.variant == uuid.RFC_4122
    assert str(identifier) == event["id"]
    slack = timedelta(milliseconds=5)
    assert before - slack <= parse_time(event["time"]) <= after + slack
    assert before - slack <= parse_time(event["received_at"]) <= after + slack
    assert event["trace_id"] == TRACE_ID
    assert event["subject"] is None
    assert event["idempotency_key"] is None
    assert event["data"] is None
    assert event["metadata"] == {}


def test_without_a_traceparent_every_event_gets_a_fresh_trace_id(client: httpx.Client) -> None:
    ids = [client.post("/v1/events", json={"type": "trace.fresh"}).json()["id"] for _ in range(2)]
    traces = [client.get(f"/v1/events/{i}").json()["trace_id"] for i in ids]
    for trace in traces:
        assert len(trace) == 32 and int(trace, 16) != 0
    assert traces[0] != traces[1]


def test_an_invalid_traceparent_is_ignored_rather_than_refused(client: httpx.Client) -> None:
    answer = client.post(
        "/v1/events", json={"type": "trace.bad"}, headers={"traceparent": "00-zz-00-01"}
    )
    assert answer.status_code == 201
    trace = client.get(f"/v1/events/{answer.json()['id']}").json()["trace_id"]
    assert len(trace) == 32 and trace != TRACE_ID


def test_every_given_field_is_kept_as_sent(client: httpx.Client) -> None:
    source = unique("kitchen")
    sent = {
        "id": unique("evt"),
        "type": "device.switch.switchLevel",
        "source": source,
        "subject": "device-123",
        "time": "2026-01-02T03:04:05.678Z",
        "trace_id": "0af7651916cd43dd8448eb211c80319c",
        "idempotency_key": unique("key"),
        "data": {"level": 40, "nested": {"list": [1, "two", None, True]}},
        "metadata": {"zone": "north"},
    }
    answer = client.post("/v1/events", json=sent, headers={"traceparent": TRACEPARENT})
    assert answer.status_code == 201
    assert answer.json()["id"] == sent["id"]
    event = client.get(f"/v1/events/{sent['id']}").json()
    for name, value in sent.items():
        assert event[name] == value, name


def test_payload_is_accepted_as_an_alias_of_data(client: httpx.Client) -> None:
    answer = client.post("/v1/events", json={"type": "alias.payload", "payload": {"x": [1, 2]}})
    assert answer.status_code == 201
    assert client.get(f"/v1/events/{answer.json()['id']}").json()["data"] == {"x": [1, 2]}


def test_a_json_array_is_stored_as_a_batch_answered_in_order(client: httpx.Client) -> None:
    source = unique("batch")
    items = [{"type": "batch.item", "source": source, "data": {"n": n}} for n in range(5)]
    answer = client.post("/v1/events", json=items)
    assert answer.status_code == 201
    results = answer.json()["events"]
    assert len(results) == 5
    assert all(r["duplicate"] is False for r in results)
    seqs = [r["seq"] for r in results]
    assert seqs == sorted(seqs) and len(set(seqs)) == 5
    events = stored(client, source)
    assert [(e["id"], e["seq"]) for e in events] == [(r["id"], r["seq"]) for r in results]
    assert [e["data"]["n"] for e in events] == list(range(5))


def test_a_repeated_idempotency_key_answers_the_original_as_a_duplicate(
    client: httpx.Client,
) -> None:
    source = unique("idem")
    key = unique("key")
    event = {"type": "order.placed", "source": source, "data": {"total": 12}}
    first = client.post("/v1/events", json=event, headers={"Idempotency-Key": key})
    again = client.post("/v1/events", json=event, headers={"Idempotency-Key": key})
    assert first.status_code == 201 and first.json()["duplicate"] is False
    assert again.status_code == 200
    assert again.json() == {"id": first.json()["id"], "seq": first.json()["seq"], "duplicate": True}
    events = stored(client, source)
    assert [e["id"] for e in events] == [first.json()["id"]]
    assert events[0]["idempotency_key"] == key


def test_an_idempotency_key_in_the_body_deduplicates_like_the_header(
    client: httpx.Client,
) -> None:
    source = unique("idem-body")
    event = {"type": "order.placed", "source": source, "idempotency_key": unique("key")}
    first = client.post("/v1/events", json=event)
    again = client.post("/v1/events", json=event)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"] and again.json()["duplicate"] is True
    assert len(stored(client, source)) == 1


@pytest.mark.parametrize(
    "change",
    [{"data": {"total": 13}}, {"type": "order.changed"}, {"subject": "other"}],
    ids=["data", "type", "subject"],
)
def test_the_same_idempotency_key_with_other_content_is_a_conflict(
    client: httpx.Client, change: dict[str, Any]
) -> None:
    source = unique("conflict")
    key = unique("key")
    event = {"type": "order.placed", "source": source, "subject": "s", "data": {"total": 12}}
    first = client.post("/v1/events", json=event, headers={"Idempotency-Key": key})
    assert first.status_code == 201
    clash = client.post("/v1/events", json={**event, **change}, headers={"Idempotency-Key": key})
    assert_error(clash, 409, "idempotency_conflict")
    assert [e["id"] for e in stored(client, source)] == [first.json()["id"]]


def test_a_retried_batch_with_an_idempotency_key_stores_each_item_once(
    client: httpx.Client,
) -> None:
    source = unique("batch-idem")
    key = unique("key")
    items = [{"type": "batch.item", "source": source, "data": n} for n in range(3)]
    first = client.post("/v1/events", json=items, headers={"Idempotency-Key": key})
    again = client.post("/v1/events", json=items, headers={"Idempotency-Key": key})
    assert (first.status_code, again.status_code) == (201, 200)
    assert [r["id"] for r in again.json()["events"]] == [r["id"] for r in first.json()["events"]]
    assert all(r["duplicate"] for r in again.json()["events"])
    assert len(stored(client, source)) == 3


def cloud_event(source: str, **attributes: Any) -> CloudEvent:
    data = attributes.pop("data", {"open": True, "angle": 30})
    return CloudEvent(
        {"type": "com.example.door.opened", "source": source, "subject": "door-7", **attributes},
        data,
    )


def test_a_structured_cloudevent_is_stored_with_its_own_id_and_attributes(
    client: httpx.Client,
) -> None:
    source = unique("/sensors/door")
    event = cloud_event(source)
    message = to_structured(event, JSONFormat())
    assert message.headers["content-type"] == "application/cloudevents+json"
    answer = client.post("/v1/events", headers=message.headers, content=message.body)
    assert answer.status_code == 201, answer.text
    assert answer.json()["id"] == event.get_id() and answer.json()["duplicate"] is False
    (stored_event,) = stored(client, source)
    assert stored_event["id"] == event.get_id()
    assert stored_event["type"] == "com.example.door.opened"
    assert stored_event["subject"] == "door-7"
    assert stored_event["data"] == {"open": True, "angle": 30}
    time = event.get_time()
    assert time is not None
    assert abs(parse_time(stored_event["time"]) - time) < timedelta(milliseconds=1)


def test_a_repeated_cloudevent_id_from_the_same_source_is_a_duplicate(
    client: httpx.Client,
) -> None:
    source = unique("/sensors/door")
    message = to_structured(cloud_event(source), JSONFormat())
    first = client.post("/v1/events", headers=message.headers, content=message.body)
    again = client.post("/v1/events", headers=message.headers, content=message.body)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == {**first.json(), "duplicate": True}
    assert len(stored(client, source)) == 1


def test_the_same_cloudevent_id_from_another_source_is_a_new_event(
    client: httpx.Client,
) -> None:
    shared_id = unique("ce")
    one, two = unique("/a"), unique("/b")
    for source in (one, two):
        message = to_structured(cloud_event(source, id=shared_id), JSONFormat())
        answer = client.post("/v1/events", headers=message.headers, content=message.body)
        assert answer.status_code == 201 and answer.json()["duplicate"] is False
    assert [e["id"] for e in stored(client, one)] == [shared_id]
    assert [e["id"] for e in stored(client, two)] == [shared_id]


def test_a_cloudevents_batch_is_stored_and_its_repeat_is_all_duplicates(
    client: httpx.Client,
) -> None:
    source = unique("/batch")
    events = [cloud_event(source, data={"n": n}) for n in range(4)]
    body = b"[" + b",".join(JSONFormat().write(e) for e in events) + b"]"
    headers = {"content-type": CE_BATCH}
    first = client.post("/v1/events", headers=headers, content=body)
    assert first.status_code == 201, first.text
    results = first.json()["events"]
    assert [r["id"] for r in results] == [e.get_id() for e in events]
    assert not any(r["duplicate"] for r in results)
    again = client.post("/v1/events", headers=headers, content=body)
    assert again.status_code == 200
    assert again.json()["events"] == [{**r, "duplicate": True} for r in results]
    assert [e["data"] for e in stored(client, source)] == [{"n": n} for n in range(4)]


def test_a_binary_mode_cloudevent_is_stored_and_its_repeat_is_a_duplicate(
    client: httpx.Client,
) -> None:
    source = unique("/binary")
    event = cloud_event(source, datacontenttype="application/json", data={"temp": 21.5})
    message = to_binary(event, JSONFormat())
    assert message.headers["ce-id"] == event.get_id()
    first = client.post("/v1/events", headers=message.headers, content=message.body)
    assert first.status_code == 201, first.text
    assert first.json()["id"] == event.get_id()
    again = client.post("/v1/events", headers=message.headers, content=message.body)
    assert again.status_code == 200 and again.json() == {**first.json(), "duplicate": True}
    (stored_event,) = stored(client, source)
    assert stored_event["type"] == "com.example.door.opened"
    assert stored_event["subject"] == "door-7"
    assert stored_event["data"] == {"temp": 21.5}


def test_a_cloudevent_traceparent_extension_gives_the_trace_id(client: httpx.Client) -> None:
    source = unique("/traced")
    message = to_structured(cloud_event(source, traceparent=TRACEPARENT), JSONFormat())
    assert client.post("/v1/events", headers=message.headers, content=message.body).is_success
    (stored_event,) = stored(client, source)
    assert stored_event["trace_id"] == TRACE_ID


def test_an_event_read_as_a_cloudevent_parses_with_the_sdk(client: httpx.Client) -> None:
    source = unique("sdk")
    sent = {
        "type": "user.created",
        "source": source,
        "subject": "user-9",
        "time": "2026-03-04T05:06:07.089Z",
        "data": {"name": "Ada"},
    }
    created = client.post("/v1/events", json=sent).json()
    answer = client.get(
        f"/v1/events/{created['id']}", headers={"Accept": "application/cloudevents+json"}
    )
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("application/cloudevents+json")
    message = HTTPMessage(headers=dict(answer.headers), body=answer.content)
    event = from_structured(message, JSONFormat(), CloudEvent)
    assert event.get_specversion() == "1.0"
    assert event.get_id() == created["id"]
    assert event.get_source() == source
    assert event.get_type() == "user.created"
    assert event.get_subject() == "user-9"
    assert event.get_time() == datetime(2026, 3, 4, 5, 6, 7, 89000, tzinfo=UTC)
    assert event.get_data() == {"name": "Ada"}


def test_a_cloudevent_sent_in_reads_back_as_the_same_cloudevent(client: httpx.Client) -> None:
    source = unique("/roundtrip")
    original = cloud_event(source, data={"round": "trip"})
    message = to_structured(original, JSONFormat())
    client.post("/v1/events", headers=message.headers, content=message.body).raise_for_status()
    answer = client.get(
        f"/v1/events/{original.get_id()}", headers={"Accept": "application/cloudevents+json"}
    )
    back = from_structured(
        HTTPMessage(headers=dict(answer.headers), body=answer.content), JSONFormat(), CloudEvent
    )
    for getter in ("get_id", "get_source", "get_type", "get_subject", "get_data"):
        assert getattr(back, getter)() == getattr(original, getter)(), getter


def test_the_location_of_a_client_chosen_id_is_quoted_and_a_plain_one_is_not(
    client: httpx.Client,
) -> None:
    odd = unique("a/b é?")
    answer = client.post("/v1/events", json={"id": odd, "type": "loc.odd"})
    assert answer.status_code == 201
    assert answer.headers["location"] == "/v1/events/" + quote(odd, safe="")
    plain = unique("Plain-Id-9")
    answer = client.post("/v1/events", json={"id": plain, "type": "loc.plain"})
    assert answer.headers["location"] == f"/v1/events/{plain}"
    assert answer.headers["content-type"] == "application/json"
    assert int(answer.headers["content-length"]) == len(answer.content)


def test_a_repeated_header_counts_by_its_first_value(client: httpx.Client) -> None:
    headers = [
        ("Content-Type", "text/plain"),
        ("content-type", "application/json"),
        ("Idempotency-Key", unique("first")),
        ("Idempotency-Key", ""),
    ]
    answer = client.post("/v1/events", content=b'{"type": "hdr.first"}', headers=headers)
    assert answer.status_code == 415
    assert "text/plain" in answer.json()["error"]["message"]
