"""A small pool of read connections used from worker threads.

WAL lets readers run beside the writer. A read function runs entirely inside one thread call,
so no transaction is ever held across an ``await``.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from tidings.errors import TidingsError
from tidings.store.sqlite.connection import connect

T = TypeVar("T")


class ReaderPool:
    def __init__(self, path: Path, size: int = 4) -> None:
        self._path = path  # the database file
        self._size = size  # connections, so at most this many reads at once
        self._idle: asyncio.Queue[sqlite3.Connection] = asyncio.Queue()
        self._all: list[sqlite3.Connection] = []  # every open connection, idle or busy
        self._open = False  # reads are refused before open and after close

    def open(self) -> None:
        if self._open:
            return
        self._idle = asyncio.Queue()
        for _ in range(self._size):
            conn = connect(self._path, readonly=True)
            self._all.append(conn)
            self._idle.put_nowait(conn)
        self._open = True

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if not self._open:
            raise TidingsError(503, "store_closed", "the store is not open")
        conn = await self._idle.get()
        loop = asyncio.get_running_loop()
        call = functools.partial(contextvars.copy_context().run, fn, conn)
        work = loop.run_in_executor(None, call)
        # The connection goes back only when the thread is done with it: a caller cancelled
        # mid-read must not hand a connection in use to the next reader.
        work.add_done_callback(lambda done: self._release(conn, done))
        return await asyncio.shield(work)

    def _release(self, conn: sqlite3.Connection, done: asyncio.Future[T]) -> None:
        if not done.cancelled():
            done.exception()  # retrieved here, so a cancelled caller's error is not reported
        self._idle.put_nowait(conn)

    async def close(self) -> None:
        """Refuse new reads, wait for the running ones, then close every connection."""
        if not self._open:
            return
        self._open = False
        for _ in range(len(self._all)):
            (await self._idle.get()).close()
        self._all.clear()
