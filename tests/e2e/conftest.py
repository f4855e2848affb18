from __future__ import annotations

import shutil
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import REQUIRE_SERVICES
from tests.integration.server import ServerStore


@pytest.fixture(scope="module")
def server_store() -> ServerStore:
    """The browser tests run on the default store only (the HTTP suite covers the others)."""
    return ServerStore("sqlite")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's headless Chromium driven by Playwright (its own browser download is not used).

    Module-scoped: Playwright's sync API keeps an event loop running in the main thread while
    it is open, which later asyncio tests must not inherit.
    """
    executable = shutil.which("chromium")
    if executable is None:
        if REQUIRE_SERVICES:
            pytest.fail("chromium is not installed (scripts/install installs it as root)")
        pytest.skip("chromium is not installed")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(
            executable_path=executable,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        yield instance
        instance.close()
