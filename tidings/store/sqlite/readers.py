"""A small pool of read connections used from worker threads.

WAL lets readers run beside the writer. A read function runs entirely inside one thread call,
so no transaction is ever held across an ``await``.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from tidings.store.sqlite.connection import connect

T = TypeVar("T")


class ReaderPool:
    def __init__(self, path: Path, size: int = 4) -> None:
        self._path = path  # the database file
        self._size = size  # connections, so at most this many reads at once
        self._idle: asyncio.Queue[sqlite3.Connection] = asyncio.Queue()
        self._all: list[sqlite3.Connection] = []

    def open(self) -> None:
        for _ in range(self._size):
            conn = connect(self._path, readonly=True)
            self._all.append(conn)
            self._idle.put_nowait(conn)

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        conn = await self._idle.get()
        try:
            return await asyncio.to_thread(fn, conn)
        finally:
            self._idle.put_nowait(conn)

    def close(self) -> None:
        for conn in self._all:
            conn.close()
        self._all.clear()
