"""Fixtures a test module makes for itself: one server process with the module's settings, a
client to it, and a webhook receiver.

A module assigns them to the names its tests ask for::

    server, client = server_and_client("webhooks-api", ENV)
    receiver = receiver_fixture()

(Assigned rather than imported: pytest finds fixtures by the module's names, and an imported
fixture would read as an unused import that each test's argument shadows.)
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.integration.receiver import Receiver
from tests.integration.server import ServerProcess, ServerStore


def server_and_client(name: str, env: dict[str, str]) -> tuple[Any, Any]:
    """``server``: one server process for the module's tests, started with ``env`` in a data
    folder named after ``name``, on every store the tests run against; ``client``: an HTTP
    client to it."""

    @pytest.fixture(scope="module", name="server")
    def server(
        tmp_path_factory: pytest.TempPathFactory, server_store: ServerStore
    ) -> Iterator[ServerProcess]:
        process = ServerProcess(
            tmp_path_factory.mktemp(name) / "data", env=env, store=server_store
        ).start()
        yield process
        process.stop()

    @pytest.fixture(scope="module", name="client")
    def client(server: ServerProcess) -> Iterator[httpx.Client]:
        with httpx.Client(base_url=server.url, timeout=30.0) as http:
            yield http

    return server, client


def receiver_fixture() -> Any:
    """``receiver``: a receiver for one test, shut down at its end."""

    @pytest.fixture(name="receiver")
    def receiver() -> Iterator[Receiver]:
        with Receiver() as running:
            yield running

    return receiver
