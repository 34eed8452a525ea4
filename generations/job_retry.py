"""A failed job in a person's words, whether trying again can help, and Retry: the same request, as a new job.

What happened is read from the job's requests to the API (their status code, outcome and error), so a job
that failed because the API was busy, down or slow offers Retry, and one the API refused for good does not.
"""

import re
from collections.abc import Iterable
from dataclasses import dataclass

from accounts.models import User
from generations import services
from generations.models import ApiRequest, GenerationJob

# Studio's own messages (services and tasks) that mean the failure may pass.
QUEUE_DOWN = "The job queue is unreachable"
LOCKED_OUT = "kept this key locked out"
TOO_LONG = "took too long"
GAVE_UP = "without finishing it"
# Advice for the plain-text message that the card replaces with a Retry button.
ADVICE = re.compile(
    r"\s*(Tried \d+ times; try again later\.|Try again shortly\.|Try again; if it keeps happening, tell the "
    r"operator\.|; try again later\.?)\s*$"
)
KEPT = re.compile(r"^\d+ of \d+ images? made and kept; the rest failed\. ")
WAS_CHARGED_OR_NOT = (ApiRequest.Outcome.UNKNOWN, ApiRequest.Outcome.NOT_CHARGED)


class RetryRefused(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Failure:
    summary: str  # what happened, in a person's words
    detail: str = ""  # what the API said (its own message), when it said something
    retry_helps: bool = False


def failure_of(job: GenerationJob, requests: Iterable[ApiRequest] | None = None) -> Failure:
    """Why the job failed. `requests`: its API requests when already loaded; else the last one that went
    wrong is read (one query)."""
    last = _last_error(job, requests)
    if last is not None:
        summary, retry_helps = _request_failure(last)
        detail = f"{last.status_code}: {last.error}" if last.status_code and last.error else last.error
    else:
        summary, retry_helps = _studio_failure(job.error_message)
        detail = ""
    kept = len(job.images.all())
    if kept:
        images = "image" if job.samples == 1 else "images"
        summary = f"{summary} {kept} of {job.samples} {images} were made and kept."
    return Failure(summary=summary, detail=detail, retry_helps=retry_helps)


def _last_error(job: GenerationJob, requests: Iterable[ApiRequest] | None) -> ApiRequest | None:
    if requests is None:
        prefetched = getattr(job, "_prefetched_objects_cache", {}).get("api_requests")
        if prefetched is None and job.attempts == 0:
            return None  # never sent anything: no query
        requests = prefetched if prefetched is not None else job.api_requests.order_by("-pk")[:10]
    wrong = [r for r in requests if r.outcome in WAS_CHARGED_OR_NOT and (r.status_code or r.error)]
    return max(wrong, key=lambda r: r.pk) if wrong else None


def _request_failure(request: ApiRequest) -> tuple[str, bool]:
    status, error = request.status_code, request.error
    if status == 429:
        return "The Stability API was busy and asked Studio to slow down.", True
    if status is not None and (status >= 500 or status in (408, 425)):
        return "The Stability API had a problem on its side.", True
    if status in (401, 403):
        return (
            "The Stability API refused the team's key. An owner or admin can check it on the team's page.",
            False,
        )
    if status == 402:
        return "The Stability account is out of credits. Top it up, then try again.", False
    if status is not None:
        return "The Stability API refused this request; changing the prompt or settings may help.", False
    if error.startswith("Could not reach"):
        return "Studio could not reach the Stability API.", True
    if error.startswith("No answer"):
        return "The worker sending the request stopped before the Stability API answered.", True
    if "did not answer in time" in error:
        return "The Stability API did not answer in time.", True
    if error.startswith("Answered, but"):
        return "The image came back but could not be stored.", True
    return "The Stability API sent an answer Studio could not use.", True


def _studio_failure(message: str) -> tuple[str, bool]:
    """A failure with no request to explain it: Studio's own message, without advice the card gives as a
    button."""
    message = KEPT.sub("", message)  # the card counts the images kept itself
    retry_helps = any(sign in message for sign in (QUEUE_DOWN, LOCKED_OUT, TOO_LONG, GAVE_UP))
    if retry_helps:
        message = ADVICE.sub("", message).rstrip(" ;") + "."
        message = message.replace("..", ".")
    return message or "The job failed.", retry_helps


def job_retry(*, job: GenerationJob, user: User) -> GenerationJob:
    """A new job with the failed job's request and origin (the same settings, inputs and seed). Only a job
    whose failure may pass (the API busy, down, slow or unreachable) is tried again (else RetryRefused)."""
    if job.status != GenerationJob.Status.FAILED:
        raise RetryRefused("Only a failed job can be retried.")
    if not failure_of(job).retry_helps:
        raise RetryRefused("Trying this job again would fail the same way; change its settings instead.")
    if job.is_stable_image:
        return services.stable_image_job_again(
            job=job, user=user, seed=job.seed, samples=job.samples, parent=job.parent, relation=job.relation
        )
    return services.job_create(
        team=job.team,
        user=user,
        engine_id=job.engine_id,
        request=job.to_request(),
        parent=job.parent,
        relation=job.relation,
        upload=job.upload,
        resized_from=job.resized_from,
        prompt=job.prompt,
    )
