"""Stable Image jobs through Studio over real HTTP to the sandbox: the job stores what the platform
returns, charges the price shown before it ran, and keeps its lineage."""

import io

import pytest
from PIL import Image

from accounts.services import team_balance
from generations import services, stable_image
from generations.models import ApiRequest, GenerationJob, read_file

pytestmark = pytest.mark.django_db(transaction=True)


def pixels(image) -> Image.Image:
    return Image.open(io.BytesIO(read_file(image.image)))


def generate(user, model_id: str = "stable-image-core", **values) -> GenerationJob:
    model = stable_image.MODELS[model_id]
    job = services.stable_image_job_create(
        team=user.current_team,
        user=user,
        operation_id=model.operation.id,
        engine_id=model.id,
        kind=GenerationJob.Kind.TEXT_TO_IMAGE,
        values={"prompt": "a red lighthouse on a cliff", **model.fixed, **values},
        images={},
        samples=values.pop("samples", 1) if "samples" in values else 1,
    )
    job.refresh_from_db()
    return job


def use_tool(user, image, slug: str, **values) -> GenerationJob:
    tool = stable_image.TOOLS[slug]
    job = services.stable_image_job_create(
        team=user.current_team,
        user=user,
        operation_id=tool.operation.id,
        engine_id=tool.operation.id,
        kind=tool.group,
        values=values,
        images={tool.source: read_file(image.image)},
        parent=image,
        relation=tool.group,
        prompt=image.job.prompt,
    )
    job.refresh_from_db()
    return job


def test_core_makes_the_aspect_ratios_size_and_charges_its_price(studio_engine, user):
    before = team_balance(user.current_team).credits
    job = generate(user, aspect_ratio="16:9")
    assert job.status == "succeeded", job.error_message
    image = job.images.get()
    assert (image.width, image.height) == (2016, 1152)  # 16:9 at Core's 1.5 scale
    assert job.credits_spent == job.credits_estimated == stable_image.MODELS["stable-image-core"].price
    assert team_balance(user.current_team).credits == pytest.approx(before - 3)


def test_remove_background_then_outpaint_keep_lineage_and_effects(studio_engine, user):
    source = generate(user).images.get()
    cut = use_tool(user, source, "remove-background")
    assert cut.status == "succeeded", cut.error_message
    cut_image = cut.images.get()
    assert cut_image.job.parent == source and cut.relation == "edit"
    alpha = pixels(cut_image).convert("RGBA").getchannel("A")
    assert alpha.getextrema()[0] == 0  # transparent pixels
    grown = use_tool(user, cut_image, "outpaint", left=128, down=64)
    assert grown.status == "succeeded", grown.error_message
    out = grown.images.get()
    assert (out.width, out.height) == (cut_image.width + 128, cut_image.height + 64)
    assert grown.credits_spent == 4


def test_creative_upscale_is_submitted_once_and_fetched_on_a_later_run(studio_engine, user, settings):
    settings.STABILITY_RESULT_POLL_SECONDS = 0.2
    settings.SANDBOX_ASYNC_SECONDS = 0.5
    source = generate(user, "sd3.5-flash", aspect_ratio="1:1").images.get()
    assert (source.width, source.height) == (1024, 1024)
    before = team_balance(user.current_team).credits
    job = use_tool(user, source, "upscale-creative", prompt="crisp detail")
    assert job.status == "succeeded", job.error_message
    image = job.images.get()
    assert (image.width, image.height) == (job.width, job.height) == (2880, 2880)  # 4K pixels, square
    requests = ApiRequest.objects.filter(job=job)
    assert requests.count() == 1 and len(requests.get().generation_id) == 64
    assert job.credits_spent == 60
    assert team_balance(user.current_team).credits == pytest.approx(before - 60)
