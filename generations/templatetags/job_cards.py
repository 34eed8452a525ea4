"""The job card in templates: `{% load job_cards %}`, then `job|possible_charges` for the requests that got
no answer (the API may have charged them), and `job|may_cancel:request` for the Cancel button."""

from dataclasses import dataclass
from decimal import Decimal

from django import template

from accounts.policy import Action
from accounts.types import AuthedRequest
from generations.models import ApiRequest, GenerationJob

register = template.Library()


@dataclass(frozen=True)
class PossibleCharges:
    count: int = 0
    credits: Decimal = Decimal(0)


@register.filter
def possible_charges(job: GenerationJob) -> PossibleCharges:
    """Read from a prefetch of `api_requests` when the view made one. Without it, a job that cannot have
    any (never sent a request, or succeeded at its first attempt: a run ends at the first unanswered
    request) asks nothing, so a list of finished jobs costs no query per card."""
    prefetched = getattr(job, "_prefetched_objects_cache", {}).get("api_requests")
    if prefetched is not None:
        unknown = [r.credits for r in prefetched if r.outcome == ApiRequest.Outcome.UNKNOWN]
        return PossibleCharges(len(unknown), sum(unknown, Decimal(0)))
    if job.attempts == 0 or (job.status == GenerationJob.Status.SUCCEEDED and job.attempts == 1):
        return PossibleCharges()
    credits = list(
        job.api_requests.filter(outcome=ApiRequest.Outcome.UNKNOWN).values_list("credits", flat=True)
    )
    return PossibleCharges(len(credits), sum(credits, Decimal(0)))


@register.filter
def may_cancel(job: GenerationJob, request: AuthedRequest) -> bool:
    """Whether to offer Cancel: to the job's creator, and to owners and admins of its team (the view checks
    again; this only hides a button that would be refused)."""
    if job.is_finished:
        return False
    membership = getattr(request, "membership", None)
    if membership is None or membership.team_id != job.team_id or not membership.can(Action.GENERATE):
        return False
    return job.created_by_id == request.user.pk or membership.can(Action.MANAGE_SHARES)
