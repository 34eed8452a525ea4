"""Stable Image jobs through Studio over real HTTP to the sandbox: the job stores what the platform
returns, charges the price shown before it ran, and keeps its lineage."""

import io
import threading
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone
from PIL import Image

from accounts.services import team_balance
from generations import metadata, queueing, services, stable_image
from generations.models import ApiRequest, GenerationJob, read_file
from generations.stability.types import PermanentError
from generations.stability.v2beta.client import StableImageClient
from sandbox.models import AsyncResult

pytestmark = pytest.mark.django_db(transaction=True)


def pixels(image) -> Image.Image:
    return Image.open(io.BytesIO(read_file(image.image)))


def generate(
    user, model_id: str = "stable-image-core", *, samples: int = 1, seed: int = 0, **values
) -> GenerationJob:
    """A text-to-image job on a Stable Image model, run (tasks run in the test's process)."""
    model = stable_image.MODELS[model_id]
    job = services.stable_image_job_create(
        team=user.current_team,
        user=user,
        operation_id=model.operation.id,
        engine_id=model.id,
        kind=GenerationJob.Kind.TEXT_TO_IMAGE,
        values={"prompt": "a red lighthouse on a cliff", **model.fixed, **values},
        images={},
        samples=samples,
        seed=seed,
    )
    job.refresh_from_db()
    return job


def use_tool(user, image, slug: str, **values) -> GenerationJob:
    """A tool's job on a gallery image, as its page starts it."""
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
    assert AsyncResult.objects.count() == 1  # submitted once, however often its result was asked for
    assert job.credits_spent == 60
    assert team_balance(user.current_team).credits == pytest.approx(before - 60)


def test_a_rerun_sends_the_same_request_and_seed_and_draws_the_same_picture(studio_engine, user):
    first = generate(user, "sd3.5-medium", aspect_ratio="3:2", negative_prompt="fog").images.get()
    again = services.image_rerun(image=first, user=user)
    again.refresh_from_db()
    assert again.status == "succeeded", again.error_message
    second = again.images.get()
    assert again.relation == "rerun" and again.parent == first
    assert second.seed == first.seed and again.options == first.job.options
    assert pixels(second).tobytes() == pixels(first).tobytes()
    assert again.credits_spent == Decimal("3.5")


def test_the_png_says_which_stable_image_operation_made_it_and_imports_back(studio_engine, user):
    image = generate(user, negative_prompt="blur", style_preset="anime").images.get()
    document = metadata.metadata_of(image).studio
    assert document["endpoint"] == "POST /v2beta/stable-image/generate/core"
    assert document["request"]["style_preset"] == "anime"
    parsed = metadata.parameters_from_png(read_file(image.image))
    assert (parsed.prompt, parsed.negative_prompt, parsed.seed) == (
        "a red lighthouse on a cliff",
        "blur",
        image.seed,
    )


def test_a_refused_prompt_fails_the_job_with_the_platforms_words_and_costs_nothing(studio_engine, user):
    before = team_balance(user.current_team).credits
    job = generate(user, prompt="contraband lighthouse")
    assert job.status == "failed"
    assert "moderation" in job.error_message
    assert job.credits_spent == 0 and not job.images.exists()
    assert team_balance(user.current_team).credits == before


def test_a_filtered_image_is_kept_blurred_and_not_charged(studio_engine, user):
    job = generate(user, prompt="a lurid lighthouse")
    assert job.status == "succeeded", job.error_message
    assert job.images.get().finish_reason == "CONTENT_FILTERED"
    assert job.credits_spent == 0


def test_several_images_are_several_requests_with_their_own_seeds(studio_engine, user):
    job = generate(user, prompt="three lighthouses", samples=3, seed=40)
    assert job.status == "succeeded", job.error_message
    assert sorted(job.images.values_list("seed", flat=True)) == [40, 41, 42]
    assert job.api_requests.count() == 3 and job.credits_spent == 9 == job.credits_estimated


def test_a_partly_successful_job_keeps_what_succeeded_and_says_what_failed(studio_engine, user, monkeypatch):
    real_run = StableImageClient.run
    calls = []

    arriving = threading.Lock()

    def second_refused(self, request, **kwargs):  # the second request to arrive is refused
        with arriving:
            calls.append(request.seed)
            refused = len(calls) == 2
        if refused:
            raise PermanentError("Your balance is too low.", status=402, name="payment_required")
        return real_run(self, request, **kwargs)

    monkeypatch.setattr(StableImageClient, "run", second_refused)
    job = generate(user, prompt="three lighthouses", samples=3)  # asked for at once
    assert job.status == "failed"
    assert job.error_message.startswith("2 of 3 images made and kept; the rest failed.")
    assert "balance is too low" in job.error_message
    assert job.images.count() == 2 and job.credits_spent == 6


def test_variations_of_a_core_picture_are_image_to_image_on_sd35_large(studio_engine, user):
    source = generate(user, aspect_ratio="1:1", negative_prompt="fog").images.get()
    job = services.image_variations(image=source, user=user, default_engine="stable-diffusion-xl-1024-v1-0")
    job.refresh_from_db()
    assert job.status == "succeeded", job.error_message
    assert (job.engine_id, job.relation, job.parent) == ("sd3.5-large", "variation", source)
    assert job.options["mode"] == "image-to-image" and job.options["negative_prompt"] == "fog"
    assert job.images.count() == 4 and len(set(job.images.values_list("seed", flat=True))) == 4
    assert job.credits_spent == 4 * Decimal("6.5")


def test_variations_of_an_ultra_picture_stay_on_ultra(studio_engine, user):
    source = generate(user, "stable-image-ultra").images.get()
    job = services.image_variations(image=source, user=user, default_engine="stable-diffusion-xl-1024-v1-0")
    job.refresh_from_db()
    assert job.status == "succeeded", job.error_message
    assert job.engine_id == "stable-image-ultra" and job.credits_spent == 4 * 8


def test_a_job_waiting_for_its_result_says_so_not_that_the_key_is_at_its_limit(db, user):
    job = GenerationJob.objects.create(
        team=user.current_team,
        created_by=user,
        operation="upscale/creative",
        engine_id="upscale/creative",
        kind=GenerationJob.Kind.UPSCALE,
        prompt="crisp",
        text_prompts=[{"text": "crisp", "weight": 1.0}],
        width=2048,
        height=2048,
        init_image="inputs/x.png",
        progress_at=timezone.now() + timedelta(seconds=9),
    )
    ApiRequest.objects.create(job=job, index=0, attempt=1, generation_id="a" * 64)
    assert queueing.waiting(job).reason.startswith("Stability is still making it")
