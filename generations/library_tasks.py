"""The library's scheduled work: purge what has been in the trash 30 days, then recount every team's
tally. Celery beat runs it hourly (see CELERY_BEAT_SCHEDULE); it is safe to run twice or at once on two
workers (rows are claimed with SKIP LOCKED, files deleted only after their rows)."""

import logging

from celery import shared_task

from generations.library import images_purge, tallies_rebuild

logger = logging.getLogger(__name__)


@shared_task(
    acks_late=True, reject_on_worker_lost=True, ignore_result=True, soft_time_limit=600, time_limit=660
)
def trash_purge_task() -> int:
    purged = images_purge()
    tallies_rebuild()
    logger.info("trash purge: %d images deleted for good", purged)
    return purged
