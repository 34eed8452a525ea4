"""Writes with side effects for generation: create a job, run it against the API, store its images."""

import io
import logging
from uuid import UUID

from django.core.files.base import ContentFile
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.db.models.functions import Coalesce
from django.utils import timezone
from kombu.exceptions import OperationalError
from PIL import Image

from accounts.models import Team, User
from accounts.services import NO_KEY_MESSAGE, team_balance_forget, team_client
from generations.models import MAX_ATTEMPTS, GalleryImage, GenerationJob
from generations.stability.types import Artifact, PermanentError, TextToImageRequest

logger = logging.getLogger(__name__)

THUMBNAIL_SIDE = 384


class JobNotClaimed(Exception):
    """The job is finished, or was tried too often: nothing to do."""


@transaction.atomic
def job_create(*, team: Team, user: User, engine_id: str, request: TextToImageRequest) -> GenerationJob:
    """A queued job for a request the caller has validated; the worker picks it up after commit."""
    request.validate(engine_id)
    positive = [p.text for p in request.text_prompts if p.weight > 0]
    negative = [p.text for p in request.text_prompts if p.weight < 0]
    job = GenerationJob.objects.create(
        team=team,
        created_by=user,
        engine_id=engine_id,
        prompt=positive[0],
        negative_prompt=negative[0] if negative else "",
        text_prompts=[{"text": p.text, "weight": p.weight} for p in request.text_prompts],
        width=request.width,
        height=request.height,
        samples=request.samples,
        steps=request.steps,
        cfg_scale=request.cfg_scale,
        seed=request.seed,
        sampler=request.sampler or "",
        clip_guidance_preset=request.clip_guidance_preset,
        style_preset=request.style_preset or "",
    )
    transaction.on_commit(lambda: _job_enqueue(job))
    return job


def _job_enqueue(job: GenerationJob) -> None:
    """Hand the committed job to the workers; if the broker cannot take it, fail the job visibly."""
    from generations.tasks import job_run_task  # the task module imports this one

    try:
        job_run_task.delay(str(job.pk))
    except OperationalError as exc:
        logger.error("could not queue job %s: %s", job.pk, exc)
        job_fail(
            job=job, message="The job queue is unreachable, so the job was not started. Try again shortly."
        )


def job_claim(*, job_id: UUID | str) -> GenerationJob:
    """Mark the job running with a conditional UPDATE, so a finished job is never run again."""
    claimable = Q(status=GenerationJob.Status.QUEUED) | Q(status=GenerationJob.Status.RUNNING)
    updated = GenerationJob.objects.filter(claimable, pk=job_id, attempts__lt=MAX_ATTEMPTS).update(
        status=GenerationJob.Status.RUNNING,
        attempts=F("attempts") + 1,
        started_at=Coalesce(F("started_at"), timezone.now()),
    )
    if not updated:
        raise JobNotClaimed(job_id)
    return GenerationJob.objects.select_related("team").get(pk=job_id)


def job_run(*, job_id: UUID | str) -> GenerationJob:
    """Call the API for a claimed job and store its artifacts. Transient API errors propagate, for retry."""
    job = job_claim(job_id=job_id)
    client = team_client(job.team)
    if client is None:
        return job_fail(job=job, message=NO_KEY_MESSAGE)
    try:
        artifacts = client.text_to_image(job.engine_id, job.to_request())
    except PermanentError as exc:
        return job_fail(job=job, message=exc.message)
    for index, artifact in enumerate(artifacts):
        image_store(job=job, index=index, artifact=artifact)
    return job_succeed(job=job)


def image_store(*, job: GenerationJob, index: int, artifact: Artifact) -> GalleryImage:
    """Store one artifact, once: a job run twice finds its image already there."""
    existing = GalleryImage.objects.filter(job=job, index=index).first()
    if existing is not None:
        return existing
    with Image.open(io.BytesIO(artifact.png)) as picture:
        picture.load()
        width, height = picture.size
        thumbnail = picture.convert("RGB")
    thumbnail.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE))
    webp = io.BytesIO()
    thumbnail.save(webp, "WEBP", quality=82)
    image = GalleryImage(
        job=job,
        index=index,
        team_id=job.team_id,
        created_by_id=job.created_by_id,
        width=width,
        height=height,
        seed=artifact.seed,
        finish_reason=artifact.finish_reason,
    )
    image.image.save("image.png", ContentFile(artifact.png), save=False)
    image.thumbnail.save("thumbnail.webp", ContentFile(webp.getvalue()), save=False)
    try:
        with transaction.atomic():
            image.save(force_insert=True)
    except IntegrityError:
        # Another run of the same job stored it first; keep theirs and drop our files.
        image.image.delete(save=False)
        image.thumbnail.delete(save=False)
        return GalleryImage.objects.get(job=job, index=index)
    return image


def job_succeed(*, job: GenerationJob) -> GenerationJob:
    return _job_finish(job, GenerationJob.Status.SUCCEEDED, "")


def job_fail(*, job: GenerationJob, message: str) -> GenerationJob:
    logger.info("job %s failed: %s", job.pk, message)
    return _job_finish(job, GenerationJob.Status.FAILED, message)


def _job_finish(job: GenerationJob, status: str, message: str) -> GenerationJob:
    # Forget the cached balance first: whoever sees the job finished must see what it cost.
    team_balance_forget(job.team)
    job.status = status
    job.error_message = message
    job.finished_at = timezone.now()
    job.save(update_fields=["status", "error_message", "finished_at"])
    return job
