"""A job's card (polled while it runs, or its own page) and acting on it: Cancel."""

from uuid import UUID

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import URLPattern, path
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HTMX_STOP_POLLING, trigger_client_event

from accounts.permissions import require
from accounts.policy import Action
from accounts.types import AuthedRequest
from generations import services
from generations.models import GenerationJob


@login_required
@require_GET
def job_card(request: AuthedRequest, job_id: UUID) -> HttpResponse:
    job = get_object_or_404(
        GenerationJob.objects.visible_to(request.user)
        .select_related("created_by")
        .prefetch_related("images"),
        pk=job_id,
    )
    if not request.htmx:
        return render(request, "generations/job_detail.html", {"job": job})
    if not job.is_finished:
        return render(request, "generations/job_card.html", {"job": job})
    response = render(request, "generations/job_card.html", {"job": job}, status=HTMX_STOP_POLLING)
    return trigger_client_event(response, "balance-changed")


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
    response = render(request, "generations/job_card.html", {"job": job})
    return trigger_client_event(response, "balance-changed") if job.is_finished else response


urlpatterns: list[URLPattern] = [
    path("jobs/<uuid:job_id>/", job_card, name="job-card"),
    path("jobs/<uuid:job_id>/cancel/", job_cancel, name="job-cancel"),
]
