"""From a prompt on Stable Image Core, through two edits, to an upscale, in Chromium with a real worker:
each step's price is shown before it is taken and is what the balance loses, and the lineage holds."""

import io
import re

import pytest
from PIL import Image
from playwright.sync_api import Page, expect

from generations import stable_image
from generations.models import GalleryImage, GenerationJob, read_file
from tests.browser.test_image_tools import sign_in
from tests.factories import UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.worker, pytest.mark.django_db(transaction=True)]

CREDITS = re.compile(r"([\d.]+) credits")


@pytest.fixture
def member(studio_engine):
    return UserFactory()


def balance_of(page: Page) -> float:
    balance = page.get_by_label("Credit balance")
    expect(balance).to_have_text(CREDITS)  # not while the header is drawing it again
    return float(CREDITS.search(balance.inner_text())[1])


def finished_image(page: Page) -> GalleryImage:
    """The job page's card, once it succeeded: its one image, opened."""
    card = page.locator(".job-card").first
    expect(card.get_by_role("status")).to_have_text("Succeeded", timeout=60_000)
    job = GenerationJob.objects.get(pk=card.get_attribute("id").removeprefix("job-"))
    card.locator(".thumbs a").first.click()
    expect(page.locator("#tools")).to_be_visible()
    return job.images.get()


def use_tool(page: Page, slug: str, fill: dict[str, str] | None = None) -> float:
    """Open a tool from the image page, fill it, read the price it shows, and start it."""
    page.locator(f'#tools a[data-tool="{slug}"]').click()
    form = page.locator("#tool-form")
    expect(form).to_be_visible()
    for label, value in (fill or {}).items():
        form.get_by_label(label, exact=True).fill(value)
    shown = float(CREDITS.search(page.locator("main").inner_text())[1])
    form.locator(".tool-submit").click()
    return shown


def test_core_then_remove_background_then_outpaint_then_upscale(
    page,
    live_server,
    member,
    redis_worker,
):
    sign_in(page, live_server, member)
    page.get_by_label("Model").select_option("stable-image-core")
    expect(page.get_by_label("Aspect ratio")).to_be_visible()
    expect(page.get_by_label("Steps")).to_have_count(0)
    page.get_by_label("Prompt", exact=True).fill("a lighthouse on a cliff")
    start = balance_of(page)
    expect(page.locator("#estimate")).to_contain_text("3 credits")
    page.get_by_role("button", name="Generate").click()

    card = page.locator(".job-card").first
    expect(card.get_by_role("status")).to_have_text("Succeeded", timeout=60_000)
    card.locator(".thumbs a").first.click()
    expect(page.locator("#tools")).to_be_visible()
    core = GalleryImage.objects.get()
    assert (core.width, core.height) == (1536, 1536)

    spent = [3.0]
    spent.append(use_tool(page, "remove-background"))
    cut = finished_image(page)
    assert cut.job.parent == core and cut.job.relation == "edit"
    alpha = Image.open(io.BytesIO(read_file(cut.image))).convert("RGBA").getchannel("A")
    assert alpha.getextrema()[0] == 0
    expect(page.locator("figure.detail-image.checkerboard")).to_be_visible()

    spent.append(use_tool(page, "outpaint", {"Left": "256", "Right": "256"}))
    wide = finished_image(page)
    assert wide.job.parent == cut and (wide.width, wide.height) == (cut.width + 512, cut.height)

    spent.append(use_tool(page, "upscale-conservative", {"Prompt": "a lighthouse on a cliff, crisp detail"}))
    big = finished_image(page)
    assert big.job.parent == wide and big.job.relation == "upscale"
    assert big.width * big.height > wide.width * wide.height

    # The lineage, from the last image back to the prompt: every step kept its source.
    chain, image = [], big
    while image is not None:
        chain.append(image.job.engine_id)
        image = image.job.parent
    assert chain == ["upscale/conservative", "edit/outpaint", "edit/remove-background", "stable-image-core"]
    assert spent == [
        3.0,
        float(stable_image.TOOLS["remove-background"].operation.price()),
        float(stable_image.TOOLS["outpaint"].operation.price()),
        float(stable_image.TOOLS["upscale-conservative"].operation.price()),
    ]
    page.reload()
    assert balance_of(page) == pytest.approx(start - sum(spent))
