"""Where a publishing server spends its time: py-spy samples under a publish load.

Starts one server (Tidings or the peer) on a fresh data directory, drives it with the same
generators as bench/run_publish.py (wrk flat out, or the open-loop generator at a fixed rate)
and samples it with ``py-spy record --gil``: only the thread holding the GIL is sampled, which
for a Python server bound by one core is exactly where its capacity goes. The summary groups
the samples by layer (HTTP server, framework, Tidings' own modules, SQLite, metrics) and
lists the hottest functions; the raw collapsed stacks are kept beside it for a flame graph.

    .venv/bin/python bench/profile_publish.py --server tidings --load single
    .venv/bin/python bench/profile_publish.py --server peer --load open --rate 1000
    .venv/bin/python bench/profile_publish.py --server tidings-pg --load single

``tidings-pg`` runs Tidings on a fresh database of the ``--postgres`` server, dropped after.
py-spy samples the Python process only: the PostgreSQL backends' CPU is not in the profile.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from run_publish import (
    RESULTS,
    ROOT,
    Scenario,
    Server,
    psql,
    run_openloop,
    run_wrk,
    start,
    stop,
)

# First match wins: the layer a frame's file belongs to.
LAYERS = (
    ("tidings/store/", "tidings store (writer thread, SQL)"),
    ("tidings/envelope/", "tidings envelope (validation, ids)"),
    ("tidings/api/middleware", "tidings middleware"),
    ("tidings/api/", "tidings api (handler, body, responses)"),
    ("tidings/publish", "tidings publish (metrics)"),
    ("tidings/metrics", "tidings publish (metrics)"),
    ("prometheus_client/", "prometheus_client"),
    ("peer_aiosqlite", "peer handler"),
    ("aiosqlite/", "aiosqlite"),
    ("pydantic", "pydantic"),
    ("fastapi/", "fastapi + starlette"),
    ("starlette/", "fastapi + starlette"),
    ("uvicorn/", "uvicorn (HTTP, socket writes)"),
    ("asyncio/", "event loop"),
    ("concurrent/", "thread pool"),
    ("threading", "threads"),
)


def layer_of(frame: str) -> str | None:
    for marker, layer in LAYERS:
        if marker in frame:
            return layer
    return None


def summarize(raw: Path, top: int = 25) -> str:
    """Self time by layer (the innermost known frame of each sample) and by function."""
    by_layer: Counter[str] = Counter()
    by_function: Counter[str] = Counter()
    by_thread: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        frames = stack.split(";")
        total += n
        by_thread[frames[0].split(": ", 1)[-1]] += n
        by_function[frames[-1]] += n
        layer = next((x for x in map(layer_of, reversed(frames)) if x), "other")
        by_layer[layer] += n
    if not total:
        return "no samples\n"
    lines = [f"{total} samples holding the GIL", "", "| thread | share |", "|---|---:|"]
    lines += [f"| {name} | {100 * n / total:.1f}% |" for name, n in by_thread.most_common()]
    lines += ["", "| layer (innermost known frame) | share |", "|---|---:|"]
    lines += [f"| {name} | {100 * n / total:.1f}% |" for name, n in by_layer.most_common()]
    lines += ["", "| function (self) | share |", "|---|---:|"]
    lines += [f"| `{name}` | {100 * n / total:.1f}% |" for name, n in by_function.most_common(top)]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", choices=("tidings", "tidings-pg", "peer"), default="tidings")
    parser.add_argument(
        "--postgres",
        default="postgresql://postgres@127.0.0.1:5432",
        help="the PostgreSQL server of tidings-pg (a database is created and dropped)",
    )
    parser.add_argument("--load", choices=("single", "batch100", "open"), default="single")
    parser.add_argument("--rate", type=float, default=1000.0, help="requests/s with --load open")
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--port", type=int, default=18433)
    args = parser.parse_args()
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists():
        sys.exit("py-spy is not installed (.venv/bin/pip install py-spy)")
    if not 1 <= args.seconds <= 120:
        parser.error("seconds must be 1-120")
    tidings = args.server.startswith("tidings")
    server = Server(args.server, args.port, "/readyz" if tidings else "/healthz")
    scenario = {
        "single": Scenario("single", batch=1, connections=32),
        "batch100": Scenario("batch100", batch=100, connections=16),
        "open": Scenario("open", batch=1, rate=args.rate),
    }[args.load]
    RESULTS.mkdir(exist_ok=True)
    stem = RESULTS / f"profile-{args.server}-{args.load}-{datetime.now(UTC):%Y%m%d-%H%M%S}"
    raw = stem.with_suffix(".txt")
    work = Path(tempfile.mkdtemp(prefix="tidings-profile-"))
    database = f"tidings_profile_{os.getpid()}"
    store_env: dict[str, str] = {}
    if args.server == "tidings-pg":
        server_url = args.postgres.rstrip("/")
        psql(server_url, "postgres", f'CREATE DATABASE "{database}"')
        store_env["TIDINGS_STORE"] = f"{server_url}/{database}"
    try:
        proc = start(server, work / "data", work / "server.log", store_env)
    except BaseException:
        if store_env:
            psql(server_url, "postgres", f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        raise
    try:
        run_wrk(scenario, server.port, 2, connections=4, threads=1)  # warm-up
        sampler = subprocess.Popen(
            [spy, "record", "--pid", str(proc.pid), "--duration", str(round(args.seconds)),
             "--rate", "250", "--gil", "--threads", "--format", "raw", "--output", str(raw)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        time.sleep(0.5)  # py-spy attaches before the load starts
        if scenario.rate is None:
            load = run_wrk(scenario, server.port, args.seconds, scenario.connections)
        else:
            load = run_openloop(scenario, server.port, args.seconds, scenario.rate)
        _, err = sampler.communicate(timeout=args.seconds + 60)
        if sampler.returncode != 0:
            sys.exit(f"py-spy failed: {err.decode(errors='replace')}")
    finally:
        stop(proc)
        if store_env:
            psql(server_url, "postgres", f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        shutil.rmtree(work, ignore_errors=True)
    header = (
        f"# {args.server}, load {args.load}: {load['req_per_s']:,.0f} req/s, "
        f"{load['events_per_s']:,.0f} events/s under py-spy ({args.seconds:g} s)\n\n"
        f"Command: `.venv/bin/python bench/profile_publish.py {' '.join(sys.argv[1:])}`\n\n"
    )
    text = header + summarize(raw)
    stem.with_suffix(".md").write_text(text)
    print(text)
    print(f"raw stacks: {raw.relative_to(ROOT)} (flame graph: speedscope or flamegraph.pl)")


if __name__ == "__main__":
    main()
