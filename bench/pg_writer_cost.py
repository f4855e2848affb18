"""CPU per group commit of the PostgreSQL writer, without HTTP: this tree beside earlier ones.

Each tree (this checkout, and every ``--baseline`` git ref, exported to a temporary directory)
runs in a process of its own on a database of its own, all at the same time, so they share
whatever else the machine is doing. In each, ``--publishers`` tasks call ``store.append`` with
one event each, flat out; with every publisher waiting for its answer, a group holds about that
many events. The figures are CPU per event, of the Python process and of the PostgreSQL
backends serving it: with 2 publishers they are mostly the cost of a group, with 32 mostly
the cost of an event.

    .venv/bin/python bench/pg_writer_cost.py --baseline HEAD~3 --publishers 2,32
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TICK = os.sysconf("SC_CLK_TCK")
BODY = {
    "type": "sensor.reading",
    "source": "bench",
    "subject": "device-1",
    "data": {"temperature": 21.5, "unit": "C", "n": 1},
}


def cpu_seconds(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / TICK
    return total


async def measure(server: str, publishers: int, seconds: float) -> dict[str, Any]:
    """One run in this process, on the ``tidings`` found first on the path."""
    import asyncpg  # type: ignore[import-untyped]

    from tidings.envelope.validate import Limits, PublishContext, candidates_from_json
    from tidings.store.postgres import PostgresStore

    database = f"tidings_writer_cost_{os.getpid()}"
    admin = await asyncpg.connect(f"{server}/postgres")
    await admin.execute(f'CREATE DATABASE "{database}"')
    store = PostgresStore(f"{server}/{database}")
    try:
        await store.open()

        def candidate() -> Any:
            return candidates_from_json(BODY, PublishContext(tenant="default"), Limits())[0][0]

        await asyncio.gather(*(store.append([candidate()]) for _ in range(200)))  # warm-up
        pids = [
            r[0]
            for r in await admin.fetch(
                "SELECT pid FROM pg_stat_activity "
                "WHERE datname = $1 AND application_name = 'tidings'",
                database,
            )
        ]
        groups = [0, 0.0]

        def on_group(count: int, elapsed: float) -> None:
            groups[0] += 1
            groups[1] += elapsed

        store.add_group_listener(on_group)
        stop, appended = False, 0

        async def publisher() -> None:
            nonlocal appended
            while not stop:
                await store.append([candidate()])
                appended += 1

        pg_before, py_before = cpu_seconds(pids), time.process_time()
        started = time.perf_counter()
        tasks = [asyncio.create_task(publisher()) for _ in range(publishers)]
        await asyncio.sleep(seconds)
        stop = True
        await asyncio.gather(*tasks)
        wall = time.perf_counter() - started
        pg, py = cpu_seconds(pids) - pg_before, time.process_time() - py_before
        return {
            "publishers": publishers,
            "events_per_s": round(appended / wall),
            "events_per_commit": round(appended / max(1, groups[0]), 1),
            "ms_per_commit": round(1000 * groups[1] / max(1, groups[0]), 2),
            "python_us_per_event": round(1e6 * py / appended, 1),
            "postgres_us_per_event": round(1e6 * pg / appended, 1),
        }
    finally:
        await store.close()
        await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        await admin.close()


def export(ref: str, into: Path) -> Path:
    tree = into / ref.replace("/", "_").replace("~", "-")
    tree.mkdir()
    archive = subprocess.run(["git", "archive", ref], cwd=ROOT, capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive.stdout, check=True)
    return tree


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432")
    parser.add_argument("--baseline", action="append", default=[], help="a git ref to compare")
    parser.add_argument("--publishers", default="2,32", help="comma list: one run each")
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)  # a child run
    args = parser.parse_args()
    server = args.postgres.rstrip("/")
    if args.one:
        result = asyncio.run(measure(server, int(args.publishers), args.seconds))
        print(json.dumps(result))
        return
    work = Path(tempfile.mkdtemp(prefix="tidings-writer-cost-"))
    try:
        trees = {"this tree": ROOT} | {ref: export(ref, work) for ref in args.baseline}
        print("| round | tree | publishers | events/s | events/commit | ms/commit "
              "| Python µs/event | PostgreSQL µs/event |")  # fmt: skip
        print("|---:|---|---:|---:|---:|---:|---:|---:|")
        for publishers in args.publishers.split(","):
            for round_ in range(1, args.rounds + 1):
                command = [sys.executable, str(ROOT / "bench" / "pg_writer_cost.py"), "--one",
                           "--postgres", server, "--publishers", publishers,
                           "--seconds", str(args.seconds)]  # fmt: skip
                children = {
                    name: subprocess.Popen(
                        command,
                        cwd=tree,
                        env={**os.environ, "PYTHONPATH": str(tree)},
                        stdout=subprocess.PIPE,
                    )
                    for name, tree in trees.items()
                }
                for name, child in children.items():
                    out, _ = child.communicate(timeout=args.seconds + 120)
                    r = json.loads(out)
                    cells = [round_, name, r["publishers"], f"{r['events_per_s']:,}"]
                    cells += [r[k] for k in ("events_per_commit", "ms_per_commit")]
                    cells += [r[k] for k in ("python_us_per_event", "postgres_us_per_event")]
                    print("| " + " | ".join(str(c) for c in cells) + " |")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
