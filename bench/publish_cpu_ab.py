"""CPU per single-event publish of this tree beside another commit's, on a noisy machine.

Throughput on a shared machine says more about the neighbours than about the server; CPU per
request of the event-loop thread (the thread a single-event publish is bound by) and of the
whole process says what a change costs. This starts one server of this tree and one of
``--baseline`` (exported with ``git archive``) side by side, each on a fresh data directory
(or a fresh PostgreSQL database with ``--store postgres``), then drives them in turn with the
same wrk load (``bench/wrk/publish_single.lua``, 32 connections), alternating which goes
first, and reads each one's CPU from /proc around each run. Medians per tree at the end.

    .venv/bin/python bench/publish_cpu_ab.py --baseline HEAD~1 --rounds 6 --seconds 5
    .venv/bin/python bench/publish_cpu_ab.py --baseline HEAD~1 --store postgres
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import procstat
from run_publish import ROOT, Scenario, http_get, psql, run_wrk, stop

SINGLE = Scenario("single", batch=1, connections=32)


def export(commit: str, into: Path) -> Path:
    """The tree of ``commit`` in a directory of its own (its ``tidings`` package imports first
    when the server runs with that directory as its working directory)."""
    archive = subprocess.run(
        ["git", "archive", commit, "tidings"], cwd=ROOT, capture_output=True, check=True
    ).stdout
    into.mkdir(parents=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def serve(tree: Path, port: int, data: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "tidings", "serve", "--port", str(port),
               "--data-dir", str(data), "--log-level", "warning"]  # fmt: skip
    log = (data.parent / f"server-{port}.log").open("wb")
    proc = subprocess.Popen(command, cwd=tree, env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server of {tree} exited with {proc.returncode}")
        try:
            if http_get(port, "/readyz", timeout=1.0)[0] == 200:
                return proc
        except OSError:
            pass
        time.sleep(0.1)
    stop(proc)
    raise RuntimeError(f"the server of {tree} did not become ready")


def measure(proc: subprocess.Popen[bytes], port: int, seconds: float) -> dict[str, Any]:
    before = procstat.process_cpu(proc.pid)
    load = run_wrk(SINGLE, port, seconds, SINGLE.connections)
    after = procstat.process_cpu(proc.pid)
    n = max(load["ok"], 1)
    return {
        "req_per_s": load["req_per_s"],
        "loop_us": 1e6 * (after.main - before.main) / n,
        "process_us": 1e6 * (after.total - before.total) / n,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", required=True, help="the commit to compare against")
    parser.add_argument("--store", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="tidings-ab-"))
    trees = {"baseline": export(args.baseline, work / "baseline"), "this tree": ROOT}
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("TIDINGS_")}
    databases: list[str] = []
    procs: dict[str, tuple[subprocess.Popen[bytes], int]] = {}
    rows: dict[str, list[dict[str, Any]]] = {name: [] for name in trees}
    try:
        for i, (name, tree) in enumerate(trees.items()):
            env = dict(base_env)
            if args.store == "postgres":
                database = f"tidings_ab_{os.getpid()}_{i}"
                psql(args.postgres, "postgres", f'CREATE DATABASE "{database}"')
                databases.append(database)
                env["TIDINGS_STORE"] = f"{args.postgres}/{database}"
            port = 18461 + i
            (work / f"data-{i}").mkdir()
            procs[name] = (serve(tree, port, work / f"data-{i}" / "data", env), port)
            run_wrk(SINGLE, port, 2, connections=4, threads=1)  # warm-up
        for r in range(args.rounds):
            order = list(procs) if r % 2 == 0 else list(reversed(procs))
            for name in order:
                proc, port = procs[name]
                row = measure(proc, port, args.seconds)
                rows[name].append(row)
                print(f"round {r + 1} {name:>9}: {row['req_per_s']:8,.0f} req/s, loop "
                      f"{row['loop_us']:5.1f} µs/req, process {row['process_us']:5.1f} µs/req",
                      flush=True)  # fmt: skip
    finally:
        for proc, _ in procs.values():
            stop(proc)
        for database in databases:
            psql(args.postgres, "postgres", f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        shutil.rmtree(work, ignore_errors=True)
    print(f"\nmedians of {args.rounds} rounds ({args.store}, baseline {args.baseline}):")
    for name, got in rows.items():
        print(f"  {name:>9}: {statistics.median(x['req_per_s'] for x in got):8,.0f} req/s, loop "
              f"{statistics.median(x['loop_us'] for x in got):5.1f} µs/req, process "
              f"{statistics.median(x['process_us'] for x in got):5.1f} µs/req")  # fmt: skip


if __name__ == "__main__":
    main()
