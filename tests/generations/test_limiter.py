"""The Stability key's rate limit, shared by real worker processes (a prefork worker's two children) through
Redis, against the sandbox's limit over real HTTP. The limits are lowered (the sandbox 20 per 10 s, Studio
18) so that a few dozen jobs cross them in seconds."""

import os
from datetime import timedelta

import pytest
from django.utils import timezone

from generations.models import ApiRequest, GenerationJob
from sandbox.models import ApiKey
from tests.conftest import running_worker
from tests.factories import UserFactory
from tests.jobs_factories import job_make, wait_terminal

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]

STORAGE = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/1"


@pytest.fixture
def low_limits(settings, monkeypatch):
    """The sandbox (in this process) allows 20 requests per 10 s; the workers (started after this, reading
    the environment) keep to 18, counted in Redis."""
    settings.SANDBOX_RATE_LIMIT = 20
    settings.SANDBOX_RATE_LOCKOUT_SECONDS = 3
    monkeypatch.setenv("STABILITY_RATE_LIMIT", "18")
    monkeypatch.setenv("STABILITY_RATE_STORAGE", STORAGE)


def test_jobs_from_several_worker_processes_keep_under_the_rate_limit_and_all_succeed(
    low_limits, studio_engine, sandbox_url, settings, tmp_path
):
    user = UserFactory()
    with running_worker("redis", "prefork", sandbox_url=sandbox_url, settings=settings, folder=tmp_path):
        jobs = [job_make(user) for _ in range(30)]  # 30 requests: past 20 within 10 s, unless they wait
        elapsed, _ = wait_terminal(jobs, 50, beat=None)

    finished = GenerationJob.objects.filter(pk__in=[job.pk for job in jobs])
    assert set(finished.values_list("status", flat=True)) == {"succeeded"}
    assert not ApiRequest.objects.filter(job__in=jobs, status_code=429).exists()
    assert not ApiKey.objects.get(key=studio_engine).locked_until  # the sandbox never locked the key
    assert elapsed > 9  # the twelve past the first 18 waited for the window to move on
    assert set(finished.values_list("attempts", flat=True)) == {1}


def test_jobs_wait_out_a_lock_out_and_succeed_without_spending_attempts(
    low_limits, studio_engine, sandbox_url, settings, tmp_path
):
    user = UserFactory()
    with running_worker("redis", "prefork", sandbox_url=sandbox_url, settings=settings, folder=tmp_path):
        # The key is locked out already (someone else tripped it): the sandbox answers 429, "try again in 3
        # seconds", until then.
        ApiKey.objects.filter(key=studio_engine).update(locked_until=timezone.now() + timedelta(seconds=3))
        jobs = [job_make(user, samples=2) for _ in range(6)]
        elapsed, _ = wait_terminal(jobs, 40, beat=None)

    finished = GenerationJob.objects.filter(pk__in=[job.pk for job in jobs])
    assert set(finished.values_list("status", flat=True)) == {"succeeded"}
    assert all(job.images.count() == 2 for job in finished)
    refused = ApiRequest.objects.filter(job__in=jobs, status_code=429)
    # Only the requests already on their way met the lock-out; every other process paused with the key.
    assert 1 <= refused.count() <= 2
    assert set(refused.values_list("outcome", flat=True)) == {"not_charged"}
    assert elapsed > 2.5
    assert set(finished.values_list("attempts", flat=True)) == {1}  # waiting is not a failed attempt
