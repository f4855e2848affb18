"""The adapters' reconnect schedule."""

from __future__ import annotations

import pytest

from tidings.ingest.backoff import Backoff


def test_delays_double_up_to_the_maximum() -> None:
    backoff = Backoff(0.5, 4.0, jitter=0.0)
    assert [backoff.next() for _ in range(6)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]


def test_reset_starts_again_from_the_first_delay() -> None:
    backoff = Backoff(1.0, 10.0, jitter=0.0)
    backoff.next()
    backoff.next()
    backoff.reset()
    assert backoff.next() == 1.0


@pytest.mark.parametrize(("rand", "expected"), [(0.0, 0.8), (0.5, 1.0), (0.999999, 1.2)])
def test_jitter_spreads_each_delay_within_its_bounds(rand: float, expected: float) -> None:
    backoff = Backoff(1.0, 10.0, jitter=0.2, rand=lambda: rand)
    assert backoff.next() == pytest.approx(expected, abs=1e-5)


def test_jittered_delays_differ_between_nodes() -> None:
    delays = {Backoff(1.0, 10.0).next() for _ in range(50)}
    assert len(delays) > 40
    assert all(0.8 <= d <= 1.2 for d in delays)


def test_invalid_schedules_are_refused() -> None:
    for args in ((0, 1), (2, 1), (1, 2, 0.5), (1, 2, 2.0, 1.0)):
        with pytest.raises(ValueError):
            Backoff(
                *args[:2],
                factor=args[2] if len(args) > 2 else 2.0,
                jitter=args[3] if len(args) > 3 else 0.2,
            )
