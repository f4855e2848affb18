"""When the next attempt of a delivery happens (no I/O).

``TIDINGS_WEBHOOK_RETRY_SCHEDULE`` lists the delay before each attempt: eight entries are
eight attempts, the first usually 0 (immediate). Delays get +-20% jitter so that deliveries
that failed together do not retry together. After a 429, a 503 or a timeout the next attempt
waits at least ``TIDINGS_WEBHOOK_THROTTLE_S``, or the receiver's ``Retry-After`` (bounded);
``Retry-After`` changes the next delay, never the number of attempts.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

MAX_RETRY_AFTER_S = 86_400.0  # a receiver cannot push an attempt further than a day
JITTER = 0.2


def parse_schedule(text: str) -> tuple[float, ...]:
    """``"0,5,300"`` as delays in seconds; raises ValueError naming what is wrong."""
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if not parts:
        raise ValueError("the retry schedule needs at least one delay")
    delays = []
    for part in parts:
        try:
            value = float(part)
        except ValueError:
            raise ValueError(f"{part!r} is not a number of seconds") from None
        if not math.isfinite(value):
            raise ValueError(f"{part!r} is not a finite number of seconds")
        if value < 0:
            raise ValueError(f"delays cannot be negative: {part}")
        delays.append(value)
    return tuple(delays)


def parse_retry_after(value: str | None, now_s: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    text = value.strip()
    if text.isascii() and text.isdigit():  # str.isdigit also accepts "²", which float refuses
        return min(float(text), MAX_RETRY_AFTER_S)
    try:
        when = parsedate_to_datetime(text).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return min(max(0.0, when - now_s), MAX_RETRY_AFTER_S)


@dataclass(frozen=True, slots=True)
class Outcome:
    """How one attempt went, as far as scheduling cares."""

    succeeded: bool
    throttled: bool = False  # 429, 503 or a timeout: the receiver asks for room
    gone: bool = False  # 410: the receiver says the endpoint no longer exists
    retry_after_s: float | None = None


def classify(status_code: int | None, *, timed_out: bool, retry_after_s: float | None) -> Outcome:
    if status_code is not None and 200 <= status_code < 300:
        return Outcome(True)
    if status_code == 410:
        return Outcome(False, gone=True)
    throttled = timed_out or status_code in (429, 503)
    return Outcome(False, throttled=throttled, retry_after_s=retry_after_s)


class RetrySchedule:
    def __init__(
        self, delays: Sequence[float], throttle_s: float, rng: random.Random | None = None
    ) -> None:
        self.delays = tuple(delays)  # delay before attempt i+1
        self.throttle_s = throttle_s  # least wait after 429/503/timeout without Retry-After
        self._rng = rng or random.Random()

    @property
    def attempts(self) -> int:
        return len(self.delays)

    def jitter(self, delay: float) -> float:
        return delay * self._rng.uniform(1 - JITTER, 1 + JITTER) if delay else 0.0

    def first_delay(self) -> float:
        return self.jitter(self.delays[0])

    def next_delay(self, attempts_made: int, outcome: Outcome) -> float | None:
        """Seconds until the next attempt after ``attempts_made`` attempts, or None when the
        schedule is exhausted (the delivery fails)."""
        if outcome.succeeded or outcome.gone or attempts_made >= len(self.delays):
            return None
        delay = self.jitter(self.delays[attempts_made])
        if outcome.retry_after_s is not None:
            return outcome.retry_after_s
        if outcome.throttled:
            return max(delay, self.throttle_s)
        return delay
