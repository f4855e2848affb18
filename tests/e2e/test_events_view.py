"""The events view in a real browser against one real server (shared by this module)."""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
import pytest

from tests.e2e.helpers import (
    WAIT_MS,
    open_console,
    publish,
    row_seqs,
    screenshot,
    wait_js,
    wait_live,
    wait_row,
)
from tests.integration.server import ServerProcess

pytestmark = pytest.mark.browser

MAX_ROWS = 500  # tidings/web/static/js/events.js


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    process = ServerProcess(tmp_path_factory.mktemp("console") / "data").start()
    yield process
    process.stop()


def test_recent_history_shows_on_open_then_live_events(server: ServerProcess, browser: Any) -> None:
    before = publish(
        server,
        {"type": "door.locked", "subject": "front-door", "data": {"by": "alice"}},
        {"type": "light.on", "subject": "hall"},
    )
    page = open_console(browser, server)
    try:
        wait_live(page)
        for seq in before:
            wait_row(page, seq)
        [live] = publish(server, {"type": "door.opened", "subject": "back-door"})
        row = wait_row(page, live)
        assert "door.opened" in row.inner_text() and "back-door" in row.inner_text()
        seqs = row_seqs(page)
        assert seqs[:3] == [live, *reversed(before)], "newest first"
        assert "UTC" in page.inner_text("#zone"), "local times say their zone"
        screenshot(page, "console-events")
        assert page.errors == []
    finally:
        page.close()


def test_filters_and_time_range_round_trip_through_the_url(
    server: ServerProcess, browser: Any
) -> None:
    [old] = publish(server, {"type": "door.opened", "source": "hall", "subject": "d1"})
    events = httpx.get(server.url + "/v1/events", params={"limit": 1}).json()["events"]
    old_received = events[0]["received_at"]
    time.sleep(0.01)  # a later millisecond, so the range below cuts between the two
    [new, other] = publish(
        server,
        {"type": "door.closed", "source": "hall", "subject": "d1"},
        {"type": "light.on", "source": "hall", "subject": "d1"},
    )
    page = open_console(browser, server)
    try:
        wait_live(page)
        page.fill("[data-testid=filter-type]", "door.*")
        page.fill("[data-testid=filter-source]", "hall")
        page.fill("[data-testid=filter-subject]", "d1")
        page.click("[data-testid=apply]")
        wait_row(page, new)
        assert set(row_seqs(page)) == {old, new}
        query = parse_qs(urlparse(page.url).query)
        assert (query["type"], query["source"], query["subject"]) == (["door.*"], ["hall"], ["d1"])

        # A shared link opens the same view: the form is filled from the URL.
        shared = page.url
        page.goto("about:blank")
        page.goto(shared)
        wait_live(page)
        wait_row(page, new)
        assert page.input_value("[data-testid=filter-type]") == "door.*"
        assert set(row_seqs(page)) == {old, new}
        [later] = publish(server, {"type": "door.opened", "source": "hall", "subject": "d1"})
        publish(server, {"type": "light.off", "source": "hall", "subject": "d1"})
        wait_row(page, later)

        # A custom range ending at the first event lists only it (and nothing live after).
        page.goto(f"{server.url}/?type=door.*&subject=d1&range=custom&until={old_received}")
        wait_live(page)
        wait_row(page, old)
        assert row_seqs(page) == [old]
        assert page.input_value("[data-testid=filter-until]") != ""
        assert page.input_value("[data-testid=filter-range]") == "custom"
        # A preset is kept in the URL as itself, not as times.
        page.select_option("[data-testid=filter-range]", "15m")
        page.click("[data-testid=apply]")
        wait_row(page, new)
        assert parse_qs(urlparse(page.url).query)["range"] == ["15m"]
        assert other not in row_seqs(page)
        assert page.errors == []
    finally:
        page.close()


def test_an_invalid_filter_shows_the_servers_error_next_to_the_field(
    server: ServerProcess, browser: Any
) -> None:
    page = open_console(browser, server)
    try:
        wait_live(page)
        page.fill("[data-testid=filter-type]", "a.#.b")
        page.click("[data-testid=apply]")
        error = page.wait_for_selector("[data-error-for=type]:not(:empty)", timeout=WAIT_MS)
        expected = httpx.get(server.url + "/v1/events", params={"type": "a.#.b"}).json()
        assert error.inner_text() == expected["error"]["message"]
        assert page.get_attribute("[data-testid=filter-type]", "aria-invalid") == "true"

        page.goto(server.url + "/?range=custom&since=yesterday")
        error = page.wait_for_selector("[data-error-for=since]:not(:empty)", timeout=WAIT_MS)
        assert "yesterday" in error.inner_text()
    finally:
        page.close()


def test_hostile_strings_and_a_200_kb_field_render_as_text(
    server: ServerProcess, browser: Any
) -> None:
    hostile = "<script>window.__pwned = 1</script><img src=x onerror='window.__pwned = 2'>"
    rtl = "\u202egnp.exe"
    [seq] = publish(
        server,
        {
            "type": "evil.thing",
            "subject": hostile,
            "data": {"html": hostile, "rtl": rtl, "big": "x" * 200_000},
            "idempotency_key": "evil-1",
        },
    )
    page = open_console(browser, server)
    try:
        row = wait_row(page, seq)
        assert hostile in row.inner_text()
        assert "\\u202egnp.exe" in row.inner_text(), "the override is shown, not obeyed"
        assert row.bounding_box()["height"] < 80, "the preview is one short line"
        row.click()
        detail = page.wait_for_selector("[data-testid=event-json]", timeout=WAIT_MS)
        text = detail.inner_text()
        assert json.loads(text)["data"]["rtl"] == rtl  # escapes keep the JSON the same value
        assert len(json.loads(text)["data"]["big"]) == 200_000
        assert page.evaluate("window.__pwned") is None
        assert (
            page.eval_on_selector_all("#events script, #events img, #detail img", "e => e.length")
            == 0
        )
        assert page.errors == []
    finally:
        page.close()


def test_event_detail_shows_trace_and_key_and_copies_the_json(
    server: ServerProcess, browser: Any
) -> None:
    [seq] = publish(
        server, {"type": "order.paid", "data": {"order": 7}, "idempotency_key": "order-7-paid"}
    )
    context = browser.new_context(permissions=["clipboard-read", "clipboard-write"])
    page = context.new_page()
    try:
        page.goto(server.url + "/")
        wait_row(page, seq).click()
        page.wait_for_selector("#detail [data-field='trace id']", timeout=WAIT_MS)
        event = httpx.get(server.url + "/v1/events", params={"limit": 1}).json()["events"][0]
        assert page.inner_text("#detail [data-field='trace id']") == event["trace_id"]
        assert page.inner_text("#detail [data-field='idempotency key']") == "order-7-paid"
        page.click("[data-testid=copy-event]")
        page.wait_for_selector("[data-testid=copy-event]:text-is('Copied')", timeout=WAIT_MS)
        assert json.loads(page.evaluate("navigator.clipboard.readText()")) == event
    finally:
        context.close()


def test_autoscroll_keeps_the_newest_row_in_view_or_holds_the_reading_position(
    server: ServerProcess, browser: Any
) -> None:
    publish(server, *({"type": "tick", "data": {"n": n}} for n in range(80)))
    page = open_console(browser, server)
    try:
        wait_live(page)
        wait_js(page, "document.querySelectorAll('#events li').length >= 80")
        [first] = publish(server, {"type": "tick.new"})
        wait_row(page, first)
        assert page.eval_on_selector("[data-testid=events]", "e => e.scrollTop") == 0

        page.uncheck("[data-testid=autoscroll]")
        page.eval_on_selector("[data-testid=events]", "e => { e.scrollTop = 400; }")
        reading = page.evaluate(
            """() => { const list = document.querySelector('#events');
                const top = list.getBoundingClientRect().top;
                const row = [...list.children]
                    .find(r => r.getBoundingClientRect().bottom > top + 5);
                return [row.dataset.seq, row.getBoundingClientRect().top]; }"""
        )
        seqs = publish(server, *({"type": "tick.more"} for _ in range(5)))
        wait_row(page, seqs[-1])
        after = page.eval_on_selector(
            f"[data-seq='{reading[0]}']", "r => r.getBoundingClientRect().top"
        )
        assert abs(after - reading[1]) < 2, "the row being read did not move"
        assert page.eval_on_selector("[data-testid=events]", "e => e.scrollTop") > 400

        page.check("[data-testid=autoscroll]")
        [last] = publish(server, {"type": "tick.last"})
        wait_row(page, last)
        assert page.eval_on_selector("[data-testid=events]", "e => e.scrollTop") == 0
    finally:
        page.close()


def test_a_burst_keeps_a_bounded_number_of_rows_newest_first(
    server: ServerProcess, browser: Any
) -> None:
    page = open_console(browser, server, "?type=burst")
    try:
        wait_live(page)
        seqs: list[int] = []
        for _ in range(3):
            seqs += publish(server, *({"type": "burst", "data": {"n": n}} for n in range(400)))
        wait_row(page, seqs[-1])
        wait_js(page, f"document.querySelectorAll('#events li').length === {MAX_ROWS}")
        assert row_seqs(page) == list(reversed(seqs[-MAX_ROWS:]))
        assert page.errors == []
    finally:
        page.close()


@pytest.mark.parametrize("fmt", ["csv", "ndjson"])
def test_export_downloads_the_current_filter(
    server: ServerProcess, browser: Any, tmp_path: Path, fmt: str
) -> None:
    kind = f"export.{fmt}"
    mine = publish(
        server,
        {"type": kind, "subject": "a,b", "data": {"quote": 'say "hi"'}},
        {"type": kind, "subject": "c"},
    )
    publish(server, {"type": "export.not"})
    page = open_console(browser, server, f"?type={kind}")
    try:
        wait_row(page, mine[-1])
        with page.expect_download(timeout=WAIT_MS) as info:
            page.click(f"[data-testid=export-{fmt}]")
        saved = tmp_path / f"events.{fmt}"
        info.value.save_as(saved)
        assert info.value.suggested_filename.endswith(f".{fmt}")
        expected = httpx.get(
            server.url + "/v1/events/export", params={"format": fmt, "type": kind}
        ).text
        assert saved.read_text() == expected
        if fmt == "ndjson":
            assert [json.loads(line)["seq"] for line in expected.splitlines()] == mine
        else:
            rows = list(csv.DictReader(io.StringIO(expected)))
            assert [(int(r["seq"]), r["subject"]) for r in rows] == list(
                zip(mine, ["a,b", "c"], strict=True)
            )
            assert json.loads(rows[0]["data"]) == {"quote": 'say "hi"'}
    finally:
        page.close()


def test_docs_work_without_any_other_host(server: ServerProcess, browser: Any) -> None:
    page = browser.new_page()
    outside: list[str] = []

    def only_loopback(route: Any) -> None:
        if route.request.url.startswith(server.url):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    page.route("**/*", only_loopback)
    try:
        page.goto(server.url + "/docs")
        page.wait_for_selector(".swagger-ui .info .title:has-text('Tidings')", timeout=WAIT_MS)
        page.wait_for_selector(
            ".opblock-summary-path:has-text('/v1/stats/counts')", timeout=WAIT_MS
        )
        assert outside == []
    finally:
        page.close()


@pytest.mark.parametrize("view", ["events", "charts", "webhooks", "dead-letters"])
def test_a_360_px_screen_never_scrolls_sideways(
    server: ServerProcess, browser: Any, view: str
) -> None:
    publish(
        server,
        {
            "type": "device.switch.switchLevel",
            "subject": "kitchen-ceiling-light-north-east",
            "data": {"long": "y" * 5000, "nested": {"deeper": list(range(50))}},
        },
    )
    page = open_console(browser, server, f"?view={view}", width=360)
    try:
        wait_live(page)
        if view == "events":
            page.click("[data-testid=events] li >> nth=0")
            page.wait_for_selector("[data-testid=event-json]")
        if view == "charts":
            page.wait_for_selector("[data-testid=chart-hourly] canvas", timeout=WAIT_MS)
        page.wait_for_load_state("networkidle")
        assert page.evaluate("getComputedStyle(document.documentElement).overflowX") == "visible"
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 360, f"{view} is {width} px wide"
        if view == "events":
            screenshot(page, "console-phone")
    finally:
        page.close()
