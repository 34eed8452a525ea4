import os
import signal
import subprocess
import time

import pytest

from accounts.services import team_balance
from generations import services
from generations.models import GenerationJob
from generations.stability.contract import Prompt, price_per_image
from generations.stability.types import TextToImageRequest
from sandbox.models import ApiKey
from tests.factories import UserFactory

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def wait_until_finished(job: GenerationJob, seconds: float = 60) -> GenerationJob:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        job.refresh_from_db()
        if job.is_finished:
            return job
        time.sleep(0.25)
    raise AssertionError(f"job still {job.status} after {seconds} s")


def test_a_real_worker_runs_a_job_end_to_end_against_the_sandbox(celery_worker_process):
    user = UserFactory()
    before = team_balance(user.current_team).credits
    request = TextToImageRequest(
        text_prompts=(Prompt("a castle in the clouds"),), width=1024, height=1024, samples=2
    )
    job = services.job_create(
        team=user.current_team, user=user, engine_id="stable-diffusion-xl-1024-v1-0", request=request
    )
    assert job.status == "queued"
    job = wait_until_finished(job)
    assert job.status == "succeeded", job.error_message
    assert job.attempts == 1
    assert [(i.width, i.height) for i in job.images.order_by("index")] == [(1024, 1024), (1024, 1024)]
    assert all(i.image.storage.exists(i.image.name) for i in job.images.all())
    price = price_per_image("stable-diffusion-xl-1024-v1-0", steps=30)
    assert team_balance(user.current_team).credits == pytest.approx(before - float(price) * 2)


def test_several_jobs_run_at_once_on_the_worker(celery_worker_process):
    user = UserFactory()
    request = TextToImageRequest(text_prompts=(Prompt("tide pools"),), width=512, height=512, samples=1)
    jobs = [
        services.job_create(
            team=user.current_team, user=user, engine_id="stable-diffusion-v1-6", request=request
        )
        for _ in range(3)
    ]
    assert [wait_until_finished(job).status for job in jobs] == ["succeeded"] * 3


def test_a_job_survives_its_worker_process_dying_mid_run(prefork_worker, sandbox_key):
    """The pool child running the job is killed; the job goes back to the queue, another child runs it,
    and its images are stored once."""
    ApiKey.objects.filter(key=sandbox_key).update(latency_ms=4000)  # time to kill it mid-call
    user = UserFactory()
    request = TextToImageRequest(text_prompts=(Prompt("a lighthouse"),), width=512, height=512, samples=2)
    job = services.job_create(
        team=user.current_team, user=user, engine_id="stable-diffusion-v1-6", request=request
    )
    deadline = time.monotonic() + 30
    while GenerationJob.objects.get(pk=job.pk).status != "running":
        assert time.monotonic() < deadline, "the job never started"
        time.sleep(0.1)
    children = subprocess.run(["pgrep", "-P", str(prefork_worker.pid)], capture_output=True, text=True).stdout
    for pid in children.split():
        os.kill(int(pid), signal.SIGKILL)
    ApiKey.objects.filter(key=sandbox_key).update(latency_ms=0)
    job = wait_until_finished(job, seconds=90)
    assert job.status == "succeeded", job.error_message
    assert job.attempts == 2
    assert job.images.count() == 2
