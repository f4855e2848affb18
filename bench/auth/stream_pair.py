"""What requiring keys costs per delivered stream event (or per publish), both servers at once.

bench/auth/run.py runs auth off and auth on one after the other, so whatever the machine does
meanwhile (other work, frequency, a drift over the run) falls on one variant and not the
other; its stream figure moved by 2x between runs of the same variant. Here both servers run
side by side under the same load in the same seconds, so that noise falls on both:

  each round: a fresh auth-off and auth-on server (which starts first alternates), N SSE
  subscribers on each (the key in the header for auth on), then bench/openloop.py publishing
  at the same rate to both at once; the figure is each server's CPU seconds (from /proc) per
  event written to its streams, and the ratio on / off of the same round.

With ``--subscribers 0`` the figure is each server's CPU per acknowledged publish instead.
Prints a Markdown table; the JSON goes to bench/results/.

    .venv/bin/python bench/auth/stream_pair.py --rounds 6 --seconds 10
    .venv/bin/python bench/auth/stream_pair.py --rounds 6 --seconds 10 --subscribers 0 --rate 800
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import procstat
import run as single  # the same servers, key, open loop and subscribers as bench/auth/run.py

VARIANTS = ("off", "on")


async def one_round(round_: int, args: argparse.Namespace, work: Path) -> dict[str, dict[str, Any]]:
    order = VARIANTS if round_ % 2 == 0 else VARIANTS[::-1]
    ports = {name: args.port + i for i, name in enumerate(order)}
    procs = {}
    counts: dict[str, list[int]] = {name: [] for name in VARIANTS}
    tasks: list[asyncio.Task[None]] = []
    try:
        for name in order:
            data = work / f"data-{name}-{round_}"
            procs[name] = single.start(ports[name], data, name == "on", work / f"{name}.log")
        keys = {"off": None, "on": single.bench_key(ports["on"], args.subscribers)}
        for _ in range(args.subscribers):
            for name in order:
                ready = asyncio.Event()
                subscriber = single.subscriber(ports[name], keys[name], counts[name], ready)
                tasks.append(asyncio.create_task(subscriber))
                await asyncio.wait_for(ready.wait(), 10)
        await asyncio.sleep(0.5)
        before = {name: procstat.process_cpu(procs[name].pid) for name in order}
        delivered0 = {name: sum(counts[name]) for name in order}
        began = time.monotonic()
        loops = await asyncio.gather(
            *(single.openloop(ports[n], args.rate, args.seconds, keys[n]) for n in order)
        )
        await asyncio.sleep(1.0)  # the streams write what was published last
        wall = time.monotonic() - began
        after = {name: procstat.process_cpu(procs[name].pid) for name in order}
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for proc in procs.values():
            single.stop(proc)
    result: dict[str, dict[str, Any]] = {}
    for name, loop in zip(order, loops, strict=True):
        cpu = after[name].total - before[name].total
        delivered = sum(counts[name]) - delivered0[name]
        result[name] = {
            "published": loop["ok"],
            "delivered": delivered,
            "server_cpu_s": round(cpu, 3),
            "server_cpu_percent": round(100 * cpu / wall, 1),
            "cpu_us_per_delivered": round(1e6 * cpu / delivered, 2) if delivered else None,
            "cpu_us_per_publish": round(1e6 * cpu / loop["ok"], 2) if loop["ok"] else None,
        }
    return result


def table(rounds: list[dict[str, dict[str, Any]]], args: argparse.Namespace) -> str:
    unit, field, count = (
        ("event", "cpu_us_per_delivered", "delivered")
        if args.subscribers
        else ("publish", "cpu_us_per_publish", "published")
    )
    lines = [
        f"{args.rounds} rounds; {args.rate:g} publishes/s to each server, {args.subscribers} SSE "
        f"subscribers each, {args.seconds:g} s; both servers at once",
        "",
        f"| round | first | off: µs per {unit} | on: µs per {unit} | on / off |",
        "|---:|---|---:|---:|---:|",
    ]
    ratios = []
    for i, r in enumerate(rounds):
        off, on = r["off"][field], r["on"][field]
        ratio = on / off if off and on else float("nan")
        ratios.append(ratio)
        first = VARIANTS[0] if i % 2 == 0 else VARIANTS[1]
        lines.append(f"| {i} | {first} | {off:.2f} | {on:.2f} | {ratio:.3f} |")
    cpu = {n: sum(r[n]["server_cpu_s"] for r in rounds) for n in VARIANTS}
    events = {n: sum(r[n][count] for r in rounds) for n in VARIANTS}
    per = {n: 1e6 * cpu[n] / events[n] for n in VARIANTS}
    lines += [
        "",
        f"median of the rounds' ratios: {statistics.median(ratios):.3f} "
        f"(range {min(ratios):.3f}-{max(ratios):.3f}); all rounds together: off "
        f"{per['off']:.2f} µs, on {per['on']:.2f} µs per {unit}, on / off "
        f"{per['on'] / per['off']:.3f}",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=100.0, help="publishes/s to each server")
    parser.add_argument("--subscribers", type=int, default=100)
    parser.add_argument("--port", type=int, default=18461)
    args = parser.parse_args()
    rounds = []
    with tempfile.TemporaryDirectory(prefix="tidings-bench-auth-pair-") as tmp:
        for round_ in range(args.rounds):
            result = asyncio.run(one_round(round_, args, Path(tmp)))
            print(json.dumps({"round": round_, **result}), file=sys.stderr)
            rounds.append(result)
    print(table(rounds, args))
    single.RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = single.RESULTS / f"auth-pair-{stamp}.json"
    path.write_text(json.dumps({"args": vars(args), "rounds": rounds}, indent=2))
    print(f"\nJSON: {path.relative_to(single.ROOT)}")


if __name__ == "__main__":
    main()
