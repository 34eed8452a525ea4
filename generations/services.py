"""Writes with side effects for generation: create a job, run it against the API, store its images."""

import io
import logging
from dataclasses import replace as _replace
from datetime import timedelta
from functools import partial
from uuid import UUID

from django.core.files.base import ContentFile
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.db.models.fields.files import FieldFile
from django.db.models.functions import Coalesce
from django.utils import timezone
from kombu.exceptions import OperationalError
from PIL import Image

from accounts.models import Team, User
from accounts.services import NO_KEY_MESSAGE, team_balance_forget, team_client
from generations.engines import upscale_factor, upscale_output
from generations.imaging import fit_to_engine, png_size
from generations.models import MAX_ATTEMPTS, GalleryImage, GenerationJob, JobRequest, Upload, read_file
from generations.stability.client import StabilityClient
from generations.stability.contract import ENGINES, Prompt
from generations.stability.types import (
    Artifact,
    ImageToImageRequest,
    MaskingRequest,
    PermanentError,
    TextToImageRequest,
    UpscaleRequest,
)
from generations.uploads import CleanImage

logger = logging.getLogger(__name__)

THUMBNAIL_SIDE = 384
UNUSED_UPLOAD_LIFETIME = timedelta(days=1)
VARIATION_SAMPLES = 4
VARIATION_STRENGTH = 0.6  # close enough to read as the same picture, far enough to differ


class JobNotClaimed(Exception):
    """The job is finished, or was tried too often: nothing to do."""


@transaction.atomic
def upload_store(*, team: Team, user: User, image: CleanImage) -> Upload:
    """Keep a checked, re-encoded init image for the team, under a name Studio chooses; forget the team's
    uploads that no job used within a day (chosen, then replaced or abandoned)."""
    upload = Upload(
        team=team, created_by=user, width=image.width, height=image.height, has_alpha=image.has_alpha
    )
    try:
        upload.image.save("upload.png", ContentFile(image.png), save=False)
        upload.save(force_insert=True)
    except Exception:
        _delete_files(upload.image)
        raise
    uploads_prune(team=team)
    return upload


def uploads_prune(*, team: Team) -> int:
    stale = Upload.objects.for_team(team).filter(
        jobs__isnull=True, created_at__lt=timezone.now() - UNUSED_UPLOAD_LIFETIME
    )
    count = 0
    for upload in stale:
        # The row goes with the transaction; the file only once that is certain.
        transaction.on_commit(partial(_delete_files, upload.image))
        upload.delete()
        count += 1
    return count


@transaction.atomic
def job_create(
    *,
    team: Team,
    user: User,
    engine_id: str,
    request: JobRequest,
    parent: GalleryImage | None = None,
    relation: str = "",
    upload: Upload | None = None,
    resized_from: str = "",
    prompt: str = "",
) -> GenerationJob:
    """A queued job for a request the caller has validated; the worker picks it up after commit.
    `prompt` titles a job whose request has none (an ESRGAN upscale)."""
    request.validate(engine_id)
    positive = [p.text for p in request.text_prompts if p.weight > 0]
    negative = [p.text for p in request.text_prompts if p.weight < 0]
    job = GenerationJob(
        team=team,
        created_by=user,
        engine_id=engine_id,
        prompt=positive[0] if positive else prompt,
        negative_prompt=negative[0] if negative else "",
        text_prompts=[{"text": p.text, "weight": p.weight} for p in request.text_prompts],
        parent=parent,
        relation=relation,
        upload=upload,
        resized_from=resized_from,
        **_request_fields(engine_id, request),
    )
    try:
        if isinstance(request, ImageToImageRequest | MaskingRequest):
            job.init_image.save("init.png", ContentFile(request.init_image), save=False)
        if isinstance(request, MaskingRequest) and request.mask_image is not None:
            job.mask_image.save("mask.png", ContentFile(request.mask_image), save=False)
        if isinstance(request, UpscaleRequest):
            job.init_image.save("source.png", ContentFile(request.image), save=False)
        job.save(force_insert=True)
    except Exception:
        _delete_files(job.init_image, job.mask_image)  # nothing half-written is left behind
        raise
    transaction.on_commit(lambda: _job_enqueue(job))
    return job


def _delete_files(*files: FieldFile) -> None:
    for file in files:
        if file:
            file.delete(save=False)


def _request_fields(engine_id: str, request: JobRequest) -> dict[str, object]:
    """The job's columns for each kind of request."""
    if isinstance(request, UpscaleRequest):
        width, height = png_size(request.image)
        out_width, out_height = request.output_size(engine_id)
        return {
            "kind": GenerationJob.Kind.UPSCALE,
            "width": out_width,
            "height": out_height,
            "upscale_factor": round(out_width / width),
            "seed": request.seed or 0,
            "steps": request.steps or 30,
            "cfg_scale": request.cfg_scale if request.cfg_scale is not None else 7.0,
        }
    options = {
        "samples": request.samples,
        "steps": request.steps,
        "cfg_scale": request.cfg_scale,
        "seed": request.seed,
        "sampler": request.sampler or "",
        "clip_guidance_preset": request.clip_guidance_preset,
        "style_preset": request.style_preset or "",
    }
    if isinstance(request, TextToImageRequest):
        return {
            "kind": GenerationJob.Kind.TEXT_TO_IMAGE,
            "width": request.width,
            "height": request.height,
            **options,
        }
    width, height = png_size(request.init_image)
    if isinstance(request, MaskingRequest):
        return {
            "kind": GenerationJob.Kind.MASKING,
            "width": width,
            "height": height,
            "mask_source": request.mask_source,
            **options,
        }
    schedule = request.init_image_mode == "STEP_SCHEDULE"
    return {
        "kind": GenerationJob.Kind.IMAGE_TO_IMAGE,
        "width": width,
        "height": height,
        "init_image_mode": request.init_image_mode,
        "image_strength": None if schedule else request.image_strength,
        "step_schedule_start": request.step_schedule_start if schedule else None,
        "step_schedule_end": request.step_schedule_end if schedule else None,
        **options,
    }


def _variation_engine(image: GalleryImage, default_engine: str) -> str:
    """The engine that drew the image; for an upscale, the one that drew its source."""
    job = image.job
    if job.kind == GenerationJob.Kind.UPSCALE and job.parent is not None:
        job = job.parent.job
    spec = ENGINES.get(job.engine_id)
    return job.engine_id if spec is None or spec.generates else default_engine


def image_variations(*, image: GalleryImage, user: User, default_engine: str) -> GenerationJob:
    """Image-to-image from the image, with its prompts and settings and new seeds."""
    job = image.job
    engine_id = _variation_engine(image, default_engine)
    init, resized_from = fit_to_engine(read_file(image.image), engine_id)
    prompts = job.prompts or (Prompt(job.prompt),)
    request = ImageToImageRequest(
        text_prompts=prompts,
        init_image=init,
        image_strength=VARIATION_STRENGTH,
        samples=VARIATION_SAMPLES,
        seed=0,
        steps=job.steps,
        cfg_scale=job.cfg_scale,
        sampler=job.sampler or None,
        clip_guidance_preset=job.clip_guidance_preset,
        style_preset=job.style_preset or None,
    )
    return job_create(
        team=job.team,
        user=user,
        engine_id=engine_id,
        request=request,
        parent=image,
        relation=GenerationJob.Relation.VARIATION,
        resized_from=resized_from,
    )


def image_rerun(*, image: GalleryImage, user: User) -> GenerationJob:
    """Exactly the request that made the image, with the image's own seed: the same picture again."""
    job = image.job
    original = job.to_request()
    if isinstance(original, UpscaleRequest):
        request: JobRequest = _replace(original, seed=image.seed)  # only the latent upscaler takes one
    else:
        request = _replace(original, samples=1, seed=image.seed)
    return job_create(
        team=job.team,
        user=user,
        engine_id=job.engine_id,
        request=request,
        parent=image,
        relation=GenerationJob.Relation.RERUN,
        upload=job.upload,
        resized_from=job.resized_from,
        prompt=job.prompt,
    )


def upscale_request(image: GalleryImage, engine_id: str, prompt: str = "") -> UpscaleRequest:
    """ESRGAN doubles the image; the latent upscaler makes it four times as wide, guided by a prompt."""
    if upscale_factor(engine_id) == 4:
        width = image.width * 4
        prompts = (Prompt(prompt),) if prompt.strip() else ()
        return UpscaleRequest(image=read_file(image.image), width=width, text_prompts=prompts, seed=0)
    return UpscaleRequest(image=read_file(image.image))


def image_upscale(*, image: GalleryImage, user: User, engine_id: str, prompt: str = "") -> GenerationJob:
    upscale_output(engine_id, image.width, image.height)  # refuse before reading the file
    return job_create(
        team=image.team,
        user=user,
        engine_id=engine_id,
        request=upscale_request(image, engine_id, prompt),
        parent=image,
        relation=GenerationJob.Relation.UPSCALE,
        prompt=image.job.prompt,
    )


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
        artifacts = _call(client, job.engine_id, job.to_request())
    except PermanentError as exc:
        return job_fail(job=job, message=exc.message)
    for index, artifact in enumerate(artifacts):
        image_store(job=job, index=index, artifact=artifact)
    return job_succeed(job=job)


def _call(client: StabilityClient, engine_id: str, request: JobRequest) -> list[Artifact]:
    match request:
        case ImageToImageRequest():
            return client.image_to_image(engine_id, request)
        case MaskingRequest():
            return client.masking(engine_id, request)
        case UpscaleRequest():
            return client.upscale(engine_id, request)
    return client.text_to_image(engine_id, request)


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
        _delete_files(image.image, image.thumbnail)
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
