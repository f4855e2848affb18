"""The console under load: first load with 100 events, then 1,000 events/s arriving.

Measured in headless Chromium (Debian's), beside a peer in the same run: the page Tidings
shipped before the console (one DOM insertion per event, no batching), served to the browser
from git history against the same server. Reported per page and view: long tasks (the
browser's Long Tasks API: > 50 ms on the main thread), the worst lateness of a 100 ms timer
(input responsiveness), frames per second, rows kept, and how far the list trails the
published events when the load stops. The load generator's CPU is reported too.

    .venv/bin/python bench/console/run.py [--rate 1000] [--seconds 10]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]
PLAN = (("events", True), ("events", False), ("charts", False))
PEER_COMMIT = "4eef65b"  # the last commit with the page before the console
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PROBE = """
window.__bench = { long: [], lateness: 0, frames: 0, firstRows: null };
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) window.__bench.long.push(e.duration);
}).observe({ type: "longtask", buffered: true });
let last = performance.now();
setInterval(() => {
  const now = performance.now();
  window.__bench.lateness = Math.max(window.__bench.lateness, now - last - 100);
  last = now;
}, 100);
const frame = () => { window.__bench.frames += 1; requestAnimationFrame(frame); };
requestAnimationFrame(frame);
new MutationObserver(() => {
  const rows = document.querySelectorAll("[data-seq]").length;
  if (window.__bench.firstRows === null && rows >= 100) {
    window.__bench.firstRows = performance.now();
  }
}).observe(document, { subtree: true, childList: true });
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(data: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {**os.environ, "TIDINGS_LOG_LEVEL": "warning"}
    command = [
        sys.executable,
        "-m",
        "tidings",
        "serve",
        "--port",
        str(port),
        "--data-dir",
        str(data),
    ]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.05)
    raise RuntimeError("the server did not start")


def publisher(url: str, rate: int, seconds: float, stats: dict[str, float]) -> None:
    """``rate`` events/s in batches every 20 ms, for ``seconds``."""
    per_batch = max(1, rate // 50)
    sent = 0
    cpu = time.thread_time()
    with httpx.Client(base_url=url, timeout=10) as client:
        start = time.monotonic()
        tick = 0
        while time.monotonic() - start < seconds:
            batch = [
                {
                    "type": f"load.{n % 4}",
                    "source": f"s{n % 3}",
                    "subject": f"device-{n % 12}",
                    "data": {"n": sent + n},
                }
                for n in range(per_batch)
            ]
            client.post("/v1/events", json=batch).raise_for_status()
            sent += per_batch
            tick += 1
            delay = start + tick * 0.02 - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        stats["elapsed"] = time.monotonic() - start
    stats["sent"] = sent
    stats["cpu"] = time.thread_time() - cpu


def peer_files() -> dict[str, str]:
    files = {}
    for name in ("index.html", "app.js", "style.css"):
        files[name] = subprocess.check_output(
            ["git", "show", f"{PEER_COMMIT}:tidings/web/static/{name}"], cwd=ROOT, text=True
        )
    return files


def open_page(browser: Any, url: str, view: str, peer: bool) -> tuple[Any, float | None]:
    """A page with the probe, loaded and live; the ms from navigation to 100 rows shown."""
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    page.add_init_script(PROBE)
    if peer:
        files = peer_files()
        types = {"index.html": "text/html", "app.js": "text/javascript", "style.css": "text/css"}

        def serve(name: str) -> Any:
            return lambda route: route.fulfill(body=files[name], content_type=types[name])

        page.route(url + "/", serve("index.html"))
        for name in ("app.js", "style.css"):
            page.route(f"{url}/static/{name}", serve(name))
    page.goto(url + ("/?view=charts" if view == "charts" else "/"))
    if peer:  # the old page starts at "now": ask it for the last 100, as a user would
        page.select_option("select[name=from]", "history")
        page.click("button[type=submit]")
    page.wait_for_selector("#status:text-is('live')", timeout=20_000)
    deadline = time.monotonic() + 20
    while page.evaluate("window.__bench.firstRows") is None and time.monotonic() < deadline:
        page.wait_for_timeout(20)
    first = page.evaluate("window.__bench.firstRows")
    if peer:  # the old page reached 100 rows only after the second request; count from there
        first = None
    return page, first


def first_load(browser: Any, url: str, peer: bool, rounds: int = 7) -> dict[str, Any]:
    """Median and best of ``rounds`` fresh loads of the events view (100 events stored)."""
    times = []
    for _ in range(rounds):
        page, first = open_page(browser, url, "events", peer)
        if first is not None:
            times.append(first)
        page.close()
    times.sort()
    return {
        "page": "peer (previous page)" if peer else "console",
        "first_100_rows_ms_median": round(times[len(times) // 2]) if times else None,
        "first_100_rows_ms_best": round(times[0]) if times else None,
    }


def measure(
    browser: Any, url: str, view: str, rate: int, seconds: float, peer: bool
) -> dict[str, Any]:
    page, _ = open_page(browser, url, view, peer)
    page.evaluate(
        "window.__bench.long = []; window.__bench.lateness = 0; window.__bench.frames = 0"
    )
    load: dict[str, float] = {}
    thread = threading.Thread(target=publisher, args=(url, rate, seconds, load))
    thread.start()
    thread.join()
    probe = page.evaluate("window.__bench")
    head = httpx.get(url + "/v1/events", params={"limit": 1}).json()["events"][0]["seq"]
    shown = page.evaluate(
        "Math.max(0, ...[...document.querySelectorAll('[data-seq]')]"
        ".map(r => Number(r.dataset.seq)))"
    )
    rows = page.evaluate("document.querySelectorAll('[data-seq]').length")
    page.close()
    return {
        "page": "peer (previous page)" if peer else "console",
        "view": view,
        "events_sent": int(load["sent"]),
        "rate": round(load["sent"] / load["elapsed"]),
        "long_tasks": len(probe["long"]),
        "longest_task_ms": round(max(probe["long"], default=0)),
        "timer_lateness_ms": round(probe["lateness"]),
        "fps": round(probe["frames"] / load["elapsed"], 1),
        "rows_kept": rows,
        "behind_at_stop": head - shown,
        "generator_cpu_s": round(load["cpu"], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    results = []
    with tempfile.TemporaryDirectory() as tmp:
        proc, url = start_server(Path(tmp) / "data")
        try:
            seed = [
                {"type": "seed", "subject": f"device-{n % 12}", "data": {"n": n}}
                for n in range(100)
            ]
            httpx.post(url + "/v1/events", json=seed).raise_for_status()
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(
                    executable_path=shutil.which("chromium"), args=FLAGS
                )
                results.append(first_load(browser, url, peer=False))
                print(json.dumps(results[-1]), flush=True)
                for view, peer in PLAN:
                    results.append(measure(browser, url, view, args.rate, args.seconds, peer))
                    print(json.dumps(results[-1]), flush=True)
                browser.close()
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)


if __name__ == "__main__":
    main()
