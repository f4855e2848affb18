"""Webhook delivery benchmark: Tidings delivering to a local receiver, four scenarios.

  throughput  N endpoints (1, 10, 100) matching every event; a fixed number of events is
              published in batches and the clock stops when every delivery is recorded as
              succeeded in the store (GET /v1/stats): signed deliveries/s end to end, with
              the delivery state durable
  latency     one endpoint, single-event publishes at a fixed 500 events/s (open loop); the
              receiver measures publish-to-delivery time: p50/p99
  publish     wrk, single-event publishes flat out (32 connections, as bench/run_publish.py)
              with 0 endpoints and with 100 endpoints matching `#`: the ratio
  backlog     a dead endpoint (connection refused, or 503) gets 10,000 events; once their
              first attempts failed and they wait for retry (schedule 0,1,1,1,1,1,1,1, no
              throttle, so retries keep coming), a healthy endpoint is added and fed 100
              events/s: its p99 publish-to-delivery. A control run without the dead endpoint
              comes first.

Every run starts Tidings on a fresh data directory with a fresh receiver, after waiting
(bounded) for the machine's 1-minute load average to drop below ``--load-below``, and
records the CPU of the server, the receiver, the load generator and the rest of the machine.
Each scenario runs at the default TIDINGS_DELIVERY_CONCURRENCY (16) and at a higher one, and
for every ``--variants`` entry: ``stock`` is Tidings as shipped, the others start it through
bench/delivery/variant.py with an experimental change applied in memory (judged against the
targets: ``stock`` only). Results go to bench/results/delivery-*.json and .md (not
committed); ``--render FILE`` prints the tables of an earlier result again.

    .venv/bin/python bench/delivery/run.py --quick     # smoke test, a few minutes
    .venv/bin/python bench/delivery/run.py             # the figures
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import common
import tables
from common import HOST, PYTHON, ROOT, SECRET, Procs, http_call

RESULTS = ROOT / "bench" / "results"
# Experiments (bench/delivery/variant.py): a change measured beside the shipped code.
VARIANTS: dict[str, list[str]] = {
    "stock": [],
    "no-governor": ["--no-governor"],
}
BATCH = 1000  # events per publish request where only the delivery rate matters
POLL_S = 0.05


@dataclass(frozen=True)
class Plan:
    quick: bool
    concurrencies: tuple[int, ...]
    throughput_deliveries: int  # per throughput run, whatever the number of endpoints
    latency_s: float
    publish_s: float
    publish_rounds: int
    backlog_events: int
    backlog_s: float
    dead_modes: tuple[str, ...]
    load_below: float
    load_wait_s: float


# -- helpers --------------------------------------------------------------------------------


def register(port: int, path: str, receiver_port: int) -> str:
    status, body = http_call(
        port,
        "POST",
        "/v1/webhooks",
        {"url": f"http://{HOST}:{receiver_port}{path}", "events": ["#"], "secret": SECRET},
    )
    if status != 201:
        raise RuntimeError(f"registering {path} answered {status}: {body}")
    return str(body["id"])


def register_url(port: int, url: str) -> str:
    status, body = http_call(
        port, "POST", "/v1/webhooks", {"url": url, "events": ["#"], "secret": SECRET}
    )
    if status != 201:
        raise RuntimeError(f"registering {url} answered {status}: {body}")
    return str(body["id"])


def publish_batches(port: int, count: int, first: int = 0) -> int:
    """Publish ``count`` events in batches of BATCH; each carries ``data.pub_ns``."""
    done = 0
    while done < count:
        size = min(BATCH, count - done)
        now = time.monotonic_ns()
        events = [
            {"type": "bench.delivery.batch", "source": "bench", "subject": f"dev-{i % 100}",
             "data": {"n": first + done + i, "pub_ns": now, "switch": "on", "level": 42}}
            for i in range(size)
        ]  # fmt: skip
        status, body = http_call(port, "POST", "/v1/events", events, timeout=60)
        if status != 201:
            raise RuntimeError(f"batch publish answered {status}: {str(body)[:500]}")
        done += size
    return done


def receiver_stats(procs: Procs) -> dict[str, Any]:
    status, body = http_call(procs.receiver_port, "GET", "/_stats")
    if status != 200:
        raise RuntimeError(f"receiver stats answered {status}")
    return dict(body)


def wait_received(procs: Procs, prefix: str, expected: int, limit_s: float) -> float | None:
    """Seconds until the receiver holds ``expected`` distinct deliveries under ``prefix``."""
    started = time.monotonic()
    while time.monotonic() - started < limit_s:
        stats = receiver_stats(procs)
        unique = sum(p["unique"] for k, p in stats["paths"].items() if k.startswith(prefix))
        if unique >= expected:
            return time.monotonic() - started
        time.sleep(POLL_S)
    return None


def succeeded(port: int) -> int:
    status, body = http_call(port, "GET", "/v1/stats")
    if status != 200:
        raise RuntimeError(f"/v1/stats answered {status}")
    return int(body["deliveries"]["by_status"]["succeeded"])


def wait_succeeded(port: int, expected: int, limit_s: float) -> float | None:
    started = time.monotonic()
    while time.monotonic() - started < limit_s:
        if succeeded(port) >= expected:
            return time.monotonic() - started
        time.sleep(POLL_S * 2)
    return None


def run_publisher(port: int, rate: float, seconds: float, first: int) -> dict[str, Any]:
    command = [PYTHON, str(common.HERE / "publisher.py"), "--port", str(port),
               "--rate", str(rate), "--duration", str(seconds), "--first", str(first)]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60)
    if done.returncode != 0:
        raise RuntimeError(f"publisher failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return dict(json.loads(done.stdout))


def run_wrk(port: int, seconds: float, connections: int, threads: int = 2) -> dict[str, Any]:
    script = ROOT / "bench" / "wrk" / "publish_single.lua"
    command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{max(1, round(seconds))}s",
               "--timeout", "10s", "-s", str(script), f"http://{HOST}:{port}"]  # fmt: skip
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=seconds + 60)
    line = next((x for x in done.stdout.splitlines() if x.startswith("WRK_JSON ")), None)
    if done.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    raw = json.loads(line.removeprefix("WRK_JSON "))
    wall = raw["duration_us"] / 1e6
    ok = raw["requests"] - raw["errors"]["status"]
    lat = raw["latency_us"]
    return {
        "requests": raw["requests"],
        "ok": ok,
        "errors": sum(raw["errors"].values()),
        "publishes_per_s": round(ok / wall, 1),
        "latency_ms": {k: round(lat[k] / 1000, 3) for k in ("p50", "p90", "p99", "max")},
    }


def server_env(concurrency: int, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {
        "TIDINGS_WEBHOOK_ALLOW_PRIVATE": "true",
        "TIDINGS_DELIVERY_CONCURRENCY": str(concurrency),
    }
    env.update(extra or {})
    return env


# -- scenarios ------------------------------------------------------------------------------


def throughput(procs: Procs, plan: Plan, endpoints: int, concurrency: int) -> dict[str, Any]:
    procs.start_server(server_env(concurrency))
    for i in range(endpoints):
        register(procs.server_port, f"/ep/{i}", procs.receiver_port)
    events = plan.throughput_deliveries // endpoints
    expected = events * endpoints
    # Warm-up: connections opened, code paths taken; then the receiver forgets it.
    warm = max(10, events // 20)
    publish_batches(procs.server_port, warm)
    if wait_received(procs, "/ep/", warm * endpoints, 60) is None:
        raise RuntimeError("the warm-up deliveries did not arrive")
    if wait_succeeded(procs.server_port, warm * endpoints, 60) is None:
        raise RuntimeError("the warm-up deliveries were not recorded")
    http_call(procs.receiver_port, "POST", "/_reset")
    limit = 60 + expected / 200  # bounded even at 200 deliveries/s
    before = common.cpu_mark(procs)
    publish_batches(procs.server_port, events, first=warm)
    published = time.monotonic() - before.at
    received = recorded = None
    if wait_received(procs, "/ep/", expected, limit) is not None:
        received = time.monotonic() - before.at
        if wait_succeeded(procs.server_port, (warm + events) * endpoints, limit) is not None:
            recorded = time.monotonic() - before.at
    after = common.cpu_mark(procs)
    stats = receiver_stats(procs)
    counts = [p["count"] for p in stats["paths"].values()]
    first_ns = min(p["first_ns"] for p in stats["paths"].values())
    last_ns = max(p["last_ns"] for p in stats["paths"].values())
    return {
        "endpoints": endpoints,
        "concurrency": concurrency,
        "events": events,
        "deliveries": expected,
        "complete": received is not None and recorded is not None,
        "publish_s": round(published, 3),
        "all_received_s": round(received, 3) if received is not None else None,
        "all_recorded_s": round(recorded, 3) if recorded is not None else None,
        "deliveries_per_s": round(expected / recorded, 1) if recorded else None,
        "received_per_s": round(expected / received, 1) if received else None,
        # The receiver's own view: first to last arrival, without publish and record time.
        "receiver_window_per_s": round(expected / max(1e-9, (last_ns - first_ns) / 1e9), 1),
        "requests": sum(counts),
        "duplicates": sum(counts) - sum(p["unique"] for p in stats["paths"].values()),
        "signatures_ok": stats["signatures_ok"],
        "signatures_bad": stats["signatures_bad"],
        "cpu": common.cpu_delta(before, after),
    }


def latency(
    procs: Procs, plan: Plan, concurrency: int, rate: float, seconds: float, *, name: str
) -> dict[str, Any]:
    procs.start_server(server_env(concurrency))
    register(procs.server_port, "/ep/0", procs.receiver_port)
    return _fixed_rate(procs, rate, seconds, name=name, concurrency=concurrency)


def _fixed_rate(
    procs: Procs, rate: float, seconds: float, *, name: str, concurrency: int
) -> dict[str, Any]:
    """Warm up for 2 s at ``rate``, then publish at ``rate`` for ``seconds`` and read the
    receiver's publish-to-delivery latency of /ep/0."""
    warm = run_publisher(procs.server_port, rate, 2.0, first=10_000_000)
    wait_received(procs, "/ep/0", warm["ok"], 30)
    http_call(procs.receiver_port, "POST", "/_reset")
    before = common.cpu_mark(procs)
    published = run_publisher(procs.server_port, rate, seconds, first=20_000_000)
    drained = wait_received(procs, "/ep/0", published["ok"], 30)
    after = common.cpu_mark(procs)
    path = receiver_stats(procs)["paths"].get("/ep/0", {"count": 0, "unique": 0})
    return {
        "scenario": name,
        "concurrency": concurrency,
        "offered_rate": rate,
        "seconds": seconds,
        "published_ok": published["ok"],
        "publish_errors": sum(published["errors"].values())
        + sum(v for k, v in published["statuses"].items() if not k.startswith("2")),
        "publish_statuses": published["statuses"],
        "publish_error_kinds": published["errors"],
        "delivered": path["unique"],
        "duplicates": path["count"] - path["unique"],
        "all_delivered": drained is not None,
        "delivery_latency_ms": path.get("latency_ms"),
        "publish_latency_ms": published["publish_latency_ms"],
        "send_lag_ms": published["send_lag_ms"],
        "loadgen_own_cpu_percent": published["cpu_percent"],
        "cpu": common.cpu_delta(before, after),
    }


def publish_ratio(procs: Procs, plan: Plan, endpoints: int, concurrency: int) -> dict[str, Any]:
    procs.start_server(server_env(concurrency))
    for i in range(endpoints):
        register(procs.server_port, f"/ep/{i}", procs.receiver_port)
    run_wrk(procs.server_port, 1.0, connections=4, threads=1)  # warm-up
    received_before = receiver_stats(procs)["total"]
    before = common.cpu_mark(procs)
    result = run_wrk(procs.server_port, plan.publish_s, connections=32)
    after = common.cpu_mark(procs)
    delivered = receiver_stats(procs)["total"] - received_before
    wall = after.at - before.at
    return {
        "endpoints": endpoints,
        "concurrency": concurrency,
        **result,
        "deliveries_during_run": delivered,
        "deliveries_per_s_during_run": round(delivered / wall, 1),
        "cpu": common.cpu_delta(before, after),
    }


# The second delay leaves time for all first attempts to the dead endpoint to be made before
# any retry is due (with 0,1,1,... the earliest deliveries use up their eight attempts while
# later ones still wait for their first, and 10,000 are never queued at once); from then on
# the retries come every second, as fast as the engine lets them.
BACKLOG_SCHEDULE = "0,30,1,1,1,1,1,1"


def dead_backlog(port: int, data_dir: Path, url: str, events: int) -> tuple[str, dict[str, Any]]:
    """Register a dead endpoint, publish ``events``, and wait (bounded) until all of them
    had their first attempt and their retries have started coming."""
    dead_id = register_url(port, url)
    started = time.monotonic()
    publish_batches(port, events)
    counts: dict[str, int] = {}
    while time.monotonic() - started < 300:
        counts = common.delivery_counts(data_dir, dead_id)
        if counts["retry_waiting"] + counts["failed"] >= events:
            break
        time.sleep(0.5)
    queued: dict[str, Any] = {"first_attempts_done_s": round(time.monotonic() - started, 1)}
    queued.update(counts)
    # The first retry is due ~24-36 s after the first attempt: the window must see them.
    while time.monotonic() - started < 300:
        if sum(common.attempts_by_result(common.metrics(port)).values()) >= events + 500:
            break
        time.sleep(0.5)
    queued["retries_flowing_s"] = round(time.monotonic() - started, 1)
    return dead_id, queued


def backlog(
    procs: Procs, plan: Plan, concurrency: int, dead: str, refused_port: int
) -> dict[str, Any]:
    """``dead``: "none" (the control), "refused" or "503"."""
    extra = {"TIDINGS_WEBHOOK_RETRY_SCHEDULE": BACKLOG_SCHEDULE, "TIDINGS_WEBHOOK_THROTTLE_S": "0"}
    data_dir = procs.start_server(server_env(concurrency, extra))
    port = procs.server_port
    queued: dict[str, Any] = {}
    dead_id = None
    if dead != "none":
        url = (
            f"http://{HOST}:{refused_port}/dead"
            if dead == "refused"
            else f"http://{HOST}:{procs.receiver_port}/dead/0"
        )
        dead_id, queued = dead_backlog(port, data_dir, url, plan.backlog_events)
    register(port, "/ep/0", procs.receiver_port)
    attempts_before = common.attempts_by_result(common.metrics(port))
    at_start = common.delivery_counts(data_dir, dead_id) if dead_id else {}
    window_start = time.monotonic()
    result = _fixed_rate(
        procs, 100.0, plan.backlog_s, name=f"backlog-{dead}", concurrency=concurrency
    )
    window = time.monotonic() - window_start
    at_end = common.delivery_counts(data_dir, dead_id) if dead_id else {}
    attempts_after = common.attempts_by_result(common.metrics(port))
    failed_attempts = sum(
        v - attempts_before.get(k, 0.0) for k, v in attempts_after.items() if k != "success"
    )
    result.update(
        dead=dead,
        schedule=BACKLOG_SCHEDULE,
        backlog_before=queued,
        dead_at_window_start=at_start,
        dead_at_window_end=at_end,
        # Failed attempts (all to the dead endpoint) over the warm-up and measured window.
        failed_attempts_per_s=round(failed_attempts / window, 1),
    )
    return result


# -- driver ---------------------------------------------------------------------------------


def plan_from(args: argparse.Namespace) -> Plan:
    quick = args.quick
    return Plan(
        quick=quick,
        concurrencies=tuple(int(c) for c in args.concurrency.split(",")),
        throughput_deliveries=3_000 if quick else 30_000,
        latency_s=5.0 if quick else 30.0,
        publish_s=3.0 if quick else 15.0,
        publish_rounds=1 if quick else 2,
        backlog_events=10_000,
        backlog_s=8.0 if quick else 30.0,
        dead_modes=("refused",) if quick else ("refused", "503"),
        load_below=args.load_below,
        load_wait_s=args.load_wait if args.load_wait is not None else (30 if quick else 300),
    )


def jobs(plan: Plan, chosen: set[str]) -> list[tuple[str, dict[str, Any]]]:
    out: list[tuple[str, dict[str, Any]]] = []
    for c in plan.concurrencies:
        if "throughput" in chosen:
            out += [("throughput", {"endpoints": n, "concurrency": c}) for n in (1, 10, 100)]
        if "latency" in chosen:
            out.append(("latency", {"concurrency": c}))
        if "publish" in chosen:
            for r in range(plan.publish_rounds):
                order = (0, 100) if r % 2 == 0 else (100, 0)
                out += [("publish", {"endpoints": n, "concurrency": c, "round": r + 1})
                        for n in order]  # fmt: skip
        if "backlog" in chosen:
            out.append(("backlog", {"concurrency": c, "dead": "none"}))
            out += [("backlog", {"concurrency": c, "dead": d}) for d in plan.dead_modes]
    return out


def run_one(
    kind: str, params: dict[str, Any], variant: str, plan: Plan, work: Path, args: Any
) -> dict[str, Any]:
    quiet = common.wait_for_load(plan.load_below, plan.load_wait_s)
    hold = common.refused_port()
    try:
        with common.processes(work, args.port, args.receiver_port) as procs:
            procs.launcher = VARIANTS[variant]
            procs.start_receiver(lifetime_s=1200)
            c = params["concurrency"]
            if kind == "throughput":
                result = throughput(procs, plan, params["endpoints"], c)
            elif kind == "latency":
                result = latency(procs, plan, c, 500.0, plan.latency_s, name="latency")
            elif kind == "publish":
                result = publish_ratio(procs, plan, params["endpoints"], c)
                result["round"] = params["round"]
            else:
                result = backlog(procs, plan, c, params["dead"], hold.getsockname()[1])
            server_pid = procs.server_pid()
        result["exit_codes"] = procs.close()
        result["server_pid"] = server_pid
    finally:
        hold.close()
    result["kind"] = kind
    result["variant"] = variant
    result.update(quiet)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller counts, shorter runs")
    parser.add_argument("--scenarios", default="throughput,latency,publish,backlog")
    parser.add_argument("--concurrency", default="16,64", help="TIDINGS_DELIVERY_CONCURRENCY")
    parser.add_argument("--port", type=int, default=18441)
    parser.add_argument("--receiver-port", type=int, default=18442)
    parser.add_argument("--load-below", type=float, default=2.5, help="1-minute load average")
    parser.add_argument("--load-wait", type=float, help="longest wait for it, s (300; quick 30)")
    parser.add_argument("--render", type=Path, help="print the tables of an earlier JSON result")
    parser.add_argument(
        "--variants",
        default="stock",
        help=f"comma list of {', '.join(VARIANTS)}: experiments beside Tidings as shipped, "
        "run one after the other for every scenario (see variant.py)",
    )
    args = parser.parse_args()
    if args.render:
        print(tables.markdown(json.loads(args.render.read_text())))
        return
    plan = plan_from(args)
    chosen = set(args.scenarios.split(","))
    variants = args.variants.split(",")
    if unknown := [v for v in variants if v not in VARIANTS]:
        parser.error(f"unknown variants: {unknown}")
    started = datetime.now(UTC)
    machine_at_start = common.machine_info()
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="tidings-delivery-bench-") as tmp:
        for n, (kind, params) in enumerate(jobs(plan, chosen)):
            # Alternate the variants' order so that drift on the machine falls on each.
            for k, variant in enumerate(variants if n % 2 == 0 else variants[::-1]):
                print(f"{kind:10} {variant:11} {params}", end=" ", file=sys.stderr, flush=True)
                result = run_one(kind, params, variant, plan, Path(tmp) / f"run-{n}-{k}", args)
                runs.append(result)
                print(tables.one_line(result), file=sys.stderr, flush=True)
    machine = common.machine_info()
    if machine["commit"] != machine_at_start["commit"]:
        machine["commit"] = f"{machine_at_start['commit']}..{machine['commit']}"
    machine["tidings_tree_modified"] |= machine_at_start["tidings_tree_modified"]
    outcome = {
        "started": started.isoformat(timespec="seconds"),
        "command": " ".join([".venv/bin/python", "bench/delivery/run.py", *sys.argv[1:]]),
        "machine": machine,
        "plan": plan.__dict__,
        "runs": runs,
    }
    text = tables.markdown(outcome)
    RESULTS.mkdir(exist_ok=True)
    stem = RESULTS / f"delivery-{started:%Y%m%d-%H%M%S}{'-quick' if plan.quick else ''}"
    stem.with_suffix(".json").write_text(json.dumps(outcome, indent=2) + "\n")
    stem.with_suffix(".md").write_text(text)
    print(text)
    print(f"results: {stem.with_suffix('.json').relative_to(ROOT)}", file=sys.stderr)


if __name__ == "__main__":
    main()
