"""Teams with several members, and helpers to read what the sandbox charged, for the spend tests."""

from decimal import Decimal

from django.test import Client

from accounts.models import Membership, Team, User
from accounts.services import team_balance
from accounts.services.teams import team_create, team_switch
from tests.factories import UserFactory


def shared_team(owner: User, name: str = "Poster studio") -> Team:
    """A team the owner created and works in."""
    return team_create(user=owner, name=name)


def join(team: Team, role: str = "member", **user_fields: str) -> User:
    """A new user who belongs to `team` with `role` and works in it."""
    user = UserFactory(**user_fields)
    Membership.objects.create(user=user, team=team, role=role)
    team_switch(user=user, team=team)
    return user


def client_for(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def credits_left(team: Team) -> Decimal:
    """The team's balance as the sandbox reports it over HTTP, to the sandbox's precision."""
    credits = team_balance(team).credits
    assert credits is not None, team_balance(team).problem
    return Decimal(repr(credits)).quantize(Decimal("0.000001"))
