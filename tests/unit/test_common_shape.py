"""The hand-checked path for the common event shape accepts only what the full validator
accepts, produces the same fields, and leaves every refusal to the full validator."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from tidings.envelope.common_shape import check_common
from tidings.envelope.ids import new_trace_ids, uuid7s
from tidings.envelope.validate import (
    Limits,
    PublishContext,
    candidates_from_json,
    parse_event,
    to_candidate,
)
from tidings.errors import TidingsError

LIMIT = 262_144

ACCEPTED: list[dict[str, Any]] = [
    {"type": "user.created"},
    {"type": "device.switch.switchLevel", "source": "smartthings", "subject": "dev-1"},
    {"type": "a", "data": {"switch": "on", "level": 42}, "metadata": {"room": "hall"}},
    {"type": "STATE_CHANGED", "subject": None, "data": None},
    {"type": "x:y-z_1.b", "source": "s" * 200, "subject": "é" * 1000, "data": [1, "two", 3.5]},
    {"type": "t", "data": "line\nbreak \u2028 \x00", "metadata": {}},
    {"type": "t", "subject": 'quote " and \\ and \t', "data": {"nested": {"deep": [None]}}},
    {"type": "t" * 200, "data": True},
]

REFUSED_OR_UNSURE: list[Any] = [
    "not an object",
    [],
    {},
    {"source": "api"},
    {"type": ""},
    {"type": "t" * 201},
    {"type": "user created"},
    {"type": "user.created\n"},
    {"type": "a..b"},
    {"type": 5},
    {"type": "t", "source": ""},
    {"type": "t", "source": "s" * 201},
    {"type": "t", "source": "tab\there"},
    {"type": "t", "source": "del\x7f"},
    {"type": "t", "source": None},
    {"type": "t", "source": 3},
    {"type": "t", "subject": "s" * 1001},
    {"type": "t", "subject": 7},
    {"type": "t", "metadata": None},
    {"type": "t", "metadata": [1]},
    {"type": "t", "unknown": 1},
    {"type": "t", "payload": {"a": 1}},
    {"type": "t", "id": "evt-1"},
    {"type": "t", "time": "2026-11-23T10:00:00Z"},
    {"type": "t", "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736"},
    {"type": "t", "idempotency_key": "k"},
    {"type": "t", "data": 1 << 70},
]


@pytest.mark.parametrize("raw", ACCEPTED)
def test_an_accepted_event_has_the_fields_the_full_validator_gives(raw: dict[str, Any]) -> None:
    common = check_common(raw, LIMIT)
    assert common is not None
    full = to_candidate(parse_event(raw, PublishContext(), Limits(), ["body"]), PublishContext())
    assert (common.type, common.source, common.subject) == (full.type, full.source, full.subject)
    assert common.data_json == full.data_json
    assert common.metadata_json == full.metadata_json


@pytest.mark.parametrize("raw", REFUSED_OR_UNSURE)
def test_anything_else_is_left_to_the_full_validator(raw: Any) -> None:
    assert check_common(raw, LIMIT) is None


@pytest.mark.parametrize("raw", ACCEPTED)
def test_the_size_is_exactly_that_of_the_encoded_event(raw: dict[str, Any]) -> None:
    size = len(orjson.dumps(raw))
    assert check_common(raw, size) is not None
    assert check_common(raw, size - 1) is None


def test_an_event_over_the_limit_still_gets_the_full_validators_413() -> None:
    raw = {"type": "t", "data": "x" * 100}
    with pytest.raises(TidingsError) as caught:
        candidates_from_json([raw, raw], PublishContext(), Limits(max_event_bytes=50))
    assert caught.value.status == 413
    assert caught.value.details[0]["loc"] == ["body", 0]


def test_a_batch_mixing_both_paths_keeps_order_and_reports_only_the_bad_items() -> None:
    body = [
        {"type": "a"},
        {"type": "b", "id": "evt-b"},
        {"type": "bad type"},
        {"type": "d", "source": ""},
    ]
    with pytest.raises(TidingsError) as caught:
        candidates_from_json(body, PublishContext(), Limits())
    assert caught.value.status == 422
    assert {tuple(d["loc"][:2]) for d in caught.value.details} == {("body", 2), ("body", 3)}
    good, batch = candidates_from_json(body[:2], PublishContext(), Limits())
    assert batch
    assert [c.type for c in good] == ["a", "b"]
    assert good[1].id == "evt-b"


def test_batch_items_get_distinct_increasing_ids_and_their_own_trace_ids() -> None:
    body = [{"type": "t", "data": i} for i in range(300)]
    candidates, _ = candidates_from_json(body, PublishContext(), Limits())
    ids = [c.id for c in candidates]
    assert ids == sorted(ids)
    assert len(set(ids)) == 300
    assert len({c.trace_id for c in candidates}) == 300


def test_a_traceparent_and_an_idempotency_header_apply_to_hand_checked_items() -> None:
    ctx = PublishContext(trace_id="4bf92f3577b34da6a3ce929d0e0e4736", idempotency_key="k")
    candidates, _ = candidates_from_json([{"type": "t"}, {"type": "u"}], ctx, Limits())
    assert {c.trace_id for c in candidates} == {ctx.trace_id}
    assert [c.idempotency_key for c in candidates] == ["k:0", "k:1"]
    assert [c.dedupe_key for c in candidates] == ["k:k:0", "k:k:1"]
    single, _ = candidates_from_json({"type": "t"}, ctx, Limits())
    assert single[0].idempotency_key == "k"


def test_many_ids_and_trace_ids_at_once_beyond_the_random_pool() -> None:
    ids = uuid7s(3000)
    assert ids == sorted(ids)
    assert len(set(ids)) == 3000
    traces = new_trace_ids(1000)
    assert len(set(traces)) == 1000
    assert all(len(t) == 32 and int(t, 16) for t in traces)
