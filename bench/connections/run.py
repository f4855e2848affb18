"""Tidings under connection attacks, with and without its connection limits, in one run.

For each server and each attack (20,000 idle sockets, 30 slowloris clients, ten endless 50 MB
headers) a fresh server is started, the attack runs for ``--seconds`` beside a ``/healthz``
probe (a new connection every 0.25 s, 5 s timeout), and the server's resident memory, open
sockets and CPU are read from /proc. The servers: ``without``, the code at ``--baseline``
(extracted with ``git archive``); ``with``, this checkout; ``with-cap``, this checkout holding
at most ``--cap`` connections (idle attack only, so that the cap is reached). Prints a
Markdown table and writes JSON to bench/results/.

  .venv/bin/python bench/connections/run.py --baseline ed55a4e
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
ATTACK = Path(__file__).with_name("attack.py")
PORT = 24_680  # below the ephemeral range: many local ports are in use during the attacks
PER_WORKER = 7000  # idle sockets per attack process (descriptors are limited per process)


def server_stats(pid: int) -> tuple[int, int, int]:
    """(resident kB, peak resident kB, open sockets) of a process."""
    rss = peak = 0
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
            elif line.startswith("VmHWM:"):
                peak = int(line.split()[1])
    sockets = 0
    with contextlib.suppress(OSError):
        for fd in os.scandir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                if os.readlink(fd.path).startswith("socket:"):
                    sockets += 1
    return rss, peak, sockets


def healthz(port: int, timeout: float = 5.0) -> tuple[float | None, str]:
    """(latency in ms or None, outcome) of one GET /healthz on a new connection."""
    started = time.perf_counter()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = b""
            while chunk := sock.recv(4096):
                data += chunk
    except TimeoutError:
        return None, "timeout"
    except OSError as error:
        return None, type(error).__name__
    status = data.split(b" ", 2)[1].decode() if data.startswith(b"HTTP/1.1 ") else "garbled"
    latency = (time.perf_counter() - started) * 1000
    return (latency, "200") if status == "200" else (None, status)


class Sampler(threading.Thread):
    """Samples the server every second and probes /healthz every 0.25 s until stopped."""

    def __init__(self, pid: int, port: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.port = port
        self.stopping = threading.Event()
        self.samples: list[tuple[int, int, int]] = []
        self.latencies: list[float] = []
        self.outcomes: dict[str, int] = {}
        self.probe = threading.Thread(target=self._probe, daemon=True)

    def run(self) -> None:
        self.probe.start()
        while not self.stopping.wait(1.0):
            self.samples.append(server_stats(self.pid))
        self.probe.join()

    def _probe(self) -> None:
        while not self.stopping.wait(0.25):
            latency, outcome = healthz(self.port)
            self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1
            if latency is not None:
                self.latencies.append(latency)

    def report(self) -> dict[str, Any]:
        lat = sorted(self.latencies)

        def q(p: float) -> float | None:
            return round(lat[min(len(lat) - 1, int(p * len(lat)))], 1) if lat else None

        return {
            "rss_mb_max": round(max((s[0] for s in self.samples), default=0) / 1024, 1),
            "rss_mb_peak": round(max((s[1] for s in self.samples), default=0) / 1024, 1),
            "sockets_max": max((s[2] for s in self.samples), default=0),
            "sockets_median": int(statistics.median(s[2] for s in self.samples))
            if self.samples
            else 0,
            "healthz_ok": self.outcomes.get("200", 0),
            "healthz_failed": sum(n for k, n in self.outcomes.items() if k != "200"),
            "healthz_outcomes": dict(self.outcomes),
            "healthz_p50_ms": q(0.5),
            "healthz_p99_ms": q(0.99),
            "healthz_max_ms": round(lat[-1], 1) if lat else None,
        }


def cpu_seconds(pid: int) -> float:
    with contextlib.suppress(OSError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return 0.0


def start_server(
    code: Path, data_dir: Path, log: Path, extra: dict[str, str]
) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(code), "TIDINGS_LOG_LEVEL": "info", **extra}
    command = [sys.executable, "-m", "tidings", "serve", "--port", str(PORT)]
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [*command, "--data-dir", str(data_dir)],
            cwd=code,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if healthz(PORT, 1.0)[1] == "200":
            return proc
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    raise RuntimeError(f"the server did not start; see {log}")


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


def attack_commands(attack: str, args: argparse.Namespace) -> list[list[str]]:
    base = [sys.executable, str(ATTACK), attack, "--port", str(PORT)]
    base += ["--seconds", str(args.seconds)]
    if attack == "idle":
        workers = math.ceil(args.idle / PER_WORKER)
        counts = [args.idle // workers + (i < args.idle % workers) for i in range(workers)]
        return [[*base, "--count", str(n)] for n in counts]
    if attack == "slowloris":
        return [[*base, "--count", str(args.slowloris), "--interval", "5"]]
    return [[*base, "--count", str(args.headers), "--header-mb", str(args.header_mb)]]


def run_one(
    server: str, code: Path, env: dict[str, str], attack: str, args: argparse.Namespace
) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix=f"conn-{server}-{attack}-"))
    log = work / "server.log"
    proc = start_server(code, work / "data", log, env)
    cpu_before = cpu_seconds(proc.pid)
    idle_rss, _, idle_sockets = server_stats(proc.pid)
    sampler = Sampler(proc.pid, PORT)
    sampler.start()
    before = os.times()
    started = time.monotonic()
    workers = [
        subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        for command in attack_commands(attack, args)
    ]
    reports = []
    for worker in workers:
        out, _ = worker.communicate(timeout=args.seconds + 120)
        reports.append(json.loads(out.strip().splitlines()[-1]))
    after = os.times()
    time.sleep(max(0.0, started + args.seconds - time.monotonic()))  # the whole window
    sampler.stopping.set()
    sampler.join()
    server_cpu = cpu_seconds(proc.pid) - cpu_before
    recovered = healthz(PORT)[1] == "200"
    alive = proc.poll() is None
    stop_server(proc)
    text = log.read_text(errors="replace")
    result = {
        "server": server,
        "attack": attack,
        "rss_mb_before": round(idle_rss / 1024, 1),
        "sockets_before": idle_sockets,
        **sampler.report(),
        "answered_after": recovered,
        "alive_after": alive,
        "server_cpu_s": round(server_cpu, 1),
        "cap_log_lines": text.count("connection cap reached"),
        "log_tail": text.strip().splitlines()[-3:],
        "attacker": {
            "opened": sum(r["opened"] for r in reports),
            "connect_failures": sum(r["connect_failures"] for r in reports),
            "closed_by_server": sum(r["closed_by_server"] for r in reports),
            "open_max": sum(r["open_max"] for r in reports),
            "held_s_max": max((r["held_s_max"] or 0) for r in reports),
            "held_to_end": sum(r["held_to_end"] for r in reports),
            "answers": _merge(r["answers"] for r in reports),
            "cpu_s": round(
                (after.children_user - before.children_user)
                + (after.children_system - before.children_system),
                1,
            ),
        },
    }
    print(json.dumps(result), flush=True)
    return result


def _merge(dicts: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for d in dicts:
        for k, v in d.items():
            out[k] = out.get(k, 0) + v
    return out


def table(results: list[dict[str, Any]]) -> str:
    head = (
        "| attack | server | attacker sockets open (max) | server sockets (max) | "
        "longest held, closed ones (s) | held to the end | RSS MB before / max | "
        "/healthz ok / failed | /healthz p50 / p99 / max ms | cap log lines | "
        "server CPU s | attacker CPU s |"
    )
    lines = [head, "|" + "---|" * 12]
    for r in results:
        a = r["attacker"]
        lines.append(
            f"| {r['attack']} | {r['server']} | {a['open_max']} | {r['sockets_max']} | "
            f"{a['held_s_max']} | {a['held_to_end']} | "
            f"{r['rss_mb_before']} / {r['rss_mb_max']} | "
            f"{r['healthz_ok']} / {r['healthz_failed']} | {r['healthz_p50_ms']} / "
            f"{r['healthz_p99_ms']} / {r['healthz_max_ms']} | "
            f"{r['cap_log_lines']} | {r['server_cpu_s']} | {a['cpu_s']} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", default="ed55a4e", help="git ref of the 'without' code")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--idle", type=int, default=20_000)
    parser.add_argument("--slowloris", type=int, default=30)
    parser.add_argument("--headers", type=int, default=10)
    parser.add_argument("--header-mb", type=int, default=50)
    parser.add_argument("--attacks", default="idle,slowloris,headers")
    parser.add_argument("--servers", default="without,with,with-cap")
    parser.add_argument(
        "--cap", type=int, default=5000, help="with-cap: TIDINGS_MAX_CONNECTIONS (idle only)"
    )
    args = parser.parse_args()

    baseline = Path(tempfile.mkdtemp(prefix="tidings-baseline-"))
    archive = subprocess.run(
        ["git", "archive", args.baseline], cwd=ROOT, capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(baseline)], input=archive, check=True)
    servers = {
        "without": (baseline, {}),
        "with": (ROOT, {}),
        "with-cap": (ROOT, {"TIDINGS_MAX_CONNECTIONS": str(args.cap)}),
    }
    results = [
        run_one(server, *servers[server], attack, args)
        for attack in args.attacks.split(",")
        for server in args.servers.split(",")
        if server != "with-cap" or attack == "idle"  # the cap matters only with many sockets
    ]
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    path = out / f"connections-{time.strftime('%Y%m%dT%H%M%S')}.json"
    path.write_text(json.dumps({"args": vars(args), "results": results}, indent=1))
    print(table(results))
    print(f"\nJSON: {path}")


if __name__ == "__main__":
    main()
