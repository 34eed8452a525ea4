"""The database is the truth for jobs. A periodic pass (Celery beat, every JOB_RECONCILE_SECONDS) finds
jobs past their deadline and ends or restarts them:

- a queued job silent for JOB_QUEUED_GRACE_SECONDS lost its task (a broker restarted without persistence
  loses queued messages): its task is sent again;
- a running job silent for JOB_STALE_SECONDS lost its worker (a live run touches `progress_at` around
  every request, and gives up on one after JOB_REQUEST_TIMEOUT_SECONDS): it goes back to the queue, or
  ends if it was cancelled or is out of attempts.

Sending a task twice is safe: the task claims a queued job with a conditional UPDATE, and a run taken over
stops before its next request. A queued job held by the per-person or per-team limit is not lost: the run
that frees a slot sends it. With the defaults (30 s, 60 s, 90 s) every job is terminal, or running
again, within two minutes of the fault clearing."""

import logging
from collections import Counter
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone
from kombu.exceptions import OperationalError

from generations import queueing, running
from generations.models import MAX_ATTEMPTS, ApiRequest, GenerationJob

logger = logging.getLogger(__name__)

BATCH = 500  # jobs looked at per pass; after a long outage the rest wait for the next pass


def queued_grace() -> timedelta:
    return timedelta(seconds=settings.JOB_QUEUED_GRACE_SECONDS)


def stale_after() -> timedelta:
    return timedelta(seconds=settings.JOB_STALE_SECONDS)


def overdue(now: datetime) -> tuple[Q, Q]:
    """Queued jobs whose task was lost, and running jobs whose worker died, as of `now`."""
    queued_by, running_by = now - queued_grace(), now - stale_after()
    lost = Q(status=GenerationJob.Status.QUEUED) & (
        Q(progress_at__lt=queued_by) | Q(progress_at__isnull=True, created_at__lt=queued_by)
    )
    dead = Q(status=GenerationJob.Status.RUNNING) & (
        Q(progress_at__lt=running_by) | Q(progress_at__isnull=True, created_at__lt=running_by)
    )
    return lost, dead


def jobs_reconcile(*, now: datetime | None = None) -> Counter[str]:
    """One pass: what was done, counted ("requeued", "failed", "cancelled")."""
    lost, dead = overdue(now or timezone.now())
    # A queued job whose creator or team is at its limit is not lost: it waits for a slot, and the run that
    # frees one sends it (generations/queueing.py).
    running = queueing.Running.now()
    lost &= ~Q(created_by_id__in=running.full_users()) & ~Q(team_id__in=running.full_teams())
    done: Counter[str] = Counter()
    jobs = GenerationJob.objects.filter(lost | dead).select_related("team").order_by("created_at")
    for job in jobs[:BATCH]:
        # The same condition guards every write, so a job that moved on meanwhile is left alone.
        still_overdue = lost if job.status == GenerationJob.Status.QUEUED else dead
        try:
            if action := _job_reconcile(job, still_overdue):
                done[action] += 1
        except OperationalError as exc:
            logger.warning("the job queue is unreachable; the next pass will try again: %s", exc)
            break
    if done["failed"] or done["cancelled"]:
        queueing.jobs_dispatch()  # the slots of the jobs it ended are free
    return done


def _job_reconcile(job: GenerationJob, still_overdue: Q) -> str:
    if job.cancel_requested_at is not None:
        ended = running.job_finish(job=job, status=GenerationJob.Status.CANCELLED, only=still_overdue)
        return "cancelled" if ended.status == GenerationJob.Status.CANCELLED else ""
    if job.attempts >= MAX_ATTEMPTS:
        reason = running.out_of_attempts_message(job)
        ended = running.job_finish(
            job=job, status=GenerationJob.Status.FAILED, reason=reason, only=still_overdue
        )
        return "failed" if ended.status == GenerationJob.Status.FAILED else ""
    # Back in the queue with a fresh deadline, then sent: if sending fails, the next pass sends it again.
    requeued = GenerationJob.objects.filter(still_overdue, pk=job.pk).update(
        status=GenerationJob.Status.QUEUED, progress_at=timezone.now()
    )
    if not requeued:
        return ""
    from generations.tasks import job_run_task  # the task module imports this one

    # A queued job waiting for its asynchronous result, whose message was lost, carries on as the same
    # attempt: losing a message costs it no attempt. (A silent running job gets a new attempt, which fences
    # its old run out.)
    submitted = job.api_requests.filter(outcome=ApiRequest.Outcome.PENDING).exclude(generation_id="")
    waits_for_result = job.status == GenerationJob.Status.QUEUED and submitted.exists()
    job_run_task.delay(str(job.pk), resume_attempt=job.attempts if waits_for_result else None)
    logger.info("job %s re-queued (it was %s with no sign of life)", job.pk, job.status)
    return "requeued"
