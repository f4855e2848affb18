"""A real server's log: one JSON object a line for Tidings' and uvicorn's lines alike, an
access line per request unless switched off, and no key in any line."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from tests.integration.server import ServerProcess

SECRET = "tdk_" + "s3cr3tKeyValue" * 3


def lines_of(server: ServerProcess) -> list[str]:
    return [line for line in server.log().splitlines() if line.strip()]


def test_json_logs_cover_uvicorn_and_access_lines_and_hide_keys(tmp_path: Path) -> None:
    env = {"TIDINGS_LOG_FORMAT": "json", "TIDINGS_LOG_LEVEL": "info"}
    server = ServerProcess(tmp_path / "data", env=env).start()
    try:
        httpx.get(f"{server.url}/v1/events", params={"access_token": SECRET}, timeout=10)
        httpx.get(f"{server.url}/v1/events", headers={"X-API-Key": SECRET}, timeout=10)
    finally:
        server.stop()
    entries = [json.loads(line) for line in lines_of(server) if line.startswith("{")]
    assert entries, server.log()
    assert {"time", "level", "logger", "message"} <= set(entries[0])
    loggers = {entry["logger"] for entry in entries}
    assert "uvicorn.access" in loggers and any(name.startswith("tidings") for name in loggers)
    assert any("GET /v1/events" in e["message"] for e in entries if e["logger"] == "uvicorn.access")
    assert "s3cr3tKeyValue" not in server.log()
    # the settings table printed at start is the only text; every log record is JSON
    assert all(not line.startswith("20") for line in lines_of(server))


def test_the_access_log_can_be_switched_off(tmp_path: Path) -> None:
    env = {"TIDINGS_ACCESS_LOG": "false", "TIDINGS_LOG_LEVEL": "info"}
    server = ServerProcess(tmp_path / "data", env=env).start()
    try:
        httpx.get(f"{server.url}/v1/events", timeout=10)
    finally:
        server.stop()
    assert "GET /v1/events" not in server.log()
    assert " INFO " in server.log()  # Tidings' own info lines, in the text format
