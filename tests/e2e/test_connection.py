"""The connection: resume after a restart with no missing row, offline with backoff, the key
prompt when the server requires keys."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.helpers import (
    WAIT_MS,
    open_console,
    publish,
    row_seqs,
    screenshot,
    wait_live,
    wait_row,
)
from tests.integration.server import ServerProcess

pytestmark = pytest.mark.browser

ROOT_KEY = "tdk_" + "r" * 40


def wait_status(page: Any, text: str) -> None:
    page.wait_for_selector(f"[data-testid=status]:text-is('{text}')", timeout=30_000)


def test_a_restart_shows_offline_then_resumes_with_no_missing_row(
    start_server: Callable[..., ServerProcess], browser: Any
) -> None:
    server = start_server()
    page = open_console(browser, server)
    try:
        wait_live(page)
        [first] = publish(server, {"type": "door.locked"})
        wait_row(page, first)
        assert server.stop() == 0
        wait_status(page, "offline")
        server.start()
        # Published after the restart but before the page is back: still listed.
        more = publish(server, {"type": "door.opened"}, {"type": "light.on"})
        wait_status(page, "live")
        [last] = publish(server, {"type": "door.closed"})
        wait_row(page, last)
        assert row_seqs(page) == [last, *reversed(more), first]
        assert page.errors == []
    finally:
        page.close()


def test_history_that_cannot_be_read_shows_offline_and_is_tried_again(
    start_server: Callable[..., ServerProcess], browser: Any
) -> None:
    server = start_server()
    [seq] = publish(server, {"type": "early.bird"})
    page = browser.new_page()
    refused: list[str] = []

    def unreachable(route: Any) -> None:
        refused.append(route.request.url)
        route.abort("connectionrefused")

    page.route("**/v1/events?*", unreachable)
    try:
        page.goto(server.url + "/")
        wait_status(page, "offline")
        page.wait_for_selector("#notice:has-text('cannot be reached')")
        page.unroute("**/v1/events?*")
        wait_row(page, seq)
        wait_live(page)
        assert refused, "the history read was refused at least once"
        assert page.is_hidden("#notice")
    finally:
        page.close()


@pytest.mark.skipif(
    importlib.util.find_spec("tidings.auth") is None,
    reason="API keys (TIDINGS_AUTH) are not in this version of the server yet",
)
def test_the_key_prompt_when_the_server_requires_keys(
    start_server: Callable[..., ServerProcess], browser: Any, tmp_path: Path
) -> None:
    server = start_server(env={"TIDINGS_AUTH": "on", "TIDINGS_BOOTSTRAP_KEY": ROOT_KEY})
    [seq] = publish(server, {"type": "secret.thing"}, key=ROOT_KEY)
    assert httpx.get(server.url + "/v1/events").status_code == 401
    page = open_console(browser, server)
    try:
        page.wait_for_selector("[data-testid=key-input]", state="visible", timeout=WAIT_MS)
        screenshot(page, "console-key")
        page.fill("[data-testid=key-input]", "tdk_wrong")
        page.press("[data-testid=key-input]", "Enter")
        page.wait_for_selector("#key-error:has-text('refused')", timeout=WAIT_MS)
        page.fill("[data-testid=key-input]", ROOT_KEY)
        page.press("[data-testid=key-input]", "Enter")
        wait_row(page, seq)
        wait_live(page)  # the stream took the key as ?access_token=
        [live] = publish(server, {"type": "secret.live"}, key=ROOT_KEY)
        wait_row(page, live)
        assert page.evaluate("sessionStorage.getItem('tidings.key')") == ROOT_KEY
        with page.expect_download(timeout=WAIT_MS) as download:
            page.click("[data-testid=export-csv]")  # a link: the key goes as ?access_token=
        saved = tmp_path / "events.csv"
        download.value.save_as(saved)
        rows = [line.split(",")[0] for line in saved.read_text().splitlines()]
        assert rows[0] == "seq" and {str(seq), str(live)} <= set(rows[1:])

        page.reload()
        wait_row(page, live)  # the key outlives a reload of the tab
        assert not page.is_visible("[data-testid=key-input]")
        assert page.errors == []
    finally:
        page.close()
