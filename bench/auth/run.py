"""What requiring API keys costs: Tidings with auth on beside auth off, in the same run.

Two phases per server, each on a fresh data directory, the servers one at a time and the
order alternating by round (so drift on a noisy machine falls on both):

  publish   bench/openloop.py at a fixed rate of single-event publishes (with X-API-Key when
            auth is on): server CPU seconds per acknowledged publish
  stream    N SSE subscribers (the key in the header), then the same open loop at a lower
            rate: server CPU seconds per event written to a stream (the publishes' own cost
            is inside, shared by the N subscribers)

Both variants run the same code path but for the auth middleware (off: it only checks the
Host header), so the ratio is what the middleware, the key lookup, the scope check, the
stream slot and the rate check cost. Prints a Markdown table; the JSON goes to bench/results/.

The variants run one after the other, so drift on the machine between them lands on the
ratio; the stream figure moved by 2x between runs of one variant. bench/auth/stream_pair.py
measures the stream phase with both servers at once, and bench/auth/call_counts.py counts
which functions run per delivered event (a count no noise changes).

    .venv/bin/python bench/auth/run.py                # 2 rounds, 12 s phases
    .venv/bin/python bench/auth/run.py --quick        # 1 round, 4 s phases
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import procstat

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "bench" / "results"
KEY = "tdk_" + "benchkey" * 5 + "abc"  # the bootstrap (root) key of the auth-on server


def start(port: int, data_dir: Path, auth: bool, log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TIDINGS_")}
    env.update(TIDINGS_AUTH="on" if auth else "off", TIDINGS_LOG_LEVEL="warning")
    if auth:
        env["TIDINGS_BOOTSTRAP_KEY"] = KEY
    command = [sys.executable, "-m", "tidings", "serve", "--port", str(port),
               "--data-dir", str(data_dir)]  # fmt: skip
    with log.open("wb") as out:
        proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited:\n{log.read_text()}")
        try:
            if _get(port, "/readyz") == 200:
                return proc
        except OSError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"server not ready:\n{log.read_text()}")


def _get(port: int, path: str) -> int:
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        conn.request("GET", path)
        return conn.getresponse().status
    finally:
        conn.close()


def bench_key(port: int, streams: int) -> str:
    """A publish and subscribe key allowed ``streams`` streams (the root key has 5)."""
    import http.client

    body = json.dumps(
        {"name": "bench", "scopes": ["publish", "subscribe"], "max_streams": streams + 5}
    )
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request(
            "POST", "/v1/keys", body, {"X-API-Key": KEY, "Content-Type": "application/json"}
        )
        answer = conn.getresponse()
        created = json.loads(answer.read())
    finally:
        conn.close()
    key: str = created["key"]
    return key


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


async def openloop(port: int, rate: float, seconds: float, key: str | None) -> dict[str, Any]:
    command = [sys.executable, str(ROOT / "bench" / "openloop.py"), "--port", str(port),
               "--rate", str(rate), "--duration", str(seconds)]  # fmt: skip
    if key:
        command += ["--api-key", key]
    proc = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"openloop failed: {err.decode()}")
    result: dict[str, Any] = json.loads(out)
    return result


async def subscriber(port: int, key: str | None, counts: list[int], ready: asyncio.Event) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    auth = f"X-API-Key: {key}\r\n" if key else ""
    writer.write(f"GET /v1/events/stream HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{auth}\r\n".encode())
    await writer.drain()
    slot = len(counts)
    counts.append(0)
    status = await reader.readline()
    if b" 200 " not in status:
        raise RuntimeError(f"stream refused: {status!r}")
    ready.set()
    try:
        while chunk := await reader.read(65536):
            counts[slot] += chunk.count(b"event: event\n")
    finally:
        writer.close()


async def phase(
    port: int, pid: int, key: str | None, rate: float, seconds: float, subscribers: int
) -> dict[str, Any]:
    counts: list[int] = []
    tasks = []
    for _ in range(subscribers):
        ready = asyncio.Event()
        tasks.append(asyncio.create_task(subscriber(port, key, counts, ready)))
        await asyncio.wait_for(ready.wait(), 10)
    await asyncio.sleep(0.5)
    own_before = resource.getrusage(resource.RUSAGE_SELF)
    before, wall0 = procstat.process_cpu(pid), time.monotonic()
    loop = await openloop(port, rate, seconds, key)
    await asyncio.sleep(1.0)  # the streams write what was published last
    after, wall = procstat.process_cpu(pid), time.monotonic() - wall0
    own_after = resource.getrusage(resource.RUSAGE_SELF)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    cpu = after.total - before.total
    delivered = sum(counts)
    own = (own_after.ru_utime + own_after.ru_stime) - (own_before.ru_utime + own_before.ru_stime)
    return {
        "published": loop["ok"],
        "errors": loop["scheduled"] - loop["ok"],
        "delivered": delivered,
        "server_cpu_s": round(cpu, 3),
        "server_cpu_percent": round(100 * cpu / wall, 1),
        "cpu_us_per_publish": round(1e6 * cpu / max(loop["ok"], 1), 1),
        "cpu_us_per_delivered": round(1e6 * cpu / delivered, 2) if delivered else None,
        "latency_ms_p50": loop["latency_ms"]["p50"],
        "latency_ms_p99": loop["latency_ms"]["p99"],
        "loadgen_cpu_percent": loop["cpu_percent"],
        "subscribers_cpu_percent": round(100 * own / wall, 1),
    }


def run_variant(auth: bool, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    data = work / f"data-{'on' if auth else 'off'}-{time.monotonic_ns()}"
    proc = start(args.port, data, auth, work / "server.log")
    try:
        key = bench_key(args.port, args.subscribers) if auth else None
        publish = asyncio.run(phase(args.port, proc.pid, key, args.rate, args.seconds, 0))
        stream = asyncio.run(
            phase(args.port, proc.pid, key, args.stream_rate, args.seconds, args.subscribers)
        )
    finally:
        stop(proc)
        shutil.rmtree(data, ignore_errors=True)
    return {"auth": auth, "publish": publish, "stream": stream}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=12.0)
    parser.add_argument("--rate", type=float, default=800.0, help="publishes/s, publish phase")
    parser.add_argument("--stream-rate", type=float, default=100.0, help="publishes/s, streams")
    parser.add_argument("--subscribers", type=int, default=100)
    parser.add_argument("--port", type=int, default=18451)
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.seconds = 1, 4.0
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="tidings-bench-auth-") as tmp:
        for round_ in range(args.rounds):
            order = (False, True) if round_ % 2 == 0 else (True, False)
            for auth in order:
                result_quiet = procstat.wait_for_quiet(30, 20)
                result = run_variant(auth, args, Path(tmp))
                result["round"] = round_
                result["machine_before"] = result_quiet
                runs.append(result)
                print(json.dumps(result), file=sys.stderr)
    print(table(runs, args))
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS / f"auth-{stamp}.json"
    path.write_text(json.dumps({"args": vars(args), "runs": runs}, indent=2))
    print(f"\nJSON: {path.relative_to(ROOT)}")


def _mean(runs: list[dict[str, Any]], auth: bool, phase_name: str, field: str) -> float:
    values = [r[phase_name][field] for r in runs if r["auth"] is auth and r[phase_name][field]]
    return sum(values) / len(values) if values else float("nan")


def table(runs: list[dict[str, Any]], args: argparse.Namespace) -> str:
    rows = [
        ("CPU per publish (µs)", "publish", "cpu_us_per_publish"),
        ("publish p50 latency (ms)", "publish", "latency_ms_p50"),
        ("publish p99 latency (ms)", "publish", "latency_ms_p99"),
        ("server CPU, publish phase (%)", "publish", "server_cpu_percent"),
        ("load generator CPU (%)", "publish", "loadgen_cpu_percent"),
        ("CPU per delivered stream event (µs)", "stream", "cpu_us_per_delivered"),
        ("server CPU, stream phase (%)", "stream", "server_cpu_percent"),
        ("subscribers' CPU (%)", "stream", "subscribers_cpu_percent"),
    ]
    lines = [
        f"{args.rounds} rounds; publish phase {args.rate:g}/s, stream phase "
        f"{args.stream_rate:g}/s to {args.subscribers} SSE subscribers; {args.seconds:g} s each",
        "",
        "| | auth off | auth on | on / off |",
        "|---|---:|---:|---:|",
    ]
    for label, phase_name, field in rows:
        off = _mean(runs, False, phase_name, field)
        on = _mean(runs, True, phase_name, field)
        lines.append(f"| {label} | {off:.2f} | {on:.2f} | {on / off:.3f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
