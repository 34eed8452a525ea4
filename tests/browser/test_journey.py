"""A person's first visit, in Debian's Chromium: sign up, generate four images, find them, pay for them."""

from pathlib import Path

import pytest
from playwright.sync_api import expect

from generations.stability.contract import price_per_image
from tests.browser.conftest import ARTIFACTS

pytestmark = [pytest.mark.browser, pytest.mark.worker, pytest.mark.django_db(transaction=True)]


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
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / "journey-create.png")

    price = price_per_image("stable-diffusion-xl-1024-v1-0", steps=30) * 4
    expect(balance).to_have_text(f"{1000 - price:.2f} credits")

    page.get_by_role("link", name="Gallery").click()
    expect(page.locator(".gallery img")).to_have_count(4)
    page.locator(".gallery a").first.click()  # the lightbox, over the gallery
    expect(page.locator("dialog.lightbox")).to_contain_text("a lighthouse on a cliff at dawn")
    page.keyboard.press("ArrowRight")
    expect(page.locator("dialog.lightbox")).to_contain_text("2 of 4")
    page.get_by_role("link", name="Open details").click()
    expect(page.get_by_role("link", name="Download PNG")).to_be_visible()
    with page.expect_download() as download:
        page.get_by_role("link", name="Download PNG").click()
    assert Path(download.value.path()).read_bytes().startswith(b"\x89PNG")
