"""Filters: parsing query parameters and JSON filter objects, and matching events."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tidings.envelope import Event, Filter, parse_filter
from tidings.errors import TidingsError


def make_event(
    *,
    type: str = "user.created",
    source: str = "api",
    subject: str | None = None,
    data: Any = None,
    metadata: dict[str, Any] | None = None,
    trace_id: str = "4bf92f3577b34da6a3ce929d0e0e4736",
) -> Event:
    return Event(
        seq=1,
        id="0193a5f0-0000-7000-8000-000000000000",
        type=type,
        source=source,
        subject=subject,
        time_us=0,
        received_at_us=0,
        trace_id=trace_id,
        idempotency_key=None,
        data_json=orjson.dumps(data).decode(),
        metadata_json=orjson.dumps(metadata or {}).decode(),
    )


def matches(params: dict[str, Any], **event: Any) -> bool:
    return parse_filter(params).matches(make_event(**event))


def invalid_filter(params: dict[str, Any], **kw: Any) -> TidingsError:
    with pytest.raises(TidingsError) as caught:
        parse_filter(params, **kw)
    assert caught.value.status == 400
    assert caught.value.code == "invalid_filter"
    return caught.value


def test_an_empty_filter_matches_every_event() -> None:
    flt = parse_filter({})
    assert flt == Filter()
    assert flt.is_empty
    assert flt.matches(make_event(type="a", source="x", subject="s", data={"a": 1}))


def test_an_unknown_field_is_a_400_naming_it() -> None:
    error = invalid_filter({"colour": "red"})
    assert "'colour'" in error.message
    assert error.details == [{"loc": ["query", "colour"], "msg": error.message}]


def test_an_unknown_field_in_a_json_filter_names_its_location() -> None:
    error = invalid_filter({"typ": "a"}, location="filter")
    assert error.details[0]["loc"] == ["filter", "typ"]


def test_parameters_the_caller_accepts_are_ignored_and_listed_as_known() -> None:
    assert parse_filter({"limit": "5", "type": "a"}, ignore=["limit"]).types == ("a",)
    error = invalid_filter({"limt": "5"}, ignore=["limit"])
    assert "limit" in error.message


@pytest.mark.parametrize("pattern", ["a.#.b", "#.a", "a..b", "a b", "a.", "é"])
def test_a_bad_type_pattern_is_a_400_on_the_type_field(pattern: str) -> None:
    error = invalid_filter({"type": f"ok.*,{pattern}"})
    assert error.details[0]["loc"] == ["query", "type"]


@pytest.mark.parametrize(
    "key", ["data.", "data..x", "data.x.", "metadata.", 'data.a"b', "data.a\\b", "data.a\nb"]
)
def test_a_path_the_stores_cannot_address_is_refused(key: str) -> None:
    error = invalid_filter({key: "1"})
    assert error.details[0]["loc"] == ["query", key]


def test_a_data_condition_needs_a_value() -> None:
    error = invalid_filter({"data.x": " , "})
    assert "needs a value" in error.message


@pytest.mark.parametrize("value", [{"a": 1}, [["a"]], [{"a": 1}]])
def test_a_value_that_is_not_a_string_or_list_of_scalars_is_refused(value: Any) -> None:
    invalid_filter({"data.x": value}, location="filter")


def test_a_non_string_type_is_refused() -> None:
    invalid_filter({"type": 5})


def test_comma_lists_and_repeated_parameters_are_lists_of_values() -> None:
    flt = parse_filter(
        {
            "type": ["user.*", "order.created, order.paid"],
            "source": "a,b",
            "exclude_source": ["c", "d"],
            "subject": "s1,,s2,",
        }
    )
    assert flt.types == ("user.*", "order.created", "order.paid")
    assert flt.sources == ("a", "b")
    assert flt.exclude_sources == ("c", "d")
    assert flt.subjects == ("s1", "s2")


@pytest.mark.parametrize(
    ("event_type", "expected"),
    [("user.created", True), ("order.paid", True), ("order.refunded", False), ("user", False)],
)
def test_a_type_list_matches_any_of_its_patterns(event_type: str, expected: bool) -> None:
    assert matches({"type": "user.*,order.paid"}, type=event_type) is expected


def test_a_source_list_matches_any_of_its_sources() -> None:
    assert matches({"source": "a,b"}, source="b")
    assert not matches({"source": "a,b"}, source="c")
    assert not matches({"source": "a"}, source="A")


def test_exclude_source_drops_events_from_those_sources() -> None:
    assert not matches({"exclude_source": "mqtt,pg"}, source="mqtt")
    assert matches({"exclude_source": "mqtt,pg"}, source="api")


def test_exclude_source_wins_over_source() -> None:
    assert not matches({"source": "mqtt", "exclude_source": "mqtt"}, source="mqtt")


def test_a_subject_filter_never_matches_an_event_without_subject() -> None:
    assert matches({"subject": "d1,d2"}, subject="d2")
    assert not matches({"subject": "d1,d2"}, subject="d3")
    assert not matches({"subject": "d1"}, subject=None)


def test_a_trace_id_list_matches_events_of_any_of_those_traces() -> None:
    one, two = "4bf92f3577b34da6a3ce929d0e0e4736", "0af7651916cd43dd8448eb211c80319c"
    assert matches({"trace_id": f"{one}, {two}"}, trace_id=two)
    assert matches({"trace_id": [one]}, trace_id=one)
    assert not matches({"trace_id": one}, trace_id=two)
    assert not matches({"trace_id": one, "source": "x"}, trace_id=one)
    assert not parse_filter({"trace_id": one}).is_empty


def test_every_condition_must_hold() -> None:
    params = {"type": "device.#", "source": "st", "data.on": "true"}
    assert matches(params, type="device.x", source="st", data={"on": True})
    assert not matches(params, type="user.x", source="st", data={"on": True})
    assert not matches(params, type="device.x", source="api", data={"on": True})
    assert not matches(params, type="device.x", source="st", data={"on": False})


@pytest.mark.parametrize(
    ("text", "value", "expected"),
    [
        ("5", 5, True),
        ("5", "5", True),
        ("5", 5.0, True),
        ("5.0", 5, True),
        ("5", 6, False),
        ("5", "05", False),
        ("05", 5, False),
        ("-1.5", -1.5, True),
        ("1e2", 100, True),
        ("on", "on", True),
        ("on", "On", False),
        ("true", True, True),
        ("true", "true", True),
        ("true", 1, False),
        ("1", True, False),
        ("0", False, False),
        ("false", False, True),
        ("false", 0, False),
        ("null", None, True),
        ("null", "null", True),
        ("5", None, False),
        ('"5"', "5", False),
        ('"5"', '"5"', True),
        ("access,security", "security", True),
        ("access,security", "other", False),
        ("1,true", True, True),
        ("1,true", 1, True),
    ],
)
def test_data_equality_on_scalars(text: str, value: Any, expected: bool) -> None:
    assert matches({"data.x": text}, data={"x": value}) is expected


@pytest.mark.parametrize("value", [{"a": 1}, [1], [], {}, ["5"]])
def test_objects_and_arrays_never_match(value: Any) -> None:
    assert not matches({"data.x": "5"}, data={"x": value})
    assert not matches({"data.x": "null"}, data={"x": value})


def test_a_missing_path_never_matches_not_even_null() -> None:
    assert not matches({"data.x": "null"}, data={"y": None})
    assert not matches({"data.x": "1"}, data={})
    assert not matches({"data.x.y": "1"}, data={"x": 1})
    assert not matches({"data.x.y": "1"}, data={"x": [{"y": 1}]})


@pytest.mark.parametrize("data", [None, 5, "x", [{"x": 1}]])
def test_data_that_is_not_an_object_never_matches_a_path(data: Any) -> None:
    assert not matches({"data.x": "1"}, data=data)


def test_nested_paths_follow_objects() -> None:
    data = {"a": {"b": {"c": "deep"}}, "a.b": "dotted"}
    assert matches({"data.a.b.c": "deep"}, data=data)
    assert not matches({"data.a.b": "dotted"}, data=data)


def test_metadata_paths_look_at_metadata_not_data() -> None:
    assert matches({"metadata.topic": "t/1"}, metadata={"topic": "t/1"}, data={"topic": "no"})
    assert not matches({"metadata.topic": "no"}, metadata={"topic": "t/1"}, data={"topic": "no"})


def test_keys_with_unusual_but_addressable_characters_match() -> None:
    data = {"é ü": 1, "a]b": 2, "$": 3, "*": 4}
    assert matches({"data.é ü": "1", "data.a]b": "2", "data.$": "3", "data.*": "4"}, data=data)


def test_several_data_conditions_must_all_hold() -> None:
    params = {"data.a": "1", "metadata.b": "x"}
    assert matches(params, data={"a": 1}, metadata={"b": "x"})
    assert not matches(params, data={"a": 1}, metadata={"b": "y"})


def test_json_filter_scalars_keep_their_json_meaning() -> None:
    assert parse_filter({"data.ok": True}).matches(make_event(data={"ok": True}))
    assert not parse_filter({"data.ok": True}).matches(make_event(data={"ok": 1}))
    assert parse_filter({"data.n": 5}).matches(make_event(data={"n": 5}))
    assert parse_filter({"data.n": 2.5}).matches(make_event(data={"n": 2.5}))
    assert parse_filter({"data.n": None}).matches(make_event(data={"n": None}))


def test_json_filter_lists_of_scalars_keep_their_json_meaning() -> None:
    flt = parse_filter({"data.x": [True, None, 3, "on"]}, location="filter")
    assert flt.matches(make_event(data={"x": True}))
    assert flt.matches(make_event(data={"x": None}))
    assert flt.matches(make_event(data={"x": 3}))
    assert flt.matches(make_event(data={"x": "on"}))
    assert not flt.matches(make_event(data={"x": "True"}))
    assert not flt.matches(make_event(data={"x": 1}))


def test_to_dict_shows_the_filter_in_query_parameter_form() -> None:
    flt = parse_filter(
        {
            "type": ["a.*", "b"],
            "source": "s",
            "exclude_source": "e",
            "subject": "x,y",
            "trace_id": "t1,t2",
            "data.n": "5,6",
            "metadata.k.j": "v",
        }
    )
    assert flt.to_dict() == {
        "type": "a.*,b",
        "source": "s",
        "exclude_source": "e",
        "subject": "x,y",
        "trace_id": "t1,t2",
        "data.n": "5,6",
        "metadata.k.j": "v",
    }
    assert parse_filter({}).to_dict() == {}


VALUES = st.text(st.sampled_from("ab5.-_ x"), min_size=1, max_size=4).filter(
    lambda v: v.strip(" ,") != ""
)
LISTS = st.lists(VALUES, min_size=1, max_size=3).map(",".join)


@given(
    st.fixed_dictionaries(
        {},
        optional={
            "type": st.sampled_from(["a.*", "a.#,b", "#", "x.y"]),
            "source": LISTS,
            "exclude_source": LISTS,
            "subject": LISTS,
            "trace_id": LISTS,
            "data.a": LISTS,
            "data.a.b": st.sampled_from(["1", "true,null", "1.5"]),
            "metadata.m": LISTS,
        },
    )
)
def test_to_dict_round_trips_through_parse_filter(params: dict[str, str]) -> None:
    flt = parse_filter(params)
    assert parse_filter(flt.to_dict()) == flt
