"""Hostile and careless input against a real server: every one answered with the error shape,
never a 500, and no credential handed back."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest
import websockets.sync.client

from tests.integration.receiver import Receiver, publish
from tests.integration.server import ServerProcess

TOO_BIG = str(2**63)  # one past the largest 64-bit position
DEEP = 1000  # nesting orjson accepts but Python's exact parser cannot recurse through


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    env = {"TIDINGS_WEBHOOK_ALLOW_PRIVATE": "true"}
    process = ServerProcess(tmp_path_factory.mktemp("hostile") / "data", env=env).start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def client(server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30.0) as http:
        yield http


def error_of(answer: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("application/json")
    body = answer.json()
    assert set(body) == {"error"} and body["error"]["code"] == code, body
    error: dict[str, Any] = body["error"]
    assert error["message"]
    return error


def deep_with_long_integer() -> bytes:
    return b"[" * DEEP + b"12345678901234567890" + b"]" * DEEP


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("/v1/events", "application/json"),
        ("/v1/events", "application/cloudevents+json"),
        ("/v1/events", "application/cloudevents-batch+json"),
        ("/v1/webhooks", "application/json"),
    ],
)
def test_deep_json_with_a_long_integer_is_a_400_not_a_500(
    client: httpx.Client, path: str, content_type: str
) -> None:
    answer = client.post(
        path, content=deep_with_long_integer(), headers={"content-type": content_type}
    )
    error = error_of(answer, 400, "malformed_json")
    assert "deep" in error["message"]


def test_a_long_integer_in_shallow_json_is_still_refused_clearly(client: httpx.Client) -> None:
    body = b'{"type": "big.int", "data": {"n": %d}}' % 2**70
    answer = client.post("/v1/events", content=body)
    assert "64-bit" in str(error_of(answer, 422, "validation_error")["details"])


@pytest.mark.parametrize("name", ["after", "before", "limit"])
@pytest.mark.parametrize("value", [TOO_BIG, "9" * 5000, "-1", "+5", " 5", "5_0", "٣"])
def test_integer_parameters_out_of_range_or_odd_are_a_400(
    client: httpx.Client, name: str, value: str
) -> None:
    for path in ("/v1/events", "/v1/events/export"):
        error = error_of(client.get(path, params={name: value}), 400, "invalid_parameter")
        assert error["details"][0]["loc"] == ["query", name]


def test_the_largest_position_is_accepted_as_a_bound(client: httpx.Client) -> None:
    answer = client.get("/v1/events", params={"after": str(2**63 - 1)})
    assert (answer.status_code, answer.json()["events"]) == (200, [])
    assert client.get("/v1/events", params={"before": str(2**63 - 1)}).status_code == 200


@pytest.mark.parametrize("seq", [2**63, 2**64, -1, True, "5", 1.5])
def test_a_forged_cursor_with_a_bad_position_is_a_400(client: httpx.Client, seq: Any) -> None:
    raw = json.dumps({"o": "desc", "s": seq}).encode()
    cursor = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    for path in ("/v1/events", "/v1/dead-letters"):
        error_of(client.get(path, params={"cursor": cursor}), 400, "invalid_parameter")


@pytest.mark.parametrize("value", [TOO_BIG, "-1", "9" * 5000])
def test_stream_resume_points_out_of_range_are_a_400(client: httpx.Client, value: str) -> None:
    header = client.get("/v1/events/stream", headers={"Last-Event-ID": value})
    error_of(header, 400, "invalid_resume_point")
    query = client.get("/v1/events/stream", params={"last_event_id": value})
    error_of(query, 400, "invalid_resume_point")


def test_a_websocket_resume_point_out_of_range_is_an_error_and_the_socket_stays(
    server: ServerProcess,
) -> None:
    url = server.url.replace("http://", "ws://") + "/v1/ws"
    with websockets.sync.client.connect(url, open_timeout=10) as socket:
        socket.send(b'{"op":"subscribe","id":"s1","last_event_id":%s}'.decode() % TOO_BIG)
        reply = orjson.loads(socket.recv(timeout=10))
        assert (reply["op"], reply["id"], reply["code"]) == ("error", "s1", "invalid_resume_point")
        socket.send('{"op":"ping"}')
        assert orjson.loads(socket.recv(timeout=10))["op"] == "pong"


def test_header_values_are_masked_after_creation_like_the_secret(client: httpx.Client) -> None:
    kind = "t" + uuid.uuid4().hex[:10]
    credentials = {"Authorization": "Bearer receiver-token-" + uuid.uuid4().hex, "X-Team": "a"}
    with Receiver() as receiver:
        check_masked_headers(client, receiver, kind, credentials)


def check_masked_headers(
    client: httpx.Client, receiver: Receiver, kind: str, credentials: dict[str, str]
) -> None:
    created = client.post(
        "/v1/webhooks",
        json={"url": receiver.url, "events": [f"{kind}.#"], "headers": credentials},
    )
    assert created.status_code == 201, created.text
    assert created.json()["headers"] == credentials  # the caller just sent them
    path = f"/v1/webhooks/{created.json()['id']}"

    masked = {"Authorization": "********", "X-Team": "********"}
    one = client.get(path)
    assert one.json()["headers"] == masked
    listed = client.get("/v1/webhooks").json()["webhooks"]
    assert next(w for w in listed if w["id"] == created.json()["id"])["headers"] == masked
    for answer in (one, client.get("/v1/webhooks")):
        assert credentials["Authorization"] not in answer.text

    # Sending the mask back keeps the stored value; a new value replaces it.
    patched = client.patch(path, json={"headers": {**masked, "X-Team": "b"}})
    assert patched.status_code == 200, patched.text
    assert patched.json()["headers"] == masked
    assert credentials["Authorization"] not in patched.text
    unknown = client.patch(path, json={"headers": {"X-New": "********"}})
    assert "X-New" in str(error_of(unknown, 422, "validation_error")["details"])
    event_id = publish(client, f"{kind}.sent")["id"]
    (got,) = receiver.wait_events([event_id])
    assert got.headers["authorization"] == credentials["Authorization"]
    assert got.headers["x-team"] == "b"


def test_an_endpoint_body_over_its_limit_names_the_real_limit(client: httpx.Client) -> None:
    body = b'{"url": "http://127.0.0.1:9/", "description": "%s"}' % (b"x" * (1 << 20))
    error = error_of(
        client.post("/v1/webhooks", content=body, headers={"content-type": "application/json"}),
        413,
        "body_too_large",
    )
    assert str(1 << 20) in error["message"]
    assert "TIDINGS_MAX_BODY_BYTES" not in error["message"]


def test_a_named_local_receiver_is_reached_at_its_vetted_address_with_its_name_as_host(
    client: httpx.Client,
) -> None:
    # Private destinations are allowed on this server: the name is still resolved once per
    # attempt, vetted, and the connection goes to that address (never a second lookup).
    kind = "t" + uuid.uuid4().hex[:10]
    with Receiver() as receiver:
        url = receiver.url.replace("127.0.0.1", "localhost")
        created = client.post("/v1/webhooks", json={"url": url, "events": [f"{kind}.#"]})
        assert created.status_code == 201, created.text
        event_id = publish(client, f"{kind}.sent")["id"]
        (got,) = receiver.wait_events([event_id])
    assert got.headers["host"] == f"localhost:{receiver.port}"
    client.delete(f"/v1/webhooks/{created.json()['id']}")
