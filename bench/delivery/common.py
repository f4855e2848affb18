"""Plumbing of the delivery benchmark: processes, HTTP calls, CPU accounting, quiet waits.

Every process started here is stopped by the caller (``Procs`` closes them in a ``with``
block) and bounded in time by itself as well: the receiver exits after ``--lifetime``, the
server is wrapped in ``timeout``, every generator has a duration.
"""

from __future__ import annotations

import http.client
import json
import os
import platform
import resource
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.append(str(ROOT / "bench"))

import procstat  # noqa: E402 - bench/procstat.py, shared with the publish benchmark

HOST = "127.0.0.1"
PYTHON = str(ROOT / ".venv" / "bin" / "python")
SECRET = "whsec_ZGVsaXZlcnktYmVuY2gtc2VjcmV0LTI0Yg=="  # every endpoint's, so the receiver checks
SERVER_LIFETIME_S = 1800  # a server left behind by a crashed harness ends by itself


def http_call(
    port: int, method: str, path: str, body: Any = None, timeout: float = 30.0
) -> tuple[int, Any]:
    """One request with a JSON body (or none); the answer parsed as JSON when it is."""
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"} if data is not None else {}
        conn.request(method, path, body=data, headers=headers)
        response = conn.getresponse()
        raw = response.read()
    finally:
        conn.close()
    try:
        return response.status, json.loads(raw) if raw else None
    except ValueError:
        return response.status, raw.decode(errors="replace")


def metrics(port: int) -> dict[str, float]:
    """Tidings' Prometheus text as ``{"name{labels}": value}``."""
    conn = http.client.HTTPConnection(HOST, port, timeout=30)
    try:
        conn.request("GET", "/metrics")
        text = conn.getresponse().read().decode()
    finally:
        conn.close()
    values: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            try:
                values[name] = float(value)
            except ValueError:
                continue
    return values


def attempts_by_result(values: dict[str, float]) -> dict[str, float]:
    prefix = 'tidings_webhook_attempts_total{result="'
    return {k[len(prefix) : -2]: v for k, v in values.items() if k.startswith(prefix)}


def wait_for_load(below: float, max_wait_s: float) -> dict[str, float]:
    """Wait, at most ``max_wait_s``, until the 1-minute load average is below ``below``:
    the machine is shared, and a run that starts on a busy machine measures the others."""
    started = time.monotonic()
    while os.getloadavg()[0] >= below and time.monotonic() - started < max_wait_s:
        time.sleep(5)
    return {
        "load1_at_start": round(os.getloadavg()[0], 2),
        "load_wait_s": round(time.monotonic() - started, 1),
    }


def refused_port() -> socket.socket:
    """A bound socket that never listens: connecting to its port is refused, and no other
    process can take the port while it is held."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((HOST, 0))
    return sock


@dataclass
class Procs:
    """The receiver and Tidings of one run, stopped (SIGTERM, then SIGKILL) on exit."""

    work: Path
    server_port: int
    receiver_port: int
    launcher: list[str] = field(default_factory=list)  # bench/delivery/variant.py options
    server: subprocess.Popen[bytes] | None = None
    receiver: subprocess.Popen[bytes] | None = None
    logs: list[Path] = field(default_factory=list)

    def start_receiver(self, lifetime_s: float) -> None:
        log = self.work / "receiver.log"
        self.logs.append(log)
        command = [PYTHON, str(HERE / "receiver.py"), "--port", str(self.receiver_port),
                   "--secret", SECRET, "--lifetime", str(lifetime_s)]  # fmt: skip
        with log.open("wb") as out:
            self.receiver = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        self._wait_ready(self.receiver, self.receiver_port, "GET", "/_stats", log)

    def start_server(self, env_extra: dict[str, str]) -> Path:
        data_dir = self.work / "data"
        log = self.work / "server.log"
        self.logs.append(log)
        env = {k: v for k, v in os.environ.items() if not k.startswith("TIDINGS_")}
        env.update(env_extra)
        tidings = [PYTHON, "-m", "tidings"]
        if self.launcher:  # an experiment: see variant.py
            tidings = [PYTHON, str(HERE / "variant.py"), *self.launcher, "--"]
        # `timeout` runs the server as its child; signals reach it through `timeout`.
        command = ["timeout", "--kill-after=10", str(SERVER_LIFETIME_S), *tidings,
                   "serve", "--port", str(self.server_port),
                   "--data-dir", str(data_dir), "--log-level", "warning"]  # fmt: skip
        with log.open("wb") as out:
            self.server = subprocess.Popen(
                command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
            )
        self._wait_ready(self.server, self.server_port, "GET", "/readyz", log)
        return data_dir

    def server_pid(self) -> int:
        """The Python process itself (the child of ``timeout``)."""
        assert self.server is not None
        children = Path(f"/proc/{self.server.pid}/task/{self.server.pid}/children")
        pids = children.read_text().split()
        return int(pids[0]) if pids else self.server.pid

    def _wait_ready(
        self, proc: subprocess.Popen[bytes], port: int, method: str, path: str, log: Path
    ) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
            try:
                if http_call(port, method, path, timeout=1.0)[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"not ready after 30 s:\n{log.read_text()[-3000:]}")

    def close(self) -> dict[str, int | None]:
        codes: dict[str, int | None] = {}
        for name, proc in (("server", self.server), ("receiver", self.receiver)):
            if proc is None:
                continue
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(40)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
            codes[name] = proc.returncode
        return codes


@contextmanager
def processes(work: Path, server_port: int, receiver_port: int) -> Iterator[Procs]:
    for port in (server_port, receiver_port):
        try:
            http_call(port, "GET", "/", timeout=0.5)
        except OSError:
            continue
        raise RuntimeError(f"port {port} is taken; is an earlier run still going?")
    work.mkdir(parents=True, exist_ok=True)
    procs = Procs(work, server_port, receiver_port)
    try:
        yield procs
    finally:
        procs.close()


@dataclass
class CpuMark:
    """CPU counters of every process of a run at one moment."""

    at: float
    server: procstat.ProcessCpu
    receiver: procstat.ProcessCpu
    harness: float  # this process (publishing batches, polling)
    children: float  # reaped children of this process (wrk, the open-loop publisher)
    machine: procstat.MachineCpu
    disk: procstat.DiskStats | None  # the device of the data directory


def cpu_mark(procs: Procs) -> CpuMark:
    assert procs.receiver is not None
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return CpuMark(
        time.monotonic(),
        procstat.process_cpu(procs.server_pid()),
        procstat.process_cpu(procs.receiver.pid),
        usage.ru_utime + usage.ru_stime,
        procstat.children_cpu(),
        procstat.machine_cpu(),
        procstat.disk_stats(procs.work),
    )


def cpu_delta(before: CpuMark, after: CpuMark) -> dict[str, Any]:
    """Percent of one core per process over the interval, and the machine's busy time."""
    wall = max(1e-6, after.at - before.at)
    server = procstat.process_cpu_delta(before.server, after.server, wall)
    receiver = procstat.process_cpu_delta(before.receiver, after.receiver, wall)
    machine = procstat.machine_cpu_delta(before.machine, after.machine)
    loadgen = 100 * (after.children - before.children) / wall
    harness = 100 * (after.harness - before.harness) / wall
    ours = server["cpu_percent"] + receiver["cpu_percent"] + loadgen + harness
    return {
        "wall_s": round(wall, 3),
        "server_cpu_percent": server["cpu_percent"],
        "server_loop_thread_percent": server["main_thread_percent"],
        "server_busiest_other_thread_percent": server["busiest_other_thread_percent"],
        "receiver_cpu_percent": receiver["cpu_percent"],
        "loadgen_cpu_percent": round(loadgen, 1),
        "harness_cpu_percent": round(harness, 1),
        **machine,
        # Flushes per second on the data directory's device: each committed transaction of
        # the SQLite writer is one (synchronous=FULL), publishes and delivery state alike.
        **procstat.disk_delta(before.disk, after.disk, wall),
        # What the rest of the machine used meanwhile, in percent of one core: the noise.
        "other_cpu_percent": round(
            (os.cpu_count() or 1) * machine["machine_busy_percent"] - ours, 1
        ),
    }


def delivery_counts(data_dir: Path, webhook_id: str) -> dict[str, int]:
    """Read-only look at one endpoint's deliveries in the store: how many wait for a retry
    (pending after at least one attempt), how many are fresh, how many ended."""
    conn = sqlite3.connect(f"file:{data_dir / 'tidings.db'}?mode=ro", uri=True, timeout=10)
    try:
        rows = conn.execute(
            "SELECT status, attempts > 0, COUNT(*) FROM deliveries WHERE webhook_id = ? "
            "GROUP BY 1, 2",
            (webhook_id,),
        ).fetchall()
    finally:
        conn.close()
    counts = {"retry_waiting": 0, "fresh_pending": 0, "succeeded": 0, "failed": 0}
    for status, tried, n in rows:
        if status == "pending":
            counts["retry_waiting" if tried else "fresh_pending"] += n
        elif status in counts:
            counts[status] += n
    return counts


def machine_info() -> dict[str, Any]:
    model = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
         if line.startswith("model name")),
        "unknown",
    )  # fmt: skip
    packages: dict[str, str] = {}
    for name in ("httpx2", "uvicorn", "uvloop", "httptools", "fastapi", "orjson"):
        try:
            packages[name] = version(name)
        except PackageNotFoundError:
            packages[name] = "not installed"
    wrk = subprocess.run(["wrk", "--version"], capture_output=True, text=True, check=False)
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    )
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--", "tidings"], cwd=ROOT, capture_output=True, text=True
    )
    memory = next(
        (line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines()
         if line.startswith("MemTotal")),
        "0",
    )  # fmt: skip
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "memory_gib": round(int(memory) / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "wrk": (wrk.stdout.splitlines() or ["unknown"])[0].split(" Copyright")[0],
        "packages": packages,
        "commit": commit.stdout.strip(),
        "tidings_tree_modified": bool(dirty.stdout.strip()),
        "wrk_installed": shutil.which("wrk") is not None,
    }
