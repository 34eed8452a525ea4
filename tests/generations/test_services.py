from decimal import Decimal

import pytest
from PIL import Image

from accounts.services import team_balance
from generations import services
from generations.models import GalleryImage, GenerationJob
from generations.stability.contract import Prompt, price_per_image
from generations.stability.types import TextToImageRequest, TransientError
from tests.factories import GenerationJobFactory, UserFactory
from tests.images import encode, picture_bytes

pytestmark = pytest.mark.django_db(transaction=True)


def request(samples: int = 2, text: str = "a red fox in snow") -> TextToImageRequest:
    return TextToImageRequest(text_prompts=(Prompt(text),), width=512, height=512, samples=samples, steps=30)


def test_a_job_runs_against_the_api_and_stores_every_artifact(studio_engine):
    user = UserFactory()
    before = team_balance(user.current_team).credits
    job = services.job_create(
        team=user.current_team, user=user, engine_id="stable-diffusion-v1-6", request=request(3)
    )
    job.refresh_from_db()
    images = list(job.images.order_by("index"))
    assert job.status == "succeeded"
    assert [i.index for i in images] == [0, 1, 2]
    for image in images:
        with Image.open(image.image.open("rb")) as original:
            assert original.format == "PNG" and original.size == (512, 512)
        with Image.open(image.thumbnail.open("rb")) as thumb:
            assert thumb.format == "WEBP" and max(thumb.size) <= 384
        assert image.finish_reason == "SUCCESS" and image.seed > 0
    price = price_per_image("stable-diffusion-v1-6", steps=30, width=512, height=512)
    after = team_balance(user.current_team).credits
    assert Decimal(str(before)) - Decimal(str(after)) == pytest.approx(price * 3)


def test_a_job_run_twice_stores_its_images_once(studio_engine):
    user = UserFactory()
    job = GenerationJobFactory(created_by=user, samples=2)
    services.job_run(job_id=job.pk)
    GenerationJob.objects.filter(pk=job.pk).update(status="running")  # as if the worker died before acking
    services.job_run(job_id=job.pk, recovering=True)  # the broker redelivers the task
    assert GalleryImage.objects.filter(job=job).count() == 2
    assert job.api_requests.count() == 2  # the second run sent nothing


def test_a_finished_job_is_not_claimed_again(studio_engine):
    job = GenerationJobFactory()
    services.job_run(job_id=job.pk)
    with pytest.raises(services.JobNotClaimed):
        services.job_claim(job_id=job.pk)


def test_a_refused_prompt_fails_the_job_with_the_apis_message_and_charges_nothing(studio_engine):
    user = UserFactory()
    before = team_balance(user.current_team).credits
    job = GenerationJobFactory(created_by=user, prompt="contraband goods")
    services.job_run(job_id=job.pk)
    job.refresh_from_db()
    assert job.status == "failed"
    assert "filtered words" in job.error_message
    assert not job.images.exists()
    assert team_balance(user.current_team).credits == before


def test_a_filtered_artifact_is_kept_and_marked(studio_engine):
    job = GenerationJobFactory(prompt="a lurid poster")
    services.job_run(job_id=job.pk)
    image = GalleryImage.objects.get(job=job)
    assert image.is_filtered


def test_an_unreachable_engine_is_a_transient_error_for_the_task_to_retry(settings):
    settings.STABILITY_API_HOST = "http://127.0.0.1:9"  # discard port: connection refused
    settings.STABILITY_API_KEY = "sk-anything"
    job = GenerationJobFactory()
    with pytest.raises(TransientError):
        services.job_run(job_id=job.pk)
    job.refresh_from_db()
    assert job.status == "queued" and job.attempts == 1  # back in the queue, for the task's retry
    # Connection refused: the request never left, so it cannot have been charged.
    assert list(job.api_requests.values_list("outcome", flat=True)) == ["not_charged"]


def test_a_missing_key_fails_the_job_with_advice(settings):
    settings.STABILITY_API_KEY = ""
    job = GenerationJobFactory()
    services.job_run(job_id=job.pk)
    job.refresh_from_db()
    assert job.status == "failed"
    assert "STABILITY_API_KEY" in job.error_message


def test_image_store_keeps_the_original_picture_and_says_how_it_was_made(studio_engine):
    from generations.png_text import texts
    from generations.stability.types import Artifact

    job = GenerationJobFactory()
    original = encode(Image.new("RGB", (64, 64), "purple"))
    image = services.image_store(job=job, index=0, artifact=Artifact(original, 7, "SUCCESS"))
    stored = image.image.open("rb").read()
    assert picture_bytes(stored) == picture_bytes(original)  # not re-encoded
    assert {"parameters", "studio"} <= set(texts(stored))
    assert image.image.name.endswith(f"{image.pk}.png")


def test_a_job_the_broker_cannot_take_fails_visibly_instead_of_waiting_forever(studio_engine):
    from studio.celery import app

    user = UserFactory()
    saved = (app.conf.broker_url, app.conf.task_always_eager)
    app.conf.broker_url, app.conf.task_always_eager = "redis://127.0.0.1:9/0", False  # nothing listens there
    app._pool = app.amqp._producer_pool = None
    try:
        job = services.job_create(
            team=user.current_team, user=user, engine_id="stable-diffusion-v1-6", request=request(1)
        )
    finally:
        app.conf.broker_url, app.conf.task_always_eager = saved
        app._pool = app.amqp._producer_pool = None
    job.refresh_from_db()
    assert job.status == "failed"
    assert "queue is unreachable" in job.error_message
