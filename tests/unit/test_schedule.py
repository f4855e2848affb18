"""The retry schedule: parsing, jitter, exhaustion, throttling and ``Retry-After`` (no I/O)."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from email.utils import format_datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tidings.delivery.schedule import (
    JITTER,
    MAX_RETRY_AFTER_S,
    Outcome,
    RetrySchedule,
    classify,
    parse_retry_after,
    parse_schedule,
)

FAILED = Outcome(False)
THROTTLED = Outcome(False, throttled=True)
NOW = 1_800_000_000.0


def schedule(delays: str = "0,5,300,1800", throttle_s: float = 60, seed: int = 1) -> RetrySchedule:
    return RetrySchedule(parse_schedule(delays), throttle_s, random.Random(seed))


# -- parsing ---------------------------------------------------------------------------------


def test_schedule_parses_to_one_delay_per_attempt() -> None:
    assert parse_schedule("0,5,300,1800,7200,18000,36000,36000") == (
        0.0, 5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0,
    )  # fmt: skip
    assert parse_schedule(" 0 , 0.2,1.5 ") == (0.0, 0.2, 1.5)
    assert schedule("0,0.2,0.2,0.2").attempts == 4


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("", "at least one"),
        (" , ,", "at least one"),
        ("0,five,10", "'five'"),
        ("0,-1", "negative"),
        ("0,nan", "nan"),
        ("0,inf", "inf"),
        ("0,1e999", "1e999"),
    ],
)
def test_a_bad_schedule_is_refused_naming_what_is_wrong(text: str, named: str) -> None:
    with pytest.raises(ValueError, match=named):
        parse_schedule(text)


# -- delays ----------------------------------------------------------------------------------


def test_the_first_attempt_of_a_zero_schedule_is_immediate() -> None:
    assert schedule("0,5").first_delay() == 0.0


@given(seed=st.integers(0, 2**32), base=st.floats(0.01, 100_000))
def test_jitter_stays_within_twenty_percent(seed: int, base: float) -> None:
    s = RetrySchedule((0.0, base), 0, random.Random(seed))
    delay = s.next_delay(1, FAILED)
    assert delay is not None
    assert base * (1 - JITTER) <= delay <= base * (1 + JITTER)


def test_jitter_spreads_deliveries_that_failed_together() -> None:
    s = schedule("0,100", seed=7)
    delays = [s.next_delay(1, FAILED) for _ in range(200)]
    assert all(d is not None and 80 <= d <= 120 for d in delays)
    assert len(set(delays)) > 150
    assert min(d for d in delays if d is not None) < 90 < 110 < max(d for d in delays if d)


def test_each_retry_waits_the_delay_of_its_own_attempt() -> None:
    s = schedule("0,5,300,1800")
    for made, base in ((1, 5), (2, 300), (3, 1800)):
        delay = s.next_delay(made, FAILED)
        assert delay is not None and base * 0.8 <= delay <= base * 1.2


def test_the_schedule_is_exhausted_after_as_many_attempts_as_delays() -> None:
    s = schedule("0,0.2,0.2,0.2")
    assert all(s.next_delay(made, FAILED) is not None for made in (1, 2, 3))
    assert s.next_delay(4, FAILED) is None
    assert s.next_delay(5, FAILED) is None


def test_success_and_gone_end_the_delivery() -> None:
    s = schedule()
    assert s.next_delay(1, Outcome(True)) is None
    assert s.next_delay(1, Outcome(False, gone=True)) is None


def test_a_throttled_attempt_waits_at_least_the_throttle_floor() -> None:
    s = schedule("0,5,300", throttle_s=60)
    assert s.next_delay(1, THROTTLED) == 60  # 5 s scheduled, 60 s floor
    later = s.next_delay(2, THROTTLED)
    assert later is not None and 240 <= later <= 360  # above the floor: the schedule's delay


def test_retry_after_replaces_the_next_delay_but_not_the_count() -> None:
    s = schedule("0,5,300", throttle_s=60)
    assert s.next_delay(1, Outcome(False, throttled=True, retry_after_s=2.5)) == 2.5
    assert s.next_delay(2, Outcome(False, throttled=True, retry_after_s=900)) == 900
    assert s.next_delay(3, Outcome(False, throttled=True, retry_after_s=1)) is None


# -- classifying an answer -------------------------------------------------------------------


@pytest.mark.parametrize("code", [200, 201, 202, 204, 299])
def test_any_2xx_is_a_success(code: int) -> None:
    assert classify(code, timed_out=False, retry_after_s=None).succeeded


@pytest.mark.parametrize("code", [301, 302, 307, 308, 400, 404, 500, 502])
def test_redirects_and_errors_are_plain_failures(code: int) -> None:
    outcome = classify(code, timed_out=False, retry_after_s=None)
    assert not outcome.succeeded and not outcome.throttled and not outcome.gone


@pytest.mark.parametrize(("code", "timed_out"), [(429, False), (503, False), (None, True)])
def test_429_503_and_timeouts_are_throttled(code: int | None, timed_out: bool) -> None:
    outcome = classify(code, timed_out=timed_out, retry_after_s=None)
    assert outcome.throttled and not outcome.succeeded


def test_a_network_error_is_a_failure_that_is_not_throttled() -> None:
    outcome = classify(None, timed_out=False, retry_after_s=None)
    assert not outcome.succeeded and not outcome.throttled


def test_410_means_gone() -> None:
    outcome = classify(410, timed_out=False, retry_after_s=None)
    assert outcome.gone and not outcome.succeeded


def test_retry_after_is_carried_into_the_outcome() -> None:
    assert classify(429, timed_out=False, retry_after_s=7.0).retry_after_s == 7.0


# -- Retry-After -----------------------------------------------------------------------------


def test_retry_after_in_seconds() -> None:
    assert parse_retry_after("120", NOW) == 120.0
    assert parse_retry_after(" 0 ", NOW) == 0.0


def test_retry_after_as_an_http_date() -> None:
    when = datetime.fromtimestamp(NOW + 90, UTC)
    assert parse_retry_after(format_datetime(when, usegmt=True), NOW) == pytest.approx(90)


def test_retry_after_in_the_past_means_now() -> None:
    when = datetime.fromtimestamp(NOW - 3600, UTC)
    assert parse_retry_after(format_datetime(when, usegmt=True), NOW) == 0.0


def test_retry_after_is_bounded_to_a_day() -> None:
    assert parse_retry_after("99999999999", NOW) == MAX_RETRY_AFTER_S
    far = datetime.fromtimestamp(NOW + 10 * 86_400, UTC)
    assert parse_retry_after(format_datetime(far, usegmt=True), NOW) == MAX_RETRY_AFTER_S


@pytest.mark.parametrize("value", [None, "", "soon", "-5", "1.5e3", "²", "Mon, 99 Foo 2026"])
def test_an_unreadable_retry_after_is_ignored(value: str | None) -> None:
    assert parse_retry_after(value, NOW) is None
