"""A real ``tidings serve`` process on a free port, for tests that need real sockets."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.integration.ports import free_port

__all__ = ["ServerProcess", "ServerStore", "free_port"]


@dataclass
class ServerStore:
    """The store of a test's servers: SQLite in each data directory (``database`` None), or
    a schema of its own per data directory in a PostgreSQL database, so a restart on the
    same directory finds its data again and two directories never share any."""

    name: str  # "sqlite" or "postgres": the test's parameter
    database: str | None = None  # the PostgreSQL database of this test run
    _urls: dict[Path, str] = field(default_factory=dict)

    def env(self, data_dir: Path) -> dict[str, str]:
        if self.database is None:
            return {}
        if data_dir not in self._urls:
            from tests.pg import create_schema, url

            self._urls[data_dir] = url(self.database, create_schema(self.database))
        return {"TIDINGS_STORE": self._urls[data_dir]}


@dataclass
class ServerProcess:
    """One server process; ``start`` again after ``stop``/``kill`` reuses port and data."""

    data_dir: Path
    env: dict[str, str] = field(default_factory=dict)
    store: ServerStore | None = None  # None: SQLite in the data directory
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    file_size_limit: int | None = None  # RLIMIT_FSIZE soft limit: larger writes fail (EFBIG)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> ServerProcess:
        store_env = self.store.env(self.data_dir) if self.store else {}
        env = {**os.environ, "TIDINGS_LOG_LEVEL": "warning", **store_env, **self.env}
        self.log_path = self.data_dir.parent / f"server-{self.port}.log"
        with self.log_path.open("ab") as log:  # the child keeps its own descriptor
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "tidings",
                    "serve",
                    "--port",
                    str(self.port),
                    "--data-dir",
                    str(self.data_dir),
                ],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=self._limit_file_size if self.file_size_limit else None,
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

    def _limit_file_size(self) -> None:
        """In the child: a soft file-size limit, as a full disk would be (raisable again)."""
        assert self.file_size_limit is not None
        resource.setrlimit(resource.RLIMIT_FSIZE, (self.file_size_limit, resource.RLIM_INFINITY))

    def set_file_size_limit(self, limit: int) -> None:
        """Change the running server's file-size limit (``RLIM_INFINITY``: none)."""
        assert self.proc is not None
        resource.prlimit(self.proc.pid, resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))

    def store_url(self) -> str:
        """The ``TIDINGS_STORE`` this server runs on."""
        url = (self.store.env(self.data_dir) if self.store else {}).get("TIDINGS_STORE")
        return url or f"sqlite:///{self.data_dir / 'tidings.db'}"

    def store_options(self) -> list[str]:
        """The options that point a command such as ``tidings purge`` at this server's store."""
        if self.store is not None and self.store.database is not None:
            return ["--store", self.store_url()]
        return ["--data-dir", str(self.data_dir)]

    def log(self) -> str:
        return (
            self.log_path.read_text(errors="replace")
            if self.log_path and self.log_path.exists()
            else ""
        )

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        """Send ``sig`` and wait; the exit code."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        code = self.proc.wait(timeout)
        return code

    def kill(self) -> None:
        self.stop(signal.SIGKILL)
