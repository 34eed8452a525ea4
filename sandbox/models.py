"""The sandbox's own accounts: a key belongs to an account, which belongs to organizations with credits."""

from datetime import datetime

from django.db import models
from django.db.models import F, Q
from django.utils import timezone


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


class AsyncResultQuerySet(models.QuerySet["AsyncResult"]):
    def owned_by(self, key: ApiKey) -> "AsyncResultQuerySet":
        return self.filter(key=key)

    def unexpired(self, now: datetime) -> "AsyncResultQuerySet":
        return self.filter(expires_at__gt=now)

    def expired(self, now: datetime) -> "AsyncResultQuerySet":
        return self.filter(expires_at__lte=now)


class AsyncResult(models.Model):
    """The image of an asynchronous v2beta operation (creative upscale, relight), rendered when it was
    submitted, shown as in progress until `ready_at`, fetched only with the key that asked, gone after
    24 hours."""

    id = models.CharField(primary_key=True, max_length=64)
    key = models.ForeignKey(ApiKey, on_delete=models.CASCADE, related_name="async_results")
    operation = models.CharField(max_length=60)
    image = models.BinaryField()
    media_type = models.CharField(max_length=20)
    finish_reason = models.CharField(max_length=20)
    seed = models.PositiveBigIntegerField()
    created_at = models.DateTimeField(default=timezone.now)
    ready_at = models.DateTimeField()
    expires_at = models.DateTimeField(db_index=True)

    objects = AsyncResultQuerySet.as_manager()

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(finish_reason__in=["SUCCESS", "CONTENT_FILTERED"]),
                name="sandbox_async_result_finish_reason",
            ),
            models.CheckConstraint(
                condition=Q(expires_at__gt=F("created_at")),
                name="sandbox_async_result_expires_after_creation",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.operation} {self.id[:8]}…"

    def is_ready(self, now: datetime) -> bool:
        return now >= self.ready_at
