"""A real browser for the journeys a person takes: Debian's Chromium, driven by Playwright."""

import os
from pathlib import Path

import pytest
from django.db import connections
from playwright.sync_api import Browser, Playwright, sync_playwright

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def launch(playwright: Playwright) -> Browser:
    """Debian's Chromium, headless, with nothing running in the background that could reach a network."""
    return playwright.chromium.launch(
        executable_path=CHROMIUM,
        args=[
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
        ],
    )


@pytest.fixture
def chromium(live_server):
    """Debian's Chromium, for tests that need several browser contexts (several people at once)."""
    # Playwright's sync API runs an event loop in this thread; the live server's ORM calls are in others.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_playwright() as playwright:
        browser = launch(playwright)
        yield browser
        browser.close()
        # Connections opened while Playwright's loop ran belong to that loop's context, where the test
        # database teardown cannot see them: close them here.
        connections.close_all()
    os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)


def new_page(browser, viewport=(1400, 1000)):
    context = browser.new_context(
        viewport={"width": viewport[0], "height": viewport[1]}, accept_downloads=True
    )
    page = context.new_page()
    page.set_default_timeout(20_000)
    return page


@pytest.fixture
def page(chromium, request):
    page = new_page(chromium)
    yield page
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / f"{request.node.name[:80]}.png", full_page=True)
