"""CPU accounting from /proc, so that a benchmark can put the server's CPU beside the load
generator's and show which one ran out (Linux only, no extra package)."""

from __future__ import annotations

import os
import resource
import statistics
import time
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


def wait_for_quiet(
    below_percent: float, max_wait_s: float, sample_s: float = 2.0
) -> dict[str, float]:
    """Wait (at most ``max_wait_s``) until the machine is less than ``below_percent`` busy
    over ``sample_s``: other work on a shared machine is noise for whichever server runs."""
    started = time.monotonic()
    while True:
        before = machine_cpu()
        time.sleep(sample_s)
        busy = machine_cpu_delta(before, machine_cpu())["machine_busy_percent"]
        waited = time.monotonic() - started
        if busy < below_percent or waited >= max_wait_s:
            return {"idle_check_busy_percent": busy, "idle_wait_s": round(waited, 1)}


def fsync_probe(directory: Path, count: int = 20) -> dict[str, float]:
    """Median and worst time of ``count`` 4 KiB write + fsync pairs in ``directory``: how
    fast the disk acknowledges a durable write just before a run."""
    path = directory / "fsync-probe"
    times: list[float] = []
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for _ in range(count):
            began = time.perf_counter()
            os.write(fd, b"x" * 4096)
            os.fsync(fd)
            times.append(time.perf_counter() - began)
    finally:
        os.close(fd)
        path.unlink()
    return {
        "fsync_p50_ms": round(1000 * statistics.median(times), 3),
        "fsync_max_ms": round(1000 * max(times), 3),
    }


@dataclass(frozen=True)
class DiskStats:
    writes: int
    write_ms: int
    io_ms: int
    flushes: int
    flush_ms: int


def disk_stats(path: Path) -> DiskStats | None:
    """/proc/diskstats of the device holding ``path`` (None when it cannot be found)."""
    device = os.stat(path).st_dev
    wanted = (os.major(device), os.minor(device))
    for line in Path("/proc/diskstats").read_text().splitlines():
        f = line.split()
        if (int(f[0]), int(f[1])) == wanted:
            v = [int(x) for x in f[3:]] + [0] * 17
            return DiskStats(writes=v[4], write_ms=v[7], io_ms=v[9], flushes=v[15], flush_ms=v[16])
    return None


def disk_delta(before: DiskStats | None, after: DiskStats | None, wall: float) -> dict[str, float]:
    """Writes and flushes per second on the device, their mean time, and its busy percent."""
    if before is None or after is None:
        return {}
    writes, flushes = after.writes - before.writes, after.flushes - before.flushes
    return {
        "disk_writes_per_s": round(writes / wall, 1),
        "disk_write_ms_mean": round((after.write_ms - before.write_ms) / max(1, writes), 3),
        "disk_flushes_per_s": round(flushes / wall, 1),
        "disk_flush_ms_mean": round((after.flush_ms - before.flush_ms) / max(1, flushes), 3),
        "disk_busy_percent": round(100 * (after.io_ms - before.io_ms) / (1000 * wall), 1),
    }


def pressure() -> dict[str, int]:
    """Total microseconds some task waited for CPU and for I/O (Linux PSI), when available."""
    totals: dict[str, int] = {}
    for kind in ("cpu", "io"):
        try:
            first = Path(f"/proc/pressure/{kind}").read_text().splitlines()[0]
        except OSError:
            continue
        totals[kind] = int(first.rsplit("total=", 1)[1])
    return totals


def pressure_delta(before: dict[str, int], after: dict[str, int], wall: float) -> dict[str, float]:
    """Percent of the time some task was stalled waiting for CPU or I/O: the contention a
    run lived with, whoever caused it."""
    return {
        f"{kind}_pressure_percent": round((after[kind] - before[kind]) / (1e4 * wall), 1)
        for kind in before
        if kind in after
    }


def pids_cpu(pids: list[int]) -> dict[int, float]:
    """CPU seconds so far of each of ``pids`` that still runs (e.g. PostgreSQL backends)."""
    found: dict[int, float] = {}
    for pid in pids:
        try:
            found[pid] = _ticks(Path(f"/proc/{pid}/stat")) / TICK
        except (FileNotFoundError, ProcessLookupError):
            continue
    return found
