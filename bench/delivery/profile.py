"""Where the server's time goes while it delivers webhooks: py-spy on a loaded Tidings.

Starts the receiver and Tidings like bench/delivery/run.py, registers ``--endpoints``
endpoints, puts the chosen ``--load`` on it (see ``--help``), and samples the server with
``py-spy record`` for ``--seconds``. Writes the raw folded stacks and a summary (the busiest
functions by inclusive and by own time, per thread) to bench/results/, and prints the summary.

    .venv/bin/python bench/delivery/profile.py --endpoints 1 --seconds 15
    .venv/bin/python bench/delivery/profile.py --load rate --rate 500 --seconds 15
    .venv/bin/python bench/delivery/profile.py --load wrk --endpoints 100
    .venv/bin/python bench/delivery/profile.py --load dead --rate 100

py-spy must be allowed to attach (ptrace) to the server process.
"""

from __future__ import annotations

import argparse
import contextlib
import re
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import common
from run import (
    BACKLOG_SCHEDULE,
    VARIANTS,
    dead_backlog,
    publish_batches,
    register,
    run_publisher,
    run_wrk,
    server_env,
)

RESULTS = common.ROOT / "bench" / "results"
PYSPY = str(common.ROOT / ".venv" / "bin" / "py-spy")
LOCATION = re.compile(r" \((?P<file>[^()]*):\d+\)$")
# Frames every sample of the event loop passes through (start-up, CLI, uvicorn's run).
ROOTS = re.compile(
    r"\((typer/|<frozen runpy>|asyncio/runners|tidings/__main__|tidings/cli/|"
    r"uvicorn/server|uvicorn/_compat|tidings/server)"
)


# Where frames' files live, shortest-to-read last: the repository, installed packages, stdlib.
PATH_PREFIXES = tuple(
    sorted(
        {
            str(Path(__file__).resolve().parents[2]) + "/",
            sysconfig.get_paths()["purelib"] + "/",
            sysconfig.get_paths()["platlib"] + "/",
            sysconfig.get_paths()["stdlib"] + "/",
        },
        key=len,
        reverse=True,
    )
)


def frame_name(frame: str) -> str:
    """``send (tidings/delivery/sender.py:73)`` -> ``send (tidings/delivery/sender.py)``."""
    match = LOCATION.search(frame)
    if not match:
        return frame
    path = match["file"]
    for prefix in PATH_PREFIXES:
        if path.startswith(prefix):
            path = path[len(prefix) :]
            break
    return frame[: match.start()] + f" ({path})"


def summarize(folded: str, top: int) -> str:
    threads: Counter[str] = Counter()
    inclusive: Counter[tuple[str, str]] = Counter()
    own: Counter[tuple[str, str]] = Counter()
    for line in folded.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        frames = stack.split(";")
        thread = frames[0]
        thread = "event loop" if "MainThread" in thread or "main" in thread.lower() else thread
        names = [frame_name(f) for f in frames[1:]]
        threads[thread] += count
        for name in set(names):
            if not ROOTS.search(name):
                inclusive[thread, name] += count
        if names:
            own[thread, names[-1]] += count
    total = sum(threads.values()) or 1
    out = [f"samples: {total}"]
    for thread, n in threads.most_common(6):
        out.append(f"\n## {thread}: {100 * n / total:.1f}% of samples\n\ninclusive:")
        mine = [(k[1], v) for k, v in inclusive.items() if k[0] == thread]
        for name, v in sorted(mine, key=lambda kv: -kv[1])[:top]:
            out.append(f"  {100 * v / n:5.1f}%  {name}")
        out.append("own:")
        mine = [(k[1], v) for k, v in own.items() if k[0] == thread]
        for name, v in sorted(mine, key=lambda kv: -kv[1])[:top]:
            out.append(f"  {100 * v / n:5.1f}%  {name}")
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoints", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument(
        "--load",
        choices=("backlog", "rate", "wrk", "dead"),
        default="backlog",
        help="backlog: events published in batches before sampling; rate: open-loop "
        "publishes at --rate; wrk: single-event publishes flat out (32 connections); dead: "
        "10,000 retries to a refused endpoint, then --rate publishes",
    )
    parser.add_argument("--rate", type=float, default=100.0, help="events/s for rate and dead")
    parser.add_argument("--variant", choices=VARIANTS, default="stock", help="see variant.py")
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--idle", action="store_true", help="sample idle frames too")
    parser.add_argument("--port", type=int, default=18441)
    parser.add_argument("--receiver-port", type=int, default=18442)
    args = parser.parse_args()
    if not 1 <= args.seconds <= 120:
        parser.error("seconds must be 1-120")
    started = datetime.now(UTC)
    stem = RESULTS / f"delivery-profile-{started:%Y%m%d-%H%M%S}"
    RESULTS.mkdir(exist_ok=True)
    with (
        tempfile.TemporaryDirectory(prefix="tidings-delivery-profile-") as tmp,
        common.processes(Path(tmp), args.port, args.receiver_port) as procs,
    ):
        procs.start_receiver(lifetime_s=args.seconds + 600)
        procs.launcher = VARIANTS[args.variant]
        extra = {}
        if args.load == "dead":
            extra = {
                "TIDINGS_WEBHOOK_RETRY_SCHEDULE": BACKLOG_SCHEDULE,
                "TIDINGS_WEBHOOK_THROTTLE_S": "0",
            }
        data_dir = procs.start_server(server_env(args.concurrency, extra))
        if args.load == "dead":
            with contextlib.closing(common.refused_port()) as hold:
                url = f"http://{common.HOST}:{hold.getsockname()[1]}/dead"
                dead_backlog(procs.server_port, data_dir, url, 10_000)
        for i in range(args.endpoints):
            register(procs.server_port, f"/ep/{i}", procs.receiver_port)
        load = None
        if args.load in ("rate", "dead"):
            load = threading.Thread(
                target=run_publisher,
                args=(procs.server_port, args.rate, args.seconds + 2, 0),
                daemon=True,
            )
        elif args.load == "wrk":
            load = threading.Thread(
                target=run_wrk, args=(procs.server_port, args.seconds + 2, 32), daemon=True
            )
        else:
            # Published before sampling starts, so that the profile is the delivery work
            # (dispatch, attempts, records): enough for the window at 1,500 deliveries/s.
            publish_batches(procs.server_port, int(1500 * (args.seconds + 5) / args.endpoints))
        if load is not None:
            load.start()
        time.sleep(1.0)
        command = [PYSPY, "record", "--pid", str(procs.server_pid()), "--duration",
                   str(int(args.seconds)), "--rate", "250", "--threads", "--format", "raw",
                   "-o", str(stem.with_suffix(".txt"))]  # fmt: skip
        if args.idle:
            command.append("--idle")
        done = subprocess.run(command, capture_output=True, text=True, timeout=args.seconds + 60)
        if done.returncode != 0:
            sys.exit(f"py-spy failed ({done.returncode}): {done.stderr[-2000:]}")
        if load is not None:
            load.join(timeout=args.seconds + 60)
    summary = summarize(stem.with_suffix(".txt").read_text(), args.top)
    header = (
        f"# delivery profile {started:%Y-%m-%d %H:%M} UTC: {args.endpoints} endpoint(s), "
        f"concurrency {args.concurrency}, variant {args.variant}, "
        + f"load {args.load}"
        + (f" at {args.rate:g} events/s" if args.load in ("rate", "dead") else "")
        + f", {args.seconds:g} s\n\n"
    )
    stem.with_suffix(".md").write_text(header + summary + "\n")
    print(header + summary)
    print(f"results: {stem.with_suffix('.md').relative_to(common.ROOT)}", file=sys.stderr)


if __name__ == "__main__":
    main()
