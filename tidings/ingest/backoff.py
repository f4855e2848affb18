"""The reconnect schedule of the ingest adapters: exponential, capped, with jitter.

Jitter matters when a broker or database restarts: without it every node reconnects at the
same instants and the restarted service takes the whole herd at once.
"""

from __future__ import annotations

import random
from collections.abc import Callable


class Backoff:
    """Delays ``initial * factor**n``, capped at ``maximum``, each scaled by a random factor in
    ``[1 - jitter, 1 + jitter]``; ``reset`` after a success starts again from ``initial``."""

    def __init__(
        self,
        initial: float = 0.5,
        maximum: float = 30.0,
        *,
        factor: float = 2.0,
        jitter: float = 0.2,
        rand: Callable[[], float] = random.random,
    ) -> None:
        if initial <= 0 or maximum < initial or factor < 1 or not 0 <= jitter < 1:
            raise ValueError("backoff needs 0 < initial <= maximum, factor >= 1, 0 <= jitter < 1")
        self.initial = initial  # the first delay
        self.maximum = maximum  # no delay is longer (before jitter)
        self.factor = factor  # growth per failure
        self.jitter = jitter  # relative spread of each delay
        self._rand = rand  # uniform in [0, 1); injectable so tests are deterministic
        self.failures = 0  # consecutive failures since the last reset

    def next(self) -> float:
        """The delay before the next attempt, counting one more failure."""
        base = min(self.initial * self.factor**self.failures, self.maximum)
        self.failures += 1
        return base * (1 - self.jitter + 2 * self.jitter * self._rand())

    def reset(self) -> None:
        self.failures = 0
