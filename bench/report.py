"""Summaries and Markdown tables for bench/run_publish.py: means per scenario and server,
Tidings/peer ratios, and the project's publish targets judged plainly."""

from __future__ import annotations

from statistics import mean
from typing import Any

SCENARIOS = ("single", "batch100", "open1000", "openhalf")
P99_TARGET_MS = 20.0


def one_line(r: dict[str, Any]) -> str:
    lat = r["latency_ms"]
    return (
        f"{r['req_per_s']:>9.1f} req/s {r['events_per_s']:>10.1f} ev/s  p50 {lat['p50']:.2f} ms "
        f"p99 {lat['p99']:.2f} ms  server {r['cpu_percent']:.0f}%  loadgen "
        f"{r['loadgen_cpu_percent']:.0f}%  errors {r['errors']}"
    )


def loop_us_per_request(r: dict[str, Any]) -> float:
    """Event-loop thread CPU per answered request: the loop is where a one-process Python
    server runs out first, and its cost per request barely moves with other work on the
    machine, unlike rates and latency."""
    return r["main_thread_percent"] * 1e4 / r["req_per_s"] if r["req_per_s"] else 0.0


def _mean(runs: list[dict[str, Any]], get: Any) -> float:
    return round(mean(get(r) for r in runs), 3)


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Means over rounds per (scenario, server), then ratios and targets per scenario."""
    means: dict[str, dict[str, dict[str, Any]]] = {}
    for scenario in SCENARIOS:
        for server in dict.fromkeys(["tidings", "peer", *(r["server"] for r in runs)]):
            mine = [r for r in runs if r["scenario"] == scenario and r["server"] == server]
            if not mine:
                continue
            means.setdefault(scenario, {})[server] = {
                "rounds": len(mine),
                "offered_rate": mine[0].get("offered_rate"),
                "req_per_s": _mean(mine, lambda r: r["req_per_s"]),
                "events_per_s": _mean(mine, lambda r: r["events_per_s"]),
                "p50_ms": _mean(mine, lambda r: r["latency_ms"]["p50"]),
                "p99_ms": _mean(mine, lambda r: r["latency_ms"]["p99"]),
                "worst_p99_ms": max(r["latency_ms"]["p99"] for r in mine),
                "max_ms": max(r["latency_ms"]["max"] for r in mine),
                "server_cpu_percent": _mean(mine, lambda r: r["cpu_percent"]),
                "server_cpu_us_per_request": _mean(mine, lambda r: r["server_cpu_us_per_request"]),
                "loop_us_per_request": _mean(mine, loop_us_per_request),
                "loadgen_cpu_percent": _mean(mine, lambda r: r["loadgen_cpu_percent"]),
                "errors": sum(r["errors"] for r in mine),
            }
    ratios = _ratios(means, "tidings")
    ratios_pg = _ratios(means, "tidings-pg")
    return {
        "means": means,
        "ratios": ratios,
        "ratios_postgres": ratios_pg,
        "targets": _targets(means, ratios) + _targets(means, ratios_pg, "PostgreSQL: "),
    }


def _ratios(means: dict[str, Any], server: str) -> dict[str, dict[str, Any]]:
    """``server`` over the peer, per scenario."""
    ratios: dict[str, dict[str, Any]] = {}
    for scenario, pair in means.items():
        if server not in pair or "peer" not in pair:
            continue
        t, p = pair[server], pair["peer"]
        ratios[scenario] = {
            "events_per_s": round(t["events_per_s"] / p["events_per_s"], 2)
            if p["events_per_s"]
            else None,
            "p99": round(t["p99_ms"] / p["p99_ms"], 2) if p["p99_ms"] else None,
            "cpu_per_request": round(
                t["server_cpu_us_per_request"] / p["server_cpu_us_per_request"], 2
            ),
            # Requests one saturated event-loop core could answer, Tidings over the peer.
            "loop_capacity": round(p["loop_us_per_request"] / t["loop_us_per_request"], 2),
        }
    return ratios


def _targets(
    means: dict[str, Any], ratios: dict[str, Any], label: str = ""
) -> list[dict[str, Any]]:
    targets: list[dict[str, Any]] = []
    if "single" in ratios:
        value = ratios["single"]["events_per_s"]
        met = value is not None and value >= 2.0
        targets.append({"target": f"{label}single-event publishes/s >= 2x the peer",
                        "value": f"{value}x", "met": met})  # fmt: skip
    if "batch100" in ratios:
        value = ratios["batch100"]["events_per_s"]
        met = value is not None and value >= 1.0
        targets.append({"target": f"{label}100-event batches: events/s >= the peer",
                        "value": f"{value}x", "met": met})  # fmt: skip
    fixed = means.get("open1000", {}).get("tidings") if not label else None
    if fixed:
        kept_up = fixed["req_per_s"] >= 0.99 * (fixed["offered_rate"] or 0) and fixed["errors"] == 0
        worst, achieved = fixed["worst_p99_ms"], fixed["req_per_s"]
        targets.append({
            "target": f"p99 < {P99_TARGET_MS:g} ms at 1,000 publishes/s (open loop, every round)",
            "value": f"worst p99 {worst:.2f} ms, {achieved:.0f}/s achieved",
            "met": worst < P99_TARGET_MS and kept_up,
        })  # fmt: skip
    return targets


def _row(*cells: object) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def markdown(outcome: dict[str, Any]) -> str:
    m, s, timing = outcome["machine"], outcome["summary"], outcome["timing"]
    modified = " (tidings/ modified)" if m["tidings_tree_modified"] else ""
    lines = [
        f"Command: `{outcome['command']}` ({outcome['started']}; {timing['run_s']:g} s per run, "
        f"{timing['rounds']} round(s), openhalf at {outcome['half_rate']} req/s)",
        f"Machine: {m['nproc']} cores ({m['cpu_model']}), Linux {m['kernel']}, "
        f"Python {m['python']}, SQLite {m['sqlite']}, {m['wrk']}; "
        f"tidings at {m['commit']}{modified}",
        f"Attempts set aside because other work on the machine used more than "
        f"{timing.get('noisy_above_percent', 0):g}% of one core during them: "
        f"{len(outcome.get('discarded_noisy_runs', []))} (each run keeps its least noisy attempt; "
        "the others are in the JSON)",
        "",
        _row("scenario", "server", "offered req/s", "req/s", "events/s", "p50 ms", "p99 ms",
             "max ms", "server CPU %", "server CPU µs/req", "loop thread µs/req",
             "load gen CPU %", "errors"),
        "|---|---|" + "---:|" * 11,
    ]  # fmt: skip
    for scenario, pair in s["means"].items():
        for server, v in pair.items():
            offered = f"{v['offered_rate']:.0f}" if v["offered_rate"] else "flat out"
            cells = (
                f"{v['req_per_s']:,.0f}", f"{v['events_per_s']:,.0f}", f"{v['p50_ms']:.2f}",
                f"{v['p99_ms']:.2f}", f"{v['max_ms']:.1f}", f"{v['server_cpu_percent']:.0f}",
                f"{v['server_cpu_us_per_request']:,.0f}", f"{v['loop_us_per_request']:,.0f}",
                f"{v['loadgen_cpu_percent']:.0f}",
                v["errors"],
            )  # fmt: skip
            lines.append(_row(scenario, server, offered, *cells))
    lines += [
        "",
        _row("scenario", "Tidings/peer events/s", "Tidings/peer p99",
             "Tidings/peer server CPU per request", "Tidings/peer loop-bound capacity"),
        "|---|---:|---:|---:|---:|",
    ]  # fmt: skip
    for scenario, ratio in s["ratios"].items():
        lines.append(
            _row(scenario, ratio["events_per_s"], ratio["p99"], ratio["cpu_per_request"],
                 ratio["loop_capacity"])
        )  # fmt: skip
    if s.get("ratios_postgres"):
        lines += [
            "",
            _row("scenario", "Tidings on PostgreSQL/peer events/s", "p99",
                 "server CPU per request (PostgreSQL backends included)",
                 "loop-bound capacity"),
            "|---|---:|---:|---:|---:|",
        ]  # fmt: skip
        for scenario, ratio in s["ratios_postgres"].items():
            lines.append(
                _row(scenario, ratio["events_per_s"], ratio["p99"], ratio["cpu_per_request"],
                     ratio["loop_capacity"])
            )  # fmt: skip
    lines += ["", _row("target", "measured", "met"), "|---|---|---|"]
    for t in s["targets"]:
        lines.append(_row(t["target"], t["value"], "yes" if t["met"] else "**no**"))
    lines += [
        "",
        "Every run. CPU in percent of one core; *other* is what the rest of the machine used",
        "meanwhile (neither this server nor the load generator); *CPU wait* is the share of the",
        "time some task waited for a core (Linux PSI); fsync is a 4 KiB write + fsync probe just",
        "before the run; commits come from Tidings' own metrics.",
        "",
        _row("scenario", "round", "server", "req/s", "events/s", "p50 ms", "p99 ms", "server CPU",
             "loop thread", "busiest other thread", "load gen CPU", "other", "CPU wait %",
             "fsync ms", "commits/s", "events/commit", "ms/commit"),
        "|---|---:|---|" + "---:|" * 14,
    ]  # fmt: skip
    for r in outcome["runs"]:
        c = r.get("commits") or {}
        lat = r["latency_ms"]
        lines.append(
            _row(r["scenario"], r["round"], r["server"], f"{r['req_per_s']:,.0f}",
                 f"{r['events_per_s']:,.0f}", f"{lat['p50']:.2f}", f"{lat['p99']:.2f}",
                 f"{r['cpu_percent']:.0f}", f"{r['main_thread_percent']:.0f}",
                 f"{r['busiest_other_thread_percent']:.0f}", f"{r['loadgen_cpu_percent']:.0f}",
                 f"{r.get('other_cpu_percent', 0):.0f}", r.get("cpu_pressure_percent", "-"),
                 r.get("fsync_p50_ms", "-"),
                 c.get("commits_per_s", "-"), c.get("events_per_commit", "-"),
                 c.get("commit_ms_mean", "-"))
        )  # fmt: skip
    return "\n".join(lines) + "\n"
