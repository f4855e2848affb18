"""The server's garbage-collector settings: a larger young generation, startup set aside."""

from __future__ import annotations

import gc
import sys
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn

from tidings import server


@pytest.fixture
def gc_restored() -> Iterator[None]:
    thresholds, interval = gc.get_threshold(), sys.getswitchinterval()
    yield
    gc.set_threshold(*thresholds)
    sys.setswitchinterval(interval)
    gc.unfreeze()


class _Hub:
    def __init__(self) -> None:
        self.streams = type("Streams", (), {})()
        self.opened = False

    async def open_store(self) -> None:
        self.opened = True


async def test_startup_sets_what_it_built_aside(
    monkeypatch: pytest.MonkeyPatch, gc_restored: None
) -> None:
    async def started(self: Any, sockets: Any = None) -> None:
        pass

    monkeypatch.setattr(uvicorn.Server, "startup", started)
    gc.unfreeze()
    hub = _Hub()
    built = server.TidingsServer(uvicorn.Config(app=None), hub)  # type: ignore[arg-type]

    await built.startup()

    assert hub.opened
    assert gc.get_freeze_count() > 0


def test_serve_runs_with_the_larger_young_generation(
    monkeypatch: pytest.MonkeyPatch, gc_restored: None
) -> None:
    seen: list[tuple[int, int, int]] = []

    class _Server:
        def handle_exit(self, sig: int, frame: object) -> None:
            pass

        def run(self) -> None:
            seen.append(gc.get_threshold())

    monkeypatch.setattr(server, "build_server", lambda settings: _Server())
    gc.set_threshold(700, 10, 10)

    server.serve(None)  # type: ignore[arg-type]

    assert seen == [server.GC_THRESHOLDS]
    assert server.GC_THRESHOLDS[0] > 700
