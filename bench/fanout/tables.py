"""Summaries and Markdown tables for bench/fanout/run.py: means over rounds, Tidings/nchan
ratios, and the project's fan-out targets judged plainly."""

from __future__ import annotations

from statistics import mean
from typing import Any

MEMORY_TARGET_KB = 10.0  # per idle SSE connection, above the idle process
MEMORY_TARGET_CONNECTIONS = 10_000
TARGET_SUBSCRIBERS = 1000
RATE_TARGET = 1.0  # Tidings' flat delivery rate at least nchan's
P99_TARGET = 2.0  # Tidings' p99 at most twice nchan's
# nchan with its subscribers needs most of this machine's two cores at 1,000 x 100 events/s:
# a latency window is "quiet" when the rest of the machine used at most this much of a core.
QUIET_OTHER_PERCENT = 25.0
CPU_KEYS = ("server_cpu_percent", "server_main_thread_percent", "subscribers_cpu_percent",
            "publisher_cpu_percent", "other_cpu_percent")  # fmt: skip
FLAT_KEYS = ("delivered_per_s", "delivered_per_cpu_s", "bytes_per_event", "events_per_read",
             *CPU_KEYS)  # fmt: skip
LATENCY_KEYS = ("delivered_per_s", "offered_receipts_per_s", "events_per_read", *CPU_KEYS)


def _fmt_ms(value: float | None, drain_s: float) -> str:
    return f"> {drain_s:g} s" if value is None else f"{value:,.1f}"


def one_line(r: dict[str, Any]) -> str:
    parts = [f"{r['server']:>7} N={r['subscribers']:<5} round {r['round']}"]
    if "flat" in r:
        f = r["flat"]
        parts.append(
            f"flat {f['delivered_per_s']:>9,.0f} ev/s (server {f['server_cpu_percent']:.0f}%, "
            f"subs {f['subscribers_cpu_percent']:.0f}%, pub {f['publisher_cpu_percent']:.0f}%, "
            f"other {f['other_cpu_percent']:.0f}%)"
        )
    if "latency" in r:
        lat = r["latency"]
        ms = lat["latency_ms"]
        parts.append(
            f"{lat['rate']:g}/s: p50 {ms['p50']} p99 {ms['p99']} ms, "
            f"{lat['delivered_per_s']:,.0f} ev/s of {lat['offered_receipts_per_s']:,.0f} "
            f"(server {lat['server_cpu_percent']:.0f}%, subs {lat['subscribers_cpu_percent']:.0f}%)"
        )
    return "  ".join(parts)


def memory_line(r: dict[str, Any]) -> str:
    return (
        f"{r['server']:>7} memory round {r['round']}: {r['open']:,} connections, idle "
        f"{r['idle_rss_kb']:,} kB, loaded {r['loaded_rss_kb']:,} kB, "
        f"{r['kb_per_connection']:.2f} kB/connection; one event: "
        f"{r['event_receipts']:,}/{r['event_expected']:,} received"
    )


def _avg(values: list[float | None]) -> float | None:
    """Mean of the rounds, or None when any round has no measurement."""
    if not values or any(v is None for v in values):
        return None
    return round(mean(v for v in values if v is not None), 2)


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 2) if a is not None and b else None


def summarize(report: dict[str, Any]) -> dict[str, Any]:
    means: dict[int, dict[str, dict[str, Any]]] = {}
    for r in report["runs"]:
        means.setdefault(r["subscribers"], {}).setdefault(r["server"], {"runs": []})["runs"].append(
            r
        )
    for per_server in means.values():
        for entry in per_server.values():
            runs = entry.pop("runs")
            entry["rounds"] = len(runs)
            flats = [r["flat"] for r in runs if "flat" in r]
            lats = [r["latency"] for r in runs if "latency" in r]
            if flats:
                entry["flat"] = {key: _avg([f[key] for f in flats]) for key in FLAT_KEYS}
                entry["flat"]["missing_after_drain"] = sum(f["missing_after_drain"] for f in flats)
            if lats:
                entry["latency"] = {
                    "p50_ms": _avg([x["latency_ms"]["p50"] for x in lats]),
                    "p99_ms": _avg([x["latency_ms"]["p99"] for x in lats]),
                    "worst_p99_ms": None
                    if any(x["latency_ms"]["p99"] is None for x in lats)
                    else max(x["latency_ms"]["p99"] for x in lats),
                    "max_ms": max(x["latency_ms"]["max"] for x in lats),
                    "missing": sum(x["latency_ms"]["missing"] for x in lats),
                    "ack_p50_ms": _avg([x["ack_ms"]["p50"] for x in lats]),
                    "ack_p99_ms": _avg([x["ack_ms"]["p99"] for x in lats]),
                    **{key: _avg([x[key] for x in lats]) for key in LATENCY_KEYS},
                }
    ratios: dict[int, dict[str, float | None]] = {}
    for subs, per_server in means.items():
        t, n = per_server.get("tidings"), per_server.get("nchan")
        if not t or not n:
            continue
        ratios[subs] = {
            "flat": _ratio(t.get("flat", {}).get("delivered_per_s"),
                           n.get("flat", {}).get("delivered_per_s")),
            "flat_per_cpu": _ratio(t.get("flat", {}).get("delivered_per_cpu_s"),
                                   n.get("flat", {}).get("delivered_per_cpu_s")),
            "p50": _ratio(t.get("latency", {}).get("p50_ms"), n.get("latency", {}).get("p50_ms")),
            "p99": _ratio(t.get("latency", {}).get("p99_ms"), n.get("latency", {}).get("p99_ms")),
        }  # fmt: skip
    memory: dict[str, dict[str, Any]] = {}
    for r in report.get("memory", []):
        m = memory.setdefault(r["server"], {"kb": [], "open": [], "idle": [], "received": []})
        m["kb"].append(r["kb_per_connection"])
        m["open"].append(r["open"])
        m["idle"].append(r["idle_rss_kb"])
        m["received"].append(r["event_receipts"] == r["event_expected"])
    memory_means = {
        server: {
            "kb_per_connection": _avg(m["kb"]),
            "worst_kb_per_connection": max(m["kb"]),
            "connections": min(m["open"]),
            "idle_rss_kb": _avg(m["idle"]),
            "all_received_event": all(m["received"]),
        }
        for server, m in memory.items()
    }
    summary = {"means": means, "ratios": ratios, "memory": memory_means}
    summary["targets"] = _targets(report, summary)
    return summary


def _quiet_p99(report: dict[str, Any], server: str) -> list[float | None]:
    """p99 of the latency runs at the target size whose window the rest of the machine left
    alone (its *other* CPU at most ``QUIET_OTHER_PERCENT``)."""
    return [
        r["latency"]["latency_ms"]["p99"]
        for r in report["runs"]
        if r["server"] == server
        and r["subscribers"] == TARGET_SUBSCRIBERS
        and "latency" in r
        and r["latency"]["other_cpu_percent"] <= QUIET_OTHER_PERCENT
    ]


def _targets(report: dict[str, Any], summary: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target with ``met``: True, False, or None when these runs cannot tell."""
    config = report["config"]
    targets: list[dict[str, Any]] = []
    mem = summary["memory"].get("tidings")
    if mem:
        kb, conns = mem["worst_kb_per_connection"], mem["connections"]
        targets.append({
            "target": f"{MEMORY_TARGET_CONNECTIONS:,} idle SSE connections in one process, "
                      f"<= {MEMORY_TARGET_KB:g} KB each above the idle process",
            "value": f"{conns:,} open, {kb:.1f} KB each (worst round)",
            "met": conns >= MEMORY_TARGET_CONNECTIONS and kb <= MEMORY_TARGET_KB
            and mem["all_received_event"],
        })  # fmt: skip
    ratio = summary["ratios"].get(TARGET_SUBSCRIBERS)
    if ratio and "flat" in config["parts"]:
        flat, per_cpu = ratio["flat"], ratio["flat_per_cpu"]
        targets.append({
            "target": f"{TARGET_SUBSCRIBERS:,} subscribers: delivery rate >= "
                      f"{RATE_TARGET:g}x nchan's",
            "value": f"{flat}x ({per_cpu}x per server CPU-second)",
            "met": flat is not None and flat >= RATE_TARGET,
        })  # fmt: skip
    if ratio and "latency" in config["parts"]:
        # A latency at a fixed rate means something only when the server had the CPU it
        # needed: rounds where the rest of the machine took more are left out here.
        t_quiet, n_quiet = _quiet_p99(report, "tidings"), _quiet_p99(report, "nchan")
        everything = ratio["p99"]
        value = (
            f"{everything}x over all rounds"
            if everything is not None
            else ("Tidings' p99 not reached over all rounds")
        )
        met: bool | None = None
        if t_quiet and n_quiet:
            quiet = _ratio(_avg(t_quiet), _avg(n_quiet))
            value += f"; {quiet}x over the quiet rounds ({len(t_quiet)} / {len(n_quiet)})"
            met = quiet is not None and quiet <= P99_TARGET
        else:
            value += (
                f"; no quiet round for both (other CPU <= {QUIET_OTHER_PERCENT:g}%: "
                f"{len(t_quiet)} Tidings, {len(n_quiet)} nchan), so not judged"
            )
        targets.append({
            "target": f"{TARGET_SUBSCRIBERS:,} subscribers at {config['rate']:g} events/s: "
                      f"p99 <= {P99_TARGET:g}x nchan's",
            "value": value,
            "met": met,
        })  # fmt: skip
    return targets


def _row(*cells: object) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def _num(value: float | None, digits: int = 0) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def markdown(report: dict[str, Any]) -> str:
    m, s, cfg = report["machine"], report["summary"], report["config"]
    drain = cfg["drain_s"]
    modified = " (tidings/ modified)" if m["tidings_tree_modified"] else ""
    lines = [
        f"Command: `{report['command']}` ({report['started']} UTC; {cfg['seconds']:g} s windows "
        f"after {cfg['warmup_s']:g} s warm-up, {cfg['rounds']} round(s), flat: bursts of "
        f"{cfg['batch']} events, {cfg.get('lanes', 2)} in flight, at most {cfg['window']} "
        "ahead of the slowest subscriber; "
        f"{cfg['workers']} subscriber processes)",
        f"Machine: {m['nproc']} cores ({m['cpu_model']}), Linux {m['kernel']}, Python "
        f"{m['python']}, load generator on {m['generator_loop']}; {m['tidings']} at "
        f"{m['commit']}{modified}; {m['nchan']}, one worker",
        "",
    ]
    means = s["means"]
    if any("flat" in v for per in means.values() for v in per.values()):
        lines += [
            "**Delivery rate, flat out** (events received per second, all subscribers)",
            "",
            _row("subscribers", "Tidings ev/s", "nchan ev/s", "Tidings/nchan",
                 "ev per server CPU-s T / n (ratio)", "Tidings CPU % (loop thread)",
                 "nchan CPU %", "subscriber procs CPU % T / n", "publisher CPU % T / n",
                 "other CPU % T / n", "bytes/event T / n", "events/read T / n"),
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]  # fmt: skip
        for subs, per in sorted(means.items()):
            t, n = per.get("tidings", {}).get("flat"), per.get("nchan", {}).get("flat")
            if not t or not n:
                continue
            lines.append(_row(
                f"{subs:,}", _num(t["delivered_per_s"]), _num(n["delivered_per_s"]),
                _num(s["ratios"].get(subs, {}).get("flat"), 2),
                f"{_num(t['delivered_per_cpu_s'])} / {_num(n['delivered_per_cpu_s'])} "
                f"({_num(s['ratios'].get(subs, {}).get('flat_per_cpu'), 2)})",
                f"{_num(t['server_cpu_percent'])} ({_num(t['server_main_thread_percent'])})",
                _num(n["server_cpu_percent"]),
                f"{_num(t['subscribers_cpu_percent'])} / {_num(n['subscribers_cpu_percent'])}",
                f"{_num(t['publisher_cpu_percent'])} / {_num(n['publisher_cpu_percent'])}",
                f"{_num(t['other_cpu_percent'])} / {_num(n['other_cpu_percent'])}",
                f"{_num(t['bytes_per_event'])} / {_num(n['bytes_per_event'])}",
                f"{_num(t['events_per_read'], 1)} / {_num(n['events_per_read'], 1)}",
            ))  # fmt: skip
        lines.append("")
    if any("latency" in v for per in means.values() for v in per.values()):
        lines += [
            f"**Publish-to-receive latency at {cfg['rate']:g} events/s** (every receipt by "
            "every subscriber; ms)",
            "",
            _row("subscribers", "Tidings p50 / p99", "nchan p50 / p99", "Tidings/nchan p99",
                 "publish answered p50 / p99 T; n", "delivered ev/s T / n (offered)",
                 "missing T / n", "events/read T / n", "Tidings CPU % (loop)", "nchan CPU %",
                 "subscriber procs CPU % T / n", "other CPU % T / n"),
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]  # fmt: skip
        for subs, per in sorted(means.items()):
            t, n = per.get("tidings", {}).get("latency"), per.get("nchan", {}).get("latency")
            if not t or not n:
                continue
            lines.append(_row(
                f"{subs:,}",
                f"{_fmt_ms(t['p50_ms'], drain)} / {_fmt_ms(t['p99_ms'], drain)}",
                f"{_fmt_ms(n['p50_ms'], drain)} / {_fmt_ms(n['p99_ms'], drain)}",
                _num(s["ratios"].get(subs, {}).get("p99"), 2),
                f"{_num(t['ack_p50_ms'], 1)} / {_num(t['ack_p99_ms'], 1)}; "
                f"{_num(n['ack_p50_ms'], 1)} / {_num(n['ack_p99_ms'], 1)}",
                f"{_num(t['delivered_per_s'])} / {_num(n['delivered_per_s'])} "
                f"({_num(t['offered_receipts_per_s'])})",
                f"{t['missing']:,} / {n['missing']:,}",
                f"{_num(t['events_per_read'], 1)} / {_num(n['events_per_read'], 1)}",
                f"{_num(t['server_cpu_percent'])} ({_num(t['server_main_thread_percent'])})",
                _num(n["server_cpu_percent"]),
                f"{_num(t['subscribers_cpu_percent'])} / {_num(n['subscribers_cpu_percent'])}",
                f"{_num(t['other_cpu_percent'])} / {_num(n['other_cpu_percent'])}",
            ))  # fmt: skip
        lines.append("")
    if s["memory"]:
        lines += [
            "**Memory per idle SSE connection** (VmRSS with the connections open minus idle; "
            "nginx: master + worker)",
            "",
            _row("server", "connections", "idle RSS MB", "KB per connection (mean, worst)",
                 "one event reached all"),
            "|---|---:|---:|---:|---|",
        ]  # fmt: skip
        for server, mm in s["memory"].items():
            lines.append(_row(
                server, f"{mm['connections']:,}", _num((mm["idle_rss_kb"] or 0) / 1024, 1),
                f"{_num(mm['kb_per_connection'], 1)}, {_num(mm['worst_kb_per_connection'], 1)}",
                "yes" if mm["all_received_event"] else "**no**",
            ))  # fmt: skip
        t, n = s["memory"].get("tidings"), s["memory"].get("nchan")
        if t and n and n["kb_per_connection"]:
            lines.append("")
            lines.append(
                f"Tidings/nchan memory per connection: "
                f"{_num(_ratio(t['kb_per_connection'], n['kb_per_connection']), 1)}x"
            )
        lines.append("")
    if s["targets"]:
        lines += [_row("target", "measured", "met"), "|---|---|---|"]
        for target in s["targets"]:
            met = {True: "yes", False: "**no**", None: "not judged"}[target["met"]]
            lines.append(_row(target["target"], target["value"], met))
        lines.append("")
    aside = report.get("set_aside", [])
    lines += [
        "Every run kept (CPU in percent of one core; *other*: the machine's busy time that is "
        "neither server nor load generator"
        + (
            f"; {len(aside)} noisier attempt(s) set aside, in the JSON):"
            if aside
            else "):"
        ),
        "",
        _row("N", "round", "server", "flat ev/s", "server CPU", "subs CPU", "pub CPU", "other",
             "p50 ms", "p99 ms", "max ms", "missing", "lat. server CPU", "lat. subs CPU",
             "lat. other"),
        "|---:|---:|---|" + "---:|" * 12,
    ]  # fmt: skip
    for r in report["runs"]:
        f, lat = r.get("flat", {}), r.get("latency", {})
        ms = lat.get("latency_ms", {})
        lines.append(_row(
            f"{r['subscribers']:,}", r["round"], r["server"], _num(f.get("delivered_per_s")),
            _num(f.get("server_cpu_percent")), _num(f.get("subscribers_cpu_percent")),
            _num(f.get("publisher_cpu_percent")), _num(f.get("other_cpu_percent")),
            _fmt_ms(ms.get("p50"), drain) if ms else "—",
            _fmt_ms(ms.get("p99"), drain) if ms else "—", _num(ms.get("max"), 1),
            f"{ms.get('missing', 0):,}", _num(lat.get("server_cpu_percent")),
            _num(lat.get("subscribers_cpu_percent")), _num(lat.get("other_cpu_percent")),
        ))  # fmt: skip
    for r in report.get("memory", []):
        lines.append("")
        lines.append("- " + memory_line(r))
    lines += _profiles(report)
    return "\n".join(lines)


def _profiles(report: dict[str, Any], top: int = 15) -> list[str]:
    """The py-spy summaries of a ``--profile`` invocation (its figures are not the ones to
    quote: sampling costs the server some CPU)."""
    lines: list[str] = []
    for r in report["runs"]:
        for phase in ("flat", "latency"):
            prof = r.get(phase, {}).get("profile")
            if not prof:
                continue
            lines += ["", f"**Profile: {r['server']}, {r['subscribers']:,} subscribers, {phase} "
                      f"(round {r['round']}, {prof.get('samples', 0):,} samples, "
                      f"`{prof.get('file', '?')}`)**", ""]  # fmt: skip
            if "error" in prof:
                lines.append(f"py-spy failed: {prof['error']}")
                continue
            lines += [_row("self %", "function", "inclusive %", "function"), "|---:|---|---:|---|"]
            for (own, own_pct), (inc, inc_pct) in zip(
                prof["self"][:top], prof["inclusive"][:top], strict=False
            ):
                lines.append(_row(own_pct, f"`{own}`", inc_pct, f"`{inc}`"))
    return lines
