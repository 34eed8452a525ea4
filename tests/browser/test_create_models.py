"""Choosing a Stable Image model on the create page, in Chromium: the form re-draws for the model (aspect
ratio, no v1 fields), the estimate follows the number of images, Generate makes the picture, and the page
passes axe on either kind of model."""

import pytest
from playwright.sync_api import expect

from tests.browser.a11y import axe_violations, format_violations
from tests.browser.test_image_tools import newest_job_succeeds, sign_in
from tests.factories import UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def no_axe_violations(page) -> None:
    violations = axe_violations(page)
    assert violations == [], format_violations(violations)


def test_choosing_core_shows_its_fields_prices_them_and_generates(page, live_server, studio_engine):
    sign_in(page, live_server, UserFactory())
    expect(page.get_by_label("Size")).to_be_visible()  # the sandbox's default: SDXL, a v1 engine
    no_axe_violations(page)
    page.get_by_label("Prompt", exact=True).fill("a lighthouse at dawn")

    model = page.get_by_label("Model", exact=True)
    model.focus()
    model.select_option("stable-image-core")
    ratio = page.get_by_label("Aspect ratio")
    expect(ratio).to_have_value("1:1")
    expect(page.get_by_label("Steps")).to_have_count(0)
    expect(page.get_by_label("Size")).to_have_count(0)
    expect(page.get_by_label("Prompt", exact=True)).to_have_value("a lighthouse at dawn")  # kept
    expect(model).to_be_focused()  # re-drawn, focus stays put
    no_axe_violations(page)

    estimate = page.locator("#estimate")
    expect(page.get_by_label("Number of images")).to_have_value("1")  # v1's four was a default, not typed
    expect(estimate).to_contain_text("≈ 3 credits (1 × 3)")
    page.get_by_label("Number of images").fill("2")
    expect(estimate).to_contain_text("≈ 6 credits (2 × 3)")
    ratio.select_option("16:9")

    page.get_by_role("button", name="Generate").click()
    job = newest_job_succeeds(page)
    card = page.locator(f"#job-{job.pk}")
    expect(card.locator("img")).to_have_count(2)
    assert (job.engine_id, job.width, job.height, job.credits_spent) == ("stable-image-core", 2016, 1152, 6)
