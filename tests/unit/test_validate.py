"""Publish input validation: every field's rules and defaults, batches, limits, 422 details."""

from __future__ import annotations

import time
import uuid
from typing import Any

import orjson
import pytest

from tidings.envelope.ids import trace_id_from_traceparent
from tidings.envelope.model import Candidate
from tidings.envelope.timefmt import parse_iso
from tidings.envelope.validate import Limits, PublishContext, candidates_from_json
from tidings.errors import TidingsError

CTX = PublishContext()
LIMITS = Limits()
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


def one(body: dict[str, Any], ctx: PublishContext = CTX, limits: Limits = LIMITS) -> Candidate:
    candidates, is_batch = candidates_from_json(body, ctx, limits)
    assert not is_batch
    assert len(candidates) == 1
    return candidates[0]


def refused(body: Any, ctx: PublishContext = CTX, limits: Limits = LIMITS) -> TidingsError:
    with pytest.raises(TidingsError) as caught:
        candidates_from_json(body, ctx, limits)
    return caught.value


def details_of(body: Any, limits: Limits = LIMITS) -> list[dict[str, Any]]:
    error = refused(body, limits=limits)
    assert error.status == 422
    assert error.code == "validation_error"
    return error.details


def test_a_minimal_event_gets_every_default() -> None:
    before = time.time_ns() // 1000
    candidate = one({"type": "user.created"})
    after = time.time_ns() // 1000
    assert candidate.type == "user.created"
    assert candidate.source == "api"
    assert candidate.subject is None
    assert candidate.data_json == "null"
    assert candidate.metadata_json == "{}"
    assert uuid.UUID(candidate.id).version == 7
    assert before <= candidate.time_us <= after
    assert len(candidate.trace_id) == 32
    assert int(candidate.trace_id, 16) != 0
    assert candidate.idempotency_key is None
    assert candidate.dedupe_key is None
    assert candidate.tenant == "default"


def test_every_given_field_is_kept() -> None:
    candidate = one(
        {
            "type": "device.state_changed",
            "source": "smartthings",
            "subject": "device-123",
            "data": {"switch": "on", "level": 5},
            "metadata": {"room": "hall"},
            "id": "evt-1",
            "time": "2026-11-23T10:00:00.012Z",
            "trace_id": TRACE,
            "idempotency_key": "k-1",
        }
    )
    assert candidate.source == "smartthings"
    assert candidate.subject == "device-123"
    assert orjson.loads(candidate.data_json) == {"switch": "on", "level": 5}
    assert orjson.loads(candidate.metadata_json) == {"room": "hall"}
    assert candidate.id == "evt-1"
    assert candidate.time_us == parse_iso("2026-11-23T10:00:00.012Z")
    assert candidate.trace_id == TRACE
    assert candidate.idempotency_key == "k-1"
    assert candidate.dedupe_key == "k:k-1"


def test_the_tenant_comes_from_the_request_context() -> None:
    assert one({"type": "a"}, PublishContext(tenant="acme")).tenant == "acme"


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("", "empty"),
        ("x" * 201, "longer than 200"),
        ("user created", "segments"),
        ("user..created", "segments"),
        ("user.", "segments"),
        ("ünïcode", "segments"),
        ("user.created\n", "segments"),
        (5, "valid string"),
        (None, "valid string"),
    ],
)
def test_an_invalid_type_is_refused_naming_the_field(value: Any, fragment: str) -> None:
    [detail] = details_of({"type": value})
    assert detail["loc"] == ["body", "type"]
    assert fragment in detail["msg"]


def test_a_missing_type_is_a_required_field() -> None:
    assert details_of({"source": "x"}) == [{"loc": ["body", "type"], "msg": "field required"}]


def test_a_type_of_200_characters_is_accepted() -> None:
    assert one({"type": "x" * 200}).type == "x" * 200


@pytest.mark.parametrize("value", ["", "x" * 201, "a\nb", "tab\there", "nul\x00", "del\x7f", 3])
def test_an_invalid_source_is_refused(value: Any) -> None:
    [detail] = details_of({"type": "a", "source": value})
    assert detail["loc"] == ["body", "source"]


def test_a_source_may_hold_printable_unicode_and_spaces() -> None:
    assert one({"type": "a", "source": "my sénsor/1"}).source == "my sénsor/1"


def test_a_subject_up_to_1000_characters_is_accepted() -> None:
    assert one({"type": "a", "subject": "s" * 1000}).subject == "s" * 1000


@pytest.mark.parametrize("value", ["s" * 1001, 12, ["a"]])
def test_an_invalid_subject_is_refused(value: Any) -> None:
    [detail] = details_of({"type": "a", "subject": value})
    assert detail["loc"] == ["body", "subject"]


@pytest.mark.parametrize("data", [None, 1, 2.5, "text", True, [1, "a"], {"nested": {"x": [None]}}])
def test_data_may_be_any_json_value(data: Any) -> None:
    assert orjson.loads(one({"type": "a", "data": data}).data_json) == data


def test_payload_is_an_alias_of_data() -> None:
    candidate = one({"type": "a", "payload": {"x": 1}})
    assert orjson.loads(candidate.data_json) == {"x": 1}


def test_data_and_payload_together_are_refused() -> None:
    [detail] = details_of({"type": "a", "data": 1, "payload": 2})
    assert detail["loc"] == ["body", "payload"]


@pytest.mark.parametrize("value", [[], "x", 1, None])
def test_metadata_must_be_an_object(value: Any) -> None:
    [detail] = details_of({"type": "a", "metadata": value})
    assert detail["loc"] == ["body", "metadata"]


def test_unknown_fields_are_refused_by_name() -> None:
    details = details_of({"type": "a", "colour": "red", "Type": "b"})
    assert sorted(d["loc"][1] for d in details) == ["Type", "colour"]
    assert all(d["msg"] == "unknown field" for d in details)


def test_every_problem_of_one_event_is_reported() -> None:
    details = details_of({"type": "", "source": "", "trace_id": "nope"})
    assert sorted(d["loc"][1] for d in details) == ["source", "trace_id", "type"]


@pytest.mark.parametrize("value", ["", "x" * 201, "a\nb", 7])
def test_an_invalid_id_is_refused(value: Any) -> None:
    [detail] = details_of({"type": "a", "id": value})
    assert detail["loc"] == ["body", "id"]


def test_a_naive_time_is_taken_as_utc() -> None:
    candidate = one({"type": "a", "time": "2026-11-23T10:00:00"})
    assert candidate.time_us == parse_iso("2026-11-23T10:00:00Z")


def test_a_time_with_an_offset_is_converted_to_utc() -> None:
    candidate = one({"type": "a", "time": "2026-11-23T12:00:00.250+02:00"})
    assert candidate.time_us == parse_iso("2026-11-23T10:00:00.250Z")


def test_a_time_keeps_its_microseconds() -> None:
    candidate = one({"type": "a", "time": "2026-11-23T10:00:00.123456Z"})
    assert candidate.time_us % 1_000_000 == 123_456


@pytest.mark.parametrize("value", ["yesterday", "2026-13-01T00:00:00Z", [], {}, 0, 1_700_000_000])
def test_an_invalid_time_is_refused(value: Any) -> None:
    [detail] = details_of({"type": "a", "time": value})
    assert detail["loc"] == ["body", "time"]


def test_an_all_zero_trace_id_is_refused() -> None:
    [detail] = details_of({"type": "a", "trace_id": "0" * 32})
    assert detail["loc"] == ["body", "trace_id"]
    assert "zeros" in detail["msg"]


@pytest.mark.parametrize("value", [TRACE.upper(), TRACE[:-1], TRACE + "0", "g" * 32, 5])
def test_a_malformed_trace_id_is_refused(value: Any) -> None:
    [detail] = details_of({"type": "a", "trace_id": value})
    assert detail["loc"] == ["body", "trace_id"]


def test_the_trace_id_defaults_to_the_traceparent_header() -> None:
    ctx = PublishContext(trace_id=trace_id_from_traceparent(f"00-{TRACE}-00f067aa0ba902b7-01"))
    assert one({"type": "a"}, ctx).trace_id == TRACE


def test_a_trace_id_in_the_body_wins_over_the_traceparent_header() -> None:
    other = "1" * 32
    assert one({"type": "a", "trace_id": other}, PublishContext(trace_id=TRACE)).trace_id == other


@pytest.mark.parametrize(
    "header",
    [
        f"ff-{TRACE}-00f067aa0ba902b7-01",
        f"00-{'0' * 32}-00f067aa0ba902b7-01",
        f"00-{TRACE}-{'0' * 16}-01",
        "not a traceparent",
    ],
)
def test_an_invalid_traceparent_header_gives_a_new_trace_id(header: str) -> None:
    trace_id = one({"type": "a"}, PublishContext(trace_id=trace_id_from_traceparent(header)))
    assert trace_id.trace_id != TRACE
    assert len(trace_id.trace_id) == 32
    assert int(trace_id.trace_id, 16) != 0


def test_events_without_a_trace_get_distinct_trace_ids() -> None:
    assert one({"type": "a"}).trace_id != one({"type": "a"}).trace_id


def test_the_idempotency_key_header_is_the_key_of_a_single_event() -> None:
    candidate = one({"type": "a"}, PublishContext(idempotency_key="hdr-1"))
    assert candidate.idempotency_key == "hdr-1"
    assert candidate.dedupe_key == "k:hdr-1"


def test_an_idempotency_key_in_the_body_wins_over_the_header() -> None:
    candidate = one({"type": "a", "idempotency_key": "body"}, PublishContext(idempotency_key="h"))
    assert candidate.idempotency_key == "body"
    assert candidate.dedupe_key == "k:body"


@pytest.mark.parametrize("value", ["", "k" * 201, "a\rb"])
def test_an_invalid_idempotency_key_is_refused(value: str) -> None:
    [detail] = details_of({"type": "a", "idempotency_key": value})
    assert detail["loc"] == ["body", "idempotency_key"]


def test_without_a_key_there_is_no_dedupe_key() -> None:
    assert one({"type": "a"}).dedupe_key is None


@pytest.mark.parametrize("body", ["text", 5, None, True])
def test_a_body_that_is_neither_object_nor_array_is_refused(body: Any) -> None:
    assert details_of(body) == [{"loc": ["body"], "msg": "expected a JSON object or array"}]


def test_a_batch_gives_one_candidate_per_item_in_order() -> None:
    candidates, is_batch = candidates_from_json(
        [{"type": "a"}, {"type": "b", "payload": 2}], CTX, LIMITS
    )
    assert is_batch
    assert [c.type for c in candidates] == ["a", "b"]
    assert [c.data_json for c in candidates] == ["null", "2"]
    assert candidates[0].id < candidates[1].id


def test_a_batch_is_all_or_nothing_naming_each_bad_index() -> None:
    error = refused([{"type": "ok"}, {"type": ""}, {"type": "ok"}, 5, {"type": "b", "x": 1}])
    assert error.status == 422
    assert error.message.startswith("3 of 5 events")
    assert [d["loc"] for d in error.details] == [["body", 1, "type"], ["body", 3], ["body", 4, "x"]]


@pytest.mark.parametrize("item", [5, "x", None, [], [{"type": "a"}]])
def test_a_batch_item_that_is_not_an_object_is_refused(item: Any) -> None:
    assert details_of([{"type": "a"}, item]) == [
        {"loc": ["body", 1], "msg": "expected a JSON object"}
    ]


def test_an_empty_batch_is_refused() -> None:
    assert details_of([]) == [{"loc": ["body"], "msg": "expected 1 or more events"}]


def test_a_batch_of_exactly_max_batch_is_accepted() -> None:
    candidates, _ = candidates_from_json([{"type": "a"}] * 3, CTX, Limits(max_batch=3))
    assert len(candidates) == 3


def test_a_batch_over_max_batch_is_too_large() -> None:
    error = refused([{"type": "a"}] * 4, limits=Limits(max_batch=3))
    assert error.status == 413
    assert error.code == "batch_too_large"
    assert "TIDINGS_MAX_BATCH" in error.message


def test_the_batch_size_is_checked_before_the_items() -> None:
    error = refused([5] * 4, limits=Limits(max_batch=3))
    assert error.code == "batch_too_large"


def _sized(total: int) -> dict[str, Any]:
    """An event whose JSON is exactly ``total`` bytes."""
    empty = {"type": "a", "data": ""}
    return {"type": "a", "data": "x" * (total - len(orjson.dumps(empty)))}


def test_an_event_of_exactly_max_event_bytes_is_accepted() -> None:
    one(_sized(300), limits=Limits(max_event_bytes=300))


def test_an_event_over_max_event_bytes_is_too_large() -> None:
    error = refused(_sized(301), limits=Limits(max_event_bytes=300))
    assert error.status == 413
    assert error.code == "event_too_large"
    assert "TIDINGS_MAX_EVENT_BYTES" in error.message
    assert error.details[0]["loc"] == ["body"]


def test_a_too_large_event_in_a_batch_refuses_the_batch_naming_its_index() -> None:
    error = refused([{"type": "a"}, _sized(301)], limits=Limits(max_event_bytes=300))
    assert error.status == 413
    assert error.code == "event_too_large"
    assert error.details[0]["loc"] == ["body", 1]


def test_an_integer_too_large_for_json_is_refused() -> None:
    [detail] = details_of({"type": "a", "data": {"n": 2**70}})
    assert detail["loc"] == ["body"]


def test_an_idempotency_key_header_on_a_batch_gives_each_item_key_colon_index() -> None:
    candidates, _ = candidates_from_json(
        [{"type": "a"}, {"type": "b"}, {"type": "c"}], PublishContext(idempotency_key="req"), LIMITS
    )
    assert [c.idempotency_key for c in candidates] == ["req:0", "req:1", "req:2"]
    assert [c.dedupe_key for c in candidates] == ["k:req:0", "k:req:1", "k:req:2"]


def test_an_item_key_in_a_batch_wins_over_the_header_key() -> None:
    candidates, _ = candidates_from_json(
        [{"type": "a", "idempotency_key": "own"}, {"type": "b"}],
        PublishContext(idempotency_key="req"),
        LIMITS,
    )
    assert [c.idempotency_key for c in candidates] == ["own", "req:1"]


def test_a_batch_without_keys_has_no_dedupe_keys() -> None:
    candidates, _ = candidates_from_json([{"type": "a"}, {"type": "b"}], CTX, LIMITS)
    assert [c.dedupe_key for c in candidates] == [None, None]


def test_a_batch_shares_the_traceparent_trace_id() -> None:
    candidates, _ = candidates_from_json(
        [{"type": "a"}, {"type": "b"}], PublishContext(trace_id=TRACE), LIMITS
    )
    assert [c.trace_id for c in candidates] == [TRACE, TRACE]
