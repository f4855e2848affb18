"""``/readyz`` follows the store's writer: not ready while writes fail (a full disk), ready
again once one succeeds, with or without publishes in between.

The full disk is a file-size limit (RLIMIT_FSIZE) on the server process: SQLite's writes past
it fail with EFBIG (SQLite reports an I/O error there, and SQLITE_FULL for ENOSPC).
"""

from __future__ import annotations

import resource
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.server import ServerProcess

LIMIT = 8 << 20  # bytes any file of the server may grow to


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    process = ServerProcess(tmp_path / "data", file_size_limit=LIMIT).start()
    yield process
    if process.proc is not None and process.proc.poll() is None:
        process.kill()


def publish_until_refused(client: httpx.Client) -> httpx.Response:
    pad = "x" * 200_000
    for i in range(200):  # at most 40 MB, far past the limit
        answer = client.post("/v1/events", json={"type": "fill.up", "source": "t", "data": pad})
        if answer.status_code != 201:
            return answer
        assert i < 199, "the file-size limit was never reached"
    raise AssertionError("unreachable")


def readyz_until(client: httpx.Client, status: int, timeout: float = 10.0) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while True:
        answer = client.get("/readyz")
        if answer.status_code == status or time.monotonic() > deadline:
            assert answer.status_code == status, answer.text
            body: dict[str, object] = answer.json()
            return body
        time.sleep(0.2)


def test_readiness_fails_while_the_disk_is_full_and_returns_when_space_is_back(
    server: ServerProcess,
) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        assert client.get("/readyz").status_code == 200
        refused = publish_until_refused(client)
        assert refused.status_code == 503, refused.text
        assert refused.json()["error"]["code"] == "store_unavailable"

        body = client.get("/readyz")
        assert body.status_code == 503
        assert body.json()["error"]["code"] == "not_ready"
        assert "the last write failed" in str(body.json()["checks"]["store"])

        server.set_file_size_limit(resource.RLIM_INFINITY)  # space is back; nothing published
        readyz_until(client, 200, timeout=20.0)
        again = client.post("/v1/events", json={"type": "fill.up", "source": "t", "data": 1})
        assert again.status_code == 201, again.text
