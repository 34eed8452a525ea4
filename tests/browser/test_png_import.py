"""Metadata as a person meets it in Chromium: a PNG dropped on the prompt fills the create form (a PNG
without parameters is refused at its field and the form is left as it was), and the image page's Copy
button puts the parameters on the clipboard."""

import base64

import pytest
from django.urls import reverse
from playwright.sync_api import Page, expect

from generations import png_text
from tests.browser.test_image_tools import sign_in
from tests.factories import GalleryImageFactory, UserFactory
from tests.images import png

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

A1111_TEXT = (
    "a red fox in snow, golden light\n"
    "Negative prompt: lowres, watermark\n"
    "Steps: 28, Sampler: Euler a, CFG scale: 6.5, Seed: 3318492401, Size: 1152x896, "
    "Model: stable-diffusion-xl-1024-v1-0"
)


def drop_file(page: Page, selector: str, data: bytes, name: str) -> None:
    """Drag a file from the desktop onto the element, as the browser delivers it: dragover, then drop."""
    page.evaluate(
        """([selector, b64, name]) => {
            const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
            const transfer = new DataTransfer();
            transfer.items.add(new File([bytes], name, { type: "image/png" }));
            const target = document.querySelector(selector);
            for (const type of ["dragenter", "dragover", "drop"]) {
              const init = { bubbles: true, cancelable: true, dataTransfer: transfer };
              target.dispatchEvent(new DragEvent(type, init));
            }
        }""",
        [selector, base64.b64encode(data).decode(), name],
    )


def test_a_png_dropped_on_the_prompt_fills_the_form_and_a_bare_one_changes_nothing(
    page, live_server, studio_engine
):
    user = UserFactory()
    sign_in(page, live_server, user)
    prompt = page.get_by_label("Prompt", exact=True)
    prompt.fill("my own words")

    drop_file(page, "#id_prompt", png(64, 64), "screenshot.png")

    expect(page.locator("#import-field [role=alert]")).to_contain_text(
        "This PNG carries no generation parameters"
    )
    expect(prompt).to_have_value("my own words")

    fox = png_text.with_texts(png(64, 64), {"parameters": png_text.text_chunk("parameters", A1111_TEXT)})
    drop_file(page, "#id_prompt", fox, "fox.png")

    expect(prompt).to_have_value("a red fox in snow, golden light")
    expect(page.get_by_label("Negative prompt")).to_have_value("lowres, watermark")
    expect(page.get_by_label("Model", exact=True)).to_have_value("stable-diffusion-xl-1024-v1-0")
    expect(page.get_by_label("Size")).to_have_value("1152x896")
    expect(page.get_by_label("Seed")).to_have_value("3318492401")
    expect(page.get_by_label("Sampler")).to_have_value("K_EULER_ANCESTRAL")
    expect(page.locator("#import-field [role=status]")).to_contain_text(
        "Filled from the PNG's A1111 parameters"
    )


def test_the_copy_button_puts_the_images_parameters_on_the_clipboard(page, live_server, studio_engine):
    user = UserFactory()
    image = GalleryImageFactory(job__created_by=user, job__prompt="a paper crane", seed=31337)
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    sign_in(page, live_server, user)
    page.goto(f"{live_server.url}{reverse('generations:image-detail', args=[image.pk])}")

    page.get_by_role("button", name="Copy parameters").click()

    expect(page.get_by_role("button", name="Copied")).to_be_visible()
    copied = page.evaluate("navigator.clipboard.readText()")
    assert copied.startswith("a paper crane\nSteps: 30, Sampler: Automatic, CFG scale: 7, Seed: 31337")
