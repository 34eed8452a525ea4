"""The Stable Image tools' pages in Chromium: the outpaint preview follows the sides a person types, a
background removed shows over a checkerboard, and the pages pass axe-core."""

import pytest
from django.urls import reverse
from playwright.sync_api import Page, expect

from generations import services
from generations.models import read_file
from generations.stable_image import TOOLS
from tests.browser.a11y import axe_violations, format_violations
from tests.factories import UserFactory
from tests.generations.test_image_tools_stable import SIZE, gallery_image, scene

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
PASSWORD = "a-long-passphrase-42"


def sign_in(page: Page, live_server, user) -> None:
    page.goto(f"{live_server.url}{reverse('accounts:login')}")
    page.get_by_label("Username").fill(user.username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(lambda url: "/login" not in url)


def width_of(page: Page, selector: str) -> float:
    box = page.locator(selector).bounding_box()
    assert box is not None, selector
    return box["width"]


def test_the_outpaint_preview_grows_as_the_sides_are_typed(page, live_server, settings):
    settings.STABILITY_USES_SANDBOX = True
    ada = UserFactory()
    source = gallery_image(ada, scene())
    sign_in(page, live_server, ada)
    page.goto(f"{live_server.url}{reverse('generations:image-tool', args=[source.pk, 'outpaint'])}")
    expect(page.get_by_role("heading", level=1)).to_have_text("Outpaint")
    output = page.locator("[data-output-size]")
    expect(output).to_have_text(f"{SIZE[0]} × {SIZE[1]}")
    before = width_of(page, ".outpaint-frame") / width_of(page, ".outpaint-source")
    assert before == pytest.approx(1, abs=0.05)

    page.get_by_label("Left").fill("192")
    page.get_by_label("Down").fill("64")
    expect(output).to_have_text(f"{SIZE[0] + 192} × {SIZE[1] + 64}")
    after = width_of(page, ".outpaint-frame") / width_of(page, ".outpaint-source")
    assert after == pytest.approx((SIZE[0] + 192) / SIZE[0], abs=0.05)  # the canvas is half as wide again
    assert page.locator(".outpaint-frame").get_attribute("data-canvas") == f"{SIZE[0] + 192}x{SIZE[1] + 64}"
    price = float(TOOLS["outpaint"].operation.price())
    expect(page.locator(".tool-price")).to_have_text(f"{price:g} credits")
    expect(page.locator(".sandbox-preview")).to_contain_text("procedural preview")

    violations = axe_violations(page)
    assert violations == [], format_violations(violations)


def test_a_removed_background_shows_over_a_checkerboard_and_the_pages_pass_axe(
    page, live_server, studio_engine, settings
):
    settings.STABILITY_USES_SANDBOX = True
    ada = UserFactory()
    source = gallery_image(ada, scene())
    tool = TOOLS["remove-background"]
    job = services.stable_image_job_create(
        team=ada.current_team,
        user=ada,
        operation_id=tool.operation.id,
        engine_id=tool.operation.id,
        kind=tool.group,
        values={},
        images={tool.source: read_file(source.image)},
        parent=source,
        relation=tool.group,
        prompt=source.job.prompt,
    )
    job.refresh_from_db()
    assert job.status == "succeeded", job.error_message
    result = job.images.get()

    sign_in(page, live_server, ada)
    page.goto(f"{live_server.url}{result.url}")
    figure = page.locator("figure.detail-image")
    expect(figure).to_have_class("detail-image checkerboard")
    backdrop = page.locator(".detail-image img").evaluate("img => getComputedStyle(img).backgroundImage")
    assert "conic-gradient" in backdrop
    expect(page.locator("#tools [data-tool]")).to_have_count(len(TOOLS))
    expect(page.locator("#tools")).to_contain_text("procedural previews drawn by the local sandbox")
    violations = axe_violations(page)
    assert violations == [], format_violations(violations)

    page.locator('#tools a[data-tool="inpaint"]').click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Inpaint")
    expect(page.get_by_role("toolbar", name="Mask painting tools")).to_be_visible()
    violations = axe_violations(page)
    assert violations == [], format_violations(violations)

    # The style guide's result follows the aspect ratio chosen, before anything is sent.
    page.goto(f"{live_server.url}{reverse('generations:image-tool', args=[result.pk, 'control-style'])}")
    expect(page.locator("[data-output-size]")).to_have_text("1024 × 1024")
    page.get_by_label("Aspect ratio").select_option("16:9")
    expect(page.locator("[data-output-size]")).to_have_text("1344 × 768")
