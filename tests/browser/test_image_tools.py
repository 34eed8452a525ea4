"""The image tools as a person uses them in Chromium: an upload previewed and generated from, a mask painted
with the pointer, an upscale started from the gallery, and Remix filling the form."""

import numpy as np
import pytest
from django.urls import reverse
from playwright.sync_api import Page, expect

from generations import services
from generations.models import GalleryImage, GenerationJob
from generations.stability.contract import Prompt
from generations.stability.types import TextToImageRequest
from tests.factories import UserFactory
from tests.generations.test_worker import wait_until_finished
from tests.images import decode, png

pytestmark = [pytest.mark.browser, pytest.mark.worker, pytest.mark.django_db(transaction=True)]

PASSWORD = "a-long-passphrase-42"


@pytest.fixture
def member(studio_engine):
    return UserFactory()


def sign_in(page: Page, live_server, user) -> None:
    page.goto(f"{live_server.url}{reverse('accounts:login')}")
    page.get_by_label("Username").fill(user.username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Create")).to_be_visible()


def newest_job_succeeds(page: Page) -> GenerationJob:
    card = page.locator(".job-card").first
    expect(card.get_by_role("status")).to_have_text("Succeeded", timeout=60_000)
    return GenerationJob.objects.get(pk=card.get_attribute("id").removeprefix("job-"))


def pixels(data: bytes) -> np.ndarray:
    return np.asarray(decode(data).convert("RGB"), dtype=np.int16)


def made_image(user, **options) -> GalleryImage:
    request = TextToImageRequest(text_prompts=(Prompt(options.pop("prompt", "a quiet bay")),), **options)
    job = services.job_create(
        team=user.current_team, user=user, engine_id="stable-diffusion-v1-6", request=request
    )
    job = wait_until_finished(job)
    assert job.status == "succeeded", job.error_message
    return job.images.get()


def test_an_uploaded_image_is_previewed_and_generated_from(page, live_server, member, redis_worker, tmp_path):
    photo = tmp_path / "photo.png"
    photo.write_bytes(png(768, 512))
    sign_in(page, live_server, member)
    page.get_by_label("Prompt", exact=True).fill("the same scene in autumn")
    page.get_by_label("Model", exact=True).select_option("stable-diffusion-v1-6")
    page.get_by_label("Init image").set_input_files(photo)

    preview = page.get_by_role("img", name="Init image")
    expect(preview).to_be_visible()
    assert preview.evaluate("img => img.naturalWidth") == 768  # the stored upload, loaded
    expect(page.locator("#size-field")).to_contain_text("3:2 landscape, 768 × 512")
    page.get_by_label("Number of images").fill("1")
    page.locator("#id_image_strength").fill("0.7")
    expect(page.locator("output[data-value-of=id_image_strength]")).to_have_text("0.7")
    page.get_by_role("button", name="Generate").click()

    job = newest_job_succeeds(page)
    assert (job.kind, job.image_strength, job.width, job.height) == ("image-to-image", 0.7, 768, 512)
    assert job.upload is not None and job.upload.created_by == member


def test_a_mask_painted_with_the_pointer_changes_only_that_part(
    page, live_server, member, redis_worker, tmp_path
):
    photo = tmp_path / "photo.png"
    photo.write_bytes(png(512, 512))
    sign_in(page, live_server, member)
    page.get_by_label("Prompt", exact=True).fill("a red door")
    page.get_by_label("Model", exact=True).select_option("stable-diffusion-v1-6")
    page.get_by_label("Number of images").fill("1")
    page.get_by_label("Init image").set_input_files(photo)
    canvas = page.locator(".mask-canvas")
    expect(canvas).to_be_visible()
    canvas.scroll_into_view_if_needed()  # the page scrolls as a whole: the canvas may be below the fold

    box = canvas.bounding_box()
    scale = box["width"] / 512
    page.mouse.move(box["x"] + 100 * scale, box["y"] + 100 * scale)
    page.mouse.down()
    for step in range(0, 120, 10):  # a stroke across the top-left corner
        page.mouse.move(box["x"] + (100 + step) * scale, box["y"] + (100 + step) * scale)
    page.mouse.up()
    expect(page.get_by_label("Mask", exact=True)).to_have_value("MASK_IMAGE_WHITE")
    page.get_by_role("button", name="Generate").click()

    job = newest_job_succeeds(page)
    sent = np.asarray(decode(job.mask_image.open("rb").read()))
    painted = sent > 0
    assert job.kind == "masking" and 1_000 < painted.sum() < 512 * 512 / 4
    ys, xs = np.nonzero(painted)
    assert xs.min() > 40 and xs.max() < 300 and ys.min() > 40 and ys.max() < 300  # where the pointer went
    result = pixels(job.images.get().image.open("rb").read())
    original = pixels(job.init_image.open("rb").read())
    assert (result[~painted] == original[~painted]).all()
    assert np.abs(result[sent == 255] - original[sent == 255]).mean() > 10


def test_an_image_is_upscaled_from_the_gallery(page, live_server, member, redis_worker):
    source = made_image(member, width=512, height=512)
    sign_in(page, live_server, member)
    page.get_by_role("link", name="Gallery").click()
    page.locator(".gallery a").first.click()
    lightbox = page.locator("dialog.lightbox")
    expect(lightbox).to_be_visible()
    lightbox.get_by_role("link", name="Open details").click()
    page.get_by_label("Real-ESRGAN ×2").check()
    expect(page.get_by_text("→ 1024 × 1024")).to_be_visible()
    page.get_by_role("button", name="Upscale", exact=True).click()

    job = newest_job_succeeds(page)
    upscaled = job.images.get()
    assert (job.kind, job.parent, upscaled.width, upscaled.height) == ("upscale", source, 1024, 1024)
    page.locator(".job-card").first.locator(".thumbs a").click()
    expect(page.locator(".trail")).to_contain_text("The first prompt: a quiet bay")


def test_remix_fills_the_form_with_the_images_settings(page, live_server, member):
    image = made_image(member, prompt="a paper crane", width=640, height=512, steps=42, cfg_scale=12, seed=7)
    sign_in(page, live_server, member)
    page.goto(f"{live_server.url}{reverse('generations:image-detail', args=[image.pk])}")
    page.get_by_role("link", name="Remix").click()

    expect(page.get_by_label("Prompt", exact=True)).to_have_value("a paper crane")
    expect(page.get_by_label("Model", exact=True)).to_have_value("stable-diffusion-v1-6")
    expect(page.get_by_label("Size")).to_have_value("640x512")
    expect(page.get_by_label("Steps")).to_have_value("42")
    expect(page.get_by_label("CFG scale")).to_have_value("12.0")
    expect(page.get_by_label("Seed")).to_have_value("")  # a new seed
