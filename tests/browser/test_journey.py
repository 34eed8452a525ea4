"""A person's first visit, in Debian's Chromium: sign up, generate four images, find them, pay for them."""

import os
from pathlib import Path

import pytest
from django.db import connections
from playwright.sync_api import expect, sync_playwright

from generations.stability.contract import price_per_image

pytestmark = [pytest.mark.browser, pytest.mark.worker, pytest.mark.django_db(transaction=True)]

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


@pytest.fixture
def page(live_server):
    # Playwright's sync API runs an event loop in this thread; the live server's ORM calls are in others.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
            ],
        )
        context = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
        page = context.new_page()
        page.set_default_timeout(20_000)
        yield page
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=ARTIFACTS / "journey-last.png", full_page=True)
        browser.close()
        # Connections opened while Playwright's loop ran belong to that loop's context, where the test
        # database teardown cannot see them: close them here.
        connections.close_all()
    os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)


def test_sign_up_generate_four_images_and_find_them_in_the_gallery(page, live_server, celery_worker_process):
    page.goto(f"{live_server.url}/accounts/signup/")
    page.get_by_label("Username").fill("ada")
    page.get_by_label("Email").fill("ada@example.com")
    page.get_by_label("Password", exact=True).fill("a-long-passphrase-42")
    page.get_by_label("Password confirmation").fill("a-long-passphrase-42")
    page.get_by_role("button", name="Sign up").click()

    balance = page.get_by_label("Credit balance")
    expect(balance).to_have_text("1000.00 credits")
    page.evaluate("window.__sameDocument = true")

    page.get_by_label("Prompt", exact=True).fill("a lighthouse on a cliff at dawn")
    page.get_by_label("Number of images").fill("4")
    page.get_by_role("button", name="Generate").click()

    card = page.locator(".job-card").first
    expect(card.get_by_role("status")).to_have_text("Succeeded", timeout=60_000)
    expect(card.locator(".thumbs img")).to_have_count(4)
    assert page.evaluate("window.__sameDocument") is True  # finished without a reload
    page.screenshot(path=ARTIFACTS / "journey-create.png") if ARTIFACTS.mkdir(exist_ok=True) is None else None

    price = price_per_image("stable-diffusion-xl-1024-v1-0", steps=30) * 4
    expect(balance).to_have_text(f"{1000 - price:.2f} credits")

    page.get_by_role("link", name="Gallery").click()
    expect(page.locator(".gallery img")).to_have_count(4)
    page.locator(".gallery a").first.click()
    expect(page.get_by_role("link", name="Download PNG")).to_be_visible()
    with page.expect_download() as download:
        page.get_by_role("link", name="Download PNG").click()
    assert Path(download.value.path()).read_bytes().startswith(b"\x89PNG")
