"""Where a Python server spends its time during a measured window: py-spy, summarized.

``Spy`` samples a running process with ``py-spy record --format raw`` (collapsed stacks, one
line per distinct stack with its sample count) for a fixed duration, and ``summarize`` turns
the file into the functions with the most samples *in* them (self) and *under* them
(inclusive). Sampling costs the server a little CPU, so profiled runs are labelled and are not
the ones to quote figures from.

The raw file is kept beside the JSON results; ``py-spy``'s flame graph of the same window is
one command away (``--format flamegraph``), or feed the raw file to any collapsed-stack viewer.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any


def py_spy() -> str | None:
    """The py-spy executable beside this interpreter, or on PATH."""
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else shutil.which("py-spy")


class Spy:
    def __init__(self, pid: int, seconds: float, out: Path, rate: int = 100) -> None:
        exe = py_spy()
        if exe is None:
            raise RuntimeError("py-spy is not installed (.venv/bin/pip install py-spy)")
        self.out = out
        self.proc = subprocess.Popen(
            [exe, "record", "--pid", str(pid), "--duration", str(max(1, round(seconds))),
             "--rate", str(rate), "--format", "raw", "--threads", "-o", str(out)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )  # fmt: skip
        self.seconds = seconds

    def finish(self) -> dict[str, Any]:
        try:
            _, err = self.proc.communicate(timeout=self.seconds + 30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate(timeout=10)
        if self.proc.returncode != 0 or not self.out.exists():
            return {"error": err.decode(errors="replace")[-500:]}
        return summarize(self.out)


def _name(frame: str) -> str:
    """``function (path/to/module.py:123)`` -> ``module.py:function``; threads kept as is."""
    frame = frame.strip()
    if " (" not in frame or not frame.endswith(")"):
        return frame
    function, where = frame[:-1].split(" (", 1)
    path = where.rsplit(":", 1)[0]
    return f"{Path(path).name}:{function}"


def summarize(raw: Path, top: int = 25) -> dict[str, Any]:
    own: Counter[str] = Counter()
    under: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    total = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        if frames and frames[0].startswith("thread ("):
            threads[frames[0]] += count
            frames = frames[1:]
        names = [_name(f) for f in frames]
        total += count
        if names:
            own[names[-1]] += count
        for name in set(names):
            under[name] += count

    def share(counter: Counter[str]) -> list[tuple[str, float]]:
        return [(name, round(100 * n / total, 1)) for name, n in counter.most_common(top)]

    return {
        "file": str(raw),
        "samples": total,
        "threads": share(threads),
        "self": share(own),
        "inclusive": share(under),
    }
