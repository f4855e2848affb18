"""Which calls the client sends again, and how long it waits (no I/O)."""

from __future__ import annotations

import pytest

from tidings.client._calls import Answer, Call
from tidings.client._errors import TidingsError
from tidings.client._policy import Attempts, Backoff, Lost, RetryPolicy

GET = Call("GET", "/v1/events", safe=True)
POST = Call("POST", "/v1/events", body=b"{}")
KEYED_POST = Call("POST", "/v1/events", body=b"{}", safe=True)


def answer(status: int, **headers: str) -> Answer:
    return Answer(status, headers, b"", "http://x")


def test_backoff_doubles_up_to_the_maximum_with_jitter_between_half_and_all() -> None:
    low, high = Backoff(initial=1, maximum=8, rng=lambda: 0.0), Backoff(1, 8, rng=lambda: 1.0)
    assert [low.next() for _ in range(6)] == [0.5, 1, 2, 4, 4, 4]
    assert [high.next() for _ in range(6)] == [1, 2, 4, 8, 8, 8]


def test_backoff_starts_again_after_a_reset() -> None:
    backoff = Backoff(initial=1, rng=lambda: 1.0)
    backoff.next(), backoff.next()
    backoff.reset()
    assert backoff.next() == 1


def test_a_safe_call_is_sent_again_on_503_until_the_retries_are_spent() -> None:
    policy, backoff = RetryPolicy(retries=2), Backoff(rng=lambda: 1.0)
    assert policy.after_answer(GET, 1, answer(503), backoff) == 0.5
    assert policy.after_answer(GET, 2, answer(503), backoff) == 1.0
    assert policy.after_answer(GET, 3, answer(503), backoff) is None


def test_a_publish_without_idempotency_key_is_never_sent_again_after_an_answer() -> None:
    policy = RetryPolicy(retries=5)
    for status in (429, 502, 503, 504):
        assert policy.after_answer(POST, 1, answer(status), Backoff()) is None
        assert policy.after_answer(KEYED_POST, 1, answer(status), Backoff()) is not None


def test_refusals_that_will_not_pass_are_kept() -> None:
    for status in (400, 401, 404, 409, 413, 422, 500):
        assert RetryPolicy().after_answer(GET, 1, answer(status), Backoff()) is None


def test_retry_after_is_the_wait_and_a_too_long_one_is_not_waited_for() -> None:
    policy = RetryPolicy(max_wait=10)
    assert policy.after_answer(GET, 1, answer(429, **{"retry-after": "3"}), Backoff()) == 3.0
    assert policy.after_answer(GET, 1, answer(429, **{"retry-after": "11"}), Backoff()) is None


def test_a_refused_connection_may_be_retried_for_any_call_but_a_lost_answer_only_if_safe() -> None:
    policy = RetryPolicy(retries=1)
    assert policy.after_failure(POST, 1, sent=False, backoff=Backoff()) is not None
    assert policy.after_failure(POST, 1, sent=True, backoff=Backoff()) is None
    assert policy.after_failure(KEYED_POST, 1, sent=True, backoff=Backoff()) is not None
    assert policy.after_failure(GET, 2, sent=True, backoff=Backoff()) is None


def steady(call: Call, retries: int = 2) -> Attempts:
    return Attempts(call, RetryPolicy(retries=retries), Backoff(initial=1, rng=lambda: 1.0))


def test_attempts_wait_longer_each_time_then_keep_the_last_answer() -> None:
    attempts = steady(GET)
    assert attempts.answered(answer(503)) == 1
    assert attempts.answered(answer(503)) == 2
    assert attempts.answered(answer(503)) is None  # the retries are spent: this is the answer
    assert steady(GET).answered(answer(200)) is None


def test_attempts_raise_a_lost_answer_once_it_cannot_be_asked_again() -> None:
    error = TidingsError("timeout", "no answer")
    assert steady(GET, retries=1).lost(Lost(error, transient=True, sent=True)) == 1
    with pytest.raises(TidingsError) as raised:
        attempts = steady(GET, retries=1)
        attempts.answered(answer(503))
        attempts.lost(Lost(error, transient=True, sent=True))
    assert raised.value is error
    with pytest.raises(TidingsError):  # a plain publish may have been stored: not sent again
        steady(POST).lost(Lost(error, transient=True, sent=True))
    assert steady(POST).lost(Lost(error, transient=True, sent=False)) == 1


def test_attempts_never_repeat_a_request_that_could_not_be_made() -> None:
    error = TidingsError("invalid_url", "bad URL")
    with pytest.raises(TidingsError) as raised:
        steady(GET).lost(Lost(error, transient=False, sent=False))
    assert raised.value is error
