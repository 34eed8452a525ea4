"""The rules that keep jobs honest: one recorded request per image, every exception path ends the job,
the reconciler ends or restarts whatever is overdue, Cancel, and pages that work while Redis is down."""

import contextlib
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from unittest import mock

import pytest
from django.db import DatabaseError, connection
from django.template.defaultfilters import floatformat
from django.test import override_settings
from django.urls import reverse
from django.utils import timezone

from generations import reconcile, running, services
from generations.models import MAX_ATTEMPTS, ApiRequest, GalleryImage, GenerationJob
from generations.stability.types import Artifact, TransientError
from generations.tasks import job_run_task
from tests.factories import GalleryImageFactory, GenerationJobFactory, UserFactory
from tests.images import png
from tests.jobs_factories import (
    PRICE,
    free_port,
    job_make,
    key_faults,
    recorded,
    sandbox_credits,
)
from tests.spend_factories import client_for, join, shared_team

pytestmark = pytest.mark.django_db(transaction=True)


def requests_of(job: GenerationJob) -> list[tuple[int, int, str]]:
    """(image index, attempt, outcome) of every request sent for the job, by image, then attempt (a job's
    images are asked for at once, so the order they were sent in is not fixed)."""
    return list(
        job.api_requests.order_by("index", "attempt", "pk").values_list("index", "attempt", "outcome")
    )


def possible_charge_text(count: int, credits: Decimal) -> str:
    return (
        f"{count} request{'s' if count != 1 else ''} got no answer and may have been charged "
        f"{floatformat(credits, '-2')} credits"
    )


def card(client, job: GenerationJob) -> str:
    return client.get(reverse("generations:job-card", args=[job.pk]), HTTP_HX_REQUEST="true").content.decode()


@contextlib.contextmanager
def task_errors_kept_in_the_task() -> Iterator[None]:
    """Eager tasks here re-raise their errors (tests/conftest.py); a task that retries and then gives up
    is run as a worker runs it, with its on_failure, instead."""
    from studio.celery import app

    app.conf.task_eager_propagates = False
    try:
        yield
    finally:
        app.conf.task_eager_propagates = True


def running_job(**fields) -> GenerationJob:
    now = timezone.now()
    defaults = {"status": "running", "attempts": 1, "started_at": now, "progress_at": now}
    return GenerationJobFactory(**(defaults | fields))


# --- one recorded request per image ------------------------------------------------------------------


def test_each_image_is_its_own_request_with_the_seed_chosen_when_the_job_was_made(studio_engine):
    user = UserFactory()
    before = sandbox_credits(studio_engine)
    job = job_make(user, samples=3, seed=41)
    job.refresh_from_db()
    assert job.status == "succeeded"
    assert job.seeds == [41, 42, 43]
    assert list(job.api_requests.order_by("index").values_list("index", "seed", "outcome", "credits")) == [
        (0, 41, "charged", PRICE),
        (1, 42, "charged", PRICE),
        (2, 43, "charged", PRICE),
    ]
    assert sorted(job.images.values_list("index", "seed")) == [(0, 41), (1, 42), (2, 43)]
    assert job.credits_spent == 3 * PRICE == before - sandbox_credits(studio_engine)


def test_a_jobs_images_are_asked_for_at_once_so_four_take_one_answers_time(studio_engine, user):
    key_faults(studio_engine, latency_ms=600)
    job = GenerationJobFactory(created_by=user, samples=4, seeds=[1, 2, 3, 4])
    running.job_run(job_id=job.pk)  # the worker, here
    job.refresh_from_db()
    assert job.status == "succeeded" and job.images.count() == 4
    spans = list(job.api_requests.values_list("sent_at", "finished_at"))
    assert len(spans) == 4  # still one request per image, each recorded and charged
    # All four were sent before the first answer came back.
    assert max(sent for sent, _ in spans) < min(finished for _, finished in spans)
    assert job.credits_spent == 4 * PRICE


def test_seed_zero_gets_random_seeds_chosen_once_and_a_given_seed_counts_up_as_the_api_does():
    seeds = running.image_seeds(0, 4)
    assert len(set(seeds)) == 4 and all(1 <= seed <= 4_294_967_295 for seed in seeds)
    assert running.image_seeds(4_294_967_294, 3) == [4_294_967_294, 4_294_967_295, 1]


def test_a_rerun_after_a_crash_sends_only_the_missing_images_and_shows_the_lost_request(
    studio_engine, authed_client, user
):
    """The worker died with image 0 stored and image 1's request in flight."""
    job = running_job(created_by=user, samples=3, seeds=[5, 6, 7])
    stored = ApiRequest.objects.create(job=job, index=0, attempt=1, seed=5)
    first = running.image_store(job=job, index=0, artifact=Artifact(png(), 5, "SUCCESS"), api_request=stored)
    ApiRequest.objects.create(job=job, index=1, attempt=1, seed=6)
    before = sandbox_credits(studio_engine)

    running.job_run(job_id=job.pk, recovering=True)

    job.refresh_from_db()
    assert job.status == "succeeded" and job.attempts == 2
    assert requests_of(job) == [(0, 1, "charged"), (1, 1, "unknown"), (1, 2, "charged"), (2, 2, "charged")]
    assert job.images.get(index=0).pk == first.pk  # never asked for again
    assert before - sandbox_credits(studio_engine) == 2 * PRICE
    assert job.credits_spent == 3 * PRICE
    assert possible_charge_text(1, PRICE) in card(authed_client, job)
    page = authed_client.get(reverse("generations:job-card", args=[job.pk])).content.decode()
    assert page.count('<tr class="request-') == 4 and "No answer (possibly charged)" in page


def test_a_request_with_no_answer_is_a_possible_charge_and_the_retry_is_recorded_too(
    studio_engine, settings, authed_client, user
):
    settings.JOB_REQUEST_TIMEOUT_SECONDS = 0.5
    key_faults(studio_engine, latency_ms=1500)  # the sandbox answers, and charges, after Studio gave up
    job = GenerationJobFactory(created_by=user, seeds=[9])
    before = sandbox_credits(studio_engine)
    with pytest.raises(TransientError):
        running.job_run(job_id=job.pk)
    job.refresh_from_db()
    assert job.status == "queued"  # for the task's retry
    (lost,) = job.api_requests.all()
    assert (lost.outcome, lost.credits, lost.status_code) == ("unknown", PRICE, None)
    assert "did not answer in time" in lost.error
    deadline = time.monotonic() + 10
    while sandbox_credits(studio_engine) == before:  # the abandoned request is still being drawn
        assert time.monotonic() < deadline
        time.sleep(0.1)

    key_faults(studio_engine, latency_ms=0)
    running.job_run(job_id=job.pk)

    job.refresh_from_db()
    assert job.status == "succeeded" and job.images.count() == 1
    assert requests_of(job) == [(0, 1, "unknown"), (0, 2, "charged")]
    # The sandbox charged twice; both charges are on record, one of them as possible.
    charged_twice = before - sandbox_credits(studio_engine)
    assert charged_twice == 2 * PRICE == recorded([job], "charged") + recorded([job], "unknown")
    assert possible_charge_text(1, PRICE) in card(authed_client, job)


@pytest.mark.parametrize(("fault", "status"), [("error_rate", 500), ("throttle_rate", 429)])
def test_an_error_answer_is_recorded_as_not_charged(studio_engine, fault, status):
    key_faults(studio_engine, **{fault: 1.0})
    job = GenerationJobFactory()
    before = sandbox_credits(studio_engine)
    with pytest.raises(TransientError):
        running.job_run(job_id=job.pk)
    (request,) = job.api_requests.all()
    assert (request.outcome, request.status_code, request.credits) == ("not_charged", status, 0)
    assert request.error
    assert sandbox_credits(studio_engine) == before


def test_a_filtered_image_is_kept_and_recorded_as_not_charged(studio_engine):
    job = GenerationJobFactory(prompt="a lurid poster")
    running.job_run(job_id=job.pk)
    job.refresh_from_db()
    assert job.images.get().is_filtered
    assert list(job.api_requests.values_list("outcome", "credits")) == [("not_charged", 0)]
    assert job.credits_spent == 0


def test_a_job_that_fails_part_way_keeps_its_images_and_says_what_failed(
    settings, studio_engine, make_sandbox_key, authed_client, user
):
    # Credits for one image and a half: the second request is refused (402), and so would every other be.
    poor = make_sandbox_key(credits=float(PRICE * Decimal("1.5")), email="poor@example.com")
    settings.SANDBOX_KEY_FILE.write_text(poor)
    job = GenerationJobFactory(created_by=user, samples=3, seeds=[1, 2, 3])
    running.job_run(job_id=job.pk)
    job.refresh_from_db()
    assert job.status == "failed"
    assert job.images.count() == 1
    assert job.error_message.startswith("1 of 3 images made and kept; the rest failed.")
    assert "lack sufficient credits" in job.error_message
    # The three were asked for at once: one answered and charged, the other two refused and free.
    assert sorted(outcome for _, _, outcome in requests_of(job)) == ["charged", "not_charged", "not_charged"]
    assert job.credits_spent == PRICE
    html = card(authed_client, job)
    assert "1 of 3 images were made and kept" in html and html.count('class="thumbs"') == 1
    assert "out of credits" in html and "lack sufficient credits" in html  # in words, and as the API said


# --- every exception path ends the job ---------------------------------------------------------------


def test_the_job_ends_even_when_the_cached_balance_cannot_be_forgotten(studio_engine):
    job = GenerationJobFactory()
    nowhere = f"redis://127.0.0.1:{free_port()}/0"  # Redis is down
    with override_settings(
        CACHES={"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": nowhere}}
    ):
        running.job_run(job_id=job.pk)
    job.refresh_from_db()
    assert job.status == "succeeded" and job.images.count() == 1


def test_an_error_outside_a_run_fails_the_queued_job_with_a_message(studio_engine):
    job = GenerationJobFactory()
    with mock.patch.object(running, "job_claim", side_effect=DatabaseError("server closed the connection")):
        job_run_task.apply(args=[str(job.pk)], throw=False)
    job.refresh_from_db()
    assert job.status == "failed"
    assert job.error_message == running.INTERNAL_ERROR_MESSAGE


def test_a_job_out_of_retries_fails_with_the_apis_message(studio_engine):
    key_faults(studio_engine, error_rate=1.0)
    job = GenerationJobFactory()
    with task_errors_kept_in_the_task():
        job_run_task.apply(args=[str(job.pk)])  # the retries run at once, in this process
    job.refresh_from_db()
    assert job.status == "failed"
    assert "unexpected server error" in job.error_message and "Tried 4 times" in job.error_message
    assert job.attempts == 4
    assert [outcome for _, _, outcome in requests_of(job)] == ["not_charged"] * 4


def test_a_queued_job_out_of_attempts_is_failed_not_left_waiting(studio_engine):
    job = GenerationJobFactory(attempts=MAX_ATTEMPTS)
    job_run_task.apply(args=[str(job.pk)], throw=False)
    job.refresh_from_db()
    assert job.status == "failed"
    assert f"started this job {MAX_ATTEMPTS} times" in job.error_message
    assert not job.api_requests.exists()


def test_a_second_task_for_a_running_job_leaves_it_to_its_worker(studio_engine):
    job = running_job()
    job_run_task.apply(args=[str(job.pk)], throw=False)
    job.refresh_from_db()
    assert (job.status, job.attempts) == ("running", 1)
    assert not job.api_requests.exists()


def test_a_run_taken_over_by_a_newer_attempt_cannot_end_the_job():
    job = running_job(attempts=2)
    running.job_finish(job=job, status=GenerationJob.Status.FAILED, reason="late", attempt=1)
    job.refresh_from_db()
    assert job.status == "running"


def test_a_finished_job_is_never_changed_by_a_late_finish():
    job = GenerationJobFactory(status="succeeded", finished_at=timezone.now())
    running.job_fail(job=job, message="too late")
    job.refresh_from_db()
    assert (job.status, job.error_message) == ("succeeded", "")


# --- the reconciler ----------------------------------------------------------------------------------


def test_the_reconciler_sends_again_a_queued_job_whose_task_was_lost(studio_engine):
    lost = GenerationJobFactory(created_at=timezone.now() - timedelta(minutes=2))
    fresh = GenerationJobFactory()
    done = reconcile.jobs_reconcile()
    assert done == {"requeued": 1}
    lost.refresh_from_db()
    fresh.refresh_from_db()
    assert lost.status == "succeeded" and lost.images.count() == 1  # the task ran (eagerly, here)
    assert fresh.status == "queued"


def test_the_reconciler_restarts_a_running_job_whose_worker_died(studio_engine):
    dead = running_job(progress_at=timezone.now() - timedelta(minutes=5))
    ApiRequest.objects.create(job=dead, index=0, attempt=1)  # in flight when the worker died
    alive = running_job()
    assert reconcile.jobs_reconcile() == {"requeued": 1}
    dead.refresh_from_db()
    alive.refresh_from_db()
    assert dead.status == "succeeded" and dead.attempts == 2
    assert requests_of(dead) == [(0, 1, "unknown"), (0, 2, "charged")]
    assert alive.status == "running"


def test_the_reconciler_ends_dead_jobs_that_were_cancelled_or_are_out_of_attempts():
    long_ago = timezone.now() - timedelta(minutes=5)
    cancelled = running_job(progress_at=long_ago, cancel_requested_at=long_ago)
    worn_out = running_job(progress_at=long_ago, attempts=MAX_ATTEMPTS)
    ApiRequest.objects.create(job=worn_out, index=0, attempt=MAX_ATTEMPTS)
    never_started = GenerationJobFactory(created_at=long_ago, attempts=MAX_ATTEMPTS)
    assert reconcile.jobs_reconcile() == {"cancelled": 1, "failed": 2}
    for job in (cancelled, worn_out, never_started):
        job.refresh_from_db()
    assert (cancelled.status, cancelled.error_message) == ("cancelled", "Cancelled: 0 of 1 image kept.")
    assert worn_out.status == "failed" and "Its worker stopped each time" in worn_out.error_message
    assert requests_of(worn_out) == [(0, MAX_ATTEMPTS, "unknown")]
    assert never_started.status == "failed"


def test_the_default_deadlines_end_every_job_within_two_minutes_of_a_fault_clearing():
    from studio.celery import RECONCILE_EVERY, app

    schedule = app.conf.beat_schedule["reconcile-jobs"]
    assert schedule["task"] == "generations.tasks.jobs_reconcile_task" and schedule["task"] in app.tasks
    assert RECONCILE_EVERY == 30
    queued, stale = reconcile.queued_grace().total_seconds(), reconcile.stale_after().total_seconds()
    assert queued + RECONCILE_EVERY <= 120 and stale + RECONCILE_EVERY <= 120
    # A live run is never silent longer than one request, so it is never mistaken for a dead one...
    from django.conf import settings

    assert float(getattr(settings, "JOB_REQUEST_TIMEOUT_SECONDS", 60)) < stale
    # ... and a retry waiting for its turn is not sent a second time.
    assert job_run_task.retry_backoff_max < queued


# --- cancel ------------------------------------------------------------------------------------------


def test_cancelling_a_queued_job_ends_it_at_once_and_costs_nothing(studio_engine, authed_client, user):
    job = GenerationJobFactory(created_by=user)
    before = sandbox_credits(studio_engine)
    response = authed_client.post(reverse("generations:job-cancel", args=[job.pk]), HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    html = response.content.decode()
    assert "Cancelled before it started; it cost nothing." in html and "hx-trigger" not in html
    job_run_task.apply(args=[str(job.pk)], throw=False)  # its task arrives after all
    job.refresh_from_db()
    assert (job.status, job.credits_spent) == ("cancelled", 0)
    assert not job.api_requests.exists() and sandbox_credits(studio_engine) == before


def test_cancelling_a_running_job_stops_it_before_its_next_request_and_keeps_its_images(
    studio_engine, user, settings
):
    key_faults(studio_engine, latency_ms=400)
    settings.JOB_IMAGES_AT_ONCE = 2  # two by two: the third and fourth are sent before Cancel lands
    job = GenerationJobFactory(created_by=user, samples=8)
    before = sandbox_credits(studio_engine)

    def click_cancel_once_an_image_is_stored() -> None:
        try:
            deadline = time.monotonic() + 20
            while not GalleryImage.objects.filter(job=job).exists() and time.monotonic() < deadline:
                time.sleep(0.02)
            client_for(user).post(reverse("generations:job-cancel", args=[job.pk]), HTTP_HX_REQUEST="true")
        finally:
            connection.close()

    person = threading.Thread(target=click_cancel_once_an_image_is_stored)
    person.start()
    running.job_run(job_id=job.pk)  # the worker, here
    person.join()

    job.refresh_from_db()
    kept = job.images.count()
    assert job.status == "cancelled" and 1 <= kept < 8
    assert job.error_message == f"Cancelled: {kept} of 8 images kept."
    assert job.api_requests.count() == kept  # nothing was sent after the requests in flight
    assert job.credits_spent == kept * PRICE == before - sandbox_credits(studio_engine)


def test_a_job_cancelled_while_it_waits_for_a_retry_ends_when_the_retry_comes(studio_engine):
    key_faults(studio_engine, error_rate=1.0)
    job = GenerationJobFactory(samples=2)
    with pytest.raises(TransientError):
        running.job_run(job_id=job.pk)
    services.job_cancel(job=job)
    job.refresh_from_db()
    assert (job.status, job.error_message) == ("cancelled", "Cancelled: 0 of 2 images kept.")


def test_only_the_creator_or_an_owner_or_admin_may_cancel(client):
    owner = UserFactory()
    team = shared_team(owner)
    creator, teammate, admin, viewer = join(team), join(team), join(team, "admin"), join(team, "viewer")
    stranger = UserFactory()

    def cancel(user, job) -> int:
        return client_for(user).post(reverse("generations:job-cancel", args=[job.pk])).status_code

    job = GenerationJobFactory(created_by=creator, team=team)
    assert cancel(stranger, job) == 404
    assert cancel(viewer, job) == 403
    assert cancel(teammate, job) == 403
    assert 'class="secondary job-cancel"' in card(client_for(creator), job)
    assert 'class="secondary job-cancel"' not in card(client_for(teammate), job)
    job.refresh_from_db()
    assert job.status == "queued"
    assert cancel(admin, job) == 302
    assert cancel(creator, GenerationJobFactory(created_by=creator, team=team)) == 302
    assert set(GenerationJob.objects.filter(team=team).values_list("status", flat=True)) == {"cancelled"}


def test_images_appear_on_the_card_as_each_is_stored(authed_client, user):
    job = running_job(created_by=user, samples=3)
    GalleryImageFactory(job=job, index=0)
    html = card(authed_client, job)
    assert html.count("<li><a href=") == 1 and "1 of 3 images made" in html
    assert 'hx-trigger="every' in html and "job-cancel" in html


# --- Redis down ---------------------------------------------------------------------------------------


GENERATE = {
    "prompt": "a harbour at dawn",
    "engine": "stable-diffusion-v1-6",
    "size": "512x512",
    "samples": "1",
    "steps": "30",
    "cfg_scale": "7",
    "clip_guidance_preset": "NONE",
}


def test_pages_and_generate_work_while_redis_is_down(studio_engine, authed_client):
    from studio.celery import app

    nowhere = f"redis://127.0.0.1:{free_port()}"
    saved = (app.conf.broker_url, app.conf.task_always_eager)
    app.conf.broker_url, app.conf.task_always_eager = f"{nowhere}/1", False
    app._pool = app.amqp._producer_pool = None
    caches = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": f"{nowhere}/0"}
    }
    try:
        with override_settings(CACHES=caches):
            assert authed_client.get(reverse("generations:create")).status_code == 200
            assert authed_client.get(reverse("generations:gallery")).status_code == 200
            balance = authed_client.get(reverse("accounts:balance"), HTTP_HX_REQUEST="true")
            assert balance.status_code == 200
            generate = authed_client.post(reverse("generations:create"), GENERATE, HTTP_HX_REQUEST="true")
    finally:
        app.conf.broker_url, app.conf.task_always_eager = saved
        app._pool = app.amqp._producer_pool = None
    assert generate.status_code == 201, generate.content.decode()[:500]
    assert "The job queue is unreachable" in generate.content.decode()
