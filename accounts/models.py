from functools import cached_property
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.db import models


class User(AbstractUser):
    """Studio's user. Custom from the first migration so that fields can be added without pain."""

    email = models.EmailField("email address", unique=True)

    @cached_property
    def team(self) -> "Team":
        """The team the user works in now: their personal team until team switching exists."""
        membership = self.memberships.select_related("team").order_by("created_at").first()
        if membership is None:  # e.g. made by `createsuperuser`, which knows nothing of teams
            from accounts.services import personal_team_create

            return personal_team_create(user=self)
        return membership.team


class TeamQuerySet(models.QuerySet["Team"]):
    def of(self, user: Any) -> "TeamQuerySet":
        return self.filter(memberships__user=user)


class Team(models.Model):
    """Every job and image belongs to a team; a team may bring its own Stability key."""

    name = models.CharField(max_length=120)
    is_personal = models.BooleanField(default=False)
    stability_api_key = models.CharField(
        max_length=200, blank=True, help_text="Leave blank to use the studio's key."
    )
    stability_organization = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = TeamQuerySet.as_manager()

    def __str__(self) -> str:
        return self.name


class Membership(models.Model):
    class Role(models.TextChoices):
        OWNER = "owner", "Owner"
        ADMIN = "admin", "Admin"
        MEMBER = "member", "Member"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.MEMBER)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "team"], name="membership_unique_user_team"),
            models.CheckConstraint(
                condition=models.Q(role__in=["owner", "admin", "member"]), name="membership_role_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.team} ({self.role})"
