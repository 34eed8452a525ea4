"""Celery tasks: run one job (safe to run twice), and reconcile every job with the database's truth."""

import logging
import time
from typing import Any

from billiard.einfo import ExceptionInfo
from celery import Task, shared_task
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings

from generations import queueing, reconcile, running
from generations.stability.types import TransientError

logger = logging.getLogger(__name__)

MAX_RETRIES = 3


def failure_message(exc: BaseException) -> str:
    """Why the task gave up, as a person reads it on the job's card."""
    if isinstance(exc, TransientError):
        return f"{exc.message} Tried {MAX_RETRIES + 1} times; try again later."
    if isinstance(exc, SoftTimeLimitExceeded):
        return "The generation took too long and was stopped."
    return running.INTERNAL_ERROR_MESSAGE


class JobTask(Task):
    def on_failure(
        self,
        exc: Exception,
        task_id: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        einfo: ExceptionInfo,
    ) -> None:
        """Out of retries, or an error outside a run: end the job if no worker owns it (a job still marked
        running belongs to a live run, or to the reconciler once its worker is dead)."""
        job_id = args[0] if args else kwargs["job_id"]
        running.job_abandon(job_id=job_id, message=failure_message(exc))


@shared_task(
    base=JobTask,
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=(TransientError, SoftTimeLimitExceeded),
    # Backoff with full jitter: up to 2, 4, 8 s, so the retries of many jobs spread out; well under the
    # reconciler's grace for a queued job, so a retry waiting its turn is not sent twice.
    retry_backoff=2,
    retry_backoff_max=30,
    retry_jitter=True,
    max_retries=MAX_RETRIES,
)
def job_run_task(
    self: Task, job_id: str, resume_attempt: int | None = None, waiting_since: float | None = None
) -> None:
    """Run one generation job. Safe to run twice: the job is claimed, images are stored by index, and a
    request is never sent for an image already stored."""
    # Redelivered: the worker that had this message died with it, so the job it left "running" is taken over.
    recovering = bool((self.request.delivery_info or {}).get("redelivered"))
    slot_freed = True  # a claimed run that ends, or goes back to the queue, frees its slot
    try:
        running.job_run(job_id=job_id, recovering=recovering, resume_attempt=resume_attempt)
    except running.JobHeld:
        slot_freed = False  # it starts when a run of its creator or team ends and sends it again
    except running.JobNotClaimed:
        slot_freed = False
        running.job_unclaimed(job_id=job_id, recovering=recovering)
    except running.JobWaits as wait:
        # Time spent waiting for an asynchronous result is not time locked out (the platform keeps a
        # result 24 h; asking for one it lost fails the job with its own answer).
        job_wait(self, job_id, wait, time.time() if wait.for_result else waiting_since or time.time())
    finally:
        # Eager tasks (run in-process, for debugging) ran every job when it was made.
        if slot_freed and not self.request.is_eager:
            queueing.jobs_dispatch(queue=(self.request.delivery_info or {}).get("routing_key") or None)


def job_wait(task: Task, job_id: str, wait: "running.JobWaits", since: float) -> None:
    """Send the job again when its key may send (a new message, so waiting spends none of the task's
    retries), until it has waited STABILITY_RATE_GIVE_UP_SECONDS in all."""
    if time.time() - since > settings.STABILITY_RATE_GIVE_UP_SECONDS:
        minutes = round(settings.STABILITY_RATE_GIVE_UP_SECONDS / 60)
        running.job_abandon(
            job_id=job_id,
            message=f"The Stability API kept this key locked out for {minutes} minutes; try again later.",
        )
        return
    if task.request.is_eager:
        time.sleep(wait.seconds)  # run in-process (debugging): the countdown would be ignored
    # Back to the queue this message came from, as Celery's own retry does.
    queue = (task.request.delivery_info or {}).get("routing_key") or None
    job_run_task.apply_async(
        (job_id,),
        {"resume_attempt": wait.attempt, "waiting_since": since},
        countdown=wait.seconds,
        queue=queue,
    )


@shared_task(ignore_result=True)
def jobs_reconcile_task() -> None:
    """Run by beat every JOB_RECONCILE_SECONDS: re-queue or end every job past its deadline."""
    outcome = reconcile.jobs_reconcile()
    if outcome:
        logger.warning("reconciled jobs: %s", outcome)
