"""The library in Chromium: find images by a word and a filter (Back works), star one, make a collection
from a selection, download it as a ZIP, trash an image and restore it."""

import io
import json
import re
import zipfile
from datetime import timedelta
from pathlib import Path

import pytest
from django.urls import reverse
from django.utils import timezone
from playwright.sync_api import Page, expect

from generations.models import Collection, Favourite, GalleryImage
from tests.browser.conftest import ARTIFACTS
from tests.factories import UserFactory
from tests.library_factories import library_image

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
PASSWORD = "a-long-passphrase-42"


def sign_in(page: Page, live_server, user) -> None:
    page.goto(f"{live_server.url}{reverse('accounts:login')}")
    page.get_by_label("Username").fill(user.username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("link", name="Gallery")).to_be_visible()


def test_search_filter_star_collect_download_trash_and_restore(page: Page, live_server):
    ada = UserFactory(username="ada")
    now = timezone.now()
    for number in range(8):
        library_image(
            ada, prompt=f"a harbour at night {number}", created_at=now - timedelta(hours=number + 10)
        )
    keeper = library_image(
        ada, prompt="an old lighthouse keeper", engine="stable-diffusion-v1-6", created_at=now
    )
    dawn = library_image(
        ada,
        prompt="a lighthouse at dawn",
        engine="stable-diffusion-v1-6",
        created_at=now - timedelta(hours=1),
    )
    library_image(
        ada,
        prompt="a lighthouse in fog",
        engine="stable-diffusion-xl-1024-v1-0",
        created_at=now - timedelta(hours=2),
    )
    sign_in(page, live_server, ada)
    page.get_by_role("link", name="Gallery").click()
    tiles = page.locator("#gallery .tile")
    expect(tiles).to_have_count(11)

    page.get_by_label("Search prompts").fill("lighthouse")
    expect(tiles).to_have_count(3)
    expect(page).to_have_url(re.compile(r"q=lighthouse"))
    page.get_by_label("Model", exact=True).select_option("stable-diffusion-v1-6")
    expect(tiles).to_have_count(2)
    expect(page.locator(".result-count")).to_contain_text("2 images match")
    expect(page).to_have_url(re.compile(r"q=lighthouse.*engine=stable-diffusion-v1-6"))
    page.go_back()
    expect(tiles).to_have_count(3)
    page.go_forward()
    expect(tiles).to_have_count(2)

    first = page.locator(f'.tile[data-image="{keeper.pk}"]')
    first.hover()
    first.get_by_role("button", name="Star").click()
    expect(first.locator(".star")).to_have_attribute("aria-pressed", "true")
    assert Favourite.objects.filter(user=ada, image=keeper).exists()

    first.get_by_label("Select this image").check()
    page.locator(f'.tile[data-image="{dawn.pk}"]').get_by_label("Select this image").click(
        modifiers=["Shift"]
    )
    bar = page.get_by_label("Chosen images")
    expect(bar.locator("[data-bulk-count]")).to_have_text("2 chosen")
    bar.get_by_placeholder("or a new collection").fill("Lighthouses")
    bar.get_by_role("button", name="Add to collection").click()
    expect(page.locator("#library-status")).to_contain_text("Added 2 images to “Lighthouses”.")
    collection = Collection.objects.get(name="Lighthouses")
    assert set(collection.images.values_list("pk", flat=True)) == {keeper.pk, dawn.pk}

    page.get_by_role("link", name="Collections").click()
    page.get_by_role("link", name="Lighthouses").click()
    expect(tiles).to_have_count(2)
    page.get_by_role("button", name="Select all 2 matching").click()
    expect(bar.locator("[data-bulk-count]")).to_have_text("All 2 matching chosen")
    with page.expect_download() as download:
        bar.get_by_role("button", name="Download ZIP").click()
    archive = zipfile.ZipFile(io.BytesIO(Path(download.value.path()).read_bytes()))
    manifest = json.loads(archive.read("manifest.json"))
    assert {entry["prompt"] for entry in manifest["images"]} == {
        "an old lighthouse keeper",
        "a lighthouse at dawn",
    }
    assert {name for name in archive.namelist() if name.endswith(".png")} == {
        keeper.download_name,
        dawn.download_name,
    }

    bar.get_by_role("button", name="Clear").click()
    expect(bar).to_be_hidden()
    page.locator(f'.tile[data-image="{dawn.pk}"]').get_by_label("Select this image").check()
    expect(bar.locator("[data-bulk-count]")).to_have_text("1 chosen")
    bar.get_by_role("button", name="Move to trash").click()
    expect(page.locator("#library-status")).to_contain_text("Moved 1 image to the trash.")
    expect(tiles).to_have_count(1)
    assert GalleryImage.objects.get(pk=dawn.pk).trashed_at is not None

    page.get_by_role("link", name="Gallery").first.click()
    page.get_by_role("link", name="Trash").click()
    trashed = page.locator(f'.tile[data-image="{dawn.pk}"]')
    expect(trashed).to_contain_text("deleted for good on")
    trashed.get_by_role("button", name="Restore").click()
    expect(page.get_by_text("Restored: the image is back in the gallery.")).to_be_visible()
    page.get_by_role("link", name="Gallery").first.click()
    expect(page.locator(f'.tile[data-image="{dawn.pk}"]')).to_have_count(1)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / "library-journey.png", full_page=True)
