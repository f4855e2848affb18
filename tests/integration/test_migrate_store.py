"""``tidings migrate-store`` end to end: a server's SQLite store copied into PostgreSQL, and a
server on the copy answering as the original did."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.integration.server import ServerProcess, free_port
from tests.pg import create_schema, url

pytestmark = pytest.mark.postgres


def migrate(*args: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("TIDINGS_")}
    return subprocess.run(
        [sys.executable, "-m", "tidings", "migrate-store", *args],
        capture_output=True, text=True, env={**environ, "COLUMNS": "200"}, timeout=120,
    )  # fmt: skip


def test_a_sqlite_store_copied_to_postgresql_serves_the_same_events_and_endpoints(
    tmp_path: Path, pg_database: str
) -> None:
    private = {"TIDINGS_WEBHOOK_ALLOW_PRIVATE": "true"}  # the hook is on this machine
    original = ServerProcess(tmp_path / "sqlite", env=private).start()
    try:
        with httpx.Client(base_url=original.url, timeout=30) as http:
            keyed = http.post("/v1/events", json={"type": "a.b", "idempotency_key": "k"}).json()
            for n in range(5):
                assert http.post("/v1/events", json={"type": "a.c", "data": n}).status_code == 201
            hook = {"url": f"http://127.0.0.1:{free_port()}/hook", "events": ["never.#"]}
            created = http.post("/v1/webhooks", json=hook).json()
            assert "id" in created, created
            before = http.get("/v1/events", params={"order": "asc"}).json()["events"]
    finally:
        assert original.stop() == 0
    source = f"sqlite:///{tmp_path / 'sqlite' / 'tidings.db'}"
    target = url(pg_database, create_schema(pg_database))

    done = migrate("--from", source, "--to", target)
    assert done.returncode == 0, done.stderr
    assert "6 events" in done.stdout and "1 endpoints" in done.stdout
    again = migrate("--from", source, "--to", target)
    assert again.returncode == 2
    assert "not empty" in again.stderr and "Traceback" not in again.stderr
    assert migrate("--from", source, "--to", target, "--resume").returncode == 0

    copy = ServerProcess(tmp_path / "pg", env={**private, "TIDINGS_STORE": target}).start()
    try:
        with httpx.Client(base_url=copy.url, timeout=30) as http:
            assert http.get("/v1/events", params={"order": "asc"}).json()["events"] == before
            [endpoint] = http.get("/v1/webhooks").json()["webhooks"]
            assert endpoint["id"] == created["id"] and endpoint["url"] == hook["url"]
            repeat = http.post("/v1/events", json={"type": "a.b", "idempotency_key": "k"})
            assert repeat.status_code == 200
            assert repeat.json()["seq"] == keyed["seq"]
            fresh = http.post("/v1/events", json={"type": "a.d"}).json()
            assert fresh["seq"] > before[-1]["seq"]
    finally:
        assert copy.stop() == 0


def test_an_unreachable_target_fails_with_one_line(tmp_path: Path) -> None:
    source = f"sqlite:///{tmp_path / 'empty.db'}"
    done = migrate("--from", source, "--to", f"postgresql://postgres@127.0.0.1:{free_port()}/x")
    assert done.returncode == 2
    assert "cannot reach PostgreSQL" in done.stderr and "Traceback" not in done.stderr
