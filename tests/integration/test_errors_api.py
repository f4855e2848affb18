"""Failure paths against a real server: every refusal has a status, a code and the one shape."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.integration.server import ServerProcess, ServerStore

MAX_EVENT = 2048
MAX_BODY = 16_384
MAX_BATCH = 10


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, server_store: ServerStore
) -> Iterator[ServerProcess]:
    env = {
        "TIDINGS_MAX_EVENT_BYTES": str(MAX_EVENT),
        "TIDINGS_MAX_BODY_BYTES": str(MAX_BODY),
        "TIDINGS_MAX_BATCH": str(MAX_BATCH),
    }
    process = ServerProcess(
        tmp_path_factory.mktemp("errors") / "data", env=env, store=server_store
    ).start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def client(server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30.0) as http:
        yield http


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def assert_error(answer: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The one error shape, as JSON, and never a traceback or an HTML page."""
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("application/json")
    text = answer.text
    assert "Traceback" not in text and "<html" not in text.lower()
    body = answer.json()
    assert set(body) == {"error"}
    error: dict[str, Any] = body["error"]
    assert set(error) <= {"code", "message", "details"}
    assert error["code"] == code
    assert isinstance(error["message"], str) and error["message"]
    return error


def locs(error: dict[str, Any]) -> list[list[str | int]]:
    details = error["details"]
    assert isinstance(details, list) and details
    for detail in details:
        assert isinstance(detail["msg"], str) and detail["msg"]
    return [detail["loc"] for detail in details]


def publish_raw(client: httpx.Client, body: bytes, **headers: str) -> httpx.Response:
    return client.post(
        "/v1/events", content=body, headers={"content-type": "application/json", **headers}
    )


def count(client: httpx.Client, source: str) -> int:
    answer = client.get("/v1/events", params={"source": source, "limit": 1000})
    assert answer.status_code == 200
    return len(answer.json()["events"])


@pytest.mark.parametrize(
    "body", [b'{"type": "a.b"', b"{bad json}", b"", b"\xff\xfe", b"[1, 2,]", b'{"a": NaN}']
)
def test_a_body_that_is_not_json_is_refused_as_malformed(client: httpx.Client, body: bytes) -> None:
    assert_error(publish_raw(client, body), 400, "malformed_json")


@pytest.mark.parametrize("content_type", ["text/plain", "application/xml", "multipart/form-data"])
def test_a_body_in_another_media_type_is_unsupported(
    client: httpx.Client, content_type: str
) -> None:
    answer = client.post(
        "/v1/events", content=b'{"type": "a.b"}', headers={"content-type": content_type}
    )
    error = assert_error(answer, 415, "unsupported_media_type")
    assert "application/json" in error["message"]


def test_a_body_over_the_limit_with_a_content_length_is_refused(client: httpx.Client) -> None:
    source = unique("big")
    body = b'{"type": "big.body", "source": "%s", "data": "%s"}' % (
        source.encode(),
        b"x" * MAX_BODY,
    )
    answer = publish_raw(client, body)
    assert answer.request.headers["content-length"] == str(len(body))
    error = assert_error(answer, 413, "body_too_large")
    assert str(MAX_BODY) in error["message"]
    assert count(client, source) == 0


def test_a_chunked_body_over_the_limit_is_refused(client: httpx.Client) -> None:
    source = unique("chunked")

    def chunks() -> Iterator[bytes]:
        yield b'[{"type": "big.body", "source": "%s", "data": "' % source.encode()
        for _ in range(MAX_BODY // 1024 + 4):
            yield b"y" * 1024
        yield b'"}]'

    answer = client.post(
        "/v1/events", content=chunks(), headers={"content-type": "application/json"}
    )
    assert answer.request.headers["transfer-encoding"] == "chunked"
    assert "content-length" not in answer.request.headers
    assert_error(answer, 413, "body_too_large")
    assert count(client, source) == 0


def test_a_chunked_body_within_the_limit_is_accepted(client: httpx.Client) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"type": "small.chunked",'
        yield b' "data": {"ok": true}}'

    answer = client.post(
        "/v1/events", content=chunks(), headers={"content-type": "application/json"}
    )
    assert answer.status_code == 201


def test_one_event_over_the_event_limit_is_refused_naming_it(client: httpx.Client) -> None:
    source = unique("fat")
    items = [
        {"type": "small", "source": source},
        {"type": "fat", "source": source, "data": "z" * MAX_EVENT},
    ]
    error = assert_error(client.post("/v1/events", json=items), 413, "event_too_large")
    assert locs(error) == [["body", 1]]
    assert count(client, source) == 0
    single = client.post("/v1/events", json=items[1])
    assert locs(assert_error(single, 413, "event_too_large")) == [["body"]]


def test_a_batch_over_the_batch_limit_is_refused(client: httpx.Client) -> None:
    source = unique("many")
    items = [{"type": "many", "source": source} for _ in range(MAX_BATCH + 1)]
    error = assert_error(client.post("/v1/events", json=items), 413, "batch_too_large")
    assert str(MAX_BATCH) in error["message"]
    assert count(client, source) == 0
    assert client.post("/v1/events", json=items[:MAX_BATCH]).status_code == 201
    assert count(client, source) == MAX_BATCH


def test_an_event_without_a_type_is_invalid_naming_the_field(client: httpx.Client) -> None:
    error = assert_error(client.post("/v1/events", json={"data": 1}), 422, "validation_error")
    assert locs(error) == [["body", "type"]]


def test_an_event_with_a_bad_time_is_invalid_naming_the_field(client: httpx.Client) -> None:
    answer = client.post("/v1/events", json={"type": "a.b", "time": "yesterday at noon"})
    assert locs(assert_error(answer, 422, "validation_error")) == [["body", "time"]]


@pytest.mark.parametrize(
    ("event", "field"),
    [
        ({"type": "a..b"}, "type"),
        ({"type": ""}, "type"),
        ({"type": "x" * 201}, "type"),
        ({"type": "a b"}, "type"),
        ({"type": "a", "unknown": 1}, "unknown"),
        ({"type": "a", "metadata": [1]}, "metadata"),
        ({"type": "a", "trace_id": "XYZ"}, "trace_id"),
        ({"type": "a", "source": ""}, "source"),
    ],
)
def test_other_invalid_fields_are_named(
    client: httpx.Client, event: dict[str, Any], field: str
) -> None:
    error = assert_error(client.post("/v1/events", json=event), 422, "validation_error")
    assert ["body", field] in locs(error)


def test_a_batch_with_one_bad_item_names_its_index_and_stores_nothing(
    client: httpx.Client,
) -> None:
    source = unique("batch")
    items: list[dict[str, Any]] = [{"type": "ok.item", "source": source} for _ in range(6)]
    items[3] = {"type": "ok.item", "source": source, "time": "not a time"}
    answer = client.post("/v1/events", json=items)
    error = assert_error(answer, 422, "validation_error")
    assert locs(error) == [["body", 3, "time"]]
    assert count(client, source) == 0


def test_a_batch_with_several_bad_items_names_each(client: httpx.Client) -> None:
    source = unique("batch")
    items: list[Any] = [{"type": "ok.item", "source": source} for _ in range(5)]
    items[0] = {"source": source}
    items[2] = "not an object"
    items[4] = {"type": "ok.item", "source": source, "time": "soon"}
    error = assert_error(client.post("/v1/events", json=items), 422, "validation_error")
    assert locs(error) == [["body", 0, "type"], ["body", 2], ["body", 4, "time"]]
    assert count(client, source) == 0


@pytest.mark.parametrize("body", ['"just a string"', "42", "null", "[]"])
def test_json_that_is_not_an_event_or_a_batch_is_invalid(client: httpx.Client, body: str) -> None:
    assert_error(publish_raw(client, body.encode()), 422, "validation_error")


def test_an_idempotency_conflict_stores_nothing_of_the_request(client: httpx.Client) -> None:
    source = unique("clash")
    key = unique("key")
    headers = {"Idempotency-Key": key}
    client.post("/v1/events", json={"type": "a", "source": source, "data": 1}, headers=headers)
    answer = client.post(
        "/v1/events", json={"type": "a", "source": source, "data": 2}, headers=headers
    )
    assert_error(answer, 409, "idempotency_conflict")
    assert count(client, source) == 1


@pytest.mark.parametrize("key", ["", "k" * 201, "tab\there"])
def test_an_unusable_idempotency_key_header_is_refused(client: httpx.Client, key: str) -> None:
    answer = client.post("/v1/events", json={"type": "a"}, headers={"Idempotency-Key": key})
    assert_error(answer, 400, "invalid_idempotency_key")


def test_an_unknown_event_id_is_not_found(client: httpx.Client) -> None:
    answer = client.get(f"/v1/events/{uuid.uuid4()}")
    assert_error(answer, 404, "event_not_found")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/nope"),
        ("POST", "/v1/nothing"),
        ("GET", "/v1/events/a/b"),
        ("DELETE", "/v2/events"),
    ],
)
def test_an_unknown_route_is_a_json_404(client: httpx.Client, method: str, path: str) -> None:
    assert_error(client.request(method, path), 404, "not_found")


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("DELETE", "/v1/events", {"GET", "POST"}),
        ("PUT", "/v1/events", {"GET", "POST"}),
        ("POST", "/v1/events/some-id", {"GET"}),
        ("DELETE", "/v1/events/export", {"GET"}),
        ("POST", "/healthz", {"GET"}),
        ("PATCH", "/v1/stats", {"GET"}),
    ],
)
def test_a_wrong_method_is_a_json_405_listing_every_allowed_method(
    client: httpx.Client, method: str, path: str, allowed: set[str]
) -> None:
    answer = client.request(method, path)
    error = assert_error(answer, 405, "method_not_allowed")
    allow = answer.headers["allow"]
    assert {m.strip() for m in allow.split(",")} - {"HEAD"} == allowed
    for name in allowed:
        assert name in error["message"]


@pytest.mark.parametrize(
    ("query", "code", "param"),
    [
        ({"limit": "0"}, "invalid_parameter", "limit"),
        ({"limit": "5000"}, "invalid_parameter", "limit"),
        ({"limit": "ten"}, "invalid_parameter", "limit"),
        ({"order": "sideways"}, "invalid_parameter", "order"),
        ({"since": "garbage"}, "invalid_parameter", "since"),
        ({"until": "2026-13-45"}, "invalid_parameter", "until"),
        ({"time_since": "later"}, "invalid_parameter", "time_since"),
        ({"after": "-1"}, "invalid_parameter", "after"),
        ({"before": "x"}, "invalid_parameter", "before"),
        ({"colour": "red"}, "invalid_filter", "colour"),
        ({"type": "a..b"}, "invalid_filter", "type"),
        ({"type": "#.a"}, "invalid_filter", "type"),
        ({"data.": "x"}, "invalid_filter", "data."),
        ({"cursor": "not-a-cursor"}, "invalid_parameter", "cursor"),
        ({"cursor": "eyJvIjoic2lkZXdheXMiLCJzIjoxfQ"}, "invalid_parameter", "cursor"),
    ],
)
def test_bad_query_parameters_are_refused_naming_the_parameter(
    client: httpx.Client, query: dict[str, str], code: str, param: str
) -> None:
    error = assert_error(client.get("/v1/events", params=query), 400, code)
    assert locs(error) == [["query", param]]


def test_a_cursor_made_for_the_other_order_is_refused(client: httpx.Client) -> None:
    source = unique("cursor")
    client.post("/v1/events", json=[{"type": "c", "source": source} for _ in range(3)])
    page = client.get("/v1/events", params={"source": source, "limit": 1}).json()
    assert page["next"] is not None
    answer = client.get(
        "/v1/events", params={"source": source, "limit": 1, "order": "asc", "cursor": page["next"]}
    )
    assert_error(answer, 400, "invalid_parameter")


@pytest.mark.parametrize(
    "query",
    [{"format": "xml"}, {"limit": "0"}, {"order": "up"}, {"since": "then"}, {"colour": "red"}],
)
def test_bad_export_parameters_are_refused_before_streaming(
    client: httpx.Client, query: dict[str, str]
) -> None:
    answer = client.get("/v1/events/export", params=query)
    assert answer.status_code == 400
    assert_error(answer, 400, answer.json()["error"]["code"])
    assert answer.json()["error"]["code"] in {"invalid_parameter", "invalid_filter"}


def test_a_bad_cloudevent_names_the_missing_attribute(client: httpx.Client) -> None:
    answer = client.post(
        "/v1/events",
        json={"specversion": "1.0", "type": "a.b", "source": "/x"},
        headers={"content-type": "application/cloudevents+json"},
    )
    error = assert_error(answer, 422, "validation_error")
    assert ["body", "id"] in locs(error)


def test_a_binary_cloudevent_with_a_malformed_json_body_is_refused(client: httpx.Client) -> None:
    headers = {
        "ce-specversion": "1.0",
        "ce-id": unique("ce"),
        "ce-source": "/x",
        "ce-type": "a.b",
        "content-type": "application/json",
    }
    answer = client.post("/v1/events", content=b"{oops", headers=headers)
    assert_error(answer, 400, "malformed_json")
