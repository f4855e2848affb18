"""What the browser tests share: publishing, opening the console, screenshots."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import httpx

from tests.integration.server import ServerProcess

WAIT_MS = 15_000
SCREENSHOTS = os.environ.get("TIDINGS_SCREENSHOTS")  # a folder: the tests save views there


def publish(server: ServerProcess, *events: dict[str, Any], key: str | None = None) -> list[int]:
    """Publish events in one batch; their seqs."""
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    answer = httpx.post(server.url + "/v1/events", json=list(events), headers=headers, timeout=30)
    assert answer.status_code == 201, answer.text
    return [int(result["seq"]) for result in answer.json()["events"]]


def open_console(browser: Any, server: ServerProcess, query: str = "", width: int = 1280) -> Any:
    """A new page on the console; every page error fails the test that reads ``errors``."""
    page = browser.new_page(viewport={"width": width, "height": 800})
    page.errors = []
    page.on("pageerror", lambda error: page.errors.append(str(error)))
    page.goto(server.url + "/" + query)
    return page


def wait_live(page: Any) -> None:
    page.wait_for_selector("[data-testid=status]:text-is('live')", timeout=WAIT_MS)


def row_seqs(page: Any) -> list[int]:
    return [
        int(seq)
        for seq in page.eval_on_selector_all(
            "[data-testid=events] [data-seq]", "rows => rows.map(r => r.dataset.seq)"
        )
    ]


def wait_row(page: Any, seq: int) -> Any:
    return page.wait_for_selector(f"[data-testid=events] [data-seq='{seq}']", timeout=WAIT_MS)


def screenshot(page: Any, name: str) -> None:
    """Save the page as ``<name>.png`` when TIDINGS_SCREENSHOTS names a folder."""
    if SCREENSHOTS:
        Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SCREENSHOTS) / f"{name}.png"))


def wait_js(page: Any, expression: str, timeout_ms: int = WAIT_MS) -> Any:
    """Poll a JavaScript expression until it is truthy; its value.

    (``page.wait_for_function`` evaluates its predicate with ``eval``, which the console's
    Content-Security-Policy forbids.)
    """
    deadline = time.monotonic() + timeout_ms / 1000
    while True:
        value = page.evaluate(expression)
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {expression}")
        page.wait_for_timeout(50)
