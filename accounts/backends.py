"""How a request is signed in, without a query it does not need: the person is read together with their
current team and their membership of it, in one query (the session itself comes from the cache:
accounts/sessions.py)."""

from typing import Any

from django.contrib.auth.backends import ModelBackend
from django.db.models import F, FilteredRelation, Q

from accounts.models import Membership, User

# Set on the user that get_user returns: their Membership of user.current_team; absent when they are no
# longer a member of it (accounts.middleware then chooses among all their teams, as before).
CURRENT_MEMBERSHIP = "current_team_membership"


class UserWithTeamBackend(ModelBackend):
    """Django's ModelBackend, whose per-request look-up of the signed-in person also brings their current
    team and membership (accounts.middleware.CurrentTeamMiddleware), so a page that needs no list of
    teams knows its team without a second query. Nothing about the membership is kept between requests:
    a member removed from the team is refused on their next request."""

    def get_user(self, user_id: Any) -> User | None:
        membership = FilteredRelation("memberships", condition=Q(memberships__team=F("current_team")))
        found = (
            User._default_manager.annotate(**{CURRENT_MEMBERSHIP: membership})
            .select_related("current_team", CURRENT_MEMBERSHIP)
            .filter(pk=user_id)[:1]  # not first(): ordering by the primary key costs more than the query
        )
        user = next(iter(found), None)
        if user is None or not self.user_can_authenticate(user):
            return None
        current: Membership | None = getattr(user, CURRENT_MEMBERSHIP, None)
        if current is not None:
            current.team = user.current_team  # type: ignore[assignment]  # the same row, read once
        return user
