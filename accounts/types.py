from django.http import HttpRequest
from django_htmx.middleware import HtmxDetails

from accounts.models import Membership, Team, User


class AuthedRequest(HttpRequest):
    """A request behind @login_required, with django-htmx's details and the current team
    (accounts.middleware.CurrentTeamMiddleware)."""

    user: User
    htmx: HtmxDetails
    membership: Membership
    memberships: list[Membership]
    team: Team
