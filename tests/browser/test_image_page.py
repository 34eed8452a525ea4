"""The image page in Chromium on a laptop screen: the image fitted to the window, the prompt and the
actions beside it without scrolling; on a phone the same page stacks."""

import pytest
from django.urls import reverse
from playwright.sync_api import Page, expect

from tests.browser.conftest import ARTIFACTS, new_page
from tests.factories import GalleryImageFactory, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
PASSWORD = "a-long-passphrase-42"
PROMPT = "a lighthouse on a cliff at dawn, " + "long exposure, soft light, " * 6 + "oil painting"


def open_image(page: Page, live_server, user, image) -> None:
    page.goto(f"{live_server.url}{reverse('accounts:login')}")
    page.get_by_label("Username").fill(user.username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(lambda url: "/login" not in url)  # on a phone the links are in the header's menu
    page.goto(f"{live_server.url}{image.url}")


@pytest.fixture
def tall_image():
    """A 1024 × 1024 SDXL image: taller than a 900-pixel window once the top bar is counted."""
    ada = UserFactory(username="ada")
    image = GalleryImageFactory(
        job__created_by=ada,
        job__team=ada.current_team,
        job__prompt=PROMPT,
        job__text_prompts=[{"text": PROMPT, "weight": 1.0}],
        job__engine_id="stable-diffusion-xl-1024-v1-0",
        job__width=1024,
        job__height=1024,
        team=ada.current_team,
        created_by=ada,
        image__width=1024,
        image__height=1024,
        width=1024,
        height=1024,
    )
    return ada, image


def test_the_image_fits_a_laptop_window_with_the_prompt_and_actions_beside_it(
    chromium, live_server, tall_image
):
    ada, image = tall_image
    page = new_page(chromium, viewport=(1440, 900))
    open_image(page, live_server, ada, image)
    picture = page.locator(".detail-image img")
    expect(picture).to_be_visible()
    page.wait_for_function("document.querySelector('.detail-image img').naturalWidth > 0")
    box = picture.bounding_box()
    assert box is not None
    assert box["y"] >= 0 and box["y"] + box["height"] <= 900, box  # the whole image, no scrolling
    assert box["x"] >= 0 and box["x"] + box["width"] <= 1440, box
    assert box["height"] > 600, box  # fitted to the window, not shown as a thumbnail

    prompt = page.locator(".detail-prompt")
    expect(prompt).to_have_text(PROMPT)
    assert page.locator("h1", has_text=PROMPT).count() == 0  # the prompt is text, not a heading
    expect(page.get_by_role("heading", level=1)).to_contain_text(
        "Stable Diffusion XL"
    )  # its name, not its id
    for button in (
        page.get_by_role("button", name="Variations"),
        page.get_by_role("link", name="Download PNG"),
    ):
        expect(button).to_be_in_viewport(ratio=1)
        action = button.bounding_box()
        assert action is not None and action["x"] > box["x"] + box["width"], (action, box)  # beside it
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / "image-page-1440x900.png")

    phone = new_page(chromium, viewport=(390, 844))
    open_image(phone, live_server, ada, image)
    phone.wait_for_function("document.querySelector('.detail-image img').naturalWidth > 0")
    small = phone.locator(".detail-image img").bounding_box()
    assert small is not None and small["x"] >= 0 and small["x"] + small["width"] <= 390, small
    variations = phone.get_by_role("button", name="Variations").bounding_box()
    assert variations is not None and variations["y"] > small["y"] + small["height"], variations  # stacked
    assert variations["y"] + variations["height"] < 844, variations  # and right under it, in the first screen
    phone.screenshot(path=ARTIFACTS / "image-page-390x844.png", full_page=True)
