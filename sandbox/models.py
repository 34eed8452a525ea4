"""The sandbox's own accounts: a key belongs to an account, which belongs to organizations with credits."""

from django.db import models
from django.db.models import Q


class Account(models.Model):
    id = models.CharField(primary_key=True, max_length=40)  # "user-…", as the API names them
    email = models.EmailField()
    profile_picture = models.URLField(blank=True)

    def __str__(self) -> str:
        return self.email


class Organization(models.Model):
    id = models.CharField(primary_key=True, max_length=40)  # "org-…"
    name = models.CharField(max_length=120)
    credits = models.DecimalField(max_digits=16, decimal_places=6, default=0)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(credits__gte=0), name="sandbox_org_credits_not_negative")
        ]

    def __str__(self) -> str:
        return self.name


class OrganizationMembership(models.Model):
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="memberships")
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=20, default="OWNER")
    is_default = models.BooleanField(default=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["account", "organization"], name="sandbox_membership_unique"),
            models.UniqueConstraint(
                fields=["account"], condition=Q(is_default=True), name="sandbox_one_default_org"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.account} in {self.organization} ({self.role})"


class ApiKey(models.Model):
    """A key, its faults (for tests and demos) and its rate-limit window, kept in the row so that every
    server process and worker sees the same count."""

    key = models.CharField(max_length=100, unique=True)
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="keys")
    created_at = models.DateTimeField(auto_now_add=True)
    latency_ms = models.PositiveIntegerField(default=0)
    jitter_ms = models.PositiveIntegerField(default=0)
    error_rate = models.FloatField(default=0, help_text="Fraction of requests answered 500.")
    throttle_rate = models.FloatField(default=0, help_text="Fraction of requests answered 429.")
    hang_rate = models.FloatField(default=0, help_text="Fraction of requests that hang, then answer 500.")
    window_started_at = models.DateTimeField(null=True, blank=True)
    window_count = models.PositiveIntegerField(default=0)
    locked_until = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.key[:8]}… ({self.account})"
