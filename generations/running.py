"""Running a job: claim it, ask the API for each image, store what comes back, and end the job.

One request per image, recorded (ApiRequest) before it is sent, so that whatever happens to the worker
the database says which images exist and which requests may have been charged."""

import functools
import logging
import secrets
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace as _replace
from datetime import timedelta
from decimal import Decimal
from uuid import UUID

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.core.files.base import ContentFile
from django.db import IntegrityError, connection, transaction
from django.db.models import F, Q, Sum
from django.db.models.fields.files import FieldFile
from django.db.models.functions import Coalesce
from django.utils import timezone

from accounts.services import team_balance_forget, team_client
from accounts.services.stability import no_client_message
from generations import queueing
from generations.imaging import as_png, picture_soon
from generations.metadata import png_with_metadata
from generations.models import MAX_ATTEMPTS, ApiRequest, GalleryImage, GenerationJob, JobRequest
from generations.stability.client import StabilityClient
from generations.stability.contract import SEED_RANGE
from generations.stability.contract import RuleViolation as V1RuleViolation
from generations.stability.limiter import KeyPaused, paused_for
from generations.stability.types import (
    Artifact,
    ImageToImageRequest,
    MaskingRequest,
    PermanentError,
    StabilityError,
    TransientError,
    UpscaleRequest,
)
from generations.stability.v2beta.client import StableImageClient
from generations.stability.v2beta.fields import SEED_RANGE as STABLE_IMAGE_SEED_RANGE
from generations.stability.v2beta.types import InProgress

logger = logging.getLogger(__name__)


class JobNotClaimed(Exception):
    """The job is not waiting for a worker (it is finished, or another worker runs it), or it was tried
    too often."""


class JobHeld(Exception):
    """Its creator or team has as many jobs running as allowed: the job stays queued, spending no attempt,
    and starts when one of theirs ends (generations/queueing.py)."""


class RunStopped(Exception):
    """The run must not send another request: the job was cancelled, ended elsewhere, or taken over by a
    newer attempt (its worker was thought dead)."""


class ResultPending(Exception):
    """An asynchronous Stable Image operation was submitted and its result is not ready: the job goes back
    to the queue and asks again in `seconds` (no worker slot is held while the platform works)."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"result due in {seconds:.0f} s")
        self.seconds = seconds


class JobWaits(Exception):
    """The team's key is paused (a lock-out) or has no slot free: the job is back in the queue, due again
    in `seconds`, without counting as a failed attempt (`attempt` is the claimed attempt it resumes)."""

    def __init__(self, *, seconds: float, attempt: int | None, for_result: bool = False) -> None:
        super().__init__(f"waits {seconds:.1f} s")
        self.seconds = seconds
        self.attempt = attempt
        self.for_result = for_result  # an asynchronous result, not the key: no lock-out to give up on


# httpx failures that mean the request never left this machine, so nothing can have been charged.
NOT_SENT = {"ConnectError", "ConnectTimeout", "PoolTimeout"}
NO_ANSWER = "No answer: the worker sending it stopped before the API answered."
NOT_FETCHED = "Charged when the API accepted it; the job ended before its result was fetched."
INTERNAL_ERROR_MESSAGE = (
    "Studio stopped this job after an internal error (logged for the operator). Try again."
)
SEED_MAX = SEED_RANGE[1]
STABLE_IMAGE_SEED_MAX = STABLE_IMAGE_SEED_RANGE[1]  # one less than v1's


def image_seeds(seed: int, samples: int, *, seed_max: int = SEED_MAX) -> list[int]:
    """The seed of each image, numbered as the API numbers them: seed 0 picks random ones, seed s gives
    s, s+1, … up to `seed_max` (the API's), then 1, … Chosen when the job is made, so that a retry asks
    for the same pictures."""
    if not seed:
        return [secrets.randbelow(seed_max) + 1 for _ in range(samples)]
    return [(seed + i - 1) % seed_max + 1 for i in range(samples)]


def job_claim(
    *, job_id: UUID | str, recovering: bool = False, resume_attempt: int | None = None
) -> GenerationJob:
    """Mark a queued job running with a conditional UPDATE, so that two workers never both run it and a
    finished job never runs again. `recovering`: the broker redelivered the task because the worker running
    it died, so a job still marked running is taken over (its new attempt number fences the old run out).
    `resume_attempt`: the job waited out its key's rate limit after that attempt, so it carries on as the
    same attempt (no other run can hold its number: that run put the job back in the queue itself).
    A queued job whose creator or team is at its limit of jobs running is held (JobHeld), spending nothing."""
    now = timezone.now()
    if resume_attempt is not None:
        resumed = GenerationJob.objects.filter(
            pk=job_id, status=GenerationJob.Status.QUEUED, attempts=resume_attempt
        ).update(status=GenerationJob.Status.RUNNING, progress_at=now)
        if resumed:
            return GenerationJob.objects.select_related("team").get(pk=job_id)
    # A queued job waiting out a lock-out or its asynchronous result is not due until its time: a stray or
    # repeated message must not run it early (that would spend an attempt, and ask too soon).
    claimable = Q(status=GenerationJob.Status.QUEUED) & queueing.due()
    if recovering:
        claimable |= Q(status=GenerationJob.Status.RUNNING)
    with transaction.atomic():
        job = GenerationJob.objects.filter(claimable, pk=job_id, attempts__lt=MAX_ATTEMPTS).first()
        if job is None:
            raise JobNotClaimed(job_id)
        reason = ""
        if job.status == GenerationJob.Status.QUEUED:
            queueing.lock_for_claim(job)
            reason = queueing.held_by_limit(job)
        updated = not reason and GenerationJob.objects.filter(
            claimable, pk=job_id, attempts__lt=MAX_ATTEMPTS
        ).update(
            status=GenerationJob.Status.RUNNING,
            attempts=F("attempts") + 1,
            started_at=Coalesce(F("started_at"), now),
            progress_at=now,
        )
    if reason:
        queueing.held_stamp(job_id)
        raise JobHeld(reason)
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
    except ResultPending as exc:
        _job_requeue(job, attempt, due_in=exc.seconds)
        raise JobWaits(seconds=exc.seconds, attempt=attempt, for_result=True) from exc
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
    if job.is_stable_image:
        stable = stable_image_client(client)
        ask = functools.partial(_stable_image_request, job, attempt, stable)
    else:
        ask = functools.partial(_image_request, job, attempt, client, job.to_request())
    stored = set(job.images.values_list("index", flat=True))
    # A re-run asks only for what is missing: an image stored is never paid for twice.
    missing = [index for index in range(job.samples) if index not in stored]

    def one(index: int) -> None:
        _job_alive(job, attempt, cancellable=True)
        ask(index)
        _job_alive(job, attempt, cancellable=False)

    at_once = _at_once(len(missing))
    try:
        if at_once > 1:
            _each_in_parallel(one, missing, at_once)
        else:
            for index in missing:
                one(index)
    except PermanentError as exc:
        return job_finish(job=job, status=GenerationJob.Status.FAILED, reason=exc.message, attempt=attempt)
    return job_finish(job=job, status=GenerationJob.Status.SUCCEEDED, attempt=attempt)


def _at_once(missing: int) -> int:
    """How many of a job's images are asked for at the same time: up to JOB_IMAGES_AT_ONCE, so a job of
    four takes one answer's time, not four. One at a time inside a transaction (tests that run a job
    in-process): the threads' own connections could not see its uncommitted rows."""
    if connection.in_atomic_block:
        return 1
    return max(1, min(missing, settings.JOB_IMAGES_AT_ONCE))


# What ends a run that asked for several images at once, most decisive first: stopped (cancelled or
# taken over), refused for good, the key paused, a result still being made, then any other failure.
_DECISIVE = (RunStopped, PermanentError, KeyPaused, ResultPending)


def _each_in_parallel(one: Callable[[int], None], indexes: list[int], at_once: int) -> None:
    """Call `one` for each index on `at_once` threads, every request recorded and settled by its own thread
    as when they go one by one; once all have returned, raise the most decisive of their failures (the
    lowest index among equals), for `job_run` to handle as it would a single request's."""

    def each(index: int) -> BaseException | None:
        try:
            one(index)
            return None
        except BaseException as exc:  # handed back to the run, which decides
            return exc
        finally:
            connection.close()  # each thread's own connection, opened for its records

    with ThreadPoolExecutor(at_once, thread_name_prefix="job-image") as pool:
        failures = [exc for exc in pool.map(each, indexes) if exc is not None]
    for kind in (*_DECISIVE, BaseException):
        for exc in failures:
            if isinstance(exc, kind):
                raise exc


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
    seed = _image_seed(job, index)
    record = ApiRequest.objects.create(job=job, index=index, attempt=attempt, seed=seed)
    if not connection.in_atomic_block:
        connection.close()  # no database connection is held while the API (or the rate limit) takes its time
    try:
        artifacts = _call(client, job.engine_id, _one_image(request, seed))
        if not artifacts:
            raise TransientError("The Stability API answered without an image.")
    except KeyPaused as exc:
        _request_paused(record, exc)
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


def stable_image_client(client: StabilityClient) -> StableImageClient:
    """The Stable Image client for the same key, host, time-outs and rate-limit wait as the v1 one."""
    stable = StableImageClient(api_key=client.api_key, host=client.host, read_timeout=client.timeout.read)
    stable.rate_wait = client.rate_wait
    return stable


def _image_seed(job: GenerationJob, index: int) -> int:
    if index < len(job.seeds):
        return job.seeds[index]
    seed_max = STABLE_IMAGE_SEED_MAX if job.is_stable_image else SEED_MAX
    return image_seeds(job.seed, index + 1, seed_max=seed_max)[index]


def _stable_image_request(job: GenerationJob, attempt: int, client: StableImageClient, index: int) -> None:
    """One image of a Stable Image job, recorded before it leaves. An asynchronous operation is submitted
    (its id kept on the record) and its result fetched on a later run, never submitted twice."""
    submitted = ApiRequest.objects.filter(job=job, index=index, outcome=ApiRequest.Outcome.PENDING).exclude(
        generation_id=""
    )
    record = submitted.order_by("-pk").first()
    if record is None:
        seed = _image_seed(job, index)
        try:
            request = job.to_stable_image_request(seed=seed)
            request.validate()  # checked before it is recorded: a request never sent costs nothing
        except V1RuleViolation as exc:
            raise PermanentError(f"Studio did not send it: the API would refuse {exc}.") from exc
        record = ApiRequest.objects.create(job=job, index=index, attempt=attempt, seed=seed)
    if not connection.in_atomic_block:
        connection.close()
    try:
        if record.generation_id:
            outcome = client.result(record.generation_id)
            if isinstance(outcome, InProgress):
                raise ResultPending(settings.STABILITY_RESULT_POLL_SECONDS)
            result = outcome
        else:
            if request.operation.asynchronous:
                generation = client.submit(request)  # type: ignore[arg-type]
                ApiRequest.objects.filter(pk=record.pk).update(
                    generation_id=generation.id, credits=job.price_per_image
                )
                raise ResultPending(settings.STABILITY_RESULT_POLL_SECONDS)
            result = client.run(request)  # type: ignore[arg-type]
    except ResultPending:
        raise
    except KeyPaused as exc:
        if not record.generation_id:  # a submitted one's result is asked for again once the key may send
            _request_paused(record, exc)
        raise
    except StabilityError as exc:
        # An accepted asynchronous request was charged when it was submitted, whatever its result does.
        accepted = bool(record.generation_id) and not isinstance(exc, TransientError)
        possibly = isinstance(exc, TransientError) and (
            bool(record.generation_id) or _may_have_been_charged(exc)
        )
        if accepted:
            _request_settle(
                record,
                ApiRequest.Outcome.CHARGED,
                credits=job.price_per_image,
                status_code=exc.status,
                error=exc.message,
            )
        elif not (possibly and record.generation_id):  # a submitted one is asked for again
            _request_settle(
                record,
                ApiRequest.Outcome.UNKNOWN if possibly else ApiRequest.Outcome.NOT_CHARGED,
                credits=job.price_per_image if possibly else Decimal(0),
                status_code=exc.status,
                error=exc.message,
            )
        raise
    except BaseException as exc:
        if not record.generation_id:
            reason = f"No answer read: the run stopped ({type(exc).__name__})."
            _request_settle(record, ApiRequest.Outcome.UNKNOWN, credits=job.price_per_image, error=reason)
        raise
    artifact = Artifact(png=as_png(result.image), seed=result.seed, finish_reason=result.finish_reason)
    try:
        image_store(job=job, index=index, artifact=artifact, api_request=record)
    except BaseException as exc:
        outcome_, credits = _charge_of(job, artifact)
        reason = f"Answered, but the image could not be stored ({type(exc).__name__})."
        _request_settle(record, outcome_, credits=credits, error=reason)
        raise


def _request_paused(record: ApiRequest, exc: KeyPaused) -> None:
    """The key is paused: a request that waited its turn was never sent (forgotten); one refused with a
    429 was not charged."""
    if exc.status is None:
        record.delete()
    else:
        _request_settle(
            record,
            ApiRequest.Outcome.NOT_CHARGED,
            credits=Decimal(0),
            status_code=exc.status,
            error=exc.message,
        )


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
        # A submitted asynchronous request is not lost with its run: the next one fetches its result.
        pending = pending.filter(attempt__lt=before, generation_id="")
    now = timezone.now()
    # A submitted asynchronous request was charged when the platform accepted it.
    pending.exclude(generation_id="").update(
        outcome=ApiRequest.Outcome.CHARGED, credits=job.price_per_image, error=NOT_FETCHED, finished_at=now
    )
    pending.update(
        outcome=ApiRequest.Outcome.UNKNOWN, credits=job.price_per_image, error=NO_ANSWER, finished_at=now
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
    # The pixels are decoded once, and the thumbnail made, on another core while this thread writes the
    # PNG with how the image was made (A1111's `parameters` text and Studio's own JSON) spliced in.
    picture_made = picture_soon(artifact.png)
    image = GalleryImage(
        job=job,
        index=index,
        team_id=job.team_id,
        created_by_id=job.created_by_id,
        seed=artifact.seed,
        finish_reason=artifact.finish_reason,
    )
    try:
        png = png_with_metadata(artifact.png, job=job, index=index, seed=artifact.seed)
        image.image.save("image.png", ContentFile(png), save=False)
        picture = picture_made.result()
        image.width, image.height = picture.width, picture.height
        image.thumbnail.save("thumbnail", ContentFile(picture.thumbnail), save=False)
        with transaction.atomic():
            image.save(force_insert=True)
            if api_request is not None:
                _request_settle(api_request, outcome, credits=credits)
    except IntegrityError:
        # Another run of the same job stored it first; keep theirs and drop our files (this answer was
        # charged all the same, and is recorded so).
        delete_files(image.image, image.thumbnail)
        if api_request is not None:
            _request_settle(api_request, outcome, credits=credits)
        return GalleryImage.objects.get(job=job, index=index)
    except BaseException:
        delete_files(image.image, image.thumbnail)
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
        message = _finish_message(job, status, reason, kept=job.images.count())
        ended = GenerationJob.objects.filter(guard).update(
            status=status, error_message=message, finished_at=timezone.now()
        )
        if ended:
            _requests_settle_dead(job)  # first: a submitted request it settles was charged
            charged = ApiRequest.objects.filter(job=job, outcome=ApiRequest.Outcome.CHARGED)
            spent = charged.aggregate(total=Sum("credits"))["total"] or Decimal(0)
            GenerationJob.objects.filter(pk=job.pk).update(credits_spent=spent)
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


def delete_files(*files: FieldFile) -> None:
    for file in files:
        if file:
            file.delete(save=False)
