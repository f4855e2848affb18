"""``tidings tail`` on the Python client: resumes after a restart, and says why it stops."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import orjson

from tests.integration.server import ServerProcess
from tidings.client import Client


def tail(url: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tidings", "tail", "--url", url, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_tail_prints_each_event_and_resumes_after_a_restart_without_gap(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data").start()
    source = f"s{uuid.uuid4().hex[:8]}"
    try:
        with Client(server.url) as client:
            before = [client.publish("tick", {"n": n}, source=source).seq for n in range(2)]
            follower = tail(server.url, "--source", source, "--last-event-id", "0", "--json")
            follower.stdout.readline()  # type: ignore[union-attr]
            follower.stdout.readline()  # type: ignore[union-attr]
            server.stop()
            server.start()
            after = [client.publish("tick", {"n": n}, source=source).seq for n in range(2, 4)]
        lines = [follower.stdout.readline() for _ in range(2)]  # type: ignore[union-attr]
        follower.terminate()
        _, errors = follower.communicate(timeout=30)
        assert [orjson.loads(line)["seq"] for line in lines] == after
        assert before == [after[0] - 2, after[0] - 1]
        assert "server shutting down" in errors
    finally:
        server.stop()


def test_tail_count_exits_after_that_many_events(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data").start()
    try:
        with Client(server.url) as client:
            seqs = [client.publish("tick", {"n": n}).seq for n in range(3)]
        command = [sys.executable, "-m", "tidings", "tail", "--url", server.url]
        done = subprocess.run(
            [*command, "--last-event-id", "0", "--count", "2", "--json"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        assert [orjson.loads(line)["seq"] for line in done.stdout.splitlines()] == seqs[:2]
    finally:
        server.stop()


def test_tail_with_a_filter_the_server_refuses_prints_the_error_and_fails(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data").start()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "tidings", "tail", "--url", server.url, "--type", "bad!"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 1
        assert "invalid_filter" in done.stderr
    finally:
        server.stop()
