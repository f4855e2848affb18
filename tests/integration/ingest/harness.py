"""Servers with ingest configured, brokers on free ports, and small waiting helpers."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx

from tests.integration.server import ServerProcess, free_port

T = TypeVar("T")
REPO = Path(__file__).resolve().parents[3]


def _wired() -> bool:
    """Whether ``tidings serve`` itself runs the ingest part (routes in the app)."""
    from tidings.api.app import create_app
    from tidings.settings import Settings

    app = create_app(Settings())
    return any(getattr(route, "path", "") == "/v1/ingest/{source}" for route in app.routes)


WIRED = _wired()


@dataclass
class IngestServer(ServerProcess):
    """A server whose config file has the ingest tables; ``tidings serve`` once it runs ingest
    itself, until then the same app with the ingest part attached (serve_with_ingest)."""

    def start(self, timeout: float = 20.0) -> IngestServer:
        if WIRED:
            super().start(timeout)
            return self
        env = {**os.environ, "TIDINGS_LOG_LEVEL": "warning", **self.env}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        self.log_path = self.data_dir.parent / f"server-{self.port}.log"
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "tests.integration.ingest.serve_with_ingest",
                    "--port",
                    str(self.port),
                    "--data-dir",
                    str(self.data_dir),
                ],
                env=env,
                cwd=REPO,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if httpx.get(self.url + "/readyz", timeout=1.0).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"server did not become ready:\n{self.log()}")


def wait_for(check: Callable[[], T | None], timeout: float = 15.0, what: str = "condition") -> T:
    """Poll ``check`` until it returns something truthy; its value."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def events(url: str, **params: Any) -> list[dict[str, Any]]:
    answer = httpx.get(
        url + "/v1/events", params={"order": "asc", "limit": 1000, **params}, timeout=10
    )
    assert answer.status_code == 200, answer.text
    found: list[dict[str, Any]] = answer.json()["events"]
    return found


def dead_letters(url: str, **params: Any) -> list[dict[str, Any]]:
    answer = httpx.get(url + "/v1/dead-letters", params={"limit": 1000, **params}, timeout=10)
    assert answer.status_code == 200, answer.text
    found: list[dict[str, Any]] = answer.json()["dead_letters"]
    return found


@dataclass
class Broker:
    """A Mosquitto of its own on a free port, which a test may stop and start again."""

    directory: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> Broker:
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        conf = self.directory / f"mosquitto-{self.port}.conf"
        conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
            "max_queued_messages 10000\nmax_inflight_messages 20\n"
        )
        log = (self.directory / f"mosquitto-{self.port}.log").open("ab")
        self.proc = subprocess.Popen(
            [binary, "-c", str(conf)], stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        wait_for(self._listening, 10, "mosquitto to listen")
        return self

    def _listening(self) -> bool:
        import socket

        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                return True
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None
