"""Stable Image jobs when things go wrong: a cancel or a stray message while the platform is still making
an asynchronous result, a v2beta lock-out, a seed at the edge of the range, and variations from pictures
whose engine is not a v1 one."""

import io
import json
import zipfile

import httpx
import pytest
from django.urls import reverse

from generations import running, services
from generations.models import ApiRequest, GenerationJob, read_file
from generations.stability import limiter
from generations.stability.client import _error_text
from generations.stability.types import UpscaleRequest
from tests.generations.test_stable_image_jobs import generate, use_tool

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def waiting_upscale(studio_engine, user, settings, monkeypatch):
    """A creative upscale submitted and back in the queue for its result (the worker's next run is held
    back by the test: it runs the job itself)."""
    settings.STABILITY_RESULT_POLL_SECONDS = 30
    source = generate(user, "sd3.5-flash").images.get()
    monkeypatch.setattr(services, "_job_enqueue", lambda job: None)
    job = use_tool(user, source, "upscale-creative", prompt="crisp")  # queued: the test runs it
    with pytest.raises(running.JobWaits):  # submitted, then back in the queue
        running.job_run(job_id=job.pk)
    job.refresh_from_db()
    assert job.status == "queued" and job.attempts == 1
    return job


def test_cancelling_while_the_result_is_made_counts_what_the_platform_charged(waiting_upscale):
    job = services.job_cancel(job=waiting_upscale)
    assert job.status == "cancelled"
    assert job.credits_spent == 60  # accepted, so charged: the member's allowance counts it
    record = job.api_requests.get()
    assert record.outcome == ApiRequest.Outcome.CHARGED and "accepted" in record.error


def test_a_stray_message_does_not_run_a_job_waiting_for_its_result_early(waiting_upscale):
    with pytest.raises(running.JobNotClaimed):
        running.job_run(job_id=waiting_upscale.pk)  # no resume_attempt: a late or repeated message
    waiting_upscale.refresh_from_db()
    assert waiting_upscale.status == "queued" and waiting_upscale.attempts == 1


def test_a_v2beta_lock_out_is_read_from_its_errors_list():
    body = {
        "id": "x",
        "name": "rate_limit_exceeded",
        "errors": [
            "You have exceeded the rate limit of 150 requests within a 10 second period, "
            "and have been timed out for 60 seconds."
        ],
    }
    response = httpx.Response(429, json=body)
    assert limiter.announced_lockout(_error_text(response), None) == 60


def test_a_seed_at_the_top_of_the_range_wraps_within_what_the_platform_takes(studio_engine, user):
    job = generate(user, prompt="two lighthouses", samples=2, seed=4_294_967_294)
    assert job.status == "succeeded", job.error_message
    assert sorted(job.images.values_list("seed", flat=True)) == [1, 4_294_967_294]


def test_variations_of_a_v1_upscale_of_a_core_picture_are_drawn_on_stable_image(studio_engine, user, client):
    core = generate(user, "sd3.5-flash").images.get()
    upscale = services.job_create(
        team=user.current_team,
        user=user,
        engine_id="esrgan-v1-x2plus",
        request=UpscaleRequest(image=read_file(core.image)),
        parent=core,
        relation=GenerationJob.Relation.UPSCALE,
        prompt=core.job.prompt,
    )
    upscale.refresh_from_db()
    bigger = upscale.images.get()
    client.force_login(user)
    response = client.post(reverse("generations:image-variations", args=[bigger.pk]))
    assert response.status_code == 302
    job = GenerationJob.objects.get(parent=bigger, relation="variation")
    assert job.engine_id == "sd3.5-flash" and job.status == "succeeded", job.error_message


def test_a_stable_image_default_model_does_not_reach_v1_variations(studio_engine, user, client, settings):
    settings.STABILITY_DEFAULT_ENGINE = "stable-image-core"
    drawn = services.job_create(
        team=user.current_team,
        user=user,
        engine_id="esrgan-v1-x2plus",
        request=UpscaleRequest(image=read_file(generate(user, "sd3.5-flash").images.get().image)),
        prompt="a harbour",
    )  # an upscale whose source is gone: its variations fall back to the default
    drawn.refresh_from_db()
    client.force_login(user)
    response = client.post(reverse("generations:image-variations", args=[drawn.images.get().pk]))
    assert response.status_code == 302
    job = GenerationJob.objects.get(relation="variation")
    assert job.engine_id == "stable-diffusion-xl-1024-v1-0"


# --- what the pages and the export say of a Stable Image picture ------------------------------------------


def test_the_image_page_lists_what_was_sent_not_v1_settings(studio_engine, user, client):
    image = generate(user, aspect_ratio="16:9", style_preset="anime").images.get()
    client.force_login(user)
    html = client.get(reverse("generations:image-detail", args=[image.pk])).content.decode()
    assert "<dt>Aspect ratio</dt><dd>16:9</dd>" in html and "<dt>Style</dt><dd>Anime</dd>" in html
    assert "<dt>Steps</dt>" not in html and "<dt>Sampler</dt>" not in html
    assert "<dt>Cost</dt><dd>3 credits" in html


def test_the_image_page_says_what_an_image_was_charged_then_not_todays_price(studio_engine, user, client):
    image = generate(user).images.get()
    ApiRequest.objects.filter(job=image.job).update(credits="2.5")  # charged at an earlier price
    client.force_login(user)
    html = client.get(reverse("generations:image-detail", args=[image.pk])).content.decode()
    assert "<dt>Cost</dt><dd>2.50 credits" in html


def test_the_export_manifest_carries_the_operation_and_its_options(studio_engine, user, client):
    image = generate(user, aspect_ratio="3:2").images.get()
    client.force_login(user)
    response = client.post(reverse("generations:library-download"), {"image": [str(image.pk)]})
    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    entry = json.loads(archive.read("manifest.json"))["images"][0]
    assert entry["operation"] == "generate/core" and entry["options"]["aspect_ratio"] == "3:2"
    assert entry["steps"] is None and entry["sampler"] is None
