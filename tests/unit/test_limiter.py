"""The per-endpoint token bucket, on a clock the test controls."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tidings.delivery.limiter import TokenBucket


def test_a_full_bucket_allows_a_burst_of_its_rate_then_says_how_long_to_wait() -> None:
    bucket = TokenBucket(5)
    assert [bucket.take(100.0) for _ in range(5)] == [0.0] * 5
    assert bucket.take(100.0) == pytest.approx(0.2)


def test_tokens_come_back_at_the_rate() -> None:
    bucket = TokenBucket(5)
    for _ in range(5):
        bucket.take(0.0)
    assert bucket.take(0.1) == pytest.approx(0.1)  # half a token so far
    assert bucket.take(0.2) == 0.0
    assert bucket.take(0.2) == pytest.approx(0.2)


def test_an_idle_bucket_holds_no_more_than_its_capacity() -> None:
    bucket = TokenBucket(2)
    bucket.take(0.0)
    taken = [bucket.take(1_000.0) for _ in range(3)]
    assert taken[:2] == [0.0, 0.0] and taken[2] > 0


def test_a_rate_below_one_per_second_still_allows_one_request() -> None:
    bucket = TokenBucket(0.5)
    assert bucket.take(0.0) == 0.0
    assert bucket.take(0.0) == pytest.approx(2.0)
    assert bucket.take(1.0) == pytest.approx(1.0)
    assert bucket.take(2.0) == 0.0


def test_an_explicit_burst_sets_the_capacity() -> None:
    bucket = TokenBucket(1, burst=3)
    assert [bucket.take(0.0) for _ in range(4)][3] == pytest.approx(1.0)


def test_asking_does_not_use_up_a_token() -> None:
    bucket = TokenBucket(1)
    bucket.take(0.0)
    for _ in range(10):
        assert bucket.take(0.5) == pytest.approx(0.5)
    assert bucket.take(1.0) == 0.0


@given(
    rate=st.floats(0.1, 1_000),
    steps=st.lists(st.floats(0, 2), min_size=1, max_size=300),
)
def test_over_any_run_no_more_than_rate_times_time_plus_capacity_is_granted(
    rate: float, steps: list[float]
) -> None:
    bucket = TokenBucket(rate)
    now = 0.0
    granted = 0
    for step in steps:
        now += step
        wait = bucket.take(now)
        if wait == 0.0:
            granted += 1
        else:
            assert 0 < wait <= 1 / rate + 1e-9
    assert granted <= rate * now + bucket.capacity + 1e-6


@given(rate=st.floats(0.1, 100), wait_factor=st.floats(1.0, 3.0))
def test_waiting_the_answer_always_gets_a_token(rate: float, wait_factor: float) -> None:
    bucket = TokenBucket(rate)
    while bucket.take(0.0) == 0.0:
        pass
    wait = bucket.take(0.0)
    assert wait > 0
    assert bucket.take(wait * wait_factor + 1e-9) == 0.0
