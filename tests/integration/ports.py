"""Ports for test servers that a restart can take again.

A port handed out by ``bind(port 0)`` lies in the kernel's ephemeral range, from which every
outgoing connection also draws its local port: after a server on such a port is killed, any
client connection of the test run can take the port before the server starts again
(``[Errno 98] address already in use``). Servers that restart on the same port therefore
listen on a port below (or above) that range, which outgoing connections never use.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

EPHEMERAL_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
DEFAULT_EPHEMERAL = (32768, 60999)  # Linux's default, when the file cannot be read
LOWEST = 20_000  # below this live the well-known and registered services tests talk to
TRIES = 200


def ephemeral_range(path: Path = EPHEMERAL_RANGE_FILE) -> tuple[int, int]:
    """The kernel's range of local ports for outgoing connections (inclusive)."""
    try:
        low, high = (int(part) for part in path.read_text().split())
    except (OSError, ValueError):
        return DEFAULT_EPHEMERAL
    return low, high


def candidate_ports(low: int, high: int) -> list[int]:
    """Every port from ``LOWEST`` up that lies outside the ephemeral range ``[low, high]``."""
    return [p for p in (*range(LOWEST, low), *range(high + 1, 65_536)) if p >= LOWEST]


def is_free(port: int) -> bool:
    """Whether a server could listen on ``port`` now (binding as uvicorn does)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
            sock.listen()
        except OSError:
            return False
    return True


def free_port() -> int:
    """A free port outside the ephemeral range, or any free port when there is none."""
    candidates = candidate_ports(*ephemeral_range())
    for port in random.sample(candidates, min(TRIES, len(candidates))):
        if is_free(port):
            return port
    with socket.socket() as sock:  # the whole range is ephemeral: the best left to do
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
