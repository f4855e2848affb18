"""CloudEvents in (structured, batch, binary) and out, checked against the official SDK."""

from __future__ import annotations

import base64
import dataclasses
import re
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from cloudevents.core.bindings import http
from cloudevents.core.bindings.http import HTTPMessage
from cloudevents.core.v1.event import CloudEvent

from tidings.envelope.cloudevents import (
    STRUCTURED,
    from_batch,
    from_binary,
    from_structured,
    is_binary,
    to_binary_headers,
    to_structured,
)
from tidings.envelope.model import Candidate, Event
from tidings.envelope.timefmt import parse_iso
from tidings.envelope.validate import Limits, PublishContext
from tidings.errors import TidingsError

CTX = PublishContext()
LIMITS = Limits()
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE}-00f067aa0ba902b7-01"
WHEN = datetime(2026, 11, 23, 10, 0, 0, 123456, tzinfo=UTC)
TRACEPARENT_RE = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-01")


def sdk_event(data: Any = None, **attributes: Any) -> CloudEvent:
    base: dict[str, Any] = {
        "type": "com.example.user.created",
        "source": "/tests/users",
        "id": "A-1",
        "time": WHEN,
    }
    return CloudEvent(base | attributes, data=data)


def structured_body(event: CloudEvent) -> Any:
    message = http.to_structured_event(event)
    assert message.headers["content-type"] == STRUCTURED
    return orjson.loads(message.body)


def stored(candidate: Candidate, seq: int = 7) -> Event:
    """The event a store would give back for ``candidate``."""
    fields = dataclasses.asdict(candidate)
    fields.pop("dedupe_key")
    return Event(seq=seq, received_at_us=candidate.time_us, **fields)


def make_event(**overrides: Any) -> Event:
    fields: dict[str, Any] = {
        "seq": 42,
        "id": "0193a5f0-8c1e-7abc-9def-0123456789ab",
        "type": "device.state_changed",
        "source": "smartthings",
        "subject": "device-123",
        "time_us": parse_iso("2026-11-23T10:00:00.012Z"),
        "received_at_us": parse_iso("2026-11-23T10:00:00.020Z"),
        "trace_id": TRACE,
        "idempotency_key": None,
        "data_json": '{"switch":"on"}',
        "metadata_json": "{}",
    }
    return Event(**(fields | overrides))


def refused(call: Any, *args: Any) -> TidingsError:
    with pytest.raises(TidingsError) as caught:
        call(*args)
    return caught.value


def locs(error: TidingsError) -> list[list[str | int]]:
    assert error.status == 422, error.message
    return [detail["loc"] for detail in error.details]


# --- structured mode in ---


def test_a_structured_cloudevent_maps_onto_the_envelope() -> None:
    body = structured_body(sdk_event({"name": "ada"}, subject="u-1", myext="v", flag=True))
    [candidate] = from_structured(body, CTX, LIMITS)
    assert candidate.id == "A-1"
    assert candidate.source == "/tests/users"
    assert candidate.type == "com.example.user.created"
    assert candidate.subject == "u-1"
    assert candidate.time_us == int(WHEN.timestamp()) * 1_000_000 + 123_456
    assert orjson.loads(candidate.data_json) == {"name": "ada"}
    metadata = orjson.loads(candidate.metadata_json)
    assert metadata == {"cloudevents": {"myext": "v", "flag": True}}


def test_a_cloudevent_id_is_deduplicated_per_source() -> None:
    [candidate] = from_structured(structured_body(sdk_event()), CTX, LIMITS)
    assert candidate.dedupe_key == "ce:/tests/users\x1fA-1"
    assert candidate.idempotency_key is None


def test_an_idempotency_key_header_replaces_the_cloudevents_dedupe_key() -> None:
    body = structured_body(sdk_event())
    [candidate] = from_structured(body, PublishContext(idempotency_key="req"), LIMITS)
    assert candidate.idempotency_key == "req"
    assert candidate.dedupe_key == "k:req"


def test_the_traceparent_extension_gives_the_trace_id_and_is_kept() -> None:
    body = structured_body(sdk_event(traceparent=TRACEPARENT))
    [candidate] = from_structured(body, PublishContext(trace_id="1" * 32), LIMITS)
    assert candidate.trace_id == TRACE
    assert orjson.loads(candidate.metadata_json) == {"cloudevents": {"traceparent": TRACEPARENT}}


def test_an_invalid_traceparent_extension_falls_back_to_the_request_trace() -> None:
    body = structured_body(sdk_event(traceparent=f"ff-{TRACE}-00f067aa0ba902b7-01"))
    [candidate] = from_structured(body, PublishContext(trace_id="1" * 32), LIMITS)
    assert candidate.trace_id == "1" * 32


def test_without_a_traceparent_a_cloudevent_gets_a_new_trace_id() -> None:
    [candidate] = from_structured(structured_body(sdk_event()), CTX, LIMITS)
    assert re.fullmatch(r"[0-9a-f]{32}", candidate.trace_id)
    assert candidate.trace_id != "0" * 32


def test_datacontenttype_and_dataschema_are_kept_in_metadata() -> None:
    body = structured_body(
        sdk_event("hello", datacontenttype="text/plain", dataschema="https://example.com/s")
    )
    [candidate] = from_structured(body, CTX, LIMITS)
    assert orjson.loads(candidate.data_json) == "hello"
    assert orjson.loads(candidate.metadata_json)["cloudevents"] == {
        "datacontenttype": "text/plain",
        "dataschema": "https://example.com/s",
    }


def test_structured_data_base64_is_kept_as_base64_and_flagged() -> None:
    body = structured_body(sdk_event(b"\x00\xffbin", datacontenttype="application/octet-stream"))
    assert "data_base64" in body
    [candidate] = from_structured(body, CTX, LIMITS)
    assert base64.b64decode(orjson.loads(candidate.data_json)) == b"\x00\xffbin"
    assert orjson.loads(candidate.metadata_json)["cloudevents"]["data_base64"] is True


def test_a_cloudevent_without_data_has_null_data() -> None:
    [candidate] = from_structured(structured_body(sdk_event()), CTX, LIMITS)
    assert candidate.data_json == "null"


def test_a_null_attribute_is_absent() -> None:
    body = structured_body(sdk_event()) | {"subject": None, "myext": None}
    [candidate] = from_structured(body, CTX, LIMITS)
    assert candidate.subject is None
    assert orjson.loads(candidate.metadata_json) == {}


def test_an_extension_name_longer_than_20_characters_is_accepted() -> None:
    name = "averyveryverylongextensionname"
    [candidate] = from_structured(structured_body(sdk_event(**{name: "x"})), CTX, LIMITS)
    assert orjson.loads(candidate.metadata_json) == {"cloudevents": {name: "x"}}


@pytest.mark.parametrize("missing", ["specversion", "id", "source", "type"])
def test_a_missing_required_attribute_is_refused_by_name(missing: str) -> None:
    body = structured_body(sdk_event())
    del body[missing]
    assert locs(refused(from_structured, body, CTX, LIMITS)) == [["body", missing]]


@pytest.mark.parametrize("field", ["id", "source", "type"])
@pytest.mark.parametrize("value", ["", 5])
def test_an_empty_or_non_string_required_attribute_is_refused(field: str, value: Any) -> None:
    body = structured_body(sdk_event()) | {field: value}
    assert locs(refused(from_structured, body, CTX, LIMITS)) == [["body", field]]


def test_specversion_0_3_is_refused() -> None:
    body = structured_body(sdk_event()) | {"specversion": "0.3"}
    error = refused(from_structured, body, CTX, LIMITS)
    assert locs(error) == [["body", "specversion"]]
    assert "1.0" in error.details[0]["msg"]


@pytest.mark.parametrize("name", ["my_ext", "MyExt", "my-ext", "ext\n", "é"])
def test_an_extension_name_that_is_not_lowercase_alphanumeric_is_refused(name: str) -> None:
    body = structured_body(sdk_event()) | {name: "x"}
    assert locs(refused(from_structured, body, CTX, LIMITS)) == [["body", name]]


@pytest.mark.parametrize("value", [{"a": 1}, [1, 2]])
def test_an_extension_value_that_is_an_object_or_array_is_refused(value: Any) -> None:
    body = structured_body(sdk_event()) | {"myext": value}
    assert locs(refused(from_structured, body, CTX, LIMITS)) == [["body", "myext"]]


def test_every_attribute_problem_is_reported_at_once() -> None:
    body = {"specversion": "0.3", "source": "/s", "Bad": 1}
    assert sorted(map(str, locs(refused(from_structured, body, CTX, LIMITS)))) == sorted(
        map(str, [["body", "specversion"], ["body", "id"], ["body", "type"], ["body", "Bad"]])
    )


def test_data_and_data_base64_together_are_refused() -> None:
    body = structured_body(sdk_event({"a": 1})) | {"data_base64": "AAAA"}
    assert locs(refused(from_structured, body, CTX, LIMITS)) == [["body"]]


@pytest.mark.parametrize("value", ["not base64!", 5])
def test_data_base64_that_is_not_base64_is_refused(value: Any) -> None:
    body = structured_body(sdk_event()) | {"data_base64": value}
    assert locs(refused(from_structured, body, CTX, LIMITS)) == [["body", "data_base64"]]


def test_a_cloudevent_type_outside_the_type_grammar_is_refused_on_type() -> None:
    body = structured_body(sdk_event(type="com.example/user created"))
    assert locs(refused(from_structured, body, CTX, LIMITS)) == [["body", "type"]]


def test_an_invalid_time_is_refused_on_time() -> None:
    body = structured_body(sdk_event()) | {"time": "yesterday"}
    assert locs(refused(from_structured, body, CTX, LIMITS)) == [["body", "time"]]


@pytest.mark.parametrize("body", [[], "x", 5, None])
def test_a_structured_body_must_be_an_object(body: Any) -> None:
    assert locs(refused(from_structured, body, CTX, LIMITS)) == [["body"]]


def test_a_structured_cloudevent_over_max_event_bytes_is_too_large() -> None:
    body = structured_body(sdk_event({"blob": "x" * 1000}))
    error = refused(from_structured, body, CTX, Limits(max_event_bytes=500))
    assert (error.status, error.code) == (413, "event_too_large")


# --- batch mode in ---


def test_a_batch_gives_one_candidate_per_cloudevent_in_order() -> None:
    body = [structured_body(sdk_event({"n": i}, id=f"B-{i}")) for i in range(3)]
    candidates = from_batch(body, CTX, LIMITS)
    assert [c.id for c in candidates] == ["B-0", "B-1", "B-2"]
    assert [orjson.loads(c.data_json) for c in candidates] == [{"n": 0}, {"n": 1}, {"n": 2}]
    assert [c.dedupe_key for c in candidates] == [f"ce:/tests/users\x1fB-{i}" for i in range(3)]


def test_an_idempotency_key_header_on_a_batch_gives_key_colon_index() -> None:
    body = [structured_body(sdk_event(id=f"B-{i}")) for i in range(2)]
    candidates = from_batch(body, PublishContext(idempotency_key="req"), LIMITS)
    assert [c.idempotency_key for c in candidates] == ["req:0", "req:1"]
    assert [c.dedupe_key for c in candidates] == ["k:req:0", "k:req:1"]


def test_a_batch_is_all_or_nothing_naming_each_bad_index() -> None:
    good = structured_body(sdk_event())
    body = [good, good | {"specversion": "0.3"}, 5, good | {"type": "a b"}]
    assert locs(refused(from_batch, body, CTX, LIMITS)) == [
        ["body", 1, "specversion"],
        ["body", 2],
        ["body", 3, "type"],
    ]


@pytest.mark.parametrize("body", [{"specversion": "1.0"}, "x", None])
def test_a_batch_body_must_be_an_array(body: Any) -> None:
    assert locs(refused(from_batch, body, CTX, LIMITS)) == [["body"]]


def test_an_empty_batch_is_refused() -> None:
    assert locs(refused(from_batch, [], CTX, LIMITS)) == [["body"]]


def test_a_batch_over_max_batch_is_too_large() -> None:
    body = [structured_body(sdk_event(id=f"B-{i}")) for i in range(3)]
    error = refused(from_batch, body, CTX, Limits(max_batch=2))
    assert (error.status, error.code) == (413, "batch_too_large")


# --- binary mode in ---


def binary(event: CloudEvent, ctx: PublishContext = CTX) -> Candidate:
    message = http.to_binary_event(event)
    assert is_binary(message.headers)
    [candidate] = from_binary(message.headers, message.body, ctx, LIMITS)
    return candidate


def test_a_binary_cloudevent_maps_onto_the_envelope() -> None:
    candidate = binary(
        sdk_event({"name": "ada"}, subject="u 1/é%", myext="a b", traceparent=TRACEPARENT)
    )
    assert candidate.id == "A-1"
    assert candidate.source == "/tests/users"
    assert candidate.type == "com.example.user.created"
    assert candidate.subject == "u 1/é%"
    assert candidate.time_us == int(WHEN.timestamp()) * 1_000_000 + 123_456
    assert candidate.trace_id == TRACE
    assert candidate.dedupe_key == "ce:/tests/users\x1fA-1"
    assert orjson.loads(candidate.data_json) == {"name": "ada"}
    assert orjson.loads(candidate.metadata_json) == {
        "cloudevents": {"myext": "a b", "traceparent": TRACEPARENT}
    }


def test_a_binary_json_body_with_a_content_type_keeps_it() -> None:
    candidate = binary(sdk_event({"a": 1}, datacontenttype="application/vnd.x+json"))
    assert orjson.loads(candidate.data_json) == {"a": 1}
    assert orjson.loads(candidate.metadata_json) == {
        "cloudevents": {"datacontenttype": "application/vnd.x+json"}
    }


def test_a_binary_text_body_becomes_a_string() -> None:
    candidate = binary(sdk_event("héllo", datacontenttype="text/plain; charset=utf-8"))
    assert orjson.loads(candidate.data_json) == "héllo"


def test_a_binary_non_json_body_is_kept_as_base64() -> None:
    candidate = binary(sdk_event(b"\x00\x01\xff", datacontenttype="application/octet-stream"))
    assert base64.b64decode(orjson.loads(candidate.data_json)) == b"\x00\x01\xff"
    assert orjson.loads(candidate.metadata_json) == {
        "cloudevents": {"datacontenttype": "application/octet-stream", "data_base64": True}
    }


def test_a_binary_cloudevent_without_body_has_null_data() -> None:
    assert binary(sdk_event()).data_json == "null"


def test_binary_header_names_are_case_insensitive() -> None:
    headers = {
        "Ce-Specversion": "1.0",
        "CE-ID": "x-1",
        "Ce-Source": "/s",
        "Ce-Type": "a.b",
        "Content-Type": "text/plain",
    }
    [candidate] = from_binary(headers, b"hi", CTX, LIMITS)
    assert (candidate.id, candidate.source, candidate.type) == ("x-1", "/s", "a.b")
    assert orjson.loads(candidate.data_json) == "hi"


def test_a_binary_idempotency_key_header_replaces_the_cloudevents_dedupe_key() -> None:
    candidate = binary(sdk_event(), PublishContext(idempotency_key="req"))
    assert candidate.dedupe_key == "k:req"


def test_a_binary_body_that_is_not_json_is_a_400() -> None:
    message = http.to_binary_event(sdk_event("{not json", datacontenttype="application/json"))
    error = refused(from_binary, message.headers, message.body, CTX, LIMITS)
    assert (error.status, error.code) == (400, "malformed_json")


def test_a_binary_text_body_that_is_not_utf8_is_a_400() -> None:
    message = http.to_binary_event(sdk_event(b"\xff\xfe", datacontenttype="text/plain"))
    error = refused(from_binary, message.headers, message.body, CTX, LIMITS)
    assert (error.status, error.code) == (400, "malformed_body")


@pytest.mark.parametrize("missing", ["ce-specversion", "ce-id", "ce-source", "ce-type"])
def test_a_binary_cloudevent_missing_an_attribute_is_refused_on_the_header(missing: str) -> None:
    headers = dict(http.to_binary_event(sdk_event()).headers)
    del headers[missing]
    error = refused(from_binary, headers, b"", CTX, LIMITS)
    assert locs(error) == [["header", missing.removeprefix("ce-")]]


def test_a_binary_extension_with_a_bad_name_is_refused() -> None:
    headers = dict(http.to_binary_event(sdk_event()).headers) | {"ce-my_ext": "x"}
    assert locs(refused(from_binary, headers, b"", CTX, LIMITS)) == [["header", "my_ext"]]


def test_a_request_without_ce_specversion_is_not_binary_mode() -> None:
    assert not is_binary({"content-type": "application/json", "ce-id": "x"})


def test_binary_mode_is_recognised_whatever_the_header_case() -> None:
    assert is_binary({"Ce-Specversion": "1.0"})


# --- out: our CloudEvents parsed by the SDK ---


def parse_structured(out: dict[str, Any]) -> Any:
    message = HTTPMessage(headers={"content-type": STRUCTURED}, body=orjson.dumps(out))
    return http.from_http_event(message)


def parse_binary(event: Event, body: bytes) -> Any:
    headers = to_binary_headers(event)
    assert all(re.fullmatch(r"[\x21-\x7e]*", value) for value in headers.values()), headers
    return http.from_http_event(HTTPMessage(headers=headers, body=body))


def test_to_structured_is_a_valid_cloudevent_with_the_same_attributes_and_data() -> None:
    event = make_event()
    parsed = parse_structured(to_structured(event))
    assert parsed.get_specversion() == "1.0"
    assert parsed.get_id() == event.id
    assert parsed.get_source() == "smartthings"
    assert parsed.get_type() == "device.state_changed"
    assert parsed.get_subject() == "device-123"
    assert parsed.get_time() == datetime(2026, 11, 23, 10, 0, 0, 12_000, tzinfo=UTC)
    assert parsed.get_datacontenttype() == "application/json"
    assert parsed.get_data() == {"switch": "on"}
    assert parsed.get_extension("sequence") == "42"


def test_to_structured_traceparent_carries_the_trace_id() -> None:
    parsed = parse_structured(to_structured(make_event()))
    match = TRACEPARENT_RE.fullmatch(parsed.get_extension("traceparent"))
    assert match is not None
    assert match.group(1) == TRACE
    assert match.group(2) != "0" * 16


@pytest.mark.parametrize("event_id", ["A-1", "evt_42", "x", "0000-0000-0000-0000-0000"])
def test_a_client_chosen_id_still_gives_a_valid_traceparent(event_id: str) -> None:
    out = to_structured(make_event(id=event_id))
    match = TRACEPARENT_RE.fullmatch(out["traceparent"])
    assert match is not None
    assert match.group(2) != "0" * 16


def test_to_structured_leaves_out_null_data_and_an_empty_subject() -> None:
    out = to_structured(make_event(data_json="null", subject=""))
    assert "data" not in out
    assert "subject" not in out
    assert parse_structured(out).get_data() is None


def test_to_structured_keeps_the_extensions_that_came_in() -> None:
    metadata = {
        "cloudevents": {
            "myext": "v",
            "count": 3,
            "flag": True,
            "datacontenttype": "text/plain",
            "traceparent": TRACEPARENT,
        }
    }
    event = make_event(data_json='"hello"', metadata_json=orjson.dumps(metadata).decode())
    parsed = parse_structured(to_structured(event))
    assert parsed.get_extension("myext") == "v"
    assert parsed.get_extension("count") == 3
    assert parsed.get_extension("flag") is True
    assert parsed.get_extension("traceparent") == TRACEPARENT
    assert parsed.get_datacontenttype() == "text/plain"
    assert parsed.get_data() == "hello"


def test_metadata_never_replaces_a_core_attribute() -> None:
    metadata = {"cloudevents": {"id": "evil", "type": "evil", "specversion": "0.3", "Bad": 1}}
    out = to_structured(make_event(metadata_json=orjson.dumps(metadata).decode()))
    assert (out["id"], out["type"], out["specversion"]) == (
        make_event().id,
        make_event().type,
        "1.0",
    )
    assert "Bad" not in out
    parse_structured(out)


def test_to_structured_gives_base64_data_back_as_data_base64() -> None:
    metadata = {"cloudevents": {"datacontenttype": "image/png", "data_base64": True}}
    event = make_event(
        data_json=orjson.dumps(base64.b64encode(b"\x89PNG").decode()).decode(),
        metadata_json=orjson.dumps(metadata).decode(),
    )
    out = to_structured(event)
    assert "data" not in out
    parsed = parse_structured(out)
    assert parsed.get_data() == b"\x89PNG"
    assert parsed.get_datacontenttype() == "image/png"


def test_to_binary_headers_parse_back_to_the_same_attributes_and_data() -> None:
    metadata = {"cloudevents": {"myext": 'a b"c%d é', "flag": False}}
    event = make_event(subject="dev 1/é", metadata_json=orjson.dumps(metadata).decode())
    parsed = parse_binary(event, event.data_json.encode())
    assert parsed.get_id() == event.id
    assert parsed.get_source() == event.source
    assert parsed.get_type() == event.type
    assert parsed.get_subject() == "dev 1/é"
    assert parsed.get_time() == datetime(2026, 11, 23, 10, 0, 0, 12_000, tzinfo=UTC)
    assert parsed.get_extension("myext") == 'a b"c%d é'
    assert parsed.get_extension("flag") == "false"
    assert parsed.get_extension("sequence") == "42"
    assert parsed.get_datacontenttype() == "application/json"
    assert parsed.get_data() == {"switch": "on"}


def test_to_binary_headers_leave_data_out_of_the_headers() -> None:
    headers = to_binary_headers(make_event())
    assert not {"ce-data", "ce-data_base64", "ce-datacontenttype"} & set(headers)
    assert headers["content-type"] == "application/json"


def test_a_cloudevent_survives_the_round_trip_through_tidings() -> None:
    original = sdk_event(
        {"name": "ada", "n": [1, 2.5, None]}, subject="u-1", myext="v", traceparent=TRACEPARENT
    )
    [candidate] = from_structured(structured_body(original), CTX, LIMITS)
    parsed = parse_structured(to_structured(stored(candidate)))
    for getter in ("get_id", "get_source", "get_type", "get_subject", "get_data"):
        assert getattr(parsed, getter)() == getattr(original, getter)()
    assert parsed.get_extension("myext") == "v"
    assert parsed.get_extension("traceparent") == TRACEPARENT
    # Tidings writes milliseconds
    assert parsed.get_time() == WHEN.replace(microsecond=123_000)


def test_a_binary_cloudevent_survives_the_round_trip_through_tidings() -> None:
    original = sdk_event(b"\x00raw", datacontenttype="application/octet-stream", myext="v")
    candidate = binary(original)
    parsed = parse_structured(to_structured(stored(candidate)))
    assert parsed.get_data() == b"\x00raw"
    assert parsed.get_datacontenttype() == "application/octet-stream"
    assert parsed.get_extension("myext") == "v"
