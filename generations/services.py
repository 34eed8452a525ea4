"""Writes with side effects for generation: create a job, run it against the API, store its images."""

import contextlib
import io
import logging
import secrets
from dataclasses import replace as _replace
from datetime import timedelta
from decimal import Decimal
from functools import partial
from uuid import UUID

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.core.files.base import ContentFile
from django.db import IntegrityError, connection, transaction
from django.db.models import F, Q, Sum
from django.db.models.fields.files import FieldFile
from django.db.models.functions import Coalesce
from django.utils import timezone
from kombu.exceptions import OperationalError
from PIL import Image

from accounts.models import Team, User
from accounts.services import team_balance_forget, team_client
from accounts.services.spend import allowance_check
from accounts.services.stability import no_client_message
from generations.engines import upscale_factor, upscale_output
from generations.imaging import fit_to_engine, png_size
from generations.metadata import png_with_metadata
from generations.models import (
    MAX_ATTEMPTS,
    ApiRequest,
    GalleryImage,
    GenerationJob,
    JobRequest,
    Upload,
    read_file,
)
from generations.stability.client import StabilityClient
from generations.stability.contract import ENGINES, SEED_RANGE, Prompt
from generations.stability.limiter import KeyPaused, paused_for
from generations.stability.types import (
    Artifact,
    ImageToImageRequest,
    MaskingRequest,
    PermanentError,
    StabilityError,
    TextToImageRequest,
    TransientError,
    UpscaleRequest,
)
from generations.uploads import CleanImage, UploadRejected, quota_message

logger = logging.getLogger(__name__)

THUMBNAIL_SIDE = 384
UNUSED_UPLOAD_LIFETIME = timedelta(days=1)
VARIATION_SAMPLES = 4
VARIATION_STRENGTH = 0.6  # close enough to read as the same picture, far enough to differ


class JobNotClaimed(Exception):
    """The job is not waiting for a worker (it is finished, or another worker runs it), or it was tried
    too often."""


class RunStopped(Exception):
    """The run must not send another request: the job was cancelled, ended elsewhere, or taken over by a
    newer attempt (its worker was thought dead)."""


class JobWaits(Exception):
    """The team's key is paused (a lock-out) or has no slot free: the job is back in the queue, due again
    in `seconds`, without counting as a failed attempt (`attempt` is the claimed attempt it resumes)."""

    def __init__(self, *, seconds: float, attempt: int | None) -> None:
        super().__init__(f"waits {seconds:.1f} s")
        self.seconds = seconds
        self.attempt = attempt


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
        _delete_files(upload.image)
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
    job.credits_estimated = job.price_per_image * job.samples
    allowance_check(team=team, user=user, cost=job.credits_estimated)
    sources = _input_sources(upload=upload, parent=parent)
    written: list[FieldFile] = []
    try:
        for file, name, content in _job_inputs(job, request):
            if _input_store(file, name, content, sources=sources):
                written.append(file)
        job.save(force_insert=True)
    except Exception:
        _delete_files(*written)  # nothing half-written is left behind (files shared with others stay)
        raise
    transaction.on_commit(lambda: _job_enqueue(job))
    return job


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


# --- running a job -----------------------------------------------------------------------------------
# One request per image, recorded (ApiRequest) before it is sent, so that whatever happens to the worker
# the database says which images exist and which requests may have been charged.

# httpx failures that mean the request never left this machine, so nothing can have been charged.
NOT_SENT = {"ConnectError", "ConnectTimeout", "PoolTimeout"}
NO_ANSWER = "No answer: the worker sending it stopped before the API answered."
INTERNAL_ERROR_MESSAGE = (
    "Studio stopped this job after an internal error (logged for the operator). Try again."
)
SEED_MAX = SEED_RANGE[1]


def image_seeds(seed: int, samples: int) -> list[int]:
    """The seed of each image, numbered as the API numbers them: seed 0 picks random ones, seed s gives
    s, s+1, … Chosen when the job is made, so that a retry asks for the same pictures."""
    if not seed:
        return [secrets.randbelow(SEED_MAX) + 1 for _ in range(samples)]
    return [(seed + i - 1) % SEED_MAX + 1 for i in range(samples)]


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


def job_claim(
    *, job_id: UUID | str, recovering: bool = False, resume_attempt: int | None = None
) -> GenerationJob:
    """Mark a queued job running with a conditional UPDATE, so that two workers never both run it and a
    finished job never runs again. `recovering`: the broker redelivered the task because the worker running
    it died, so a job still marked running is taken over (its new attempt number fences the old run out).
    `resume_attempt`: the job waited out its key's rate limit after that attempt, so it carries on as the
    same attempt (no other run can hold its number: that run put the job back in the queue itself)."""
    now = timezone.now()
    if resume_attempt is not None:
        resumed = GenerationJob.objects.filter(
            pk=job_id, status=GenerationJob.Status.QUEUED, attempts=resume_attempt
        ).update(status=GenerationJob.Status.RUNNING, progress_at=now)
        if resumed:
            return GenerationJob.objects.select_related("team").get(pk=job_id)
    claimable = Q(status=GenerationJob.Status.QUEUED)
    if recovering:
        claimable |= Q(status=GenerationJob.Status.RUNNING)
    updated = GenerationJob.objects.filter(claimable, pk=job_id, attempts__lt=MAX_ATTEMPTS).update(
        status=GenerationJob.Status.RUNNING,
        attempts=F("attempts") + 1,
        started_at=Coalesce(F("started_at"), now),
        progress_at=now,
    )
    if not updated:
        raise JobNotClaimed(job_id)
    return GenerationJob.objects.select_related("team").get(pk=job_id)


def job_unclaimed(*, job_id: UUID | str, recovering: bool = False) -> None:
    """After a refused claim: a job out of attempts that no live worker runs is failed. A finished job, or
    one another worker is running, is left alone."""
    job = GenerationJob.objects.select_related("team").filter(pk=job_id).first()
    if job is None or job.is_finished or job.attempts < MAX_ATTEMPTS:
        return
    if job.status == GenerationJob.Status.QUEUED or recovering:
        job_fail(job=job, message=out_of_attempts_message(job))


def out_of_attempts_message(job: GenerationJob) -> str:
    last_error = job.api_requests.exclude(error="").order_by("-pk").values_list("error", flat=True).first()
    why = f"The last error was: {last_error}" if last_error else "Its worker stopped each time."
    return (
        f"Studio started this job {job.attempts} times without finishing it, so it was given up. {why} "
        "Try again; if it keeps happening, tell the operator."
    )


def job_run(
    *, job_id: UUID | str, recovering: bool = False, resume_attempt: int | None = None
) -> GenerationJob:
    """Claim the job and ask the API for each image not stored yet, one request per image. Transient
    errors put the job back in the queue and propagate, for the task to retry; any other error ends it.
    A key locked out or out of slots puts it back in the queue too, as JobWaits: it waits, and does not
    use up an attempt."""
    _job_wait_if_paused(job_id, resume_attempt)
    job = job_claim(job_id=job_id, recovering=recovering, resume_attempt=resume_attempt)
    attempt = job.attempts
    try:
        return _job_generate(job, attempt)
    except RunStopped:
        # Cancelled: it ends now, keeping its images. Taken over or ended elsewhere: nothing matches.
        cancelled = Q(cancel_requested_at__isnull=False)
        return job_finish(job=job, status=GenerationJob.Status.CANCELLED, attempt=attempt, only=cancelled)
    except KeyPaused as exc:
        _job_requeue(job, attempt, due_in=exc.retry_after)
        raise JobWaits(seconds=exc.retry_after, attempt=attempt) from exc
    except (TransientError, SoftTimeLimitExceeded):
        _job_requeue(job, attempt)
        raise
    except Exception:
        logger.exception("job %s stopped by an unexpected error", job.pk)
        job_finish(
            job=job, status=GenerationJob.Status.FAILED, reason=INTERNAL_ERROR_MESSAGE, attempt=attempt
        )
        raise


def _job_generate(job: GenerationJob, attempt: int) -> GenerationJob:
    _requests_settle_dead(job, before=attempt)
    client = _job_client(job)
    if client is None:
        return job_finish(
            job=job, status=GenerationJob.Status.FAILED, reason=no_client_message(job.team), attempt=attempt
        )
    request = job.to_request()
    stored = set(job.images.values_list("index", flat=True))
    for index in range(job.samples):
        if index in stored:
            continue  # a re-run asks only for what is missing: an image stored is never paid for twice
        _job_alive(job, attempt, cancellable=True)
        try:
            _image_request(job, attempt, client, request, index)
        except PermanentError as exc:
            return job_finish(
                job=job, status=GenerationJob.Status.FAILED, reason=exc.message, attempt=attempt
            )
        _job_alive(job, attempt, cancellable=False)
    return job_finish(job=job, status=GenerationJob.Status.SUCCEEDED, attempt=attempt)


def _job_client(job: GenerationJob) -> StabilityClient | None:
    """The team's client, giving up on one image after JOB_REQUEST_TIMEOUT_SECONDS and waiting at most
    STABILITY_RATE_MAX_WAIT_SECONDS for the key's rate limit: a live run is never silent for longer than
    the two together, which is how the reconciler tells a dead worker from a slow answer."""
    client = team_client(job.team, read_timeout=settings.JOB_REQUEST_TIMEOUT_SECONDS)
    if client is not None:
        client.rate_wait = settings.STABILITY_RATE_MAX_WAIT_SECONDS
    return client


def _job_wait_if_paused(job_id: UUID | str, resume_attempt: int | None) -> None:
    """A queued job whose key is locked out is not claimed (a claim counts an attempt): it stays queued,
    due again when the lock-out ends (JobWaits)."""
    job = GenerationJob.objects.select_related("team").filter(pk=job_id, status=GenerationJob.Status.QUEUED)
    client = _job_client(job[0]) if job else None
    left = paused_for(client.rate_key) if client is not None else 0.0
    if left:
        job.update(progress_at=timezone.now() + timedelta(seconds=left))
        raise JobWaits(seconds=left, attempt=resume_attempt)


def _job_alive(job: GenerationJob, attempt: int, *, cancellable: bool) -> None:
    """A sign of life around each request. RunStopped when the job ended, was taken over by a newer attempt,
    or (before a request) was cancelled."""
    still_ours = GenerationJob.objects.filter(
        pk=job.pk, status=GenerationJob.Status.RUNNING, attempts=attempt
    )
    if cancellable:
        still_ours = still_ours.filter(cancel_requested_at__isnull=True)
    if not still_ours.update(progress_at=timezone.now()):
        raise RunStopped(job.pk)


def _image_request(
    job: GenerationJob, attempt: int, client: StabilityClient, request: JobRequest, index: int
) -> None:
    """Send one image's request, recorded before it leaves, and settle the record by what came back."""
    seed = job.seeds[index] if index < len(job.seeds) else image_seeds(job.seed, index + 1)[index]
    record = ApiRequest.objects.create(job=job, index=index, attempt=attempt, seed=seed)
    if not connection.in_atomic_block:
        connection.close()  # no database connection is held while the API (or the rate limit) takes its time
    try:
        artifacts = _call(client, job.engine_id, _one_image(request, seed))
        if not artifacts:
            raise TransientError("The Stability API answered without an image.")
    except KeyPaused as exc:
        if exc.status is None:
            record.delete()  # it waits its turn: nothing was sent
        else:
            _request_settle(
                record,
                ApiRequest.Outcome.NOT_CHARGED,
                credits=Decimal(0),
                status_code=exc.status,
                error=exc.message,
            )
        raise
    except StabilityError as exc:
        possibly_charged = isinstance(exc, TransientError) and _may_have_been_charged(exc)
        _request_settle(
            record,
            ApiRequest.Outcome.UNKNOWN if possibly_charged else ApiRequest.Outcome.NOT_CHARGED,
            credits=job.price_per_image if possibly_charged else Decimal(0),
            status_code=exc.status,
            error=exc.message,
        )
        raise
    except BaseException as exc:
        # A time limit or a crash while waiting: the API may have charged for an answer never read.
        reason = f"No answer read: the run stopped ({type(exc).__name__})."
        _request_settle(record, ApiRequest.Outcome.UNKNOWN, credits=job.price_per_image, error=reason)
        raise
    try:
        image_store(job=job, index=index, artifact=artifacts[0], api_request=record)
    except BaseException as exc:
        outcome, credits = _charge_of(job, artifacts[0])
        reason = f"Answered, but the image could not be stored ({type(exc).__name__})."
        _request_settle(record, outcome, credits=credits, error=reason)
        raise


def _one_image(request: JobRequest, seed: int) -> JobRequest:
    if isinstance(request, UpscaleRequest):
        return _replace(request, seed=seed)  # ESRGAN leaves the seed out
    return _replace(request, samples=1, seed=seed)


def _may_have_been_charged(exc: TransientError) -> bool:
    """No HTTP answer, though the request left: a timeout or a cut connection after sending."""
    return exc.status is None and type(exc.__cause__).__name__ not in NOT_SENT


def _charge_of(job: GenerationJob, artifact: Artifact) -> tuple[str, Decimal]:
    """What an answered request cost, as the API charges: nothing for a filtered image."""
    if artifact.filtered:
        return ApiRequest.Outcome.NOT_CHARGED, Decimal(0)
    return ApiRequest.Outcome.CHARGED, job.price_per_image


def _request_settle(
    record: ApiRequest, outcome: str, *, credits: Decimal, status_code: int | None = None, error: str = ""
) -> None:
    # An answer that comes after the run was given up for dead replaces the guess: it is the truth.
    ApiRequest.objects.filter(
        pk=record.pk, outcome__in=[ApiRequest.Outcome.PENDING, ApiRequest.Outcome.UNKNOWN]
    ).update(
        outcome=outcome, credits=credits, status_code=status_code, error=error, finished_at=timezone.now()
    )


def _requests_settle_dead(job: GenerationJob, *, before: int | None = None) -> None:
    """Requests left pending by a run that died (an attempt before `before`, or any, once the job ends):
    no answer was read, so they may have been charged."""
    pending = ApiRequest.objects.filter(job=job, outcome=ApiRequest.Outcome.PENDING)
    if before is not None:
        pending = pending.filter(attempt__lt=before)
    pending.update(
        outcome=ApiRequest.Outcome.UNKNOWN,
        credits=job.price_per_image,
        error=NO_ANSWER,
        finished_at=timezone.now(),
    )


def _job_requeue(job: GenerationJob, attempt: int, *, due_in: float = 0) -> None:
    """Back to the queue for the task's retry in `due_in` seconds (or the reconciler's, if that message is
    lost: its grace counts from when the retry is due); a job cancelled meanwhile ends now instead."""
    cancelled = Q(cancel_requested_at__isnull=False)
    job = job_finish(job=job, status=GenerationJob.Status.CANCELLED, attempt=attempt, only=cancelled)
    if not job.is_finished:
        GenerationJob.objects.filter(pk=job.pk, status=GenerationJob.Status.RUNNING, attempts=attempt).update(
            status=GenerationJob.Status.QUEUED, progress_at=timezone.now() + timedelta(seconds=due_in)
        )


def _call(client: StabilityClient, engine_id: str, request: JobRequest) -> list[Artifact]:
    match request:
        case ImageToImageRequest():
            return client.image_to_image(engine_id, request)
        case MaskingRequest():
            return client.masking(engine_id, request)
        case UpscaleRequest():
            return client.upscale(engine_id, request)
    return client.text_to_image(engine_id, request)


def image_store(
    *, job: GenerationJob, index: int, artifact: Artifact, api_request: ApiRequest | None = None
) -> GalleryImage:
    """Store one artifact, once: a job run twice finds its image already there. The request that brought it
    is settled in the same transaction as the image row, so the two never disagree."""
    outcome, credits = _charge_of(job, artifact)
    existing = GalleryImage.objects.filter(job=job, index=index).first()
    if existing is not None:
        if api_request is not None:
            _request_settle(api_request, outcome, credits=credits)
        return existing
    # How the image was made travels in the file: A1111's `parameters` text and Studio's own JSON.
    png = png_with_metadata(artifact.png, job=job, index=index, seed=artifact.seed)
    with Image.open(io.BytesIO(png)) as picture:
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
    image.image.save("image.png", ContentFile(png), save=False)
    image.thumbnail.save("thumbnail.webp", ContentFile(webp.getvalue()), save=False)
    try:
        with transaction.atomic():
            image.save(force_insert=True)
            if api_request is not None:
                _request_settle(api_request, outcome, credits=credits)
    except IntegrityError:
        # Another run of the same job stored it first; keep theirs and drop our files (this answer was
        # charged all the same, and is recorded so).
        _delete_files(image.image, image.thumbnail)
        if api_request is not None:
            _request_settle(api_request, outcome, credits=credits)
        return GalleryImage.objects.get(job=job, index=index)
    except BaseException:
        _delete_files(image.image, image.thumbnail)
        raise
    return image


def job_succeed(*, job: GenerationJob) -> GenerationJob:
    return job_finish(job=job, status=GenerationJob.Status.SUCCEEDED)


def job_fail(*, job: GenerationJob, message: str) -> GenerationJob:
    logger.info("job %s failed: %s", job.pk, message)
    return job_finish(job=job, status=GenerationJob.Status.FAILED, reason=message)


def job_abandon(*, job_id: UUID | str, message: str) -> None:
    """The task gave up (out of retries, or an error outside a run): a job waiting in the queue ends with
    the message. A job marked running is left to its run, or to the reconciler once that run is dead."""
    job = GenerationJob.objects.select_related("team").filter(pk=job_id).first()
    if job is not None:
        job_finish(
            job=job,
            status=GenerationJob.Status.FAILED,
            reason=message,
            only=Q(status=GenerationJob.Status.QUEUED),
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


def job_finish(
    *, job: GenerationJob, status: str, reason: str = "", attempt: int | None = None, only: Q | None = None
) -> GenerationJob:
    """End the job, if it is still queued or running (run by `attempt`, when given, and matching `only`).
    The status is written first, with the credits and the message, in one guarded UPDATE, so nothing that
    fails afterwards can leave the job running; the cached balance is forgotten after that."""
    guard = Q(pk=job.pk, status__in=[GenerationJob.Status.QUEUED, GenerationJob.Status.RUNNING])
    if attempt is not None:
        guard &= Q(attempts=attempt)
    if only is not None:
        guard &= only
    with transaction.atomic():
        job.refresh_from_db(fields=["attempts"])  # the message says whether it ever started
        charged = ApiRequest.objects.filter(job=job, outcome=ApiRequest.Outcome.CHARGED)
        spent = charged.aggregate(total=Sum("credits"))["total"] or Decimal(0)
        message = _finish_message(job, status, reason, kept=job.images.count())
        ended = GenerationJob.objects.filter(guard).update(
            status=status, error_message=message, finished_at=timezone.now(), credits_spent=spent
        )
        if ended:
            _requests_settle_dead(job)
    if ended:
        try:
            team_balance_forget(job.team)
        except Exception:  # the cache (Redis) may be down; the job has ended all the same
            logger.warning("job %s: the cached balance could not be forgotten", job.pk, exc_info=True)
    job.refresh_from_db()
    return job


def _finish_message(job: GenerationJob, status: str, reason: str, *, kept: int) -> str:
    """What the card says: why it failed, and what was kept of a job that did not make every image."""
    images = "image" if job.samples == 1 else "images"
    if status == GenerationJob.Status.CANCELLED:
        if not job.attempts:
            return "Cancelled before it started; it cost nothing."
        return f"Cancelled: {kept} of {job.samples} {images} kept."
    if status == GenerationJob.Status.FAILED and kept:
        return f"{kept} of {job.samples} {images} made and kept; the rest failed. {reason}"
    return reason
