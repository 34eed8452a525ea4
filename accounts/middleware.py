"""The current team, resolved once per request: `request.membership`, `request.team`, and
`request.memberships` (every team of the user, for the header's switcher)."""

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from django.utils.functional import SimpleLazyObject

from accounts.backends import CURRENT_MEMBERSHIP
from accounts.models import Membership, User
from accounts.services.teams import current_membership, user_memberships


def _membership(user: User, memberships: list[Membership]) -> Membership:
    """The membership of the team the user works in: joined to the user when they were read
    (accounts.backends), so a page that needs no team switcher costs no query of its own; else (signed in
    before, or no longer a member of their current team) chosen from all their teams."""
    return getattr(user, CURRENT_MEMBERSHIP, None) or current_membership(user, memberships)


class CurrentTeamMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        # Lazy: anonymous pages, the media files and the sandbox API never pay for the look-up.
        user = request.user
        memberships = SimpleLazyObject(lambda: user_memberships(user))  # type: ignore[arg-type]
        membership = SimpleLazyObject(lambda: _membership(user, memberships))  # type: ignore[arg-type]
        request.memberships = memberships  # type: ignore[attr-defined]
        request.membership = membership  # type: ignore[attr-defined]
        request.team = SimpleLazyObject(lambda: membership.team)  # type: ignore[attr-defined]
        return self.get_response(request)
