"""An asynchronous Stable Image operation through a real Celery worker on Redis: submitted once, the job
goes back to the queue while the platform works (no worker slot held), and a later run fetches it."""

import time

import pytest

from generations import services, stable_image
from generations.models import GenerationJob, read_file
from sandbox.models import AsyncResult

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def quick_polls(monkeypatch, settings):
    """The worker process asks for a result every 0.5 s (the platform's 10 s would only slow the test);
    the sandbox, in this process, keeps it in progress for 2 s."""
    monkeypatch.setenv("STABILITY_RESULT_POLL_SECONDS", "0.5")
    settings.SANDBOX_ASYNC_SECONDS = 2


def test_a_creative_upscale_waits_in_the_queue_not_in_a_worker(quick_polls, redis_worker, user):
    made = services.stable_image_job_create(
        team=user.current_team,
        user=user,
        operation_id="generate/sd3",
        engine_id="sd3.5-flash",
        kind=GenerationJob.Kind.TEXT_TO_IMAGE,
        values={"prompt": "a harbour at dawn", "model": "sd3.5-flash"},
        images={},
    )
    source = _finished(made).images.get()
    tool = stable_image.TOOLS["upscale-creative"]
    job = services.stable_image_job_create(
        team=user.current_team,
        user=user,
        operation_id=tool.operation.id,
        engine_id=tool.operation.id,
        kind=tool.group,
        values={"prompt": "crisp"},
        images={"image": read_file(source.image)},
        parent=source,
        relation=tool.group,
    )
    seen = []
    job = _finished(job, seen)
    assert job.status == "succeeded", job.error_message
    assert "queued" in seen[seen.index("running") :]  # it went back to the queue after it was submitted
    assert job.api_requests.count() == 1 and AsyncResult.objects.count() == 1
    assert job.images.get().width == job.width


def _finished(job: GenerationJob, seen: list[str] | None = None, seconds: float = 60) -> GenerationJob:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        job.refresh_from_db()
        if seen is not None and (not seen or seen[-1] != job.status):
            seen.append(job.status)
        if job.is_finished:
            return job
        time.sleep(0.05)
    raise AssertionError(f"job still {job.status} after {seconds} s")
