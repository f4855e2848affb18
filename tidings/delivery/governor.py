"""How much of the node delivery may take: publishing comes first, fresh deliveries next.

Attempts are cheap and closed-loop: a receiver that answers in a fraction of a millisecond
(or refuses the connection at once) lets a few attempt slots run thousands of attempts a
second, and the event loop and the SQLite writer, which publishing needs, go to delivery.
Two rules keep the node answering:

* **Retries take turns.** Attempts after the first start only in the first ``open_s`` of
  every ``period_s`` (a quarter of the time by default), so a backlog of retries for a dead
  receiver cannot take the loop from fresh deliveries and publishes. Retries still run
  continuously, at a bounded share.
* **Publishing comes first.** While publishes queue up for their commit
  (``busy_inflight`` or more waiting), fresh attempts and dispatch rounds take the same turns,
  for at least ``hold_s`` after the last time it was seen. The backlog stays in the event
  log (the cursors are durable) and is delivered at full speed once the burst is over.

Measured in BENCHMARKS.md ("Webhook delivery").
"""

from __future__ import annotations

from collections.abc import Callable

PERIOD_S = 0.06
OPEN_S = 0.015
BUSY_INFLIGHT = 16  # publishes waiting for their commit that make delivery take turns
HOLD_S = 1.0


class Governor:
    def __init__(
        self,
        publish_load: Callable[[], int],
        *,
        period_s: float = PERIOD_S,
        open_s: float = OPEN_S,
        busy_inflight: int = BUSY_INFLIGHT,
        hold_s: float = HOLD_S,
    ) -> None:
        if not 0 < open_s <= period_s:
            raise ValueError("open_s must be in (0, period_s]")
        self.publish_load = publish_load  # publishes waiting for their commit, now
        self.period_s = period_s
        self.open_s = open_s
        self.busy_inflight = busy_inflight
        self.hold_s = hold_s
        self._busy_until = float("-inf")
        self.yielded = 0  # how many times publishing made delivery take turns (stats)

    def _closed_for(self, now: float) -> float:
        """0.0 in the open part of the period, else the seconds until the next one."""
        phase = now % self.period_s
        return 0.0 if phase < self.open_s else self.period_s - phase

    def retry_wait(self, now: float) -> float:
        """Seconds before a retry may start (0.0: now)."""
        return self._closed_for(now)

    def fresh_wait(self, now: float) -> float:
        """Seconds before a first attempt or a dispatch round may start (0.0: now)."""
        if self.publish_load() >= self.busy_inflight:
            if now >= self._busy_until:
                self.yielded += 1
            self._busy_until = now + self.hold_s
        if now >= self._busy_until:
            return 0.0
        return self._closed_for(now)

    def yielding(self, now: float) -> bool:
        """Whether fresh deliveries are taking turns with publishing right now."""
        return now < self._busy_until
