"""Supervised background tasks: named, logged when they fail, restarted with backoff.

A silent dead listener is the worst failure an event hub can have, so no background task runs
without a supervisor.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable

log = logging.getLogger("tidings.tasks")


class Supervisor:
    def __init__(self) -> None:
        self._tasks: dict[str, asyncio.Task[None]] = {}  # by name
        self.restarts: dict[str, int] = {}  # how often each task was restarted

    def start(
        self,
        name: str,
        factory: Callable[[], Awaitable[None]],
        *,
        max_backoff: float = 30.0,
    ) -> None:
        """Run ``factory()`` as task ``name``; when it raises, log and run it again."""
        if name in self._tasks:
            raise RuntimeError(f"task {name!r} is already running")

        async def guard() -> None:
            delay = 0.5
            while True:
                try:
                    await factory()
                    return  # finished on its own
                except asyncio.CancelledError:
                    raise
                except Exception:
                    self.restarts[name] = self.restarts.get(name, 0) + 1
                    log.exception("background task %r failed; restarting in %.1fs", name, delay)
                await asyncio.sleep(delay * random.uniform(0.8, 1.2))
                delay = min(delay * 2, max_backoff)

        self._tasks[name] = asyncio.create_task(guard(), name=f"tidings:{name}")

    def running(self) -> list[str]:
        return [name for name, task in self._tasks.items() if not task.done()]

    async def stop(self, name: str | None = None) -> None:
        """Cancel one task (or all) and wait until it has ended."""
        names = [name] if name else list(self._tasks)
        tasks = [self._tasks.pop(n) for n in names if n in self._tasks]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
