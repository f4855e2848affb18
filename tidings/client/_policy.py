"""When to send a request again, and how long to wait first (no I/O).

Only what is safe is sent again: a call marked ``safe`` (a GET, or a publish whose every
event has an idempotency key), or any call whose connection was refused before a byte of it
left. The waits grow exponentially with jitter, so clients that lost the same server do not
come back in step; a server's ``Retry-After`` (or an SSE ``retry:``) is honoured instead.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

from tidings.client._calls import Answer, Call
from tidings.client._errors import TidingsError, parse_retry_after

# Answers that mean "not now" rather than "no": worth another try after a wait.
RETRY_STATUSES = frozenset({429, 502, 503, 504})


@dataclass(slots=True)
class Backoff:
    """Exponential waits with "equal jitter": each wait is between half and all of the step."""

    initial: float = 0.5  # the first step, seconds
    maximum: float = 30.0  # no step is longer
    factor: float = 2.0
    rng: Callable[[], float] = field(default=random.random, repr=False)
    _steps: int = 0  # waits handed out since the last reset

    def next(self) -> float:
        step = min(self.maximum, self.initial * self.factor**self._steps)
        self._steps += 1
        return step * (0.5 + self.rng() / 2)

    def reset(self) -> None:
        self._steps = 0


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How many more tries a call gets, and how long to wait before each."""

    retries: int = 2  # tries after the first
    max_wait: float = 60.0  # a Retry-After longer than this is not waited for

    def after_answer(
        self, call: Call, tries: int, answer: Answer, backoff: Backoff
    ) -> float | None:
        """The wait before sending ``call`` again after ``answer``; None to keep the answer."""
        if answer.status not in RETRY_STATUSES or not call.safe or tries > self.retries:
            return None
        asked = parse_retry_after(answer.headers.get("retry-after"))
        if asked is None:
            return backoff.next()
        return asked if asked <= self.max_wait else None

    def after_failure(self, call: Call, tries: int, sent: bool, backoff: Backoff) -> float | None:
        """The wait before sending ``call`` again when no answer came; None to give up.

        ``sent`` is False when the connection itself failed, so the server saw nothing.
        """
        if tries > self.retries or (sent and not call.safe):
            return None
        return backoff.next()


@dataclass(frozen=True, slots=True)
class Lost:
    """A request that got no answer, as the transport reported it."""

    error: TidingsError  # what the caller sees if it is not sent again
    transient: bool  # the connection failed or timed out; else the request could not be made
    sent: bool  # some of it may have reached the server


@dataclass(slots=True)
class Attempts:
    """The tries of one call: after each outcome, the wait before the next, or the end.

    Both clients drive it the same way; they differ only in how they send and wait.
    """

    call: Call
    policy: RetryPolicy
    backoff: Backoff = field(default_factory=Backoff)
    tries: int = 0

    def answered(self, answer: Answer) -> float | None:
        """The wait before sending the call again; None when ``answer`` is the call's answer."""
        self.tries += 1
        return self.policy.after_answer(self.call, self.tries, answer, self.backoff)

    def lost(self, lost: Lost) -> float:
        """The wait before sending the call again when no answer came; raises when it ends."""
        self.tries += 1
        wait = None
        if lost.transient:
            wait = self.policy.after_failure(self.call, self.tries, lost.sent, self.backoff)
        if wait is None:
            raise lost.error from None
        return wait
