"""How many connections one process holds, and which one goes when it is full.

The limits themselves are plain values and small classes without sockets (the protocol in
``tidings.http_protocol`` applies them): the open-files budget the connection cap is sized
from, the set of idle connections the longest-idle of which makes room for a new one, and a
log line that says the cap was reached without repeating itself for every connection.
"""

from __future__ import annotations

import resource
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

# Descriptors kept out of the connection cap: the store's files (the writer, the readers and
# their -wal/-shm files), outbound delivery connections, ingest, the backplane, logs, the
# event loop's own. At least this many, or a twentieth of the limit when that is more.
RESERVED_DESCRIPTORS = 256
NOFILE_CEILING = 1_048_576  # never ask for more than Linux's default fs.nr_open

T = TypeVar("T", bound=Hashable)


@dataclass(frozen=True)
class ConnectionLimits:
    """What a connection may take: a slot under the cap, header bytes and time."""

    max_connections: int  # open connections (HTTP and WebSocket) held at once
    header_timeout_s: float  # a request's line and headers must arrive within this
    max_header_bytes: int  # the request line and headers together


def raise_open_files_limit() -> int:
    """Raise the soft open-files limit as far as the hard one allows; the soft limit now.

    Most systems start processes at a soft limit of 1,024 under a far higher hard limit, and
    every connection is a descriptor.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = NOFILE_CEILING if hard == resource.RLIM_INFINITY else min(hard, NOFILE_CEILING)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
            soft = wanted
        except (ValueError, OSError):  # not allowed here: keep what we have
            pass
    return NOFILE_CEILING if soft == resource.RLIM_INFINITY else int(soft)


def connection_budget(open_files: int) -> int:
    """The connections that ``open_files`` descriptors leave room for."""
    reserve = max(RESERVED_DESCRIPTORS, open_files // 20)
    return max(open_files - reserve, 16)


def connection_cap(open_files: int, configured: int | None) -> tuple[int, str | None]:
    """The cap to apply, and a warning when the configured one does not fit the budget."""
    budget = connection_budget(open_files)
    if configured is None:
        return budget, None
    if configured > budget:
        return budget, (
            f"TIDINGS_MAX_CONNECTIONS={configured} does not fit the open-files limit "
            f"({open_files}); holding at most {budget} connections"
        )
    return configured, None


class IdleConnections(Generic[T]):
    """Connections that wait for a request, the longest-waiting first.

    A connection is idle from when it opens (or its last response ended) until its request's
    headers are complete: that covers unused keep-alive connections and clients that never
    finish their headers alike, which are the ones to let go when the server is full.
    """

    def __init__(self) -> None:
        self._since: dict[T, None] = {}  # insertion order = longest idle first

    def __len__(self) -> int:
        return len(self._since)

    def idle(self, connection: T) -> None:
        self._since.pop(connection, None)
        self._since[connection] = None

    def busy(self, connection: T) -> None:
        self._since.pop(connection, None)

    def take_oldest(self, besides: T) -> T | None:
        """Remove and return the longest-idle connection other than ``besides``."""
        for connection in self._since:
            if connection != besides:
                del self._since[connection]
                return connection
        return None


class CapReport:
    """Counts what the cap did and says so in one line at most every ``every_s`` seconds."""

    def __init__(self, cap: int, every_s: float = 10.0) -> None:
        self.cap = cap
        self.every_s = every_s
        self.closed_idle = 0  # since the last line
        self.refused = 0  # since the last line
        self._last: float | None = None  # when the last line was due

    def note(self, now: float, *, refused: bool) -> str | None:
        """Record one connection let go (idle) or refused; the line to log, when one is due."""
        if refused:
            self.refused += 1
        else:
            self.closed_idle += 1
        if self._last is not None and now - self._last < self.every_s:
            return None
        self._last = now
        line = (
            f"connection cap reached ({self.cap} open, TIDINGS_MAX_CONNECTIONS): "
            f"{self.closed_idle} idle connection(s) closed and {self.refused} new one(s) "
            f"refused with 503 since the last report"
        )
        self.closed_idle = self.refused = 0
        return line
