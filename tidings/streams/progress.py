"""Is a slow socket still draining? The kernel's count of unsent bytes tells.

A write that waits longer than the stall time is not by itself proof of a dead reader: the
kernel wakes a blocked writer only once about a third of a (possibly megabytes large) send
buffer has drained, so a slow but steady reader can keep a write waiting a long time. While
the number of bytes the peer has not acknowledged keeps going down, the reader is taking data
and the deadline moves on; a socket whose queue does not move for the stall time is stalled.
"""

from __future__ import annotations

import asyncio
import fcntl
import socket
import struct
import termios
from collections.abc import Callable

UnsentBytes = Callable[[], int | None]
"""Bytes still queued in the kernel for the peer, or None when that cannot be known."""


def unsent_bytes(sock: socket.socket | None) -> int | None:
    """``SIOCOUTQ`` (Linux's ``TIOCOUTQ`` on a socket): bytes not yet acknowledged by the peer."""
    if sock is None:
        return None
    try:
        raw = fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0")
    except (OSError, ValueError):
        return None
    value: int = struct.unpack("i", raw)[0]
    return value


class ProgressWatch:
    """While a send waits, move its deadline to ``stall_s`` after the kernel queue last shrank.

    The queue is looked at every quarter of the stall time; the first look sets the baseline.
    """

    def __init__(
        self, deadline: asyncio.Timeout, stall_s: float, unsent: UnsentBytes | None
    ) -> None:
        self._deadline = deadline  # the send's asyncio.timeout
        self._stall_s = stall_s
        self._unsent = unsent  # None: no way to look, the plain deadline applies
        self._last: int | None = None  # smallest queue size seen so far
        self._loop = asyncio.get_running_loop()
        self._handle: asyncio.TimerHandle | None = None
        if unsent is not None:
            self._handle = self._loop.call_later(stall_s / 4, self._look)

    def _look(self) -> None:
        assert self._unsent is not None
        now = self._unsent()
        if now is None:
            self._handle = None
            return
        if self._last is not None and now < self._last:
            # The peer took data since the last look: it is slow, not stalled.
            self._deadline.reschedule(self._loop.time() + self._stall_s)
        if self._last is None or now < self._last:
            self._last = now
        self._handle = self._loop.call_later(self._stall_s / 4, self._look)

    def cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
