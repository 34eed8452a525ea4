"""Writes with side effects for making jobs: store an upload, create a job (and its variations, re-runs
and upscales), cancel one. Running a job is generations/running.py."""

import contextlib
import logging
from dataclasses import replace as _replace
from datetime import timedelta
from functools import partial
from typing import Any

from django.conf import settings
from django.core.files.base import ContentFile
from django.db import transaction
from django.db.models import Q
from django.db.models.fields.files import FieldFile
from django.utils import timezone
from kombu.exceptions import OperationalError

from accounts.models import Team, User
from accounts.services.spend import allowance_check
from generations import stable_image
from generations.engines import upscale_factor, upscale_output
from generations.imaging import fit_to_engine, png_size
from generations.models import GalleryImage, GenerationJob, JobRequest, Upload, read_file
from generations.running import STABLE_IMAGE_SEED_MAX, delete_files, image_seeds, job_fail, job_finish
from generations.stability.contract import ENGINES, Prompt
from generations.stability.types import (
    ImageToImageRequest,
    MaskingRequest,
    TextToImageRequest,
    UpscaleRequest,
)
from generations.stability.v2beta.contract import OPERATIONS as STABLE_IMAGE_OPERATIONS
from generations.stability.v2beta.types import request_for
from generations.uploads import CleanImage, UploadRejected, quota_message

logger = logging.getLogger(__name__)

UNUSED_UPLOAD_LIFETIME = timedelta(days=1)
VARIATION_SAMPLES = 4
VARIATION_STRENGTH = 0.6  # close enough to read as the same picture, far enough to differ
V1_VARIATION_ENGINE = "stable-diffusion-xl-1024-v1-0"  # the one v1 engine the platform still serves


@transaction.atomic
def upload_store(*, team: Team, user: User, image: CleanImage) -> Upload:
    """Keep a checked, re-encoded init image for the team, under a name Studio chooses; forget the team's
    uploads that no job used within a day (chosen, then replaced or abandoned). An image that would take
    the team's uploads past TEAM_UPLOAD_QUOTA_MB is refused (UploadRejected, shown at the field)."""
    uploads_prune(team=team)
    quota, used = settings.TEAM_UPLOAD_QUOTA_MB * 2**20, team_upload_bytes(team=team)
    if used + len(image.png) > quota:
        raise UploadRejected(quota_message(used=used, quota=quota, size=len(image.png)))
    upload = Upload(
        team=team, created_by=user, width=image.width, height=image.height, has_alpha=image.has_alpha
    )
    try:
        upload.image.save("upload.png", ContentFile(image.png), save=False)
        upload.save(force_insert=True)
    except Exception:
        delete_files(upload.image)
        raise
    return upload


def team_upload_bytes(*, team: Team) -> int:
    """What the team's uploaded images take in storage."""
    total = 0
    for upload in Upload.objects.for_team(team).only("image"):
        with contextlib.suppress(OSError):  # a file already gone takes no room
            total += upload.image.size
    return total


def uploads_prune(*, team: Team) -> int:
    stale = Upload.objects.for_team(team).filter(
        jobs__isnull=True, created_at__lt=timezone.now() - UNUSED_UPLOAD_LIFETIME
    )
    count = 0
    for upload in stale:
        # The row goes with the transaction; the file only once that is certain.
        transaction.on_commit(partial(delete_files, upload.image))
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
    `prompt` titles a job whose request has none (an ESRGAN upscale). A job past the member's monthly
    allowance raises AllowanceExceeded and nothing is stored or sent."""
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
    job.seeds = image_seeds(job.seed, job.samples)
    return _job_queue(job, _job_inputs(job, request))


def _job_queue(job: GenerationJob, inputs: list[tuple[FieldFile, str, bytes]]) -> GenerationJob:
    """Price the job, refuse it past its creator's allowance, store its input files and the row, and hand
    it to the workers once the transaction commits."""
    job.credits_estimated = job.price_per_image * job.samples
    allowance_check(team=job.team, user=job.created_by, cost=job.credits_estimated)
    sources = _input_sources(upload=job.upload, parent=job.parent)
    written: list[FieldFile] = []
    try:
        for file, name, content in inputs:
            if _input_store(file, name, content, sources=sources):
                written.append(file)
        job.save(force_insert=True)
    except Exception:
        delete_files(*written)  # nothing half-written is left behind (files shared with others stay)
        raise
    transaction.on_commit(lambda: _job_enqueue(job))
    return job


def stable_image_job_create(
    *,
    team: Team,
    user: User,
    operation_id: str,
    engine_id: str,
    kind: str,
    values: dict[str, Any],
    images: dict[str, bytes],
    samples: int = 1,
    seed: int = 0,
    parent: GalleryImage | None = None,
    relation: str = "",
    upload: Upload | None = None,
    prompt: str = "",
    resized_from: str = "",
) -> GenerationJob:
    """A queued Stable Image job: `values` are the operation's fields as the person chose them (no image,
    seed or output format), `images` the files it sends by field name. Checked against the contract first
    (RuleViolation names the field), priced by it, and refused past the member's allowance
    (AllowanceExceeded) with nothing stored. `prompt` titles a job whose operation takes none."""
    values = {name: value for name, value in values.items() if value is not None and value != ""}
    request = request_for(operation_id, {**values, **images, "output_format": stable_image.OUTPUT_FORMAT})
    request.validate()
    width, height = request.output_size()
    text = str(values.get("prompt") or prompt or STABLE_IMAGE_OPERATIONS[operation_id].title)
    negative = str(values.get("negative_prompt") or "")
    job = GenerationJob(
        team=team,
        created_by=user,
        kind=kind,
        engine_id=engine_id,
        operation=operation_id,
        options=values,
        prompt=text,
        negative_prompt=negative,
        text_prompts=[{"text": text, "weight": 1.0}]
        + ([{"text": negative, "weight": -1.0}] if negative else []),
        width=width,
        height=height,
        samples=samples,
        seed=seed,
        style_preset=str(values.get("style_preset") or ""),
        cfg_scale=float(values.get("cfg_scale") or 7.0),
        parent=parent,
        relation=relation,
        upload=upload,
        resized_from=resized_from,
    )
    source = images.get(next(iter(stable_image.columns_of(operation_id))))
    if kind == GenerationJob.Kind.UPSCALE and source is not None:
        job.upscale_factor = max(1, round(width / png_size(source)[0]))
    job.seeds = image_seeds(seed, samples, seed_max=STABLE_IMAGE_SEED_MAX)
    columns = stable_image.columns_of(operation_id).items()
    inputs = [
        (getattr(job, column), f"{name}.png", images[name]) for name, column in columns if name in images
    ]
    return _job_queue(job, inputs)


def stable_image_job_again(
    *, job: GenerationJob, user: User, seed: int, samples: int, parent: GalleryImage | None, relation: str
) -> GenerationJob:
    """The same Stable Image request again (a re-run of one image, or a retry of the job)."""
    values = job.stable_image_values()
    images = {name: values.pop(name) for name in stable_image.columns_of(job.operation) if name in values}
    return stable_image_job_create(
        team=job.team,
        user=user,
        operation_id=job.operation,
        engine_id=job.engine_id,
        kind=job.kind,
        values=values,
        images=images,
        samples=samples,
        seed=seed,
        parent=parent,
        relation=relation,
        upload=job.upload,
        prompt=job.prompt,
        resized_from=job.resized_from,
    )


def _job_inputs(job: GenerationJob, request: JobRequest) -> list[tuple[FieldFile, str, bytes]]:
    """The image files the job sends, with the field that keeps each and its name."""
    if isinstance(request, UpscaleRequest):
        return [(job.init_image, "source.png", request.image)]
    if isinstance(request, TextToImageRequest):
        return []
    inputs = [(job.init_image, "init.png", request.init_image)]
    if isinstance(request, MaskingRequest) and request.mask_image is not None:
        inputs.append((job.mask_image, "mask.png", request.mask_image))
    return inputs


def _input_sources(*, upload: Upload | None, parent: GalleryImage | None) -> list[FieldFile]:
    """Stored files a job's input may be byte for byte: its upload, its parent image (variations and
    upscales send it unchanged) and the parent job's own inputs (a re-run sends them again)."""
    sources = [upload.image] if upload is not None else []
    if parent is not None:
        sources += [parent.image, parent.job.init_image, parent.job.mask_image]
    return [source for source in sources if source]


def _input_store(file: FieldFile, name: str, content: bytes, *, sources: list[FieldFile]) -> bool:
    """Point the job's input at a stored file holding exactly `content`, else store it: a picture sent by
    several jobs is kept once, not once per job. True when a new file was written."""
    for source in sources:
        try:
            same = source.size == len(content) and read_file(source) == content
        except OSError:  # a source file already gone
            same = False
        if same:
            file.name = source.name
            return False
    file.save(name, ContentFile(content), save=False)
    return True


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
            "samples": 1,
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


def _drawn_by(image: GalleryImage) -> GenerationJob:
    """The job that drew the picture; for a v1 upscale, the one that drew its source."""
    job = image.job
    if job.kind == GenerationJob.Kind.UPSCALE and not job.is_stable_image and job.parent is not None:
        return job.parent.job
    return job


def _variation_engine(drawn_by: GenerationJob, default_engine: str) -> str:
    """The v1 engine that drew the picture, else the default one (a v1 engine: SDXL 1.0 when the default
    is a Stable Image model)."""
    spec = ENGINES.get(drawn_by.engine_id)
    if spec is not None and spec.generates:
        return drawn_by.engine_id
    return default_engine if default_engine in ENGINES else V1_VARIATION_ENGINE


def image_variations(*, image: GalleryImage, user: User, default_engine: str) -> GenerationJob:
    """Image-to-image from the image, with its prompts and settings and new seeds: on the Stable Image
    model that drew it (stable_image_variations), else on its v1 engine."""
    job, drawn_by = image.job, _drawn_by(image)
    if drawn_by.is_stable_image:
        return stable_image_variations(image=image, user=user, drawn_by=drawn_by)
    engine_id = _variation_engine(drawn_by, default_engine)
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


def stable_image_variations(*, image: GalleryImage, user: User, drawn_by: GenerationJob) -> GenerationJob:
    """Image-to-image from a Stable Image picture on the model that drew it when that model takes an image
    (Ultra, SD 3.5), else on stable_image.VARIATION_MODEL (Core and the tools take none), with its prompt."""
    job = drawn_by
    model = stable_image.variation_model(job.engine_id)
    values: dict[str, Any] = {
        "prompt": job.prompt,
        "strength": round(1 - VARIATION_STRENGTH, 2),  # v2beta's strength is how much may change
        **model.fixed,
    }
    if model.sd3_model:
        values["mode"] = "image-to-image"
    for name in ("negative_prompt", "style_preset", "cfg_scale"):
        if model.takes(name) and job.options.get(name) not in (None, ""):
            values[name] = job.options[name]
    return stable_image_job_create(
        team=image.team,
        user=user,
        operation_id=model.operation.id,
        engine_id=model.id,
        kind=GenerationJob.Kind.IMAGE_TO_IMAGE,
        values=values,
        images={"image": read_file(image.image)},
        samples=VARIATION_SAMPLES,
        parent=image,
        relation=GenerationJob.Relation.VARIATION,
    )


def image_rerun(*, image: GalleryImage, user: User) -> GenerationJob:
    """Exactly the request that made the image, with the image's own seed: the same picture again."""
    job = image.job
    if job.is_stable_image:
        return stable_image_job_again(
            job=job,
            user=user,
            seed=image.seed,
            samples=1,
            parent=image,
            relation=GenerationJob.Relation.RERUN,
        )
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


def job_cancel(*, job: GenerationJob) -> GenerationJob:
    """A queued job ends at once and costs nothing; a running one is asked to stop, and ends after the
    request in flight, keeping the images already stored."""
    GenerationJob.objects.filter(
        pk=job.pk,
        status__in=[GenerationJob.Status.QUEUED, GenerationJob.Status.RUNNING],
        cancel_requested_at__isnull=True,
    ).update(cancel_requested_at=timezone.now())
    return job_finish(
        job=job, status=GenerationJob.Status.CANCELLED, only=Q(status=GenerationJob.Status.QUEUED)
    )
