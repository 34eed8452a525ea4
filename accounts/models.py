import secrets
from datetime import timedelta
from functools import cached_property
from typing import Any, Self

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.db import models
from django.db.models import Q
from django.utils import timezone

from accounts import crypto
from accounts.policy import Action, Role, role_can

INVITE_LIFETIME = timedelta(days=7)


def new_token() -> str:
    """An unguessable URL token (256 bits)."""
    return secrets.token_urlsafe(32)


class User(AbstractUser):
    """Studio's user. Custom from the first migration so that fields can be added without pain."""

    email = models.EmailField("email address", unique=True)
    # The team every team page works in; remembered per user, so every tab and device agrees.
    current_team = models.ForeignKey(
        "Team", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )


class TeamOwnedQuerySet[M: models.Model](models.QuerySet[M]):
    """The one way team-owned rows (jobs, images, uploads, share links) are scoped."""

    def for_team(self, team: Any) -> Self:
        return self.filter(team=team)

    def visible_to(self, user: Any) -> Self:
        """Rows of every team the user is a member of now: a removed member sees nothing of the team."""
        if not getattr(user, "is_authenticated", False):
            return self.none()
        return self.filter(team__memberships__user=user)


class TeamQuerySet(models.QuerySet["Team"]):
    def of(self, user: Any) -> "TeamQuerySet":
        return self.filter(memberships__user=user)


class Team(models.Model):
    """Every job and image belongs to a team; a team may bring its own Stability key."""

    name = models.CharField(max_length=120)
    is_personal = models.BooleanField(default=False)
    # The team's own key, Fernet-encrypted (accounts.crypto); blank uses the studio-wide key.
    stability_api_key_encrypted = models.TextField(blank=True, editable=False)
    stability_api_key_hint = models.CharField(max_length=20, blank=True, editable=False)
    stability_organization = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = TeamQuerySet.as_manager()

    def __str__(self) -> str:
        return self.name

    @property
    def has_own_key(self) -> bool:
        return bool(self.stability_api_key_encrypted)

    @property
    def stability_api_key(self) -> str:
        """The team's key in plain text, for the client only: never render, log or store it."""
        return crypto.decrypt(self.stability_api_key_encrypted) if self.stability_api_key_encrypted else ""

    def set_stability_api_key(self, key: str) -> None:
        self.stability_api_key_encrypted = crypto.encrypt(key) if key else ""
        self.stability_api_key_hint = crypto.mask(key) if key else ""


class Membership(models.Model):
    Role = Role

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.MEMBER)
    monthly_allowance = models.DecimalField(
        max_digits=12,
        decimal_places=2,
        null=True,
        blank=True,
        help_text="Credits this member may spend in the team each calendar month; blank for no limit.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "team"], name="membership_unique_user_team"),
            models.CheckConstraint(
                condition=Q(role__in=["owner", "admin", "member", "viewer"]), name="membership_role_valid"
            ),
            models.CheckConstraint(
                condition=Q(monthly_allowance__isnull=True) | Q(monthly_allowance__gte=0),
                name="membership_allowance_not_negative",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.team} ({self.role})"

    def can(self, action: Action) -> bool:
        return role_can(self.role, action, personal=self.team.is_personal)

    @cached_property
    def allows(self) -> dict[str, bool]:
        """Every action and whether this member may take it, for templates: `membership.allows.generate`."""
        return {action.value: self.can(action) for action in Action}

    @property
    def is_owner(self) -> bool:
        return self.role == Role.OWNER


class InviteQuerySet(models.QuerySet["Invite"]):
    def usable(self) -> "InviteQuerySet":
        now = timezone.now()
        return self.filter(revoked_at__isnull=True, expires_at__gt=now).filter(
            Q(single_use=False) | Q(uses=0)
        )


class Invite(models.Model):
    """A link that lets whoever opens it join the team with a role; sent by email or copied."""

    class State(models.TextChoices):
        ACTIVE = "active", "Active"
        USED = "used", "Used"
        EXPIRED = "expired", "Expired"
        REVOKED = "revoked", "Revoked"

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="invites")
    token = models.CharField(max_length=64, unique=True, default=new_token, editable=False)
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.MEMBER)
    email = models.EmailField(blank=True, help_text="Where the link was sent, if it was.")
    single_use = models.BooleanField(default=True)
    uses = models.PositiveIntegerField(default=0)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = InviteQuerySet.as_manager()

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(role__in=["admin", "member", "viewer"]), name="invite_role_below_owner"
            ),
        ]

    def __str__(self) -> str:
        return f"Invite to {self.team} as {self.role}"

    @property
    def state(self) -> "Invite.State":
        if self.revoked_at is not None:
            return self.State.REVOKED
        if self.single_use and self.uses > 0:
            return self.State.USED
        if self.expires_at <= timezone.now():
            return self.State.EXPIRED
        return self.State.ACTIVE

    @property
    def is_usable(self) -> bool:
        return self.state == self.State.ACTIVE


class AuditEvent(models.Model):
    """Who did what to the team, when: what admins read on the audit page."""

    class Action(models.TextChoices):
        TEAM_CREATED = "team.created", "Team created"
        TEAM_RENAMED = "team.renamed", "Team renamed"
        INVITE_SENT = "invite.sent", "Invite sent"
        INVITE_CREATED = "invite.created", "Invite link created"
        INVITE_ACCEPTED = "invite.accepted", "Invite accepted"
        INVITE_REVOKED = "invite.revoked", "Invite revoked"
        ROLE_CHANGED = "member.role_changed", "Role changed"
        MEMBER_REMOVED = "member.removed", "Member removed"
        MEMBER_LEFT = "member.left", "Member left"
        OWNERSHIP_TRANSFERRED = "team.ownership_transferred", "Ownership transferred"
        KEY_SET = "key.set", "Stability key set"
        KEY_CHANGED = "key.changed", "Stability key changed"
        KEY_REMOVED = "key.removed", "Stability key removed"
        SHARE_CREATED = "share.created", "Share link created"
        SHARE_REVOKED = "share.revoked", "Share link revoked"
        ALLOWANCE_CHANGED = "member.allowance_changed", "Allowance changed"

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="audit_events")
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    action = models.CharField(max_length=40, choices=Action.choices)
    summary = models.CharField(max_length=300)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["team", "-created_at"], name="audit_team_newest")]

    def __str__(self) -> str:
        return f"{self.get_action_display()}: {self.summary}"
