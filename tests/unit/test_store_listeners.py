"""A store's listeners: each is told in order, and one that raises stops no other (no I/O)."""

from __future__ import annotations

import logging

import pytest

from tidings.envelope import Event
from tidings.store.listeners import Listeners


def test_a_failing_listener_is_logged_and_the_others_are_still_told(
    caplog: pytest.LogCaptureFixture,
) -> None:
    told: list[str] = []
    listeners = Listeners(logging.getLogger("tidings.store"))

    def broken_commit(events: list[Event]) -> None:
        raise RuntimeError("broken")

    def broken_group(count: int, elapsed: float) -> None:
        raise RuntimeError("broken")

    listeners.commit += [broken_commit, lambda events: told.append(f"commit {len(events)}")]
    listeners.group += [broken_group, lambda count, elapsed: told.append(f"group {count}")]
    with caplog.at_level(logging.ERROR, logger="tidings.store"):
        listeners.tell_group(3, 0.01)
        listeners.tell_commit([])
    assert told == ["group 3", "commit 0"]
    assert [r.getMessage() for r in caplog.records] == [
        "group listener failed",
        "commit listener failed",
    ]
