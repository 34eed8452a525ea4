"""Two people in one team, in two Chromium contexts: Ada makes a team and invites Bob by link; Bob joins and
generates; Ada sees Bob's image with his name, shares it publicly, removes Bob (whose next request is 404)
and revokes the link (404 for the stranger who had it)."""

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import ARTIFACTS, new_page

pytestmark = [pytest.mark.browser, pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def sign_up(page, base: str, name: str) -> None:
    page.get_by_label("Username").fill(name)
    page.get_by_label("Email").fill(f"{name}@example.com")
    page.get_by_label("Password", exact=True).fill("a-long-passphrase-42")
    page.get_by_label("Password confirmation").fill("a-long-passphrase-42")
    page.get_by_role("button", name="Sign up").click()


def test_two_people_share_a_team_and_a_public_link(chromium, live_server, redis_worker):
    base = live_server.url
    ada, bob, stranger = new_page(chromium), new_page(chromium), new_page(chromium)
    ARTIFACTS.mkdir(exist_ok=True)

    ada.goto(f"{base}/accounts/signup/")
    sign_up(ada, base, "ada")
    ada.get_by_role("link", name="New team").click()
    ada.get_by_label("Name").fill("Harbour studio")
    ada.get_by_role("button", name="Create team").click()
    expect(ada.get_by_role("heading", name="Harbour studio")).to_be_visible()
    ada.get_by_role("button", name="Create invite link").click()
    invite_link = ada.get_by_label("Invite link").first.input_value()
    assert "/teams/join/" in invite_link

    bob.goto(invite_link)
    expect(bob.get_by_text("Harbour studio").first).to_be_visible()
    bob.get_by_role("main").get_by_role("link", name="Sign up").click()
    sign_up(bob, base, "bob")
    bob.get_by_role("button", name="Join Harbour studio as member").click()
    expect(bob.get_by_label("Current team")).to_have_value(str(bob.url.split("/teams/")[1].split("/")[0]))

    bob.get_by_role("link", name="Create", exact=True).click()
    bob.get_by_label("Prompt", exact=True).fill("a harbour at dusk with red sails")
    bob.get_by_label("Number of images").fill("1")
    bob.get_by_role("button", name="Generate").click()
    card = bob.locator(".job-card").first
    expect(card.get_by_role("status")).to_have_text("Succeeded", timeout=60_000)
    image_url = base + card.locator(".thumbs a").first.get_attribute("href")

    ada.get_by_role("link", name="Gallery").click()
    tile = ada.locator(".gallery li").first
    expect(tile.locator(".creator")).to_have_text("bob")
    ada.screenshot(path=ARTIFACTS / "teams-gallery.png")

    ada.goto(image_url)
    expect(ada.get_by_text("bob", exact=False).first).to_be_visible()
    panel = ada.locator("#share-panel")
    panel.get_by_label("Show prompt and settings").check()
    panel.get_by_role("button", name="Create public link").click()
    share_url = panel.locator("input[type=url]").first.input_value()

    shared = stranger.goto(share_url)
    assert shared.status == 200
    expect(stranger.get_by_text("a harbour at dusk with red sails").first).to_be_visible()
    image_src = stranger.locator("img").first.evaluate("img => img.src")  # absolute
    assert stranger.request.get(image_src).status == 200

    ada.get_by_role("link", name="Team", exact=True).click()
    ada.get_by_role("button", name="Remove bob").click()
    expect(ada.get_by_role("table", name="Members")).not_to_contain_text("bob@example.com")
    assert bob.goto(image_url).status == 404

    ada.goto(image_url)
    ada.once("dialog", lambda dialog: dialog.accept())
    ada.locator("#share-panel").get_by_role("button", name="Revoke").click()
    expect(ada.locator("#share-panel")).to_contain_text("No public links")
    assert stranger.goto(share_url).status == 404
    assert stranger.request.get(image_src).status == 404
