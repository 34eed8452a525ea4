"""The job card in templates: `{% load job_cards %}`, then `job|possible_charges` for the requests that got
no answer (the API may have charged them), `job|may_cancel:request` and `job|may_retry:request` for its
buttons, `job|failure` for why it failed, `job|card_version` and `{% poll_every %}` for its polling,
`job|elapsed_seconds`, `{% thumbnails job %}` for its images' list items, and
`{% queue_place job as place %}` for a queued job's place."""

from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

from django import template
from django.template.defaultfilters import floatformat
from django.utils.html import format_html_join
from django.utils.safestring import SafeString, mark_safe
from django.utils.text import Truncator

from accounts.policy import Action
from accounts.types import AuthedRequest
from generations import labels
from generations.imaging import THUMBNAIL_SIDE
from generations.job_retry import Failure, failure_of
from generations.models import ApiRequest, GenerationJob
from generations.queueing import Waiting, waiting

register = template.Library()

# How often a running job's card asks whether it changed; an unchanged card costs one small query and an
# empty 204, so this can be short (docs/benchmarks.md, "Job pages").
POLL_EVERY = "150ms"


class Sized(Protocol):
    width: int
    height: int


@dataclass(frozen=True)
class PossibleCharges:
    count: int = 0
    credits: Decimal = Decimal(0)


@register.filter
def possible_charges(job: GenerationJob) -> PossibleCharges:
    """Read from a prefetch of `api_requests` when the view made one. Without it, a job that cannot have
    any (never sent a request, or running or succeeded at its first attempt: a run goes back to the queue
    at its first unanswered request) asks nothing, so a list of finished jobs costs no query per card, and
    nor does the poll of a running one."""
    prefetched = getattr(job, "_prefetched_objects_cache", {}).get("api_requests")
    if prefetched is not None:
        unknown = [r.credits for r in prefetched if r.outcome == ApiRequest.Outcome.UNKNOWN]
        return PossibleCharges(len(unknown), sum(unknown, Decimal(0)))
    first_run = job.attempts == 1 and job.status in (
        GenerationJob.Status.RUNNING,
        GenerationJob.Status.SUCCEEDED,
    )
    if job.attempts == 0 or first_run:
        return PossibleCharges()
    credits = list(
        job.api_requests.filter(outcome=ApiRequest.Outcome.UNKNOWN).values_list("credits", flat=True)
    )
    return PossibleCharges(len(credits), sum(credits, Decimal(0)))


def _may_generate(job: GenerationJob, request: AuthedRequest) -> bool:
    membership = getattr(request, "membership", None)
    return membership is not None and membership.team_id == job.team_id and membership.can(Action.GENERATE)


@register.filter
def may_cancel(job: GenerationJob, request: AuthedRequest) -> bool:
    """Whether to offer Cancel: to the job's creator, and to owners and admins of its team (the view checks
    again; this only hides a button that would be refused)."""
    if job.is_finished or not _may_generate(job, request):
        return False
    return job.created_by_id == request.user.pk or request.membership.can(Action.MANAGE_SHARES)


@register.filter
def may_retry(job: GenerationJob, request: AuthedRequest) -> bool:
    """Whether to offer Retry: a failure that may pass, to those who may start jobs in the job's team."""
    return (
        job.status == GenerationJob.Status.FAILED and failure(job).retry_helps and _may_generate(job, request)
    )


@register.filter
def failure(job: GenerationJob) -> Failure:
    """Why the job failed (read once per card: the template asks several times)."""
    cached: Failure | None = getattr(job, "_failure", None)
    if cached is None:
        cached = failure_of(job)
        job._failure = cached  # type: ignore[attr-defined]
    return cached


def live_image_count(job: GenerationJob) -> int:
    """The images the card shows: from the view's annotation, else from its prefetch (or one query)."""
    annotated = getattr(job, "live_images", None)
    return annotated if annotated is not None else len(job.images.all())


@register.filter
def card_version(job: GenerationJob) -> str:
    """Everything the card shows that can change while the job runs, as a token the card sends back when
    it polls: the same token means the card is up to date (generations.job_views.job_card answers 204)."""
    cancelling = "c" if job.cancel_requested_at else ""
    return f"{job.status}.{job.attempts}.{live_image_count(job)}{cancelling}"


@register.filter
def announcement(job: GenerationJob) -> str:
    """What the page's announcer says when the card's status changes (static/js/jobs.js)."""
    said = f"Job {job.get_status_display().lower()}"
    if job.status == GenerationJob.Status.FAILED:
        return f"{said}: {failure(job).summary}"
    if job.status == GenerationJob.Status.SUCCEEDED:
        count = live_image_count(job)
        return f"{said}: {count} image{'' if count == 1 else 's'} made."
    return f"{said}."


@register.simple_tag
def poll_every() -> str:
    return POLL_EVERY


@register.filter
def fit_box(thing: Sized, side: int) -> tuple[int, int]:
    """(width, height) of `thing` scaled down to fit a `side`-pixel square, keeping its shape: the size of
    its stored thumbnail (side 384), or of a picture shown at most `side` wide and high."""
    width, height = thing.width or side, thing.height or side
    scale = min(side / width, side / height, 1)
    return max(1, round(width * scale)), max(1, round(height * scale))


@register.simple_tag
def queue_place(job: GenerationJob) -> Waiting | None:
    """Where a queued job stands and why (two queries); None for any other."""
    return waiting(job) if job.status == GenerationJob.Status.QUEUED else None


@register.filter
def ordinal(position: int) -> str:
    """1 → "1st", 2 → "2nd", 11 → "11th", 23 → "23rd"."""
    suffix = "th" if 10 <= position % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(position % 10, "th")
    return f"{position}{suffix}"


@register.simple_tag(takes_context=True)
def thumbnails(context: template.Context, job: GenerationJob) -> SafeString:
    """The card's thumbnails, each linked to its image's page, as list items. Written here rather than as
    a loop in the template: the loop's tags and lookups per image were most of what a changed card cost
    beyond its queries (docs/benchmarks.md, "Job pages"). A polled card is on screen, so its images load
    at once; elsewhere lazily."""
    alt = Truncator(job.prompt).chars(80)
    lazy = "" if context.get("polled") else mark_safe(' loading="lazy"')
    filtered = mark_safe('<span class="badge">Filtered</span>')
    item = '<li><a href="{}"><img src="{}" alt="{} (seed {})" width="{}" height="{}"{}>{}</a></li>'
    return format_html_join(  # every value escaped
        "\n",
        item,
        (
            (image.url, image.thumbnail_url, alt, image.seed, *fit_box(image, THUMBNAIL_SIDE), lazy, badge)
            for image in job.images.all()
            for badge in [filtered if image.is_filtered else ""]
        ),
    )


@register.filter
def elapsed_seconds(job: GenerationJob) -> str:
    """Seconds since the job was created, whole while it runs (the page counts on from there), to the
    tenth once finished."""
    return floatformat(job.elapsed.total_seconds(), 1 if job.is_finished else 0)


@register.filter
def dimensions(size: str) -> str:
    """ "1000x800" → "1000 × 800", with the one multiplication sign."""
    parsed = labels.parse_size(size)
    return labels.dimensions(*parsed) if parsed else size
