"""Factories for shared teams, memberships and invites (tests of team membership and invitations)."""

from datetime import timedelta

import factory
from django.utils import timezone

from accounts.models import Invite, Membership, Team
from tests.factories import UserFactory


class TeamFactory(factory.django.DjangoModelFactory):
    """A shared (not personal) team with nobody in it: add people with MembershipFactory."""

    class Meta:
        model = Team

    name = factory.Sequence(lambda n: f"Studio team {n}")


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    user = factory.SubFactory(UserFactory)
    team = factory.SubFactory(TeamFactory)
    role = Membership.Role.MEMBER


class InviteFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Invite

    team = factory.SubFactory(TeamFactory)
    role = Membership.Role.MEMBER
    expires_at = factory.LazyFunction(lambda: timezone.now() + timedelta(days=7))
