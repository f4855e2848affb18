"""Shared test configuration: service markers that skip, or fail under CI."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.integration.server import ServerProcess, ServerStore
from tests.pg import pg_database, pg_url

__all__ = ["pg_database", "pg_url"]  # fixtures for the tests marked postgres

REQUIRE_SERVICES = (
    os.environ.get("CI") == "true" or os.environ.get("TIDINGS_REQUIRE_SERVICES") == "1"
)

SERVICES = {
    "postgres": ("127.0.0.1", 5432),
    "redis": ("127.0.0.1", 6379),
    "mqtt": ("127.0.0.1", 1883),
    "nats": ("127.0.0.1", 4222),
}


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def pytest_runtest_setup(item: pytest.Item) -> None:
    for marker, (host, port) in SERVICES.items():
        if item.get_closest_marker(marker) and not _reachable(host, port):
            message = f"{marker} is not reachable at {host}:{port}"
            if REQUIRE_SERVICES:
                pytest.fail(f"{message} (CI=true or TIDINGS_REQUIRE_SERVICES=1 requires it)")
            pytest.skip(message)


@pytest.fixture(
    scope="module",
    params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)],
)
def server_store(request: pytest.FixtureRequest) -> ServerStore:
    """The store behind every real server of a test: the integration suite runs on each."""
    if request.param == "postgres":
        return ServerStore("postgres", request.getfixturevalue("pg_database"))
    return ServerStore("sqlite")


@pytest.fixture
def start_server(
    tmp_path: Path, server_store: ServerStore
) -> Iterator[Callable[..., ServerProcess]]:
    """Start servers with extra environment; all are stopped at the end of the test."""
    started: list[ServerProcess] = []

    def start(env: dict[str, str] | None = None, data_dir: Path | None = None) -> ServerProcess:
        server = ServerProcess(
            data_dir or tmp_path / f"data{len(started)}", env=env or {}, store=server_store
        )
        started.append(server)
        return server.start()

    yield start
    for server in started:
        if server.proc is not None and server.proc.poll() is None:
            server.kill()


@pytest.fixture
def server(start_server: Callable[..., ServerProcess]) -> ServerProcess:
    """A fresh server with its own data directory."""
    return start_server()
