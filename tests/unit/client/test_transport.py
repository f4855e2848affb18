"""The client over a mock transport: what is sent, what is sent again, and what is raised."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import httpx2
import orjson
import pytest

from tidings.client import Client, TidingsError
from tidings.client import _sync as sync_face

PUBLISHED = {"id": "e1", "seq": 1, "duplicate": False}


@pytest.fixture(autouse=True)
def no_waiting(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    waits: list[float] = []
    monkeypatch.setattr(sync_face.time, "sleep", waits.append)
    return waits


def client_answering(*answers: httpx2.Response | Exception) -> tuple[Client, list[httpx2.Request]]:
    sent: list[httpx2.Request] = []
    pending = list(answers)

    def handle(request: httpx2.Request) -> httpx2.Response:
        sent.append(request)
        answer = pending.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    return Client("http://hub", key="tdk_x", transport=httpx2.MockTransport(handle)), sent


def busy() -> httpx2.Response:
    body = {"error": {"code": "not_ready", "message": "starting"}}
    return httpx2.Response(503, json=body, headers={"Retry-After": "1"})


def test_a_publish_sends_the_event_and_the_key_and_reads_the_answer() -> None:
    client, sent = client_answering(httpx2.Response(201, json=PUBLISHED))
    result = client.publish("door.opened", {"door": "front"}, subject="d1")
    assert (result.id, result.seq, result.duplicate) == ("e1", 1, False)
    assert orjson.loads(sent[0].content) == {
        "type": "door.opened",
        "data": {"door": "front"},
        "subject": "d1",
    }
    assert sent[0].headers["X-API-Key"] == "tdk_x"
    assert sent[0].headers["User-Agent"].startswith("tidings-python/")


def test_a_publish_with_an_idempotency_key_is_sent_again_after_a_503(
    no_waiting: list[float],
) -> None:
    client, sent = client_answering(busy(), httpx2.Response(201, json=PUBLISHED))
    assert client.publish("door.opened", idempotency_key="k1").seq == 1
    assert len(sent) == 2 and no_waiting == [1.0]


def test_a_publish_without_a_key_is_not_sent_again_and_raises_the_503() -> None:
    client, sent = client_answering(busy(), httpx2.Response(201, json=PUBLISHED))
    with pytest.raises(TidingsError) as raised:
        client.publish("door.opened")
    assert (raised.value.status, raised.value.code, raised.value.retry_after) == (
        503,
        "not_ready",
        1.0,
    )
    assert len(sent) == 1


def test_a_lost_answer_to_a_get_is_asked_again_but_not_to_a_plain_publish() -> None:
    client, sent = client_answering(
        httpx2.ReadError("reset"), httpx2.Response(200, json={"events": {}})
    )
    assert client.stats() == {"events": {}}
    client, sent = client_answering(httpx2.ReadError("reset"))
    with pytest.raises(TidingsError) as raised:
        client.publish("door.opened")
    assert raised.value.code == "transport_error" and raised.value.status is None
    assert len(sent) == 1


def test_a_refused_connection_is_tried_again_even_for_a_plain_publish() -> None:
    client, sent = client_answering(
        httpx2.ConnectError("refused"), httpx2.Response(201, json=PUBLISHED)
    )
    assert client.publish("door.opened").seq == 1
    assert len(sent) == 2


def test_an_answer_that_is_not_the_error_shape_raises_not_tidings() -> None:
    client, _ = client_answering(httpx2.Response(502, text="<html>bad gateway</html>"))
    with pytest.raises(TidingsError) as raised:
        client.publish("door.opened")
    assert (raised.value.code, raised.value.status) == ("not_tidings", 502)


def test_every_refusal_keeps_code_message_and_details() -> None:
    details = [{"loc": ["body", 0, "type"], "msg": "required"}]
    body = {"error": {"code": "validation_error", "message": "bad", "details": details}}
    client, _ = client_answering(httpx2.Response(422, json=body))
    with pytest.raises(TidingsError) as raised:
        client.publish_batch([{"data": 1}])
    assert (raised.value.code, raised.value.message, raised.value.details) == (
        "validation_error",
        "bad",
        details,
    )


def test_filters_become_the_query_parameters_of_design() -> None:
    client, sent = client_answering(httpx2.Response(200, json={"events": [], "next": None}))
    list(
        client.query(
            type=["door.*", "room.#"],
            trace_id="t1",
            where={"data.room": ["hall", "attic"], "metadata.ok": True},
            order="asc",
            limit=5,
        )
    )
    assert list(sent[0].url.params.multi_items()) == [
        ("type", "door.*,room.#"),
        ("trace_id", "t1"),
        ("data.room", "hall,attic"),
        ("metadata.ok", "true"),
        ("order", "asc"),
        ("limit", "5"),
    ]


def test_keys_are_created_and_listed_as_design_describes() -> None:
    key = {"id": "key_1", "key": "tdk_secret", "prefix": "tdk_sec", "name": "ci"}
    client, sent = client_answering(
        httpx2.Response(201, json={**key, "scopes": ["publish"], "tenant": "default"}),
        httpx2.Response(200, json={"keys": [{"id": "key_1", "scopes": ["publish"]}]}),
    )
    created = client.create_key("ci", ["publish"], max_streams=2)
    assert (created.id, created.key, created.scopes) == ("key_1", "tdk_secret", ["publish"])
    assert orjson.loads(sent[0].content) == {"name": "ci", "scopes": ["publish"], "max_streams": 2}
    assert [k.key for k in client.list_keys()] == [None]


def test_a_root_key_names_another_tenant_in_the_body_or_the_query() -> None:
    hook = {"id": "wh_1", "url": "http://h/x", "events": ["#"]}
    client, sent = client_answering(
        httpx2.Response(201, json=hook),
        httpx2.Response(200, json={"webhooks": [hook]}),
        httpx2.Response(200, json={"events": {}}),
        httpx2.Response(200, json={"dead_letters": [], "next": None}),
        httpx2.Response(200, json={"redriven": 0, "failed": 0, "events": 0, "failures": []}),
        httpx2.Response(200, json={"events": [], "next": None}),
    )
    client.create_webhook("http://h/x", tenant="acme")
    client.list_webhooks(tenant="acme")
    client.stats(tenant="acme")
    list(client.dead_letters(tenant="acme"))
    client.redrive_dead_letters(source="s", tenant="acme")
    list(client.query(type="a", tenant="acme"))
    assert orjson.loads(sent[0].content)["tenant"] == "acme"
    for request in (sent[1], sent[2], sent[3], sent[5]):
        assert request.url.params["tenant"] == "acme", request.url
    assert orjson.loads(sent[4].content) == {"source": "s", "tenant": "acme"}


def test_an_id_with_a_slash_is_refused_before_anything_is_sent() -> None:
    client, sent = client_answering()
    with pytest.raises(TidingsError):
        client.get_event("../stats")
    assert sent == []


def test_export_bytes_hands_out_the_body_byte_for_byte_and_raises_a_refusal() -> None:
    body = b'seq,id\n1,"a\r\nb"\n'
    client, sent = client_answering(
        httpx2.Response(200, content=body, headers={"Content-Type": "text/csv"}),
        httpx2.Response(400, json={"error": {"code": "invalid_parameter", "message": "no"}}),
    )
    assert b"".join(client.export_bytes(format="csv", source="hall")) == body
    assert sent[0].url.params.multi_items() == [("format", "csv"), ("source", "hall")]
    with pytest.raises(TidingsError) as raised:
        b"".join(client.export_bytes(since="never"))
    assert (raised.value.status, raised.value.code) == (400, "invalid_parameter")


def test_an_export_cut_mid_stream_raises_a_tidings_error_from_lines_and_bytes() -> None:
    def cut() -> Iterator[bytes]:
        yield b'{"seq": 1}\n'
        raise httpx2.ReadError("connection reset")

    for read in ("export_lines", "export_bytes"):
        client, _ = client_answering(httpx2.Response(200, content=cut()))
        pieces = getattr(client, read)(format="ndjson")
        assert next(pieces)  # the first piece arrives before the failure
        with pytest.raises(TidingsError) as raised:
            list(pieces)
        assert raised.value.code == "transport_error"


def test_webhook_filter_values_keep_the_form_they_were_given_in() -> None:
    created = {"id": "wh_1", "url": "https://example.com/h"}
    client, sent = client_answering(
        httpx2.Response(201, json=created), httpx2.Response(201, json=created)
    )
    client.create_webhook("https://example.com/h", source="hall", exclude_source=["erp", "ci"])
    client.create_webhook("https://example.com/h", where={"data.room": ["a", "b"]})
    assert orjson.loads(sent[0].content)["filter"] == {
        "source": "hall",
        "exclude_source": ["erp", "ci"],
    }
    assert orjson.loads(sent[1].content)["filter"] == {"data.room": "a,b"}


def test_importing_the_client_loads_no_server_dependency() -> None:
    code = (
        "import sys, tidings.client, tidings.webhooks; "
        "print(sorted(m for m in ('fastapi', 'starlette', 'uvicorn', 'asyncpg', 'pydantic', "
        "'tidings.hub', 'tidings.api', 'prometheus_client', 'typer') if m in sys.modules))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout
    assert loaded.strip() == "[]"
