"""Who a store tells of its commits: every listener, in the order they were added.

A listener that raises is logged and skipped; it never stops the others, nor fails the
commit it was told of (the events are stored by then).
"""

from __future__ import annotations

import logging

from tidings.envelope import Event
from tidings.store.base import CommitListener, GroupListener


class Listeners:
    def __init__(self, log: logging.Logger) -> None:
        self.log = log  # where a failing listener is reported
        self.commit: list[CommitListener] = []  # told of every commit's events, in order
        self.group: list[GroupListener] = []  # metrics: group sizes and durations

    def tell_group(self, count: int, elapsed: float) -> None:
        """A group of ``count`` appends was written in ``elapsed`` seconds."""
        for listener in self.group:
            try:
                listener(count, elapsed)
            except Exception:  # metrics must never keep events from the commit listeners
                self.log.exception("group listener failed")

    def tell_commit(self, events: list[Event]) -> None:
        """``events`` are committed, in seq order."""
        for listener in self.commit:
            try:
                listener(events)
            except Exception:  # one broken listener must not stop the others
                self.log.exception("commit listener failed")
