"""The live events page in a real browser against a real server."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.integration.server import ServerProcess

pytestmark = pytest.mark.browser


def _publish(server: ServerProcess, **event: Any) -> int:
    answer = httpx.post(server.url + "/v1/events", json=event)
    assert answer.status_code == 201, answer.text
    return int(answer.json()["seq"])


def test_page_shows_events_as_they_are_published(server: ServerProcess, browser: Any) -> None:
    page = browser.new_page()
    try:
        page.goto(server.url + "/")
        page.wait_for_selector("#status.live", timeout=10_000)
        seq = _publish(server, type="door.locked", subject="front-door", data={"by": "alice"})
        row = page.wait_for_selector(f"tr[data-seq='{seq}']", timeout=10_000)
        text = row.inner_text()
        assert "door.locked" in text
        assert "front-door" in text
        assert "alice" in text
        assert page.inner_text("#count") == "1"
    finally:
        page.close()


def test_page_filter_by_type_pattern_hides_other_events(
    server: ServerProcess, browser: Any
) -> None:
    page = browser.new_page()
    try:
        page.goto(server.url + "/")
        page.fill("input[name=type]", "door.*")
        page.click("button[type=submit]")
        page.wait_for_selector("#status.live", timeout=10_000)
        page.wait_for_timeout(300)
        skipped = _publish(server, type="light.on")
        shown = _publish(server, type="door.opened")
        page.wait_for_selector(f"tr[data-seq='{shown}']", timeout=10_000)
        assert page.query_selector(f"tr[data-seq='{skipped}']") is None
    finally:
        page.close()


def test_page_reports_an_invalid_filter(server: ServerProcess, browser: Any) -> None:
    page = browser.new_page()
    try:
        page.goto(server.url + "/")
        page.fill("input[name=type]", "a.#.b")
        page.click("button[type=submit]")
        page.wait_for_selector("#notice:not([hidden])", timeout=10_000)
        assert "#" in page.inner_text("#notice")
    finally:
        page.close()


def test_page_reconnects_after_a_server_restart_without_missing_events(
    start_server: Callable[..., ServerProcess], browser: Any
) -> None:
    server = start_server()
    page = browser.new_page()
    try:
        page.goto(server.url + "/")
        page.wait_for_selector("#status.live", timeout=10_000)
        first = _publish(server, type="door.locked")
        page.wait_for_selector(f"tr[data-seq='{first}']", timeout=10_000)
        assert server.stop() == 0
        server.start()
        second = _publish(server, type="door.opened")
        # EventSource reconnects on its own (after the jittered retry) with Last-Event-ID.
        page.wait_for_selector(f"tr[data-seq='{second}']", timeout=30_000)
        seqs = [
            int(s)
            for s in page.eval_on_selector_all("tbody tr", "rows => rows.map(r => r.dataset.seq)")
        ]
        assert seqs == [second, first]
    finally:
        page.close()
