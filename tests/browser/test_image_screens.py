"""The image page, the gallery, the lightbox, collections, trash and share pages in Chromium on a laptop
(1440×900) and a phone (390×844): the picture first with every action in reach, no sideways scrolling,
a gallery of two or three columns with a folding filter panel on a phone, a lightbox that fits, swipes and
gives focus back, no htmx warnings in the console, and no axe-core violation."""

import re
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.urls import reverse
from django.utils import timezone
from playwright.sync_api import Browser, ConsoleMessage, Page, expect

from generations import library
from generations.models import GalleryImage
from generations.sharing import share_link_create
from tests.browser.a11y import axe_violations, format_violations
from tests.browser.screens import assert_fits, keep_screenshot
from tests.factories import GalleryImageFactory, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "a-long-passphrase-42"
PHONE, LAPTOP = (390, 844), (1440, 900)
LONG_PROMPT = "a lighthouse on a cliff at dawn, " + "long exposure, soft golden light, " * 40 + "oil painting"
ACTIONS = [
    ("link", "Download PNG"),
    ("link", "Remix"),
    ("button", "Variations"),
    ("button", "Re-run"),
    ("link", "Upscale…"),
    ("link", "Share…"),
    ("button", "Star"),
    ("link", "Collections…"),
    ("button", "Move to trash"),
]


def picture(
    user: Any, *, prompt: str = "a harbour at night", size: tuple[int, int] = (1216, 832), **extra: Any
) -> GalleryImage:
    """An SDXL image of a real size (the page fits the picture by its pixels), sampled with DPM++ 2M."""
    width, height = size
    return GalleryImageFactory(
        job__created_by=user,
        job__team=user.current_team,
        job__prompt=prompt,
        job__text_prompts=[{"text": prompt, "weight": 1.0}],
        job__engine_id="stable-diffusion-xl-1024-v1-0",
        job__sampler="K_DPMPP_2M",
        job__width=width,
        job__height=height,
        team=user.current_team,
        created_by=user,
        image__width=width,
        image__height=height,
        image__color="#d9dde4",  # light: text over it (badges, the creator) must still be readable
        width=width,
        height=height,
        **extra,
    )


@pytest.fixture
def ada() -> Any:
    return UserFactory(username="ada")


@pytest.fixture
def gallery(ada: Any) -> list[GalleryImage]:
    """Seven images, newest first; the oldest blurred by the safety filter."""
    now = timezone.now()
    images = [
        picture(ada, prompt=f"a harbour at night, lantern {number}", created_at=now - timedelta(hours=number))
        for number in range(6)
    ]
    images.append(
        picture(
            ada,
            prompt="a crowded beach",
            created_at=now - timedelta(days=1),
            finish_reason="CONTENT_FILTERED",
        )
    )
    return images


class Screen:
    """A signed-in browser tab of a given size that records what the page says in its console."""

    def __init__(
        self, browser: Browser, live_server: Any, size: tuple[int, int], *, touch: bool = False
    ) -> None:
        self.base = live_server.url
        # Both themes are checked: the laptop in the dark one, the phone in the light one.
        self.context = browser.new_context(
            viewport={"width": size[0], "height": size[1]},
            has_touch=touch,
            color_scheme="dark" if size == LAPTOP else "light",
        )
        self.page = self.context.new_page()
        self.page.set_default_timeout(20_000)
        self.console: list[str] = []
        self.page.on("console", self._heard)

    def _heard(self, message: ConsoleMessage) -> None:
        if message.type in ("warning", "error"):
            self.console.append(f"{message.type}: {message.text}")

    def sign_in(self, user: Any) -> "Screen":
        self.page.goto(f"{self.base}{reverse('accounts:login')}")
        self.page.get_by_label("Username").fill(user.username)
        self.page.get_by_label("Password").fill(PASSWORD)
        self.page.get_by_role("button", name="Sign in").click()
        self.page.wait_for_url(lambda url: "/login" not in url)
        return self

    def open(self, path: str) -> Page:
        self.page.goto(f"{self.base}{path}")
        self.page.wait_for_load_state("networkidle")  # the htmx panels (collections, share) are in
        return self.page

    def check(self, name: str) -> None:
        """No sideways scrolling, no accessibility violation, no htmx warning; a picture kept."""
        keep_screenshot(self.page, name)
        violations = axe_violations(self.page)
        assert not violations, f"{name}: {format_violations(violations)}"
        htmx_warnings = [line for line in self.console if "htmx" in line.lower()]
        assert not htmx_warnings, htmx_warnings
        assert_fits(self.page)


@pytest.fixture
def screens(chromium: Browser, live_server: Any) -> Iterator[Any]:
    opened: list[Screen] = []

    def open_screen(size: tuple[int, int], **options: Any) -> Screen:
        screen = Screen(chromium, live_server, size, **options)
        opened.append(screen)
        return screen

    yield open_screen
    for screen in opened:
        screen.context.close()


def wait_for_picture(page: Page, selector: str) -> dict[str, float]:
    page.wait_for_function(f"document.querySelector({selector!r}).naturalWidth > 0")
    box = page.locator(selector).bounding_box()
    assert box is not None
    return box


def test_the_image_page_shows_the_picture_its_prompt_and_every_action_on_a_laptop(screens, ada, gallery):
    image = gallery[1]
    screen = screens(LAPTOP).sign_in(ada)
    page = screen.open(image.url)

    box = wait_for_picture(page, ".detail-image img")
    assert box["y"] >= 0 and box["y"] + box["height"] <= LAPTOP[1], box  # the whole picture, no scrolling
    assert box["width"] > 800, box  # fitted to the window, not a thumbnail
    heading = page.get_by_role("heading", level=1)
    expect(heading).to_have_text("Stable Diffusion XL 1.0 · 3:2 landscape, 1216 × 832")
    prompt = page.locator(".detail-prompt")
    expect(prompt).to_have_text(image.job.prompt)
    assert prompt.evaluate("el => el.tagName") == "P"  # text to read, not a bold heading
    expect(page.get_by_role("button", name="Show more")).to_be_hidden()  # a short prompt is shown whole
    for role, name in ACTIONS:
        action = page.get_by_role(role, name=name, exact=True)
        expect(action).to_be_in_viewport(ratio=1)
        action_box = action.bounding_box()
        assert action_box is not None and action_box["x"] > box["x"] + box["width"], name  # beside it
    facts = page.locator(".facts")
    expect(facts).to_contain_text("DPM++ 2M")
    expect(facts).not_to_contain_text("K_DPMPP_2M")
    expect(facts).to_contain_text("3:2 landscape, 1216 × 832")
    screen.check("image-page-laptop")

    page.get_by_role("button", name="Star", exact=True).click()
    expect(page.locator(".actions .star")).to_have_attribute("aria-pressed", "true")
    expect(page.locator(".actions .star")).to_contain_text("Starred")
    assert image.favourites.filter(user=ada).exists()

    # The panels further down answer through htmx without a warning, and stay accessible.
    page.get_by_role("link", name="Collections…").click()
    page.get_by_label("New collection").fill("Night harbours")
    page.get_by_role("button", name="Add", exact=True).click()
    expect(page.get_by_role("button", name="✓ Night harbours")).to_have_attribute("aria-pressed", "true")
    page.get_by_role("link", name="Share…").click()
    page.get_by_label("Show prompt and settings").check()
    page.get_by_role("button", name="Create public link").click()
    expect(page.get_by_role("status").filter(has_text="Link created")).to_be_visible()
    screen.check("image-page-laptop-after-panels")


def test_a_long_prompt_is_clamped_so_the_actions_stay_in_view_and_show_more_reveals_it(screens, ada):
    image = picture(ada, prompt=LONG_PROMPT, size=(832, 1216))
    for size, name in ((LAPTOP, "laptop"), (PHONE, "phone")):
        screen = screens(size).sign_in(ada)
        page = screen.open(image.url)
        wait_for_picture(page, ".detail-image img")
        prompt = page.locator(".detail-prompt")
        folded = prompt.bounding_box()
        assert folded is not None and folded["height"] < 120, folded  # a few lines, not the whole essay
        if size == LAPTOP:
            for role, action in ACTIONS:
                expect(page.get_by_role(role, name=action, exact=True)).to_be_in_viewport(ratio=1)
        screen.check(f"image-page-long-prompt-{name}")

        more = page.get_by_role("button", name="Show more")
        expect(more).to_have_attribute("aria-expanded", "false")
        more.click()
        less = page.get_by_role("button", name="Show less")
        expect(less).to_have_attribute("aria-expanded", "true")
        unfolded = prompt.bounding_box()
        assert unfolded is not None and unfolded["height"] > 3 * folded["height"], (folded, unfolded)
        less.click()
        expect(page.get_by_role("button", name="Show more")).to_be_visible()


def test_on_a_phone_the_image_page_fits_and_its_actions_come_right_after_the_picture(screens, ada, gallery):
    screen = screens(PHONE).sign_in(ada)
    page = screen.open(gallery[0].url)
    box = wait_for_picture(page, ".detail-image img")
    assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE[0], box
    actions = page.get_by_role("group", name="Actions").bounding_box()
    assert actions is not None and box["y"] + box["height"] < actions["y"] < PHONE[1] - 40, (box, actions)
    expect(page.get_by_role("link", name="Download PNG")).to_be_in_viewport(ratio=1)
    screen.check("image-page-phone")

    filtered = screen.open(gallery[-1].url)
    expect(filtered.locator(".detail-image figcaption")).to_contain_text("safety filter")
    screen.check("image-page-filtered-phone")


def test_the_gallery_on_a_phone_has_two_or_three_columns_and_a_filter_panel_that_folds(screens, ada, gallery):
    screen = screens(PHONE).sign_in(ada)
    page = screen.open(reverse("generations:gallery"))
    tiles = page.locator("#gallery .tile")
    expect(tiles).to_have_count(7)
    lefts = {round(box["x"]) for box in (tile.bounding_box() for tile in tiles.all()) if box}
    assert 2 <= len(lefts) <= 3, lefts
    engine = page.get_by_label("Model", exact=True)
    expect(engine).to_be_hidden()  # folded: the tiles come right after the search box
    screen.check("gallery-phone")

    page.get_by_text("Filters and order").click()
    expect(engine).to_be_visible()
    page.get_by_label("Safety filter").select_option("only")
    expect(tiles).to_have_count(1)
    expect(page.get_by_label("Safety filter")).to_be_visible()  # redrawn by htmx, still open
    page.get_by_text("Filters and order").click()
    expect(engine).to_be_hidden()
    page.get_by_label("Search prompts").fill("crowded")
    expect(page).to_have_url(re.compile(r"q=crowded"))
    expect(engine).to_be_hidden()  # folded stays folded across the redraw
    page.get_by_label("Select this image").first.check()
    expect(page.get_by_label("Chosen images")).to_be_visible()
    screen.check("gallery-phone-chosen")  # the bulk bar wraps within the screen
    assert_fits(page)

    laptop = screens(LAPTOP).sign_in(ada)
    wide = laptop.open(reverse("generations:gallery"))
    expect(wide.get_by_label("Model", exact=True)).to_be_visible()  # a laptop has room: open
    laptop.check("gallery-laptop")


def test_an_empty_gallery_fits_and_passes_axe(screens):
    newcomer = UserFactory(username="newcomer")
    for size, name in ((PHONE, "phone"), (LAPTOP, "laptop")):
        screen = screens(size).sign_in(newcomer)
        page = screen.open(reverse("generations:gallery"))
        expect(page.locator("#gallery")).to_contain_text("No images yet.")
        screen.check(f"gallery-empty-{name}")


def swipe(page: Page, *, from_x: int, to_x: int, y: int) -> None:
    """A finger across the screen, as the touch screen reports it."""
    session = page.context.new_cdp_session(page)
    session.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [{"x": from_x, "y": y}]})
    for step in range(1, 6):
        x = from_x + (to_x - from_x) * step / 5
        session.send("Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": [{"x": x, "y": y}]})
    session.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
    session.detach()


def test_the_lightbox_fits_a_phone_swipes_and_gives_focus_back_to_the_tile(screens, ada, gallery):
    screen = screens(PHONE, touch=True).sign_in(ada)
    page = screen.open(reverse("generations:gallery"))
    links = page.locator("#gallery a[data-lightbox]")
    links.first.click()
    viewer = page.get_by_role("dialog", name="Image viewer")
    expect(viewer).to_be_visible()
    counter = viewer.locator(".lightbox-counter")
    expect(counter).to_have_text("1 of 7")
    box = wait_for_picture(page, ".lightbox-image")
    assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE[0] and box["y"] >= 0, box
    assert box["y"] + box["height"] <= PHONE[1] and box["width"] > 300, box
    for name in ("Previous image", "Next image", "Close", "Star", "Collections…"):
        expect(viewer.get_by_role("button", name=name, exact=True)).to_be_attached()
    expect(viewer.get_by_role("link", name="Open details")).to_be_visible()
    for control in (
        viewer.get_by_role("button", name="Next image"),
        viewer.get_by_role("button", name="Close"),
    ):
        control_box = control.bounding_box()
        assert control_box is not None and control_box["x"] + control_box["width"] <= PHONE[0], control_box
    screen.check("lightbox-phone")

    middle = int(box["y"] + box["height"] / 2)
    swipe(page, from_x=320, to_x=80, y=middle)
    expect(counter).to_have_text("2 of 7")
    swipe(page, from_x=320, to_x=80, y=middle)
    expect(counter).to_have_text("3 of 7")
    swipe(page, from_x=80, to_x=320, y=middle)
    expect(counter).to_have_text("2 of 7")
    expect(viewer).to_be_visible()  # a swipe is not a tap on the backdrop

    page.keyboard.press("ArrowRight")
    expect(counter).to_have_text("3 of 7")
    page.keyboard.press("Escape")
    expect(viewer).to_be_hidden()
    # Focus is back on the tile of the image shown last, so the keyboard goes on from there. (The dialog's
    # close event, which moves it there, comes a moment after the dialog is hidden.)
    expect(page.locator(f'#gallery a[data-image="{gallery[2].pk}"]')).to_be_focused()
    assert_fits(page)


def test_the_lightbox_fits_a_laptop_and_works_from_the_keyboard(screens, ada, gallery):
    screen = screens(LAPTOP).sign_in(ada)
    page = screen.open(reverse("generations:gallery"))
    first = page.locator("#gallery a[data-lightbox]").first
    first.focus()
    page.keyboard.press("Enter")
    viewer = page.get_by_role("dialog", name="Image viewer")
    expect(viewer).to_be_visible()
    box = wait_for_picture(page, ".lightbox-image")
    assert box["y"] >= 0 and box["y"] + box["height"] <= LAPTOP[1] and box["height"] > 500, box
    expect(viewer.get_by_role("button", name="Close")).to_be_focused()
    screen.check("lightbox-laptop")
    page.keyboard.press("ArrowRight")
    expect(viewer.locator(".lightbox-counter")).to_have_text("2 of 7")
    page.keyboard.press("ArrowLeft")
    expect(viewer.locator(".lightbox-counter")).to_have_text("1 of 7")
    viewer.get_by_role("button", name="Collections…").click()
    expect(viewer.get_by_label("New collection")).to_be_visible()
    screen.check("lightbox-laptop-collections")
    viewer.get_by_role("button", name="Close").click()
    expect(viewer).to_be_hidden()
    expect(first).to_be_focused()


def test_collections_trash_and_share_pages_fit_both_screens_and_pass_axe(screens, ada, gallery):
    collection = library.collection_create(team=ada.current_team, user=ada, name="Harbours by night")
    library.collection_add(
        collection=collection,
        images=GalleryImage.objects.filter(pk__in=[i.pk for i in gallery[:3]]),
        user=ada,
    )
    library.images_trash(images=GalleryImage.objects.filter(pk=gallery[5].pk), user=ada)
    link = share_link_create(image=gallery[0], user=ada, show_details=True, expires_at=None)
    bare = share_link_create(image=gallery[1], user=ada, show_details=False, expires_at=None)
    pages = {
        "collections": reverse("generations:collections"),
        "collection": collection.url,
        "trash": reverse("generations:trash"),
        "trashed-image": gallery[5].url,
        "share-panel": reverse("generations:image-shares", args=[gallery[0].pk]),
        "share-page": reverse("generations:share", args=[link.token]),
        "share-page-bare": reverse("generations:share", args=[bare.token]),
    }
    for size, screen_name in ((PHONE, "phone"), (LAPTOP, "laptop")):
        screen = screens(size).sign_in(ada)
        for name, path in pages.items():
            page = screen.open(path)
            screen.check(f"{name}-{screen_name}")
            if name == "share-page":
                expect(page.get_by_role("heading", level=1)).to_have_text(
                    "Stable Diffusion XL 1.0 · 3:2 landscape, 1216 × 832"
                )
                expect(page.locator(".facts")).to_contain_text("DPM++ 2M")
