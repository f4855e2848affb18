"""Charts and the subject heatmap in a real browser, for a known data set."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.helpers import WAIT_MS, open_console, publish, screenshot, wait_js, wait_live
from tests.integration.server import ServerProcess

pytestmark = pytest.mark.browser

DAILY_TOTAL = "document.querySelector('[data-testid=chart-daily] .total').dataset.total"

DATA = [
    {"type": "door.opened", "source": "hall", "subject": "front"},
    {"type": "door.opened", "source": "hall", "subject": "front"},
    {"type": "door.opened", "source": "garden", "subject": "back"},
    {"type": "door.closed", "source": "hall", "subject": "front"},
    {"type": "light.on", "source": "kitchen", "subject": "lamp"},
    {"type": "light.on", "source": "kitchen"},
]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    process = ServerProcess(tmp_path_factory.mktemp("charts") / "data").start()
    publish(process, *DATA)
    yield process
    process.stop()


def legend(page: Any, chart: str) -> dict[str, int]:
    return {
        item["key"]: int(item["total"])
        for item in page.eval_on_selector_all(
            f"[data-testid={chart}] .legend li", "items => items.map(i => ({...i.dataset}))"
        )
    }


def total(page: Any, chart: str) -> int:
    return int(page.get_attribute(f"[data-testid={chart}] .total", "data-total") or "-1")


def cells(page: Any) -> list[dict[str, str]]:
    result: list[dict[str, str]] = page.eval_on_selector_all(
        "[data-testid=heatmap] .hm-cell", "cells => cells.map(c => ({...c.dataset}))"
    )
    return result


def test_charts_and_heatmap_show_the_known_totals_and_follow_live_events(
    server: ServerProcess, browser: Any
) -> None:
    page = open_console(browser, server, "?view=charts")
    try:
        wait_live(page)
        page.wait_for_selector("[data-testid=chart-hourly] canvas", timeout=WAIT_MS)
        assert total(page, "chart-hourly") == total(page, "chart-daily") == 6
        by_type = {"door.opened": 3, "light.on": 2, "door.closed": 1}
        assert legend(page, "chart-hourly") == legend(page, "chart-daily") == by_type

        grid = cells(page)
        assert len(grid) == 24 * 4  # front, back, lamp and events without a subject
        per_subject: dict[str, int] = {}
        for cell in grid:
            per_subject[cell["subject"]] = per_subject.get(cell["subject"], 0) + int(cell["count"])
        assert per_subject == {"front": 3, "back": 1, "lamp": 1, "": 1}
        hot = [c for c in grid if c["count"] != "0"]
        assert {c["hour"] for c in hot} == {grid[23]["hour"]}, "all in the current hour"
        screenshot(page, "console-charts")

        page.select_option("[data-testid=chart-by]", "source")
        wait_js(
            page,
            "document.querySelector('[data-testid=chart-hourly] .legend li')?.dataset.key"
            " === 'hall'",
        )
        assert legend(page, "chart-hourly") == {"hall": 3, "kitchen": 2, "garden": 1}

        # Live events count in at the next redraw (at most once a second).
        publish(server, {"type": "door.opened", "source": "garden", "subject": "back"})
        wait_js(page, f"{DAILY_TOTAL} === '7'")
        assert legend(page, "chart-daily") == {"hall": 3, "kitchen": 2, "garden": 2}
        assert total(page, "chart-hourly") == 7
        wait_js(
            page,
            "[...document.querySelectorAll('[data-testid=heatmap] [data-subject=back]')]"
            ".reduce((n, c) => n + Number(c.dataset.count), 0) === 2",
        )
        assert page.errors == []
    finally:
        page.close()


def test_charts_follow_the_filter(server: ServerProcess, browser: Any) -> None:
    page = open_console(browser, server, "?view=charts&type=door.*&source=hall")
    try:
        page.wait_for_selector("[data-testid=chart-hourly] canvas", timeout=WAIT_MS)
        assert total(page, "chart-hourly") == 3
        assert legend(page, "chart-hourly") == {"door.opened": 2, "door.closed": 1}
        assert {c["subject"] for c in cells(page)} == {"front"}

        page.fill("[data-testid=filter-source]", "")
        page.fill("[data-testid=filter-subject]", "back")
        page.click("[data-testid=apply]")
        wait_js(page, f"{DAILY_TOTAL} !== '3'")
        assert total(page, "chart-daily") == sum(legend(page, "chart-daily").values())
        assert legend(page, "chart-daily") == {"door.opened": total(page, "chart-daily")}
    finally:
        page.close()
