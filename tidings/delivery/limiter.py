"""Per-endpoint rate limit: a token bucket (no I/O; the caller supplies the clock)."""

from __future__ import annotations


class TokenBucket:
    def __init__(self, rate_per_s: float, burst: float | None = None) -> None:
        self.rate = rate_per_s  # tokens added per second
        self.capacity = burst if burst is not None else max(1.0, rate_per_s)
        self.tokens = self.capacity
        self._at: float | None = None  # when tokens was last brought up to date

    def _refill(self, now: float) -> None:
        if self._at is not None:
            self.tokens = min(self.capacity, self.tokens + (now - self._at) * self.rate)
        self._at = now

    def take(self, now: float) -> float:
        """Take a token: 0.0 when one was available, else the seconds until one will be."""
        self._refill(now)
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate
