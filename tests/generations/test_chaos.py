"""Faults a running studio meets, with real worker processes, a real broker and the sandbox over HTTP. Each
ends with every job terminal within the bound (two minutes after the fault clears), nothing lost, no
image stored twice, and every credit the sandbox took on record: charged, or possibly charged when no
answer was read. The reconciler runs every second here, as beat runs it every 30 s, with deadlines of a
few seconds instead of a minute or two."""

import os
import signal
import subprocess
import time
from unittest import mock

import pytest
from django.db.models import Count, Sum
from django.urls import reverse

from generations import running
from generations.models import MAX_ATTEMPTS, ApiRequest, GalleryImage, GenerationJob
from generations.tasks import job_run_task
from sandbox.models import ApiKey
from tests.conftest import running_worker
from tests.factories import GenerationJobFactory, UserFactory
from tests.jobs_factories import (
    PRICE,
    free_port,
    job_make,
    key_faults,
    recorded,
    redis_server,
    sandbox_credits,
    wait_terminal,
)

pytestmark = pytest.mark.django_db(transaction=True)

BOUND = 120  # seconds: every job terminal within two minutes of the fault clearing


@pytest.fixture
def short_deadlines(settings):
    settings.JOB_QUEUED_GRACE_SECONDS = 4
    settings.JOB_STALE_SECONDS = 4


def assert_nothing_lost_or_stored_twice(jobs: list[GenerationJob]) -> None:
    for job in jobs:
        job.refresh_from_db()
        assert job.status == "succeeded", (job.pk, job.status, job.error_message)
        assert sorted(job.images.values_list("index", flat=True)) == list(range(job.samples))
    duplicates = GalleryImage.objects.values("job", "index").annotate(n=Count("pk")).filter(n__gt=1)
    assert not duplicates.exists()
    assert not ApiRequest.objects.filter(job__in=jobs, outcome="pending").exists()


def sandbox_settled(key: str) -> None:
    """Let requests abandoned by a dead worker finish drawing (and charging) in the sandbox."""
    previous = None
    while (credits := sandbox_credits(key)) != previous:
        previous = credits
        time.sleep(1)


@pytest.mark.worker
def test_killing_worker_processes_mid_run_loses_nothing_and_records_the_possible_double_charges(
    prefork_worker, studio_engine, settings
):
    # The broker redelivers a killed child's task at once; the reconciler is the slower net (90 s in
    # production), for a whole worker gone with its messages. Here it waits 15 s, still longer than a
    # redelivery takes, so that each job is taken over once.
    settings.JOB_STALE_SECONDS = 15
    key_faults(studio_engine, latency_ms=1500)  # time to kill them mid-call
    user = UserFactory()
    before = sandbox_credits(studio_engine)
    jobs = [job_make(user, samples=2) for _ in range(4)]
    deadline = time.monotonic() + 30
    # Two jobs running, each asking for its two images at once: four requests in flight, all received by
    # the sandbox (it counts every request against the key).
    while not (
        ApiRequest.objects.filter(outcome="pending").count() == 4
        and ApiKey.objects.get(key=studio_engine).window_count >= 4
    ):
        assert time.monotonic() < deadline, "the jobs never started"
        time.sleep(0.05)
    children = subprocess.run(["pgrep", "-P", str(prefork_worker.pid)], capture_output=True, text=True).stdout
    for pid in children.split():
        os.kill(int(pid), signal.SIGKILL)
    key_faults(studio_engine, latency_ms=0)

    elapsed, _ = wait_terminal(jobs, BOUND)

    assert elapsed < BOUND
    assert_nothing_lost_or_stored_twice(jobs)
    lost = ApiRequest.objects.filter(job__in=jobs, outcome="unknown")
    assert lost.count() == 4 and all(r.credits == PRICE for r in lost)
    assert {r.job.attempts for r in lost} == {2}  # each taken over by a second attempt
    sandbox_settled(studio_engine)
    charged, possibly = recorded(jobs, "charged"), recorded(jobs, "unknown")
    # The sandbox drew the four abandoned requests too: it charged them, and they are on record.
    assert before - sandbox_credits(studio_engine) == charged + possibly == 12 * PRICE
    assert sum(job.credits_spent for job in jobs) == charged == 8 * PRICE


@pytest.mark.worker
def test_a_redis_restart_without_persistence_loses_no_job(
    studio_engine, sandbox_url, settings, tmp_path, monkeypatch, short_deadlines
):
    port = free_port()
    monkeypatch.setenv("REDIS_URL", f"redis://127.0.0.1:{port}/0")  # broker (and cache) of the worker
    user = UserFactory()
    key_faults(studio_engine, latency_ms=700)
    with (
        redis_server(port, tmp_path) as redis,
        running_worker("redis", "threads", sandbox_url=sandbox_url, settings=settings, folder=tmp_path),
    ):
        jobs = [job_make(user) for _ in range(10)]  # two run at a time; the rest wait in Redis
        deadline = time.monotonic() + 30
        while not GenerationJob.objects.filter(status="running").exists():
            assert time.monotonic() < deadline, "no job started"
            time.sleep(0.05)
        redis.restart()  # everything queued in it is gone
        elapsed, reconciled = wait_terminal(jobs, BOUND)

    assert elapsed < BOUND
    assert reconciled["requeued"] >= 1  # lost tasks, sent again
    assert_nothing_lost_or_stored_twice(jobs)
    assert not ApiRequest.objects.filter(job__in=jobs, outcome="unknown").exists()


def test_an_exception_injected_in_the_task_ends_the_job_with_a_message_and_keeps_its_images(
    studio_engine, authed_client, user
):
    before = sandbox_credits(studio_engine)
    store = running.image_store

    def disk_full_at_the_second_image(**kwargs):
        if kwargs["index"] == 1:
            raise OSError(28, "No space left on device")
        return store(**kwargs)

    job = GenerationJobFactory(created_by=user, samples=3)
    with mock.patch.object(running, "image_store", side_effect=disk_full_at_the_second_image):
        job_run_task.apply(args=[str(job.pk)], throw=False)

    job.refresh_from_db()
    assert job.status == "failed"
    # The three were asked for at once: the other two are kept.
    assert (
        job.error_message == f"2 of 3 images made and kept; the rest failed. {running.INTERNAL_ERROR_MESSAGE}"
    )
    assert sorted(job.images.values_list("index", flat=True)) == [0, 2]
    answered = job.api_requests.get(index=1)
    assert (answered.outcome, answered.error) == (
        "charged",
        "Answered, but the image could not be stored (OSError).",
    )
    assert job.credits_spent == before - sandbox_credits(studio_engine) == 3 * PRICE
    html = authed_client.get(reverse("generations:job-card", args=[job.pk]), HTTP_HX_REQUEST="true")
    assert html.status_code == 286 and "internal error" in html.content.decode()


@pytest.mark.worker
def test_jobs_out_of_attempts_or_retries_end_with_a_message(redis_worker, studio_engine, settings):
    settings.JOB_QUEUED_GRACE_SECONDS = 20  # longer than any retry's wait, as in production
    settings.JOB_STALE_SECONDS = 3
    key_faults(studio_engine, error_rate=1.0)
    user = UserFactory()
    queued_worn_out = GenerationJobFactory(created_by=user, attempts=MAX_ATTEMPTS)
    job_run_task.delay(str(queued_worn_out.pk))
    dead_worn_out = GenerationJobFactory(created_by=user, status="running", attempts=MAX_ATTEMPTS)
    failing = job_make(user)

    elapsed, reconciled = wait_terminal([queued_worn_out, dead_worn_out, failing], BOUND)

    assert elapsed < BOUND and reconciled["failed"] == 1
    for job in (queued_worn_out, dead_worn_out, failing):
        job.refresh_from_db()
        assert job.status == "failed"
    assert f"started this job {MAX_ATTEMPTS} times" in queued_worn_out.error_message
    assert f"started this job {MAX_ATTEMPTS} times" in dead_worn_out.error_message
    assert "Tried 4 times" in failing.error_message and failing.attempts == 4
    assert list(failing.api_requests.values_list("outcome", flat=True)) == ["not_charged"] * 4


@pytest.mark.worker
def test_a_fault_mix_over_a_hundred_jobs_ends_every_job_and_charges_nothing_unrecorded(
    redis_worker, studio_engine, settings
):
    settings.SANDBOX_HANG_SECONDS = 1
    settings.SANDBOX_RATE_LIMIT = 100_000  # the mix's own 429s, not the key's lock-out
    settings.JOB_QUEUED_GRACE_SECONDS = 60
    settings.JOB_STALE_SECONDS = 10
    key_faults(studio_engine, error_rate=0.2, throttle_rate=0.1, hang_rate=0.05)
    user = UserFactory()
    before = sandbox_credits(studio_engine)
    jobs = [job_make(user) for _ in range(100)]

    elapsed, _ = wait_terminal(jobs, BOUND, beat=2)

    assert elapsed < BOUND
    finished = GenerationJob.objects.filter(pk__in=[job.pk for job in jobs])
    succeeded, failed = finished.filter(status="succeeded"), finished.exclude(status="succeeded")
    assert succeeded.count() >= 90  # a job fails only if all four tries of it met a fault
    assert all("Tried 4 times" in message for message in failed.values_list("error_message", flat=True))
    assert GalleryImage.objects.filter(job__in=jobs).count() == succeeded.count()  # one each, none twice
    requests = ApiRequest.objects.filter(job__in=jobs)
    assert set(requests.values_list("outcome", flat=True)) == {"charged", "not_charged"}
    assert set(requests.filter(outcome="not_charged").values_list("status_code", flat=True)) == {500, 429}
    charged = recorded(jobs, "charged")
    assert before - sandbox_credits(studio_engine) == charged == succeeded.count() * PRICE
    assert finished.aggregate(total=Sum("credits_spent"))["total"] == charged
