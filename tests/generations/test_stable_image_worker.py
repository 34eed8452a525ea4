"""An asynchronous Stable Image operation through a real Celery worker on Redis: submitted once, the job
goes back to the queue while the platform works (no worker slot held), and a later run fetches it."""

import time

import pytest

from generations.models import GenerationJob
from sandbox.models import AsyncResult
from tests.generations.test_stable_image_jobs import generate, use_tool

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def quick_polls(monkeypatch, settings):
    """The worker process asks for a result every 0.5 s (the platform's 10 s would only slow the test);
    the sandbox, in this process, keeps it in progress for 2 s."""
    monkeypatch.setenv("STABILITY_RESULT_POLL_SECONDS", "0.5")
    settings.SANDBOX_ASYNC_SECONDS = 2


def test_a_creative_upscale_waits_in_the_queue_not_in_a_worker(quick_polls, redis_worker, user):
    source = generate(user, "sd3.5-flash", prompt="a harbour at dawn")
    source = _finished(source).images.get()
    job = use_tool(user, source, "upscale-creative", prompt="crisp")
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
