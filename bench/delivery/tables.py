"""Markdown tables and the project's delivery targets for bench/delivery/run.py."""

from __future__ import annotations

from statistics import mean
from typing import Any

DELIVERIES_TARGET = 2000.0  # signed deliveries/s with durable delivery state
LATENCY_TARGET_MS = 100.0  # p99 publish-to-delivery at 500 events/s to one endpoint
PUBLISH_RATIO_TARGET = 0.5  # publishes/s with 100 matching endpoints / with none
BACKLOG_TARGET_MS = 200.0  # p99 to a healthy endpoint with 10,000 retries queued elsewhere


def _cpu(r: dict[str, Any]) -> str:
    c = r["cpu"]
    return (
        f"{c['server_cpu_percent']:.0f} ({c['server_loop_thread_percent']:.0f}/"
        f"{c['server_busiest_other_thread_percent']:.0f}) | {c['receiver_cpu_percent']:.0f} | "
        f"{c['loadgen_cpu_percent'] + c['harness_cpu_percent']:.0f} | {c['other_cpu_percent']:.0f}"
    )


CPU_HEAD = "server % (loop/writer) | receiver % | load gen % | rest of machine %"


def cpu_us_per(r: dict[str, Any], count: int) -> str:
    """Server CPU microseconds per delivery (or publish): hardly moved by the machine's
    other work, unlike rates and latencies."""
    c = r["cpu"]
    if not count:
        return "-"
    return f"{1e6 * c['server_cpu_percent'] / 100 * c['wall_s'] / count:,.0f}"


def _conc(r: dict[str, Any]) -> str:
    """The concurrency, and the experiment when the run was not Tidings as shipped."""
    variant = r.get("variant", "stock")
    return str(r["concurrency"]) if variant == "stock" else f"{r['concurrency']} *{variant}*"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def one_line(r: dict[str, Any]) -> str:
    kind = r["kind"]
    c = r["cpu"]
    cpu = (
        f"server {c['server_cpu_percent']:.0f}% receiver {c['receiver_cpu_percent']:.0f}% "
        f"loadgen {c['loadgen_cpu_percent'] + c['harness_cpu_percent']:.0f}% "
        f"other {c['other_cpu_percent']:.0f}% load1 {r['load1_at_start']}"
    )
    if kind == "throughput":
        return f"{r['deliveries_per_s']} deliveries/s (received {r['received_per_s']}/s)  {cpu}"
    if kind == "publish":
        return f"{r['publishes_per_s']} publishes/s, {r['deliveries_during_run']} delivered  {cpu}"
    lat = r["delivery_latency_ms"] or {}
    return (
        f"p50 {_ms(lat.get('p50'))} ms p99 {_ms(lat.get('p99'))} ms "
        f"delivered {r['delivered']}/{r['published_ok']}  {cpu}"
    )


def throughput_table(runs: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| concurrency | endpoints | events x endpoints | deliveries/s (all recorded) | "
        f"received/s | first→last arrival /s | duplicates | server CPU µs / delivery | "
        f"{CPU_HEAD} | load1 |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in runs:
        lines.append(
            f"| {_conc(r)} | {r['endpoints']} | {r['events']:,} x {r['endpoints']} | "
            f"**{r['deliveries_per_s']}** | {r['received_per_s']} | "
            f"{r['receiver_window_per_s']} | {r['duplicates']} | "
            f"{cpu_us_per(r, r['deliveries'])} | {_cpu(r)} | "
            f"{r['load1_at_start']} |"
        )
    return lines


def latency_table(runs: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| run | concurrency | events/s | delivered / published | p50 ms | p90 ms | p99 ms | "
        f"max ms | publish p99 ms | send lag p99 ms | {CPU_HEAD} | load1 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in runs:
        lat = r["delivery_latency_ms"] or {}
        lines.append(
            f"| {r['scenario']} | {_conc(r)} | {r['offered_rate']:g} | "
            f"{r['delivered']:,} / {r['published_ok']:,} | {_ms(lat.get('p50'))} | "
            f"{_ms(lat.get('p90'))} | **{_ms(lat.get('p99'))}** | {_ms(lat.get('max'))} | "
            f"{_ms(r['publish_latency_ms']['p99'])} | {_ms(r['send_lag_ms']['p99'])} | "
            f"{_cpu(r)} | {r['load1_at_start']} |"
        )
    return lines


def backlog_table(runs: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| dead receiver | concurrency | retries waiting at start → end | dead attempts/s | "
        "healthy p50 ms | p99 ms | max ms | delivered / published | publish p99 ms | "
        "disk flushes/s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in runs:
        lat = r["delivery_latency_ms"] or {}
        start, end = r["dead_at_window_start"], r["dead_at_window_end"]
        waiting = f"{start['retry_waiting']:,} → {end['retry_waiting']:,}" if start else "(control)"
        lines.append(
            f"| {r['dead']} | {_conc(r)} | {waiting} | {r['failed_attempts_per_s']} | "
            f"{_ms(lat.get('p50'))} | **{_ms(lat.get('p99'))}** | {_ms(lat.get('max'))} | "
            f"{r['delivered']:,} / {r['published_ok']:,} | "
            f"{_ms(r['publish_latency_ms']['p99'])} | {r['cpu'].get('disk_flushes_per_s', '-')} |"
        )
    return lines


def publish_table(runs: list[dict[str, Any]]) -> tuple[list[str], dict[str, float]]:
    lines = [
        "| concurrency | endpoints | round | publishes/s | publish p99 ms | deliveries/s meanwhile "
        f"| server CPU µs / publish | {CPU_HEAD} | load1 |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in runs:
        lines.append(
            f"| {_conc(r)} | {r['endpoints']} | {r['round']} | "
            f"**{r['publishes_per_s']:,.0f}** | {r['latency_ms']['p99']:.1f} | "
            f"{r['deliveries_per_s_during_run']:,.0f} | {cpu_us_per(r, r['ok'])} | {_cpu(r)} | "
            f"{r['load1_at_start']} |"
        )
    ratios: dict[str, float] = {}
    for label in sorted({_conc(r) for r in runs}):
        mine = [r for r in runs if _conc(r) == label]
        none = [r["publishes_per_s"] for r in mine if not r["endpoints"]]
        hundred = [r["publishes_per_s"] for r in mine if r["endpoints"]]
        if none and hundred:
            ratios[label] = round(mean(hundred) / mean(none), 3)
    return lines, ratios


def targets(runs: list[dict[str, Any]], ratios: dict[str, float]) -> list[str]:
    """Tidings as shipped only: the experiments are there to be compared, not judged."""
    lines = ["| target | concurrency | measured | met |", "|---|---:|---|---|"]
    runs = [r for r in runs if r.get("variant", "stock") == "stock"]

    def row(target: str, c: int | str, value: str, met: bool) -> None:
        lines.append(f"| {target} | {c} | {value} | {'yes' if met else '**no**'} |")

    for r in runs:
        if r["kind"] == "throughput":
            v = r["deliveries_per_s"] or 0.0
            row(f"≥ 2,000 signed deliveries/s, durable ({r['endpoints']} endpoints)",
                r["concurrency"], f"{v:,.0f}/s", v >= DELIVERIES_TARGET)  # fmt: skip
    for r in runs:
        p99 = (r.get("delivery_latency_ms") or {}).get("p99")
        complete = r.get("all_delivered", False)
        if r["kind"] == "latency":
            row("p99 publish-to-delivery < 100 ms at 500 events/s, 1 endpoint",
                r["concurrency"], f"{_ms(p99)} ms",
                complete and p99 is not None and p99 < LATENCY_TARGET_MS)  # fmt: skip
        if r["kind"] == "backlog" and r["dead"] != "none":
            row(f"p99 < 200 ms to a healthy endpoint, 10,000 retries queued ({r['dead']})",
                r["concurrency"], f"{_ms(p99)} ms",
                complete and p99 is not None and p99 < BACKLOG_TARGET_MS)  # fmt: skip
    for c, ratio in ratios.items():
        if "*" in c:
            continue
        row("publishes/s with 100 endpoints ≥ ½ of with none", c, f"{ratio:.2f}x",
            ratio >= PUBLISH_RATIO_TARGET)  # fmt: skip
    return lines


def markdown(outcome: dict[str, Any]) -> str:
    runs = outcome["runs"]
    m = outcome["machine"]
    out = [
        f"Delivery benchmark, {outcome['started']} — `{outcome['command']}`",
        "",
        f"Machine: {m['nproc']} x {m['cpu_model']}, {m['memory_gib']} GiB, Linux {m['kernel']}, "
        f"Python {m['python']}, SQLite {m['sqlite']}, httpx2 {m['packages']['httpx2']}, "
        f"uvicorn {m['packages']['uvicorn']}, uvloop {m['packages']['uvloop']}; "
        f"commit {m['commit']}{' (tidings/ modified)' if m['tidings_tree_modified'] else ''}.",
        "",
    ]
    groups = {k: [r for r in runs if r["kind"] == k] for k in ("throughput", "publish")}
    fixed = [r for r in runs if r["kind"] in ("latency", "backlog")]
    ratios: dict[str, float] = {}
    if groups["throughput"]:
        out += ["Throughput to the local receiver:", "", *throughput_table(groups["throughput"])]
        out.append("")
    if fixed:
        out += ["Publish-to-delivery latency at a fixed rate:", "", *latency_table(fixed), ""]
    backlogs = [r for r in runs if r["kind"] == "backlog"]
    if backlogs:
        out += ["Dead receiver backlog:", "", *backlog_table(backlogs), ""]
    if groups["publish"]:
        lines, ratios = publish_table(groups["publish"])
        out += ["Publish throughput (wrk, 32 connections):", "", *lines, ""]
        out += [f"Ratio 100 endpoints / none at concurrency {c}: **{v:.2f}**"
                for c, v in ratios.items()]  # fmt: skip
        out.append("")
    out += ["Targets:", "", *targets(runs, ratios), ""]
    return "\n".join(out)
