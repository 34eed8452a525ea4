import logging
import random

from celery import Task, shared_task
from celery.exceptions import SoftTimeLimitExceeded

from generations import services
from generations.models import GenerationJob
from generations.stability.types import TransientError

logger = logging.getLogger(__name__)

MAX_RETRIES = 3


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True, max_retries=MAX_RETRIES)
def job_run_task(self: Task, job_id: str) -> None:
    """Run one generation job. Safe to run twice: the job is claimed and images are stored by index."""
    try:
        services.job_run(job_id=job_id)
    except services.JobNotClaimed:
        logger.info("job %s is finished or out of attempts; nothing to do", job_id)
    except TransientError as exc:
        if self.request.retries < MAX_RETRIES:
            # Exponential backoff with jitter: 2, 4, 8 s (+ up to 1 s), so retries of many jobs spread out.
            raise self.retry(exc=exc, countdown=2 ** (self.request.retries + 1) + random.random()) from exc
        _fail(job_id, f"{exc.message} Tried {MAX_RETRIES + 1} times; try again later.")
    except SoftTimeLimitExceeded:
        _fail(job_id, "The generation took too long and was stopped.")


def _fail(job_id: str, message: str) -> None:
    job = GenerationJob.objects.select_related("team").get(pk=job_id)
    services.job_fail(job=job, message=message)
