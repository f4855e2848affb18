"""UUIDv7 ids, W3C trace ids and the one time format."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta, timezone
from types import SimpleNamespace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tidings.envelope import ids
from tidings.envelope.ids import new_trace_id, new_trace_ids, trace_id_from_traceparent, uuid7
from tidings.envelope.timefmt import format_us, now_us, parse_iso, to_us

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN = "00f067aa0ba902b7"
PAST_NS = 1_600_000_000_123_000_000  # 2020: a fixed clock that later real calls overtake


def test_uuid7_has_version_7_and_the_rfc_variant() -> None:
    value = uuid.UUID(uuid7())
    assert value.version == 7
    assert value.variant == uuid.RFC_4122


def test_uuid7_carries_the_current_unix_milliseconds() -> None:
    before = time.time_ns() // 1_000_000
    value = uuid.UUID(uuid7())
    after = time.time_ns() // 1_000_000
    assert before <= value.int >> 80 <= after + 1


def test_uuid7_strings_increase_within_a_process_over_many_calls() -> None:
    values = [uuid7() for _ in range(20_000)]
    assert values == sorted(values)
    assert len(set(values)) == len(values)


def test_uuid7_keeps_increasing_when_the_counter_overflows_within_one_millisecond(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(ids, "time", SimpleNamespace(time_ns=lambda: PAST_NS))
    values = [uuid7() for _ in range(3 * 4096)]
    assert values == sorted(values)
    assert len(set(values)) == len(values)
    parsed = [uuid.UUID(v) for v in values]
    assert all(p.version == 7 and p.variant == uuid.RFC_4122 for p in parsed)
    # the overflow borrowed the following milliseconds rather than wrapping around
    assert parsed[-1].int >> 80 > PAST_NS // 1_000_000


def test_uuid7_keeps_increasing_when_the_clock_steps_back(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = iter([PAST_NS, PAST_NS - 5_000_000_000, PAST_NS - 1])
    monkeypatch.setattr(ids, "time", SimpleNamespace(time_ns=lambda: next(clock)))
    values = [uuid7() for _ in range(3)]
    assert values == sorted(values)


def test_new_trace_id_is_32_lowercase_hex_digits() -> None:
    value = new_trace_id()
    assert ids.TRACE_ID.fullmatch(value)
    assert value != new_trace_id()


def test_new_trace_id_is_never_all_zeros(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ids, "_random", lambda n: bytes(n))
    value = new_trace_id()
    assert value != "0" * 32
    assert ids.TRACE_ID.fullmatch(value)


def test_new_trace_ids_start_with_the_millisecond(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = iter([PAST_NS, PAST_NS + 1_000_000])
    monkeypatch.setattr(ids, "time", SimpleNamespace(time_ns=lambda: next(clock)))
    earlier = new_trace_ids(3)
    later = new_trace_ids(1)
    ms = f"{PAST_NS // 1_000_000:012x}"
    assert all(value.startswith(ms) for value in earlier)
    assert len(set(earlier)) == 3
    assert later[0][:12] > ms  # a new trace sorts after the older ones
    assert max(earlier) < later[0]


@pytest.mark.parametrize(
    "header",
    [
        f"00-{TRACE}-{SPAN}-01",
        f"00-{TRACE}-{SPAN}-00",
        f"  00-{TRACE}-{SPAN}-01 ",
        f"01-{TRACE}-{SPAN}-01",
    ],
)
def test_a_valid_traceparent_gives_its_trace_id(header: str) -> None:
    assert trace_id_from_traceparent(header) == TRACE


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        f"ff-{TRACE}-{SPAN}-01",
        f"00-{'0' * 32}-{SPAN}-01",
        f"00-{TRACE}-{'0' * 16}-01",
        f"00-{TRACE[:-1]}-{SPAN}-01",
        f"00-{TRACE}-{SPAN}",
        f"00-{TRACE}-{SPAN}-1",
        f"00-{TRACE}g-{SPAN}-01",
        f"00_{TRACE}_{SPAN}_01",
        "garbage",
    ],
)
def test_an_invalid_traceparent_is_ignored(header: str | None) -> None:
    assert trace_id_from_traceparent(header) is None


def test_naive_datetimes_are_taken_as_utc() -> None:
    assert to_us(datetime(1970, 1, 1, 0, 0, 1, 5)) == 1_000_005


def test_aware_datetimes_are_converted_to_utc() -> None:
    plus_two = timezone(timedelta(hours=2))
    assert to_us(datetime(2026, 11, 23, 12, 0, tzinfo=plus_two)) == to_us(
        datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
    )


def test_format_us_writes_utc_with_milliseconds_and_z() -> None:
    us = to_us(datetime(2026, 11, 23, 10, 0, 0, 12_999, tzinfo=UTC))
    assert format_us(us) == "2026-11-23T10:00:00.012Z"


def test_format_us_handles_times_before_1970() -> None:
    assert format_us(-1) == "1969-12-31T23:59:59.999Z"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-23T10:00:00Z", "2026-11-23T10:00:00.000Z"),
        ("2026-11-23T10:00:00z", "2026-11-23T10:00:00.000Z"),
        ("2026-11-23T10:00:00.5Z", "2026-11-23T10:00:00.500Z"),
        ("2026-11-23T12:00:00+02:00", "2026-11-23T10:00:00.000Z"),
        ("2026-11-23T05:30:00-04:30", "2026-11-23T10:00:00.000Z"),
        ("2026-11-23T10:00:00", "2026-11-23T10:00:00.000Z"),
        (" 2026-11-23T10:00:00.012Z ", "2026-11-23T10:00:00.012Z"),
    ],
)
def test_parse_iso_accepts_z_offsets_and_naive_utc(text: str, expected: str) -> None:
    assert format_us(parse_iso(text)) == expected


@pytest.mark.parametrize("text", ["", "yesterday", "2026-13-01T00:00:00Z", "10:00"])
def test_parse_iso_refuses_what_is_not_a_time_with_a_readable_message(text: str) -> None:
    with pytest.raises(ValueError, match="is not an ISO 8601 time"):
        parse_iso(text)


def test_now_us_is_the_current_time_in_microseconds() -> None:
    before = time.time_ns() // 1000
    value = now_us()
    assert before <= value <= time.time_ns() // 1000


@given(st.integers(min_value=-(10**16), max_value=10**17))
def test_format_then_parse_gives_the_time_truncated_to_milliseconds(us: int) -> None:
    assert parse_iso(format_us(us)) == us - us % 1000


def test_a_forked_child_draws_other_random_bytes_than_its_parent() -> None:
    import os

    ids.uuid7()  # fill the pool in the parent
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child reports its next id and leaves at once
        os.write(write, ids.uuid7().encode())
        os._exit(0)
    os.close(write)
    child = os.read(read, 64).decode()
    os.close(read)
    os.waitpid(pid, 0)
    parent = ids.uuid7()
    assert child[-12:] != parent[-12:]
