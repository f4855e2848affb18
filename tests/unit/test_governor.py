"""The delivery governor: retries take turns, and fresh deliveries too while publishes queue."""

from __future__ import annotations

import pytest

from tidings.delivery.governor import Governor


def governor(load: list[int]) -> Governor:
    return Governor(lambda: load[0], period_s=0.1, open_s=0.025, busy_inflight=4, hold_s=1.0)


@pytest.mark.parametrize(
    ("now", "wait"),
    [(10.0, 0.0), (10.024, 0.0), (10.026, 0.074), (10.05, 0.05), (10.099, 0.001), (10.1, 0.0)],
)
def test_retries_start_only_in_the_open_part_of_each_period(now: float, wait: float) -> None:
    assert governor([0]).retry_wait(now) == pytest.approx(wait, abs=1e-9)


def test_fresh_attempts_are_not_held_while_publishing_is_light() -> None:
    g = governor([3])
    assert [g.fresh_wait(t) for t in (10.0, 10.03, 10.05, 10.099)] == [0.0] * 4
    assert not g.yielding(10.05)
    assert g.yielded == 0


def test_a_publish_queue_makes_fresh_attempts_take_turns_for_the_hold_time() -> None:
    load = [4]
    g = governor(load)
    assert g.fresh_wait(10.05) == pytest.approx(0.05)  # closed part: wait for the next turn
    assert g.fresh_wait(10.11) == 0.0  # open part
    load[0] = 0  # the burst is over, but the hold lasts from the last time it was seen
    assert g.yielding(10.9)
    assert g.fresh_wait(10.96) == pytest.approx(0.04)
    assert g.fresh_wait(11.11) == 0.0 and not g.yielding(11.11)
    assert g.fresh_wait(11.15) == 0.0  # closed part, but no longer yielding
    assert g.yielded == 1
    load[0] = 9
    g.fresh_wait(12.0)
    assert g.yielded == 2


def test_the_open_part_must_fit_in_the_period() -> None:
    with pytest.raises(ValueError):
        Governor(lambda: 0, period_s=0.1, open_s=0.2)
    with pytest.raises(ValueError):
        Governor(lambda: 0, period_s=0.1, open_s=0.0)
