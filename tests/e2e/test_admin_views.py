"""Webhook endpoints and dead letters in a real browser against one real server."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.helpers import WAIT_MS, open_console, publish, screenshot, wait_js
from tests.integration.receiver import Receiver, respond
from tests.integration.server import ServerProcess

pytestmark = pytest.mark.browser

DEVICES_SECRET = "devices-secret-0123456789"


def write_config(path: Path, devices_type: str) -> Path:
    path.write_text(
        f"""
[sources.devices]
verifier = "hmac-sha256"
secret = "{DEVICES_SECRET}"
type = "{devices_type}"
"""
    )
    return path


def signed(body: bytes) -> dict[str, str]:
    digest = hmac.new(DEVICES_SECRET.encode(), body, hashlib.sha256).hexdigest()
    return {"X-Signature": f"sha256={digest}", "Content-Type": "application/json"}


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # A default type that is not a valid type: JSON without a "type" is parked.
    return write_config(tmp_path_factory.mktemp("admin") / "tidings.toml", "devices reading")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, config: Path) -> Iterator[ServerProcess]:
    env = {
        "TIDINGS_CONFIG": str(config),
        "TIDINGS_WEBHOOK_ALLOW_PRIVATE": "true",
        "TIDINGS_WEBHOOK_RETRY_SCHEDULE": "0",  # one attempt: a failure is final
    }
    process = ServerProcess(tmp_path_factory.mktemp("admin") / "data", env=env).start()
    yield process
    process.stop()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as started:
        yield started


def test_webhook_create_retry_replay_pause_rotate_delete(
    server: ServerProcess, browser: Any, receiver: Receiver
) -> None:
    receiver.then(respond(500, b"receiver is down"))
    page = open_console(browser, server, "?view=webhooks")
    page.on("dialog", lambda dialog: dialog.accept())
    try:
        page.fill("[data-testid=webhook-url]", receiver.url)
        page.fill("[data-testid=webhook-events]", "order.*")
        page.click("[data-testid=webhook-create]")
        secret = page.wait_for_selector("[data-testid=webhook-secret]", timeout=WAIT_MS)
        first_secret = secret.inner_text()
        assert first_secret.startswith("whsec_")
        row = page.wait_for_selector("[data-testid=webhook-row]", timeout=WAIT_MS)
        assert receiver.url in row.inner_text() and "active" in row.inner_text()

        [seq] = publish(server, {"type": "order.paid", "data": {"order": 7}})
        publish(server, {"type": "door.opened"})  # not for this endpoint
        receiver.wait_count(1)
        page.click("[data-testid=webhook-deliveries]")
        page.wait_for_selector("[data-testid=delivery-row]", timeout=WAIT_MS)
        wait_js(
            page,
            "document.querySelector('[data-testid=delivery-row]')?.dataset.status === 'failed'",
        )
        assert "500" in page.inner_text("[data-testid=delivery-row]")
        page.click("[data-testid=delivery-row] >> text=Attempts")
        assert "receiver is down" in page.inner_text("tr.attempts")

        page.click("[data-testid=delivery-retry]")
        receiver.wait_count(2)
        wait_js(
            page,
            "document.querySelector('[data-testid=delivery-row]')?.dataset.status === 'succeeded'",
        )
        row_text = page.inner_text("[data-testid=delivery-row]")
        assert f"{seq}" in row_text and "200" in row_text

        page.click("[data-testid=replay]")
        page.wait_for_selector("[data-testid=replay-result]:has-text('1 events queued')")
        replayed = receiver.wait_count(3)
        assert replayed[2].event_id == replayed[0].event_id
        assert replayed[2].headers["webhook-id"] == replayed[0].headers["webhook-id"]
        screenshot(page, "console-webhooks")

        page.click("[data-testid=webhook-toggle]")
        page.wait_for_selector("[data-testid=webhook-state]:text-is('paused')")
        page.click("[data-testid=webhook-toggle]")
        page.wait_for_selector("[data-testid=webhook-state]:text-is('active')")
        # three attempts in the last 24 hours: the 500, the retry and the replay
        assert page.inner_text("[data-testid=webhook-rate]") == "67% (2/3)"

        page.click("[data-testid=webhook-rotate]")
        wait_js(
            page,
            f"document.querySelector('[data-testid=webhook-secret]')?.textContent"
            f" !== {first_secret!r}",
        )
        assert page.inner_text("[data-testid=webhook-secret]").startswith("whsec_")

        page.click("[data-testid=webhook-delete]")
        page.wait_for_selector("[data-testid=webhooks] >> text=No endpoints yet.")
        assert httpx.get(server.url + "/v1/webhooks").json()["webhooks"] == []
        assert page.errors == []
    finally:
        page.close()


def test_webhook_create_shows_the_servers_error(server: ServerProcess, browser: Any) -> None:
    page = open_console(browser, server, "?view=webhooks")
    try:
        page.fill("[data-testid=webhook-url]", "ftp://example.com/x")
        page.click("[data-testid=webhook-create]")
        error = page.wait_for_selector(".create .field-error:not(:empty)", timeout=WAIT_MS)
        assert "url" in error.inner_text().lower()
    finally:
        page.close()


def test_dead_letters_redrive_one_and_all_of_a_source(
    server: ServerProcess, browser: Any, config: Path
) -> None:
    for n in range(3):
        body = f'{{"reading": {n}}}'.encode()
        parked = httpx.post(server.url + "/v1/ingest/devices", content=body, headers=signed(body))
        assert parked.status_code == 202, parked.text
    page = open_console(browser, server, "?view=dead-letters")
    try:
        rows = page.locator("[data-testid=dead-letter-row]")
        rows.first.wait_for(timeout=WAIT_MS)
        assert rows.count() == 3
        assert "invalid_event" in rows.first.inner_text()
        rows.first.locator("text=Raw").click()
        assert '{"reading": 2}' in page.inner_text("tr.raw:not([hidden])")
        rows.first.locator("[data-testid=dead-letter-redrive]").click()
        page.wait_for_selector("[data-testid=dead-letter-result]:not(:empty)")
        assert "still cannot be stored" in page.inner_text("[data-testid=dead-letter-result]")
        screenshot(page, "console-dead-letters")

        # Fix the source's default type and restart: the same letters now map.
        assert server.stop() == 0
        write_config(config, "devices.reading")
        server.start()
        page.reload()
        rows.first.wait_for(timeout=WAIT_MS)
        rows.first.locator("[data-testid=dead-letter-redrive]").click()
        page.wait_for_selector("[data-testid=dead-letter-result]:has-text('stored as')")
        page.fill("[data-testid=redrive-source]", "devices")
        page.click("[data-testid=redrive-all]")
        page.wait_for_selector("[data-testid=redrive-result]:has-text('redriven')")
        assert page.inner_text("[data-testid=redrive-result]") in (
            "redriven 2, still failing 0",
            "redriven 3, still failing 0",  # when the bulk ran before the single one ended
        )
        page.wait_for_selector("[data-testid=dead-letters] >> text=No dead letters.")
        stored = httpx.get(server.url + "/v1/events", params={"source": "devices"}).json()
        assert sorted(e["data"]["reading"] for e in stored["events"]) == [0, 1, 2]
        assert page.errors == []
    finally:
        page.close()


def test_a_360_px_screen_fits_endpoints_and_deliveries(server: ServerProcess, browser: Any) -> None:
    long_url = "http://127.0.0.1:9/" + "a-rather-long-path-segment/" * 6 + "hook"
    created = httpx.post(server.url + "/v1/webhooks", json={"url": long_url, "events": ["wide.*"]})
    assert created.status_code == 201, created.text
    publish(server, {"type": "wide.event"})
    page = open_console(browser, server, "?view=webhooks", width=360)
    try:
        page.click(f"[data-webhook='{created.json()['id']}'] [data-testid=webhook-deliveries]")
        page.wait_for_selector("[data-testid=delivery-row]", timeout=WAIT_MS)
        assert page.evaluate("getComputedStyle(document.documentElement).overflowX") == "visible"
        assert page.evaluate("getComputedStyle(document.body).overflowX") == "visible"
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 360, f"the webhooks view is {width} px wide"
    finally:
        page.close()
        httpx.delete(server.url + f"/v1/webhooks/{created.json()['id']}")
