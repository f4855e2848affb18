"""The two servers of the fan-out benchmark, each started fresh for a run and stopped after.

* Tidings: ``python -m tidings serve`` on a fresh data directory, heartbeats every day (so
  that none is sent during a run), subscribers on ``/v1/events/stream``.
* nchan: nginx with the nchan module and bench/fanout/nchan.conf (one worker), its prefix,
  pid file, logs and temporary paths in a fresh directory, in the foreground.

Both are killed by their own process ids at the end of a run, whatever happened. Memory is
read from ``/proc/<pid>/status`` (VmRSS); for nginx the master and its workers are summed.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from abc import ABC, abstractmethod
from pathlib import Path

from publisher import Target

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
HOST = "127.0.0.1"
NCHAN_MODULES = (
    Path("/usr/lib/nginx/modules/ngx_nchan_module.so"),
    Path("/usr/share/nginx/modules/ngx_nchan_module.so"),
)


def http_get(port: int, path: str, timeout: float = 2.0) -> int:
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def port_is_free(port: int) -> bool:
    try:
        http_get(port, "/", timeout=0.5)
    except OSError:
        return True
    return False


def vm_rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def children(pid: int) -> list[int]:
    try:
        return [int(x) for x in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except (FileNotFoundError, ProcessLookupError):
        return []


class Server(ABC):
    name: str  # as reported
    kind: str  # how to publish: "tidings" or "nchan"
    subscribe_path: str

    def __init__(self, port: int) -> None:
        self.port = port
        self.dir = Path(tempfile.mkdtemp(prefix=f"fanout-{self.name}-"))
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = self.dir / "server.log"

    @abstractmethod
    def command(self) -> list[str]: ...

    def cwd(self) -> Path:
        return ROOT

    def env(self) -> dict[str, str]:
        return dict(os.environ)

    def target(self) -> Target:
        return Target(self.kind, HOST, self.port)

    def start(self, timeout: float = 30.0) -> None:
        if not port_is_free(self.port):
            raise RuntimeError(f"port {self.port} is in use")
        with self.log_path.open("wb") as log:  # the child keeps its own descriptor
            self.proc = subprocess.Popen(
                self.command(), cwd=self.cwd(), env=self.env(), stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited: {self.log_path.read_text()[-2000:]}")
            try:
                if http_get(self.port, "/healthz", timeout=1.0) == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{self.name} did not start: {self.log_path.read_text()[-2000:]}")

    def pids(self) -> list[int]:
        """The server's processes: the first one is the one that was started."""
        if self.proc is None or self.proc.poll() is not None:
            return []
        return [self.proc.pid, *children(self.proc.pid)]

    def rss_kb(self) -> dict[int, int]:
        return {pid: vm_rss_kb(pid) for pid in self.pids()}

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None:
            others = children(proc.pid)
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
            for pid in others:  # nginx workers end with their master; make sure
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        shutil.rmtree(self.dir, ignore_errors=True)

    def log_tail(self, chars: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except FileNotFoundError:
            return ""


class TidingsServer(Server):
    name = kind = "tidings"
    subscribe_path = "/v1/events/stream"

    def command(self) -> list[str]:
        return [sys.executable, "-m", "tidings", "serve", "--port", str(self.port),
                "--data-dir", str(self.dir / "data"), "--log-level", "warning"]  # fmt: skip

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TIDINGS_")}
        env["TIDINGS_HEARTBEAT_S"] = "86400"  # no heartbeat during a run
        return env


class TidingsNormalServer(TidingsServer):
    """A diagnostic, not the default: commits are not fsynced (``synchronous=NORMAL``), which
    separates the disk's share of Tidings' latency from the fan-out's."""

    name = "tidings-normal"

    def env(self) -> dict[str, str]:
        return {**super().env(), "TIDINGS_SQLITE_SYNCHRONOUS": "NORMAL"}


class TidingsAsyncioServer(TidingsServer):
    """A diagnostic, not the default: Tidings on asyncio's own event loop instead of uvloop
    (``asyncio_loop.py``), to show what uvloop changes."""

    name = "tidings-asyncio"

    def command(self) -> list[str]:
        return [sys.executable, str(HERE / "asyncio_loop.py"), *super().command()[3:]]


class TidingsAtRevision(TidingsServer):
    """Tidings as committed at a git revision (``tidings@<rev>``), beside the working tree's,
    for before/after figures from one run: that revision's ``tidings/`` is exported into the
    run's directory and ``python -m tidings`` starts there (the current directory comes first
    on ``sys.path``), with this checkout's virtualenv."""

    def __init__(self, port: int, revision: str) -> None:
        self.name = f"tidings@{revision}"
        super().__init__(port)
        self.src = self.dir / "src"
        self.src.mkdir()
        archive = subprocess.run(
            ["git", "archive", revision, "tidings"], cwd=ROOT, capture_output=True, check=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(self.src)], input=archive, check=True)

    def cwd(self) -> Path:
        return self.src


class NchanServer(Server):
    name = kind = "nchan"
    subscribe_path = "/sub?ch=bench"

    def command(self) -> list[str]:
        module = next((m for m in NCHAN_MODULES if m.exists()), None)
        if module is None:
            raise RuntimeError("the nchan module is not installed (libnginx-mod-nchan)")
        conf = (HERE / "nchan.conf").read_text()
        for key, value in (("@PREFIX@", str(self.dir)), ("@PORT@", str(self.port)),
                           ("@MODULE@", str(module))):  # fmt: skip
            conf = conf.replace(key, value)
        path = self.dir / "nginx.conf"
        path.write_text(conf)
        return ["nginx", "-p", f"{self.dir}/", "-c", str(path), "-e", str(self.dir / "error.log")]

    def log_tail(self, chars: int = 2000) -> str:
        text = super().log_tail(chars)
        error_log = self.dir / "error.log"
        if error_log.exists():
            text += error_log.read_text(errors="replace")[-chars:]
        return text


def nchan_version() -> str:
    done = subprocess.run(["nginx", "-v"], capture_output=True, text=True, timeout=10)
    nginx = done.stderr.strip().removeprefix("nginx version: ")
    done = subprocess.run(
        ["dpkg-query", "-W", "-f=${Version}", "libnginx-mod-nchan"],
        capture_output=True,
        text=True,
        timeout=10,
    )
    return f"{nginx}, nchan {done.stdout.strip() or '?'}"


def tidings_version() -> str:
    done = subprocess.run(
        [sys.executable, "-c", "import tidings; print(tidings.__version__)"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=30,
    )
    return f"tidings {done.stdout.strip() or '?'}"
