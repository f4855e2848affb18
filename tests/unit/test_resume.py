"""Where a subscription starts: Last-Event-ID, ``last_event_id``, ``since`` or the head."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any, NoReturn

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tidings.envelope import Candidate
from tidings.envelope.timefmt import format_us
from tidings.errors import TidingsError
from tidings.store import Store
from tidings.streams.resume import (
    MAX_POSITION,
    Resume,
    parse_position,
    resolve,
    truncation,
)
from tidings.testing import MemoryStore

T = "default"
SECOND = 1_000_000
T0 = 1_750_000_000 * SECOND  # a whole second, so ISO text round-trips exactly

# -- parse_position -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0", 0),
        ("42", 42),
        (" 7 ", 7),
        ("\t8\n", 8),
        ("007", 7),
        (str(MAX_POSITION), MAX_POSITION),
        (0, 0),
        (5, 5),
        (MAX_POSITION, MAX_POSITION),
    ],
)
def test_a_non_negative_integer_is_a_position(value: str | int, expected: int) -> None:
    assert parse_position(value, "last_event_id") == expected


def assert_refused(value: object, name: str = "last_event_id") -> TidingsError:
    with pytest.raises(TidingsError) as caught:
        parse_position(value, name)
    error = caught.value
    assert error.status == 400
    assert error.code == "invalid_resume_point"
    assert error.details == [{"loc": [name], "msg": error.message}]
    assert name in error.message
    return error


@pytest.mark.parametrize(
    "value",
    ["", " ", "-1", "+1", "1.5", "1e3", "0x10", "abc", "12abc", "1 2", "1_000", "-0"],
)
def test_text_that_is_not_a_plain_number_is_refused(value: str) -> None:
    assert_refused(value)


@pytest.mark.parametrize("value", ["\u00b2", "\u0661\u0662", "\u06f3", "\uff11\uff12"])
def test_digits_other_than_ascii_are_refused(value: str) -> None:
    # superscript two, Arabic-Indic, Persian and fullwidth digits: str.isdigit accepts them all,
    # int() refuses the first and reads the others as numbers
    assert_refused(value)


def test_a_number_too_long_for_int_conversion_is_refused_without_echoing_it_all() -> None:
    error = assert_refused("9" * 5000)
    assert len(error.message) < 200


@pytest.mark.parametrize("value", [str(MAX_POSITION + 1), "9" * 30, MAX_POSITION + 1, 10**40])
def test_a_position_beyond_64_bits_is_refused(value: str | int) -> None:
    assert_refused(value)


@pytest.mark.parametrize("value", [True, False, -1, 1.5, 2.0, None, [1], {"seq": 1}, b"1"])
def test_a_json_value_that_is_not_a_position_is_refused(value: object) -> None:
    assert_refused(value)


def test_the_refusal_names_the_parameter_it_came_from() -> None:
    assert_refused("x", "Last-Event-ID")


@settings(max_examples=200, deadline=None)
@given(st.integers(0, MAX_POSITION))
def test_every_valid_position_parses_from_its_text_and_as_a_number(position: int) -> None:
    assert parse_position(str(position), "p") == position
    assert parse_position(position, "p") == position


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=30) | st.from_regex(r"\s*[0-9]{1,25}\s*", fullmatch=True))
def test_any_text_is_a_position_or_a_400(text: str) -> None:
    try:
        position = parse_position(text, "p")
    except TidingsError as error:
        assert error.status == 400
        return
    stripped = text.strip()
    assert stripped.isascii() and stripped.isdigit()
    assert position == int(stripped) <= MAX_POSITION


# -- resolve ------------------------------------------------------------------------------


class Untouchable:
    """A store that must not be asked anything."""

    def __getattr__(self, name: str) -> NoReturn:
        raise AssertionError(f"the store was consulted: {name}")


UNTOUCHABLE: Any = Untouchable()


async def store_with(*received: tuple[int, str]) -> MemoryStore:
    """A store holding one event per (received_at_us, tenant), appended in that order."""
    now = [0]
    store = MemoryStore(clock=lambda: now[0])
    await store.open()
    for index, (received_us, tenant) in enumerate(received):
        now[0] = received_us
        candidate = Candidate(
            id=f"e{index}",
            type="user.created",
            source="test",
            subject=None,
            time_us=received_us,
            trace_id="0" * 32,
            idempotency_key=None,
            data_json="{}",
            metadata_json="{}",
            tenant=tenant,
        )
        await store.append([candidate])
    return store


async def test_the_last_event_id_header_wins_over_everything() -> None:
    start = await resolve(
        UNTOUCHABLE, T, header="5", last_event_id="9", since="2025-01-01T00:00:00Z"
    )
    assert start == Resume(5, "last_event_id")


async def test_a_blank_header_is_ignored() -> None:
    start = await resolve(UNTOUCHABLE, T, header="  ", last_event_id="9", since=None)
    assert start == Resume(9, "last_event_id")


async def test_an_empty_header_is_ignored() -> None:
    start = await resolve(UNTOUCHABLE, T, header="", last_event_id=None, since=None)
    assert start == Resume(None, "head")


async def test_the_last_event_id_parameter_wins_over_since() -> None:
    start = await resolve(
        UNTOUCHABLE, T, header=None, last_event_id="12", since="2025-01-01T00:00:00Z"
    )
    assert start == Resume(12, "last_event_id")


async def test_a_numeric_last_event_id_from_a_json_message_is_a_position() -> None:
    start = await resolve(UNTOUCHABLE, T, header=None, last_event_id=12, since=None)
    assert start == Resume(12, "last_event_id")


async def test_a_last_event_id_of_zero_means_from_the_beginning_not_absent() -> None:
    for zero in [0, "0"]:
        start = await resolve(UNTOUCHABLE, T, header=None, last_event_id=zero, since=None)
        assert start == Resume(0, "last_event_id")


async def test_an_empty_last_event_id_is_ignored() -> None:
    start = await resolve(UNTOUCHABLE, T, header=None, last_event_id="", since=None)
    assert start == Resume(None, "head")


async def test_nothing_asked_starts_at_the_head() -> None:
    start = await resolve(UNTOUCHABLE, T, header=None, last_event_id=None, since=None)
    assert start == Resume(None, "head")
    start = await resolve(UNTOUCHABLE, T, header=None, last_event_id=None, since="")
    assert start == Resume(None, "head")


async def test_an_invalid_header_is_refused_even_when_other_points_are_valid() -> None:
    with pytest.raises(TidingsError) as caught:
        await resolve(UNTOUCHABLE, T, header="abc", last_event_id="9", since=None)
    assert caught.value.details[0]["loc"] == ["Last-Event-ID"]


async def test_an_invalid_last_event_id_is_refused_even_when_since_is_valid() -> None:
    with pytest.raises(TidingsError) as caught:
        await resolve(UNTOUCHABLE, T, header=None, last_event_id="-3", since="2025-01-01T00:00:00Z")
    assert caught.value.details[0]["loc"] == ["last_event_id"]


async def test_since_starts_after_the_last_event_received_before_that_time() -> None:
    store = await store_with((T0, T), (T0 + SECOND, T), (T0 + 2 * SECOND, T))
    at = format_us(T0 + SECOND)
    start = await resolve(store, T, header=None, last_event_id=None, since=at)
    assert start == Resume(1, "since")  # the event received exactly at `since` is included


@pytest.mark.parametrize(
    ("since_us", "expected"),
    [(T0 - SECOND, 0), (T0, 0), (T0 + SECOND // 2, 1), (T0 + 2 * SECOND, 2), (T0 + 60 * SECOND, 3)],
)
async def test_since_maps_any_time_to_the_position_before_it(since_us: int, expected: int) -> None:
    store = await store_with((T0, T), (T0 + SECOND, T), (T0 + 2 * SECOND, T))
    start = await resolve(store, T, header=None, last_event_id=None, since=format_us(since_us))
    assert start == Resume(expected, "since")


async def test_since_with_an_offset_is_the_same_instant() -> None:
    store = await store_with((T0, T), (T0 + 3600 * SECOND, T))
    between = T0 + 1800 * SECOND
    plus_two = timezone(timedelta(hours=2))
    for text in [
        format_us(between),
        datetime.fromtimestamp(between // SECOND, plus_two).isoformat(),
        datetime.fromtimestamp(between // SECOND, UTC).replace(tzinfo=None).isoformat(),
    ]:
        start = await resolve(store, T, header=None, last_event_id=None, since=text)
        assert start == Resume(1, "since"), text


async def test_since_only_considers_the_tenants_own_events() -> None:
    store = await store_with((T0, T), (T0 + SECOND, "other"), (T0 + 2 * SECOND, "other"))
    since = format_us(T0 + 10 * SECOND)
    assert (await resolve(store, T, header=None, last_event_id=None, since=since)).position == 1
    assert (
        await resolve(store, "other", header=None, last_event_id=None, since=since)
    ).position == 3


@pytest.mark.parametrize("since", ["yesterday", "2025-13-01T00:00:00Z", "12", " "])
async def test_an_invalid_since_is_refused(since: str) -> None:
    with pytest.raises(TidingsError) as caught:
        await resolve(UNTOUCHABLE, T, header=None, last_event_id=None, since=since)
    assert caught.value.status == 400
    assert caught.value.code == "invalid_resume_point"
    assert caught.value.details[0]["loc"] == ["since"]


async def test_a_since_that_is_not_text_is_refused() -> None:
    since: Any = 1_750_000_000
    with pytest.raises(TidingsError) as caught:
        await resolve(UNTOUCHABLE, T, header=None, last_event_id=None, since=since)
    assert caught.value.details[0]["loc"] == ["since"]


async def test_a_last_event_id_that_is_not_a_position_from_json_is_a_400() -> None:
    for value in [1.5, [3], {"seq": 3}, True, -1]:
        with pytest.raises(TidingsError) as caught:
            await resolve(UNTOUCHABLE, T, header=None, last_event_id=value, since=None)
        assert caught.value.status == 400, value


# -- truncation ---------------------------------------------------------------------------


async def purged_store() -> Store:
    """Events 1-5 of the tenant and 6 of another; retention deleted 1-3 (and nothing else)."""
    store = await store_with(
        (T0, T), (T0 + 1, T), (T0 + 2, T), (T0 + 10, T), (T0 + 11, T), (T0 + 12, "other")
    )
    assert await store.purge(T0 + 3) == 3
    return store


async def test_nothing_is_truncated_when_nothing_was_purged() -> None:
    store = await store_with((T0, T), (T0 + 1, T))
    assert await truncation(store, T, 0) is None


async def test_resuming_before_purged_events_reports_the_truncation() -> None:
    store = await purged_store()
    for position in [0, 1, 2]:
        assert await truncation(store, T, position) == {"requested": position, "earliest": 4}


async def test_resuming_at_or_after_the_purged_position_is_not_truncated() -> None:
    store = await purged_store()
    for position in [3, 4, 5, 100]:
        assert await truncation(store, T, position) is None


async def test_another_tenants_purge_does_not_truncate() -> None:
    store = await purged_store()
    assert await truncation(store, "other", 0) is None


async def test_when_everything_was_purged_the_earliest_is_the_next_position() -> None:
    store = await store_with((T0, T), (T0 + 1, T), (T0 + 2, "other"))
    assert await store.purge(T0 + 2) == 2
    assert await truncation(store, T, 0) == {"requested": 0, "earliest": 3}
