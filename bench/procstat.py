"""CPU accounting from /proc, so that a benchmark can put the server's CPU beside the load
generator's and show which one ran out (Linux only, no extra package)."""

from __future__ import annotations

import os
import resource
from dataclasses import dataclass
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")


def _ticks(stat_path: Path) -> int:
    """utime + stime of one /proc stat file, in clock ticks."""
    text = stat_path.read_text()
    rest = text[text.rindex(")") + 2 :].split()  # the name in parentheses may hold spaces
    return int(rest[11]) + int(rest[12])  # fields 14 and 15 of proc(5)


@dataclass(frozen=True)
class ProcessCpu:
    """CPU seconds of one process so far: all of it, its main thread, its busiest other."""

    total: float
    main: float
    threads: dict[int, float]  # thread id -> seconds, the main thread excluded


def process_cpu(pid: int) -> ProcessCpu:
    base = Path(f"/proc/{pid}")
    threads: dict[int, float] = {}
    for task in (base / "task").iterdir():
        tid = int(task.name)
        if tid == pid:
            continue
        try:
            threads[tid] = _ticks(task / "stat") / TICK
        except (FileNotFoundError, ProcessLookupError):  # a thread that just ended
            continue
    return ProcessCpu(
        _ticks(base / "stat") / TICK, _ticks(base / "task" / str(pid) / "stat") / TICK, threads
    )


def process_cpu_delta(before: ProcessCpu, after: ProcessCpu, wall: float) -> dict[str, float]:
    """Percent of one core over ``wall`` seconds: the whole process, the main thread (the
    event loop) and the busiest other thread (for Tidings the SQLite writer)."""
    busiest = max(
        (seconds - before.threads.get(tid, 0.0) for tid, seconds in after.threads.items()),
        default=0.0,
    )
    return {
        "cpu_percent": round(100 * (after.total - before.total) / wall, 1),
        "main_thread_percent": round(100 * (after.main - before.main) / wall, 1),
        "busiest_other_thread_percent": round(100 * busiest / wall, 1),
    }


@dataclass(frozen=True)
class MachineCpu:
    busy: int  # jiffies summed over all cores
    steal: int
    total: int


def machine_cpu() -> MachineCpu:
    """The first line of /proc/stat: the whole machine, every core."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    user, nice, system, idle, iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    total = user + nice + system + idle + iowait + irq + softirq + steal
    return MachineCpu(user + nice + system + irq + softirq, steal, total)


def machine_cpu_delta(before: MachineCpu, after: MachineCpu) -> dict[str, float]:
    """Busy and steal as a percent of all cores' time (100 = every core busy)."""
    total = max(1, after.total - before.total)
    return {
        "machine_busy_percent": round(100 * (after.busy - before.busy) / total, 1),
        "machine_steal_percent": round(100 * (after.steal - before.steal) / total, 1),
    }


def children_cpu() -> float:
    """CPU seconds of the children this process has reaped so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime
