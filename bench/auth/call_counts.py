"""Which of Tidings' functions run while streams are written, auth off beside auth on.

A count of Python calls does not depend on how busy the machine is, so it answers exactly
whether auth runs per delivered event. Each server (auth off, then auth on) runs under a
profile hook that counts calls into ``tidings/auth/``, ``tidings/streams/`` and
``tidings/api/``, switched on by SIGUSR1 and written out by SIGUSR2; between the two, N SSE
subscribers receive what bench/openloop.py publishes. Prints the functions whose counts
differ, every ``tidings/auth/`` function, and the live-write path. (The hook slows the
server down many times: the counts are the figure, not the time.)

    .venv/bin/python bench/auth/call_counts.py
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as single  # the same key, open loop and subscribers as bench/auth/run.py

WATCHED = ("/tidings/auth/", "/tidings/streams/", "/tidings/api/")


def serve_counting(out: str, argv: list[str]) -> None:
    """``tidings serve`` in this process, counting calls while switched on."""
    counts: collections.Counter[str] = collections.Counter()
    counting = [False]

    def hook(frame: FrameType, event: str, arg: Any) -> None:
        if event == "call" and counting[0]:
            code = frame.f_code
            if any(part in code.co_filename for part in WATCHED):
                name = code.co_filename.split("/tidings/", 1)[1]
                counts[f"{name}:{code.co_qualname}"] += 1

    def begin(*_: Any) -> None:
        counts.clear()
        counting[0] = True

    def dump(*_: Any) -> None:
        counting[0] = False
        Path(out).write_text(json.dumps(dict(counts)))

    signal.signal(signal.SIGUSR1, begin)
    signal.signal(signal.SIGUSR2, dump)
    sys.setprofile(hook)
    threading.setprofile(hook)
    from tidings.cli.main import main

    sys.argv = ["tidings", "serve", *argv]
    main()


def start(port: int, data: Path, auth: bool, out: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TIDINGS_")}
    env.update(TIDINGS_AUTH="on" if auth else "off", TIDINGS_LOG_LEVEL="warning")
    if auth:
        env["TIDINGS_BOOTSTRAP_KEY"] = single.KEY
    command = [sys.executable, __file__, "--serve", str(out), "--port", str(port),
               "--data-dir", str(data)]  # fmt: skip
    proc = subprocess.Popen(command, cwd=single.ROOT, env=env, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if single._get(port, "/readyz") == 200:
                return proc
        except OSError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError("the server did not become ready")


async def measure(auth: bool, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    out = work / f"counts-{auth}.json"
    proc = start(args.port, work / f"data-{auth}", auth, out)
    counts: list[int] = []
    tasks: list[asyncio.Task[None]] = []
    try:
        key = single.bench_key(args.port, args.subscribers) if auth else None
        for _ in range(args.subscribers):
            ready = asyncio.Event()
            subscriber = single.subscriber(args.port, key, counts, ready)
            tasks.append(asyncio.create_task(subscriber))
            await asyncio.wait_for(ready.wait(), 10)
        await asyncio.sleep(0.5)
        proc.send_signal(signal.SIGUSR1)
        await asyncio.sleep(0.2)
        delivered0 = sum(counts)
        loop = await single.openloop(args.port, args.rate, args.seconds, key)
        await asyncio.sleep(1.0)
        proc.send_signal(signal.SIGUSR2)
        for _ in range(100):  # the server writes the counts from its signal handler
            await asyncio.sleep(0.1)
            if out.exists() and out.read_text():
                break
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        single.stop(proc)
    return {
        "published": loop["ok"],
        "delivered": sum(counts) - delivered0,
        "calls": json.loads(out.read_text()),
    }


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--serve":
        serve_counting(sys.argv[2], sys.argv[3:])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--rate", type=float, default=50.0, help="publishes/s")
    parser.add_argument("--subscribers", type=int, default=20)
    parser.add_argument("--port", type=int, default=18481)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tidings-bench-auth-calls-") as tmp:
        off = asyncio.run(measure(False, args, Path(tmp)))
        on = asyncio.run(measure(True, args, Path(tmp)))
    print(
        f"auth off: {off['published']} published, {off['delivered']} delivered; "
        f"auth on: {on['published']} published, {on['delivered']} delivered\n"
    )
    print("| calls, auth off | calls, auth on | function |\n|---:|---:|---|")
    names = sorted(
        set(off["calls"]) | set(on["calls"]),
        key=lambda n: (-max(off["calls"].get(n, 0), on["calls"].get(n, 0)), n),
    )
    for name in names:
        a, b = off["calls"].get(name, 0), on["calls"].get(name, 0)
        if a != b or name.startswith("auth/") or "flush" in name:
            print(f"| {a} | {b} | `{name}` |")


if __name__ == "__main__":
    main()
