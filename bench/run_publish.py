"""Publish benchmark: Tidings against the FastAPI + aiosqlite peer, one server at a time.

Servers: ``tidings`` (SQLite), ``tidings-pg`` (PostgreSQL: a fresh database per run on the
server ``--postgres`` names; the server CPU then includes the PostgreSQL backends serving
its connections) and ``peer``.

Scenarios, each on a fresh data directory with a short warm-up, every server alone on the
machine (two cores: running both at once would make each the other's noise):

  single    wrk, 32 connections, one event per request, flat out: peak publishes/s
  batch100  wrk, 16 connections, 100 events per request, flat out: peak events/s
  open1000  open loop (bench/openloop.py) at 1,000 single-event publishes/s: latency at a
            fixed rate, measured from each request's scheduled send time
  openhalf  open loop at half of Tidings' best `single` rate of this invocation

Rounds alternate the order (Tidings then peer, then peer then Tidings) so that drift on a
noisy machine falls on both. For every run it records requests/s, events/s, latency, the
server's CPU (whole process, event-loop thread, busiest other thread), the load generator's
CPU and the machine's busy and steal time, then prints Markdown tables with Tidings/peer
ratios and writes everything as JSON to bench/results/.

    .venv/bin/python bench/run_publish.py            # full: 15 s per run, 2 rounds
    .venv/bin/python bench/run_publish.py --quick    # smoke test: 3 s per run, 1 round
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import procstat
import report

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
RESULTS = BENCH / "results"
HOST = "127.0.0.1"
FIXED_RATE = 1000.0


@dataclass(frozen=True)
class Server:
    name: str
    port: int
    ready_path: str
    env: tuple[tuple[str, str], ...] = ()  # set for this server only (--tidings-env)
    postgres: str | None = None  # a PostgreSQL server URL: a database of its own per run

    def command(self, data_dir: Path) -> list[str]:
        if self.name in ("tidings", "tidings-pg"):
            return [sys.executable, "-m", "tidings", "serve", "--port", str(self.port),
                    "--data-dir", str(data_dir), "--log-level", "warning"]  # fmt: skip
        if self.name == "tidings-asgi":
            return [sys.executable, str(BENCH / "asgi_publish_probe.py"), "--port", str(self.port),
                    "--data-dir", str(data_dir), "--log-level", "warning"]  # fmt: skip
        return [sys.executable, str(BENCH / "peer_aiosqlite.py"), "--port", str(self.port),
                "--data-dir", str(data_dir), "--log-level", "warning"]  # fmt: skip


@dataclass(frozen=True)
class Scenario:
    name: str
    batch: int  # events per request
    connections: int = 0  # wrk connections; 0 for open loop
    rate: float | None = None  # open loop requests/s; None with wrk

    @property
    def script(self) -> str:
        return (
            "bench/wrk/publish_batch100.lua"
            if self.batch == 100
            else "bench/wrk/publish_single.lua"
        )


@dataclass(frozen=True)
class Timing:
    run_s: float
    warmup_s: float
    rounds: int
    quiet_below: float  # wait for the machine to be less busy than this (percent, 0: never)
    quiet_wait_s: float  # but no longer than this
    noisy_above: float  # percent of one core used by other work that makes a run noisy
    retry_noisy: int  # how many times a noisy run is repeated


def http_get(port: int, path: str, timeout: float = 5.0) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def start(
    server: Server, data_dir: Path, log_path: Path, extra_env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TIDINGS_")}  # defaults only
    env.update(server.env)
    env.update(extra_env or {})
    with log_path.open("wb") as log:  # the child keeps its own descriptor
        proc = subprocess.Popen(
            server.command(data_dir), cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
        )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"{server.name} exited with {proc.returncode}:\n{log_path.read_text()}"
            )
        try:
            if http_get(server.port, server.ready_path, timeout=1.0)[0] == 200:
                return proc
        except OSError:
            pass
        time.sleep(0.1)
    stop(proc)
    raise RuntimeError(f"{server.name} did not become ready:\n{log_path.read_text()}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


def port_is_free(port: int) -> bool:
    try:
        http_get(port, "/", timeout=0.5)
    except OSError:
        return True
    return False


def run_wrk(
    scenario: Scenario, port: int, seconds: float, connections: int, threads: int = 2
) -> dict[str, Any]:
    command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{max(1, round(seconds))}s",
               "--timeout", "10s", "-s", scenario.script, f"http://{HOST}:{port}"]  # fmt: skip
    cpu_before = procstat.children_cpu()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=seconds + 60)
    cpu = procstat.children_cpu() - cpu_before
    line = next((x for x in done.stdout.splitlines() if x.startswith("WRK_JSON ")), None)
    if done.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    raw = json.loads(line.removeprefix("WRK_JSON "))
    wall = raw["duration_us"] / 1e6
    failed = sum(raw["errors"].values())
    ok = raw["requests"] - raw["errors"]["status"]
    lat = raw["latency_us"]
    return {
        "generator": "wrk",
        "requests": raw["requests"],
        "ok": ok,
        "errors": failed,
        "req_per_s": round(ok / wall, 1),
        "events_per_s": round(ok * scenario.batch / wall, 1),
        "latency_ms": {k: round(lat[k] / 1000, 3) for k in ("p50", "p90", "p99", "max")},
        "loadgen_cpu_percent": round(100 * cpu / wall, 1),
        "wrk": raw,
    }


def run_openloop(scenario: Scenario, port: int, seconds: float, rate: float) -> dict[str, Any]:
    command = [sys.executable, str(BENCH / "openloop.py"), "--port", str(port),
               "--rate", f"{rate:.1f}", "--duration", str(seconds),
               "--batch", str(scenario.batch)]  # fmt: skip
    cpu_before = procstat.children_cpu()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=seconds + 60)
    cpu = procstat.children_cpu() - cpu_before
    if done.returncode != 0:
        raise RuntimeError(f"openloop failed ({done.returncode}):\n{done.stderr}")
    raw = json.loads(done.stdout)
    failed = raw["answered"] - raw["ok"] + raw["timeouts"] + sum(raw["errors"].values())
    return {
        "generator": "openloop",
        "offered_rate": rate,
        "requests": raw["scheduled"],
        "ok": raw["ok"],
        "errors": failed,
        "req_per_s": raw["achieved_rate"],
        "events_per_s": round(raw["achieved_rate"] * scenario.batch, 1),
        "latency_ms": {k: raw["latency_ms"][k] for k in ("p50", "p90", "p99", "max")},
        # Its own CPU over the schedule and drain; the whole process with start-up beside it.
        "loadgen_cpu_percent": raw["cpu_percent"],
        "loadgen_process_cpu_s": round(cpu, 3),
        "openloop": raw,
    }


def psql(server_url: str, database: str, sql: str) -> list[str]:
    done = subprocess.run(
        ["psql", f"{server_url}/{database}", "-Atc", sql],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return done.stdout.split()


def backend_pids(server_url: str, database: str) -> list[int]:
    """The PostgreSQL backends serving Tidings' connections to ``database``."""
    sql = (
        "SELECT pid FROM pg_stat_activity "
        f"WHERE datname = '{database}' AND application_name = 'tidings'"
    )
    return [int(pid) for pid in psql(server_url, "postgres", sql)]


def commit_stats(port: int) -> dict[str, float]:
    """Sums and counts of Tidings' group-commit histograms from /metrics."""
    status, body = http_get(port, "/metrics")
    if status != 200:
        return {}
    wanted = ("tidings_store_commit_batch_events_sum", "tidings_store_commit_batch_events_count",
              "tidings_store_commit_seconds_sum")  # fmt: skip
    values: dict[str, float] = {}
    for line in body.decode().splitlines():
        name, _, value = line.partition(" ")
        if name in wanted:
            values[name] = float(value)
    return values


def commit_delta(
    before: dict[str, float], after: dict[str, float], wall: float
) -> dict[str, float]:
    if not before or not after:
        return {}
    events = (
        after["tidings_store_commit_batch_events_sum"]
        - before["tidings_store_commit_batch_events_sum"]
    )
    commits = (
        after["tidings_store_commit_batch_events_count"]
        - before["tidings_store_commit_batch_events_count"]
    )
    seconds = after["tidings_store_commit_seconds_sum"] - before["tidings_store_commit_seconds_sum"]
    if commits <= 0:
        return {}
    return {
        "commits_per_s": round(commits / wall, 1),
        "events_per_commit": round(events / commits, 1),
        "commit_ms_mean": round(1000 * seconds / commits, 3),
        "writer_busy_percent": round(100 * seconds / wall, 1),
    }


def measure(
    server: Server, scenario: Scenario, rate: float | None, timing: Timing, work: Path
) -> dict[str, Any]:
    """Start the server on a fresh directory, warm it up, measure one scenario, stop it."""
    if not port_is_free(server.port):
        raise RuntimeError(f"port {server.port} is taken; is an earlier server still running?")
    data_dir = Path(tempfile.mkdtemp(prefix=f"{server.name}-{scenario.name}-", dir=work))
    database = f"tidings_bench_{os.getpid()}_{data_dir.name.rsplit('-', 1)[-1].lower()}"
    store_env: dict[str, str] = {}
    if server.postgres:
        psql(server.postgres, "postgres", f'CREATE DATABASE "{database}"')
        store_env["TIDINGS_STORE"] = f"{server.postgres}/{database}"
    quiet: dict[str, float] = {}
    if timing.quiet_below:
        quiet = procstat.wait_for_quiet(timing.quiet_below, timing.quiet_wait_s)
    proc = start(server, data_dir, data_dir.with_suffix(".log"), store_env)
    backends: list[int] = []
    try:
        run_wrk(scenario, server.port, timing.warmup_s, connections=4, threads=1)
        probe = procstat.fsync_probe(data_dir)
        is_tidings = server.name.startswith("tidings")
        commits_before = commit_stats(server.port) if is_tidings else {}
        if server.postgres:
            backends = backend_pids(server.postgres, database)
        pg_before = procstat.pids_cpu(backends)
        cpu_before, machine_before = procstat.process_cpu(proc.pid), procstat.machine_cpu()
        disk_before, pressure_before = procstat.disk_stats(data_dir), procstat.pressure()
        t0 = time.perf_counter()
        if rate is None:
            result = run_wrk(scenario, server.port, timing.run_s, scenario.connections)
        else:
            result = run_openloop(scenario, server.port, timing.run_s, rate)
        wall = time.perf_counter() - t0
        cpu_after, machine_after = procstat.process_cpu(proc.pid), procstat.machine_cpu()
        pg_after = procstat.pids_cpu(backends)
        disk_after, pressure_after = procstat.disk_stats(data_dir), procstat.pressure()
        commits_after = commit_stats(server.port) if is_tidings else {}
        stats = http_get(server.port, "/v1/stats", timeout=30)[1]
    finally:
        stop(proc)
        if server.postgres:
            psql(server.postgres, "postgres", f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    result.update(procstat.process_cpu_delta(cpu_before, cpu_after, wall))
    if server.postgres:  # the database's work is the server's, as SQLite's is in-process
        pg_cpu = sum(after - pg_before.get(pid, 0.0) for pid, after in pg_after.items())
        result["postgres_backend_cpu_percent"] = round(100 * pg_cpu / wall, 1)
        result["tidings_process_cpu_percent"] = result["cpu_percent"]
        result["cpu_percent"] = round(result["cpu_percent"] + 100 * pg_cpu / wall, 1)
    result.update(procstat.machine_cpu_delta(machine_before, machine_after))
    result.update(procstat.disk_delta(disk_before, disk_after, wall))
    result.update(procstat.pressure_delta(pressure_before, pressure_after, wall))
    result.update(quiet)
    result.update(probe)
    # What the rest of the machine used meanwhile (neither this server nor the load
    # generator), in percent of one core: the noise this run had to live with.
    cores = os.cpu_count() or 1
    result["other_cpu_percent"] = round(
        cores * result["machine_busy_percent"]
        - result["cpu_percent"]
        - result["loadgen_cpu_percent"],
        1,
    )
    # CPU per request hardly depends on what else the machine does, unlike rates and latency.
    cpu_s = result["cpu_percent"] / 100 * wall
    result["server_cpu_us_per_request"] = round(1e6 * cpu_s / max(1, result["ok"]), 1)
    result["server_cpu_us_per_event"] = round(
        1e6 * cpu_s / max(1, result["ok"] * scenario.batch), 1
    )
    result["commits"] = commit_delta(commits_before, commits_after, wall)
    stored = json.loads(stats)["events"]["total"]
    result["stored_events"] = stored  # warm-up included; at least every acknowledged event
    result["acknowledged_all_stored"] = stored >= result["ok"] * scenario.batch
    result["server_exit_code"] = proc.returncode
    shutil.rmtree(data_dir, ignore_errors=True)
    return result


def measure_until_quiet(
    server: Server,
    scenario: Scenario,
    rate: float | None,
    timing: Timing,
    work: Path,
    round_no: int,
    discarded: list[dict[str, Any]],
    deadline: float,
) -> dict[str, Any]:
    """``measure``, repeated while other work on the machine made the run noisy; the least
    noisy attempt is kept, whatever its figures (the same rule for both servers), and the
    others go to ``discarded``."""
    attempts: list[dict[str, Any]] = []
    for attempt in range(1, timing.retry_noisy + 2):
        result = measure(server, scenario, rate, timing, work)
        result.update(
            scenario=scenario.name, server=server.name, round=round_no, batch=scenario.batch
        )
        result["attempt"] = attempt
        attempts.append(result)
        print(report.one_line(result), file=sys.stderr, flush=True)
        other = result["other_cpu_percent"]
        if (
            other <= timing.noisy_above
            or attempt > timing.retry_noisy
            or time.monotonic() > deadline
        ):
            break
        print(
            f"{'':8} noisy (other work {other:.0f}%), again:", end=" ", file=sys.stderr, flush=True
        )
    kept = min(attempts, key=lambda r: r["other_cpu_percent"])
    discarded.extend(r for r in attempts if r is not kept)
    return kept


def machine_info() -> dict[str, Any]:
    model = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
         if line.startswith("model name")),
        "unknown",
    )  # fmt: skip
    versions: dict[str, str] = {}
    for name in (
        "fastapi",
        "starlette",
        "uvicorn",
        "uvloop",
        "httptools",
        "pydantic",
        "aiosqlite",
        "orjson",
    ):
        try:
            from importlib.metadata import version

            versions[name] = version(name)
        except Exception:
            versions[name] = "not installed"
    wrk = subprocess.run(["wrk", "--version"], capture_output=True, text=True).stdout.splitlines()
    git = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    )
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--", "tidings"], cwd=ROOT, capture_output=True, text=True
    )
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "wrk": wrk[0].split(" Copyright")[0] if wrk else "unknown",
        "packages": versions,
        "commit": git.stdout.strip(),
        "tidings_tree_modified": bool(dirty.stdout.strip()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description="Tidings publish benchmark against the aiosqlite peer."
    )
    parser.add_argument("--quick", action="store_true", help="a few seconds per run, one round")
    parser.add_argument(
        "--seconds", type=float, help="seconds per measured run (default 15, quick 3)"
    )
    parser.add_argument(
        "--rounds", type=int, help="rounds, alternating server order (default 2, quick 1)"
    )
    parser.add_argument("--scenarios", default="single,batch100,open1000,openhalf")
    parser.add_argument(
        "--servers",
        default="tidings,peer",
        help="comma list of tidings, tidings-pg, peer, tidings-asgi (bench/asgi_publish_probe.py)",
    )
    parser.add_argument(
        "--postgres",
        default="postgresql://postgres@127.0.0.1:5432",
        help="the PostgreSQL server of tidings-pg (a database is created and dropped per run)",
    )
    parser.add_argument("--tidings-port", type=int, default=18431)
    parser.add_argument("--peer-port", type=int, default=18432)
    parser.add_argument(
        "--half-rate", type=float, help="openhalf rate, instead of half Tidings' peak"
    )
    parser.add_argument(
        "--quiet-below",
        type=float,
        default=25.0,
        help="before each run, wait until the machine is less busy than this percent of all "
        "cores (0: do not wait)",
    )
    parser.add_argument(
        "--quiet-wait", type=float, help="longest wait for quiet, seconds (default 60, quick 10)"
    )
    parser.add_argument(
        "--noisy-above",
        type=float,
        default=50.0,
        help="a run during which other work used more than this percent of one core is noisy",
    )
    parser.add_argument(
        "--retry-noisy", type=int, help="times a noisy run is repeated (default 2, quick 0)"
    )
    parser.add_argument(
        "--budget-min", type=float, default=60.0, help="after this many minutes, stop repeating"
    )
    parser.add_argument(
        "--tidings-env",
        action="append",
        default=[],
        help="TIDINGS_NAME=value for the Tidings servers, for diagnostics (repeatable)",
    )
    parser.add_argument("--render", type=Path, help="print the tables of an earlier JSON result")
    args = parser.parse_args()
    if args.render:
        earlier = json.loads(args.render.read_text())
        earlier["summary"] = report.summarize(earlier["runs"])
        print(report.markdown(earlier))
        return
    if args.retry_noisy is None:
        args.retry_noisy = 0 if args.quick else 2
    if not 0 <= args.retry_noisy <= 5:
        parser.error("--retry-noisy must be 0-5")
    timing = Timing(
        run_s=args.seconds or (3.0 if args.quick else 15.0),
        warmup_s=1.0 if args.quick else 3.0,
        rounds=args.rounds or (1 if args.quick else 2),
        quiet_below=args.quiet_below,
        quiet_wait_s=args.quiet_wait
        if args.quiet_wait is not None
        else (10.0 if args.quick else 60.0),
        noisy_above=args.noisy_above,
        retry_noisy=args.retry_noisy,
    )
    if not 1 <= timing.rounds <= 5 or not 1 <= timing.run_s <= 120:
        parser.error("rounds must be 1-5 and seconds 1-120")
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed (apt-get install wrk)")
    if any("=" not in x or not x.startswith("TIDINGS_") for x in args.tidings_env):
        parser.error("--tidings-env takes TIDINGS_NAME=value")
    tidings_env = tuple((k, v) for k, _, v in (x.partition("=") for x in args.tidings_env))
    known = {
        "tidings": Server("tidings", args.tidings_port, "/readyz", tidings_env),
        "peer": Server("peer", args.peer_port, "/healthz"),
        "tidings-asgi": Server("tidings-asgi", args.tidings_port + 2, "/readyz", tidings_env),
        "tidings-pg": Server(
            "tidings-pg", args.tidings_port + 4, "/readyz", tidings_env, args.postgres.rstrip("/")
        ),
    }
    servers = [known[name] for name in args.servers.split(",")]
    scenarios = {
        "single": Scenario("single", batch=1, connections=32),
        "batch100": Scenario("batch100", batch=100, connections=16),
        "open1000": Scenario("open1000", batch=1, rate=FIXED_RATE),
        "openhalf": Scenario("openhalf", batch=1),
    }
    chosen = [scenarios[name] for name in args.scenarios.split(",")]
    started = datetime.now(UTC)
    runs: list[dict[str, Any]] = []
    discarded: list[dict[str, Any]] = []
    deadline = time.monotonic() + 60 * args.budget_min
    half_rate = args.half_rate
    work = Path(tempfile.mkdtemp(prefix="tidings-bench-"))
    try:
        for scenario in chosen:
            if scenario.name == "openhalf" and half_rate is None:
                peaks = [
                    r["req_per_s"]
                    for r in runs
                    if r["scenario"] == "single" and r["server"] == "tidings"
                ]
                if not peaks:
                    sys.exit("openhalf needs the single scenario first, or --half-rate")
                half_rate = round(max(peaks) / 2, -1)
            rate = half_rate if scenario.name == "openhalf" else scenario.rate
            for round_no in range(timing.rounds):
                order = servers if round_no % 2 == 0 else servers[::-1]
                for server in order:
                    print(
                        f"{scenario.name:9} round {round_no + 1} {server.name:8}",
                        end=" ",
                        file=sys.stderr,
                        flush=True,
                    )
                    result = measure_until_quiet(
                        server, scenario, rate, timing, work, round_no + 1, discarded, deadline
                    )
                    runs.append(result)
                    time.sleep(1)  # let the disk settle after the data directory is removed
    finally:
        shutil.rmtree(work, ignore_errors=True)
    outcome = {
        "started": started.isoformat(timespec="seconds"),
        "command": " ".join([".venv/bin/python", "bench/run_publish.py", *sys.argv[1:]]),
        "tidings_env": dict(tidings_env),
        "machine": machine_info(),
        "timing": {
            "run_s": timing.run_s,
            "warmup_s": timing.warmup_s,
            "rounds": timing.rounds,
            "quiet_below_percent": timing.quiet_below,
            "quiet_wait_s": timing.quiet_wait_s,
            "noisy_above_percent": args.noisy_above,
            "retry_noisy": args.retry_noisy,
        },
        "half_rate": half_rate,
        "runs": runs,
        "discarded_noisy_runs": discarded,
    }
    outcome["summary"] = report.summarize(runs)
    text = report.markdown(outcome)
    RESULTS.mkdir(exist_ok=True)
    stem = RESULTS / f"publish-{started:%Y%m%d-%H%M%S}{'-quick' if args.quick else ''}"
    stem.with_suffix(".json").write_text(json.dumps(outcome, indent=2) + "\n")
    stem.with_suffix(".md").write_text(text)
    print(text)
    print(f"results: {stem.with_suffix('.json').relative_to(ROOT)}", file=sys.stderr)


if __name__ == "__main__":
    main()
