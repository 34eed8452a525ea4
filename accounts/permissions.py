"""Permission checks for views: the policy (accounts.policy) applied to the request's user.

Not a member of the object's team: 404, so nothing tells a stranger (or a removed member) that the
object exists. A member whose role does not allow the action: 403 with a sentence saying why."""

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse

from accounts.models import Membership, Team
from accounts.policy import ACTION_LABELS, Action
from accounts.types import AuthedRequest


def refusal(membership: Membership, action: Action) -> str:
    what = ACTION_LABELS[action].split(" (")[0].lower()
    if membership.team.is_personal:
        return f"A personal team is private: you can't {what} in it. Create a team to work with others."
    return (
        f"As {membership.get_role_display().lower()} of {membership.team.name} you can't {what}. "
        "Ask an owner or admin of the team."
    )


def membership_of(request: AuthedRequest, team: Team | int) -> Membership:
    """The user's membership of `team`, or 404."""
    team_id = team if isinstance(team, int) else team.pk
    current = request.membership
    if current.team_id == team_id:
        return current
    membership = Membership.objects.select_related("team").filter(user=request.user, team_id=team_id).first()
    if membership is None:
        raise Http404("No such team")
    return membership


def require(request: AuthedRequest, team: Team | int, action: Action) -> Membership:
    """The user's membership of `team` if it allows `action`: else 404 (not a member) or 403."""
    membership = membership_of(request, team)
    if not membership.can(action):
        raise PermissionDenied(refusal(membership, action))
    return membership


def current_team_can(action: Action) -> Callable[[Callable[..., HttpResponse]], Callable[..., HttpResponse]]:
    """For views of the current team: refuse with 403 when the user's role there does not allow it."""

    def decorator(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @wraps(view)
        def wrapped(request: AuthedRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if not request.membership.can(action):
                raise PermissionDenied(refusal(request.membership, action))
            return view(request, *args, **kwargs)

        return wrapped

    return decorator
