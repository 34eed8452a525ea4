"""A job's card (polled while it runs, or its own page) and acting on it: Cancel, Retry.

A running card polls every POLL_EVERY (150 ms) with the version of what it shows (`?v=`, see
`card_version`); while nothing changed the answer is an empty 204 after one query, which htmx does not
swap. A change answers the new card at once, and a finished card answers 286, which stops the polling.
A queued card's place in the queue (`?place=1`) is asked for apart from it, every 2 s: it changes without
the job changing, and costs two queries more.
"""

from uuid import UUID

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import Count, OuterRef, Prefetch, Subquery, prefetch_related_objects
from django.db.models.functions import Coalesce
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import URLPattern, path
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HTMX_STOP_POLLING, trigger_client_event

from accounts.permissions import require
from accounts.policy import Action
from accounts.services.spend import AllowanceExceeded
from accounts.types import AuthedRequest
from generations import job_retry as retrying
from generations import queueing, services
from generations.models import GalleryImage, GenerationJob
from generations.stability.contract import RuleViolation
from generations.templatetags.job_cards import card_version

CARD = "generations/job_card.html"


def _live_images() -> Prefetch:
    return Prefetch("images", queryset=GalleryImage.objects.live().order_by("index"))


def _card_job(request: AuthedRequest, job_id: UUID) -> GenerationJob:
    """The job with what its card's version needs, in one query: its row, its creator, its images' count."""
    live = GalleryImage.objects.filter(job=OuterRef("pk")).live().order_by().values("job")
    count = live.annotate(n=Count("pk")).values("n")
    jobs = (
        GenerationJob.objects.visible_to(request.user)
        .select_related("created_by")
        .annotate(live_images=Coalesce(Subquery(count), 0))
    )
    return get_object_or_404(jobs, pk=job_id)


def _card(request: AuthedRequest, job: GenerationJob, status: int = 200, **context: object) -> HttpResponse:
    """The card (its new images load at once, not lazily: it is on screen); a finished one stops the
    polling and tells the header its balance changed."""
    if job.is_finished and status == 200 and request.method == "GET":
        status = HTMX_STOP_POLLING
    response = render(request, CARD, {"job": job, "polled": True, **context}, status=status)
    return trigger_client_event(response, "balance-changed") if job.is_finished else response


@login_required
@require_GET
def job_card(request: AuthedRequest, job_id: UUID) -> HttpResponse:
    if not request.htmx:
        jobs = GenerationJob.objects.visible_to(request.user).select_related("created_by")
        job = get_object_or_404(jobs.prefetch_related(_live_images(), "api_requests"), pk=job_id)
        return render(request, "generations/job_detail.html", {"job": job})
    job = _card_job(request, job_id)
    if request.GET.get("place"):
        place = queueing.waiting(job)
        context = {"job": job, "place": place}
        response = render(request, f"{CARD}#queue-place", context)
        return response if place is not None else HttpResponse(response.content, status=HTMX_STOP_POLLING)
    if request.GET.get("v") == card_version(job):
        return HttpResponse(status=204)
    prefetch_related_objects([job], _live_images())
    return _card(request, job)


NOT_YOURS = "Only the person who started this job, or an owner or admin of the team, can cancel it."


@login_required
@require_POST
def job_cancel(request: AuthedRequest, job_id: UUID) -> HttpResponse:
    """Queued: ends at once, for nothing. Running: stops after the request in flight; stored images stay."""
    job = get_object_or_404(GenerationJob.objects.visible_to(request.user).select_related("team"), pk=job_id)
    membership = require(request, job.team, Action.GENERATE)
    if job.created_by_id != request.user.pk and not membership.can(Action.MANAGE_SHARES):
        raise PermissionDenied(NOT_YOURS)
    job = services.job_cancel(job=job)
    if not request.htmx:
        return redirect("generations:job-card", job_id=job.pk)
    return _card(request, job)


@login_required
@require_POST
def job_retry(request: AuthedRequest, job_id: UUID) -> HttpResponse:
    """A new job with the failed one's request; answers the new card, which takes the failed one's place."""
    job = get_object_or_404(
        GenerationJob.objects.visible_to(request.user).select_related("team", "upload", "parent__job"),
        pk=job_id,
    )
    require(request, job.team, Action.GENERATE)
    try:
        new_job = retrying.job_retry(job=job, user=request.user)
    except (retrying.RetryRefused, AllowanceExceeded) as exc:
        refusal = exc.message
    except RuleViolation as exc:
        refusal = f"This job can't be retried: {exc.field} {exc.rule}."
    else:
        if not request.htmx:
            return redirect("generations:job-card", job_id=new_job.pk)
        return _card(request, new_job, status=201)
    if not request.htmx:
        messages.error(request, refusal)
        return redirect("generations:job-card", job_id=job.pk)
    return _card(request, job, retry_refused=refusal)


# Cancel and Retry live under the card's URL: the card builds theirs on it (GenerationJob.card_url).
urlpatterns: list[URLPattern] = [
    path("jobs/<uuid:job_id>/", job_card, name="job-card"),
    path("jobs/<uuid:job_id>/cancel/", job_cancel, name="job-cancel"),
    path("jobs/<uuid:job_id>/retry/", job_retry, name="job-retry"),
]
