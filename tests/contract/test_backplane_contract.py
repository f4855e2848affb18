"""The contract every backplane meets; one more implementation is one more parameter."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from tidings.backplane import Announcement, Backplane, MemoryBackplane, open_backplane_from_url
from tidings.envelope import Event

IMPLEMENTATIONS: list[object] = [pytest.param(MemoryBackplane, id="memory")]


def _event(seq: int) -> Event:
    return Event(seq, f"id-{seq}", "a.b", "api", None, 0, 0, "0" * 31 + "1", None, "null", "{}")


@pytest.fixture(params=IMPLEMENTATIONS)
async def backplane(request: pytest.FixtureRequest) -> AsyncIterator[Backplane]:
    factory: Callable[[], Backplane] = request.param
    instance = factory()
    yield instance
    await instance.stop()


async def test_announcements_reach_the_handler_in_order(backplane: Backplane) -> None:
    received: list[Announcement] = []
    await backplane.start(received.append, lambda connected: None)
    sent = [Announcement.of([_event(1), _event(2)]), Announcement.of([_event(3)])]
    for announcement in sent:
        backplane.publish(announcement)
    assert [(a.first, a.last) for a in received] == [(0, 2), (2, 3)]
    assert received[0].events is not None
    assert [e.seq for e in received[0].events] == [1, 2]


async def test_a_started_backplane_is_connected_and_a_stopped_one_delivers_nothing(
    backplane: Backplane,
) -> None:
    received: list[Announcement] = []
    await backplane.start(received.append, lambda connected: None)
    assert backplane.connected
    await backplane.stop()
    assert not backplane.connected
    backplane.publish(Announcement.of([_event(1)]))
    assert received == []


def test_an_announcement_of_a_commit_spans_its_positions() -> None:
    announcement = Announcement.of([_event(7), _event(8), _event(9)])
    assert (announcement.first, announcement.last) == (6, 9)


@pytest.mark.parametrize("url", ["memory://", "memory", ""])
def test_the_memory_url_names_the_in_process_backplane(url: str) -> None:
    assert isinstance(open_backplane_from_url(url), MemoryBackplane)


@pytest.mark.parametrize("url", ["redis://127.0.0.1:6379", "nats://127.0.0.1:4222", "kafka://x"])
def test_an_unavailable_backplane_url_is_refused_with_the_setting_named(url: str) -> None:
    with pytest.raises(ValueError, match="TIDINGS_BACKPLANE"):
        open_backplane_from_url(url)
