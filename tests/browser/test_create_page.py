"""The create page as a person meets it in Chromium, on a laptop (1440×900) and a phone (390×844): Generate
always in view, a refused Generate showing the field to fix, the folded Advanced part saying what it holds,
the page stacking on a phone, and no accessibility violations in any of its states."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from django.urls import reverse
from playwright.sync_api import ConsoleMessage, Page, Route, expect

from generations.models import GenerationJob
from tests.browser.a11y import axe_violations, format_violations
from tests.browser.conftest import new_page
from tests.browser.screens import assert_fits, keep_screenshot
from tests.browser.test_image_tools import sign_in
from tests.factories import UserFactory
from tests.images import png

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

LAPTOP = (1440, 900)
PHONE = (390, 844)


@pytest.fixture
def person(studio_engine):
    return UserFactory()


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    path = tmp_path / "photo.png"
    path.write_bytes(png(1000, 750))  # not a size SDXL takes: resized, with a notice
    return path


def at(chromium, viewport: tuple[int, int]) -> Iterator[Page]:
    page = new_page(chromium, viewport)
    yield page
    page.context.close()


@pytest.fixture
def laptop(chromium) -> Iterator[Page]:
    yield from at(chromium, LAPTOP)


@pytest.fixture
def phone(chromium) -> Iterator[Page]:
    yield from at(chromium, PHONE)


def generate_in_view(page: Page) -> None:
    """Generate is on screen, whole, without the person scrolling to it."""
    button = page.get_by_role("button", name="Generate")
    expect(button).to_be_visible()
    box = button.bounding_box()
    assert box is not None
    height = page.evaluate("window.innerHeight")
    assert box["y"] >= 0 and box["y"] + box["height"] <= height, (box, height)
    # Nothing is drawn over it: the button itself is what a click there reaches.
    hit = page.evaluate(
        "([x, y]) => document.elementFromPoint(x, y)?.closest('button')?.textContent.trim()",
        [box["x"] + box["width"] / 2, box["y"] + box["height"] / 2],
    )
    assert hit == "Generate"


def no_inner_scroll_box(page: Page) -> None:
    """The page scrolls as one: no box in it (but a text area) scrolls on its own."""
    boxes = page.evaluate(
        """() => [...document.querySelectorAll("main *")].filter((el) => {
            const style = getComputedStyle(el);
            return el.tagName !== "TEXTAREA" && el.tagName !== "SELECT"
                && /(auto|scroll)/.test(style.overflowY) && el.scrollHeight > el.clientHeight + 1;
        }).map((el) => el.tagName.toLowerCase() + (el.id ? "#" + el.id : "") + "." + el.className)"""
    )
    assert boxes == []


def no_axe_violations(page: Page) -> None:
    violations = axe_violations(page)
    assert not violations, format_violations(violations)


def hold_generate(page: Page, live_server) -> list[Route]:
    """Hold the next Generate request until the test lets it go, to see the page while it is sent."""
    held: list[Route] = []
    page.route(
        f"{live_server.url}{reverse('generations:create')}",
        lambda route: held.append(route) if route.request.method == "POST" else route.continue_(),
    )
    return held


@pytest.mark.parametrize("viewport", [LAPTOP, PHONE], ids=["laptop", "phone"])
def test_generate_is_in_view_in_every_state_and_the_page_passes_axe(
    chromium, live_server, person, photo, viewport
):
    page = new_page(chromium, viewport)
    warnings: list[str] = []  # htmx's selector warnings and policy refusals
    page.on("console", lambda message: warnings.append(message.text) if _is_htmx_warning(message) else None)
    sign_in(page, live_server, person)
    name = f"create-{viewport[0]}"

    generate_in_view(page)  # empty
    no_inner_scroll_box(page)
    assert_fits(page)
    no_axe_violations(page)
    keep_screenshot(page, f"{name}-empty", full_page=False)

    page.get_by_label("Init image").set_input_files(photo)
    expect(page.get_by_role("img", name="Init image")).to_be_visible()
    expect(page.locator(".mask-canvas")).to_be_attached()
    page.evaluate("window.scrollTo(0, 0)")
    generate_in_view(page)  # with an init image: the form is far taller than the window
    assert page.evaluate("document.documentElement.scrollHeight") > viewport[1] + 400
    no_inner_scroll_box(page)
    assert_fits(page)
    no_axe_violations(page)
    keep_screenshot(page, f"{name}-init-image", full_page=False)

    page.get_by_role("button", name="Generate").click()  # no prompt: refused
    expect(page.get_by_role("alert").filter(has_text="Not generated")).to_be_visible()
    generate_in_view(page)  # with errors
    no_inner_scroll_box(page)
    assert_fits(page)
    for scheme in ("dark", "light"):
        page.emulate_media(color_scheme=scheme)
        no_axe_violations(page)
    keep_screenshot(page, f"{name}-errors", full_page=False)

    held = hold_generate(page, live_server)
    page.get_by_label("Prompt", exact=True).fill("a harbour at night")
    page.get_by_role("button", name="Generate").click()
    expect(page.get_by_role("button", name="Generate")).to_be_disabled()  # while generating
    expect(page.locator("#create-form-alert")).to_be_hidden()  # the refusal before no longer stands
    generate_in_view(page)
    assert_fits(page)
    no_axe_violations(page)
    keep_screenshot(page, f"{name}-generating", full_page=False)
    assert len(held) == 1
    held[0].continue_()
    expect(page.locator(".job-card")).to_have_count(1, timeout=20_000)
    expect(page.get_by_role("button", name="Generate")).to_be_enabled()
    generate_in_view(page)
    assert warnings == [], warnings
    page.context.close()


def _is_htmx_warning(message: ConsoleMessage) -> bool:
    """htmx's complaint about a selector that matches nothing (hx-target, hx-include, hx-disabled-elt), or
    the browser refusing what a swap did against the content security policy (an inline style)."""
    text = message.text.lower()
    return message.type in ("warning", "error") and ("selector" in text or "content security policy" in text)


def test_a_refused_generate_brings_the_field_to_fix_into_view_and_focus(laptop, live_server, person, photo):
    page = laptop
    sign_in(page, live_server, person)
    page.get_by_label("Init image").set_input_files(photo)
    expect(page.get_by_role("img", name="Init image")).to_be_visible()
    page.get_by_label("Prompt", exact=True).fill("a harbour at night")
    page.locator("details.advanced > summary").click()
    page.get_by_label("Steps").fill("500")
    page.locator("details.advanced > summary").click()  # folded shut again: the wrong value out of sight
    page.get_by_label("Prompt", exact=True).focus()
    page.keyboard.press("Control+Enter")

    steps = page.get_by_label("Steps")
    expect(steps).to_be_focused()
    expect(steps).to_be_in_viewport()
    expect(page.locator("details.advanced")).to_have_attribute("open", "")
    expect(steps).to_have_attribute("aria-invalid", "true")
    described = steps.get_attribute("aria-describedby") or ""
    messages = " ".join(page.locator(f"#{each}").inner_text() for each in described.split())
    assert "Must be between 10 and 50." in messages
    alert = page.get_by_role("alert").filter(has_text="Not generated")
    expect(alert).to_have_text("Not generated. Steps: Must be between 10 and 50.")
    generate_in_view(page)
    assert not GenerationJob.objects.exists()


def test_a_refused_prompt_is_focused_from_the_bottom_of_a_long_form(phone, live_server, person, photo):
    page = phone
    sign_in(page, live_server, person)
    page.get_by_label("Init image").set_input_files(photo)
    expect(page.get_by_role("img", name="Init image")).to_be_visible()
    page.get_by_role("button", name="Generate").click()

    prompt = page.get_by_label("Prompt", exact=True)
    expect(prompt).to_be_focused()
    expect(prompt).to_be_in_viewport()
    expect(page.locator("#id_prompt_error")).to_have_text("Describe the image you want.")
    expect(page.locator("#id_prompt_error")).to_be_in_viewport()


def test_folded_advanced_settings_are_summarised_and_reset_before_the_next_job(laptop, live_server, person):
    page = laptop
    sign_in(page, live_server, person)
    page.get_by_label("Prompt", exact=True).fill("a paper crane")
    page.get_by_label("Number of images").fill("1")
    page.locator("details.advanced > summary").click()
    page.get_by_label("More prompts").fill("golden light | 0.6\nfog | -0.4")
    page.get_by_label("Seed").fill("7")
    page.get_by_label("Steps").fill("40")
    summary = page.locator("details.advanced > summary")
    expect(summary).to_have_text("Advanced: 2 more prompts · Seed 7 · 40 steps")  # follows edits
    page.get_by_role("button", name="Generate").click()
    expect(page.locator(".job-card")).to_have_count(1)

    # The form is drawn again, Advanced open as it was left; folded, it still says what it will send.
    expect(page.locator("details.advanced")).to_have_attribute("open", "")
    expect(summary).to_have_text("Advanced: 2 more prompts · Seed 7 · 40 steps")
    summary.click()
    expect(page.locator("details.advanced")).not_to_have_attribute("open", "")
    expect(page.get_by_label("Seed")).to_be_hidden()
    expect(summary).to_have_text("Advanced: 2 more prompts · Seed 7 · 40 steps")
    expect(summary).to_be_in_viewport()
    for scheme in ("dark", "light"):
        page.emulate_media(color_scheme=scheme)
        no_axe_violations(page)
    page.get_by_role("button", name="Reset advanced settings").click()
    expect(summary).to_have_text("Advanced")
    expect(page.get_by_role("button", name="Reset advanced settings")).to_be_hidden()
    page.get_by_role("button", name="Generate").click()
    expect(page.locator(".job-card")).to_have_count(2)

    first, second = GenerationJob.objects.order_by("created_at")
    assert (first.seed, first.steps, len(first.text_prompts)) == (7, 40, 3)
    assert (second.seed, second.steps, second.text_prompts) == (
        0,
        30,
        [{"text": "a paper crane", "weight": 1.0}],
    )
    assert second.negative_prompt == ""


def test_the_advanced_summary_names_samplers_as_people_write_them(laptop, live_server, person):
    page = laptop
    sign_in(page, live_server, person)
    page.locator("details.advanced > summary").click()
    page.get_by_label("Sampler").select_option(label="DPM++ 2M")
    page.get_by_label("CFG scale").fill("9.5")
    expect(page.locator("details.advanced > summary")).to_have_text(
        "Advanced: CFG scale 9.5 · Sampler DPM++ 2M"
    )
    page.get_by_label("CFG scale").fill("7")  # back to the default: no longer mentioned
    expect(page.locator("details.advanced > summary")).to_have_text("Advanced: Sampler DPM++ 2M")


def test_on_a_phone_the_page_stacks_form_then_current_job_then_recent_ones(phone, live_server, person):
    page = phone
    sign_in(page, live_server, person)
    for count, prompt in enumerate(("a first harbour", "a second harbour"), start=1):
        page.get_by_label("Prompt", exact=True).fill(prompt)
        page.get_by_label("Number of images").fill("1")
        page.get_by_role("button", name="Generate").click()
        expect(page.locator(".job-card")).to_have_count(count)
        expect(page.get_by_role("button", name="Generate")).to_be_enabled()
    for card in page.locator(".job-card").all():
        expect(card.get_by_role("status")).to_have_text("Succeeded", timeout=30_000)
    assert_fits(page)
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE[0]

    form, current, recent = (
        page.locator("#create-form").bounding_box(),
        page.locator(".job-card").nth(0).bounding_box(),
        page.locator(".job-card").nth(1).bounding_box(),
    )
    assert form and current and recent
    assert form["y"] + form["height"] <= current["y"] < recent["y"]
    expect(page.locator(".job-card").nth(0)).to_contain_text("a second harbour")
    # Scrolled to the jobs, nothing of the form stays pinned over them.
    for card in (page.locator(".job-card").nth(0), page.locator(".job-card").nth(1)):
        card.scroll_into_view_if_needed()
        box = card.bounding_box()
        assert box is not None
        inside = page.evaluate(
            "([x, y, id]) => document.getElementById(id).contains(document.elementFromPoint(x, y))",
            [box["x"] + box["width"] / 2, box["y"] + min(box["height"] / 2, 40), card.get_attribute("id")],
        )
        assert inside
    keep_screenshot(page, "create-phone-stacked")


def test_controls_show_a_focus_ring_of_two_pixels_or_more(laptop, live_server, person):
    page = laptop
    sign_in(page, live_server, person)
    page.get_by_label("Prompt", exact=True).fill("a paper crane")
    page.get_by_label("Seed").evaluate("el => el.closest('details').open = true")
    page.get_by_label("Seed").fill("7")
    for name in ("Advanced", "Reset advanced settings", "Generate"):
        control = (
            page.locator("details.advanced > summary")
            if name == "Advanced"
            else page.get_by_role("button", name=name)
        )
        control.focus()
        page.keyboard.press("Shift+Tab")
        page.keyboard.press("Tab")  # by keyboard, so :focus-visible applies
        expect(control).to_be_focused()
        width = control.evaluate("el => parseFloat(getComputedStyle(el).outlineWidth)")
        style = control.evaluate("el => getComputedStyle(el).outlineStyle")
        assert width >= 2 and style != "none", (name, width, style)


def test_words_typed_while_a_job_is_queued_are_kept_when_the_form_is_drawn_again(laptop, live_server, person):
    page = laptop
    sign_in(page, live_server, person)
    prompt = page.get_by_label("Prompt", exact=True)
    prompt.fill("a first harbour")
    page.get_by_label("Number of images").fill("1")
    held = hold_generate(page, live_server)
    page.get_by_role("button", name="Generate").click()
    expect(page.get_by_role("button", name="Generate")).to_be_disabled()
    prompt.fill("a second harbour, at dusk")  # the next idea, while the first is being queued
    held[0].continue_()

    expect(page.locator(".job-card")).to_have_count(1)
    expect(page.locator(".job-card")).to_contain_text("a first harbour")
    expect(page.get_by_role("button", name="Generate")).to_be_enabled()
    expect(prompt).to_have_value("a second harbour, at dusk")
    expect(page.get_by_label("Number of images")).to_have_value("1")  # untouched: as sent
