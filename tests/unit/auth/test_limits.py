"""Token buckets, stream slots and the refusal gate, driven by a hand-moved clock."""

from __future__ import annotations

import pytest

from tidings.auth.limits import RefusalGate, StreamSlots, TokenBucket, retry_after


def test_a_bucket_allows_one_seconds_worth_at_once_then_refills_at_its_rate() -> None:
    bucket = TokenBucket(10, now=0.0)
    assert all(bucket.take(1, 0.0) == 0.0 for _ in range(10))
    wait = bucket.take(1, 0.0)
    assert wait == pytest.approx(0.1)
    assert bucket.take(1, 0.05) > 0
    assert bucket.take(1, 0.1) == 0.0
    assert bucket.take(5, 0.6) == 0.0  # 0.5 s: five more


def test_a_bucket_never_holds_more_than_its_burst() -> None:
    bucket = TokenBucket(2, now=0.0)
    assert bucket.take(2, 1000.0) == 0.0
    assert bucket.take(1, 1000.0) > 0


def test_a_request_larger_than_the_burst_passes_when_full_and_leaves_a_debt() -> None:
    bucket = TokenBucket(10, now=0.0)
    assert bucket.take(25, 0.0) == 0.0  # a batch of 25 against 10/s
    assert bucket.tokens == -15
    assert bucket.take(1, 1.0) == pytest.approx(0.6)  # the debt is repaid first
    assert bucket.take(1, 1.6) == 0.0


def test_a_slow_rate_has_a_burst_of_one() -> None:
    bucket = TokenBucket(0.5, now=0.0)
    assert bucket.take(1, 0.0) == 0.0
    assert bucket.take(1, 0.0) == pytest.approx(2.0)


def test_a_bucket_needs_a_positive_rate() -> None:
    with pytest.raises(ValueError):
        TokenBucket(0, now=0.0)


def test_retry_after_is_whole_seconds_at_least_one() -> None:
    assert retry_after(0.01) == "1"
    assert retry_after(1.0) == "1"
    assert retry_after(1.2) == "2"


def test_stream_slots_count_each_key_against_its_own_limit() -> None:
    slots = StreamSlots()
    assert slots.acquire("a", 2) and slots.acquire("a", 2)
    assert not slots.acquire("a", 2)
    assert slots.acquire("b", 1)
    slots.release("a")
    assert slots.open("a") == 1
    assert slots.acquire("a", 2)
    assert not slots.acquire("c", 0)
    for _ in range(3):
        slots.release("a")
    assert slots.open("a") == 0


def test_the_gate_records_one_refusal_a_minute_per_prefix_and_address() -> None:
    gate = RefusalGate(interval=60, per_address=5)
    assert gate.admit("tdk_aaaa", "10.0.0.1", 0.0) == 0
    assert gate.admit("tdk_aaaa", "10.0.0.1", 30.0) is None
    assert gate.admit("tdk_aaaa", "10.0.0.2", 30.0) == 0  # another address
    assert gate.admit("tdk_aaaa", "10.0.0.1", 61.0) == 1  # one was left out meanwhile


def test_ten_thousand_wrong_keys_from_one_address_make_a_handful_of_records() -> None:
    gate = RefusalGate(interval=60, per_address=5)
    kept = [
        gate.admit(f"tdk_{i:08d}", "203.0.113.9", i * 0.006) for i in range(10_000)
    ]  # all within one minute
    assert sum(1 for k in kept if k is not None) == 5
    later = gate.admit("tdk_new", "203.0.113.9", 61.0)
    assert later == 10_000 - 5


def test_the_gate_forgets_the_oldest_past_its_capacity() -> None:
    gate = RefusalGate(interval=60, per_address=1, capacity=100)
    for i in range(1000):
        gate.admit("p", f"10.0.{i // 256}.{i % 256}", 0.0)
    assert len(gate._pairs) == 100 and len(gate._addresses) == 100
