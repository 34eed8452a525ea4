import uuid
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from generations.stability.contract import Prompt
from generations.stability.types import TextToImageRequest

MAX_ATTEMPTS = 5


class GenerationJobQuerySet(models.QuerySet["GenerationJob"]):
    def visible_to(self, user: Any) -> "GenerationJobQuerySet":
        return self.filter(team__memberships__user=user)

    def for_team(self, team: Any) -> "GenerationJobQuerySet":
        return self.filter(team=team)

    def newest_first(self) -> "GenerationJobQuerySet":
        return self.order_by("-created_at", "-id")


class GenerationJob(models.Model):
    """One request to the Stability API and its outcome; the Celery task reads everything from this row."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    class Kind(models.TextChoices):
        TEXT_TO_IMAGE = "text-to-image", "Text to image"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    team = models.ForeignKey("accounts.Team", on_delete=models.CASCADE, related_name="jobs")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="jobs")
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.TEXT_TO_IMAGE)
    engine_id = models.CharField(max_length=100)
    prompt = models.TextField()
    negative_prompt = models.TextField(blank=True)
    text_prompts = models.JSONField(help_text="Every prompt sent, as [{text, weight}].")
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    samples = models.PositiveSmallIntegerField(default=1)
    steps = models.PositiveSmallIntegerField(default=30)
    cfg_scale = models.FloatField(default=7.0)
    seed = models.BigIntegerField(default=0, help_text="0 asks the engine for random seeds.")
    sampler = models.CharField(max_length=40, blank=True)
    clip_guidance_preset = models.CharField(max_length=20, default="NONE")
    style_preset = models.CharField(max_length=40, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    error_message = models.TextField(blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    objects = GenerationJobQuerySet.as_manager()

    class Meta:
        indexes = [models.Index(fields=["team", "-created_at"], name="job_team_newest")]
        constraints = [
            models.CheckConstraint(condition=Q(samples__gte=1, samples__lte=10), name="job_samples_1_10"),
            models.CheckConstraint(condition=Q(steps__gte=10, steps__lte=50), name="job_steps_10_50"),
            models.CheckConstraint(condition=Q(seed__gte=0, seed__lte=4_294_967_295), name="job_seed_uint32"),
            models.CheckConstraint(condition=Q(cfg_scale__gte=0, cfg_scale__lte=35), name="job_cfg_0_35"),
            models.CheckConstraint(
                condition=Q(status__in=["queued", "running", "succeeded", "failed"]), name="job_status_valid"
            ),
            models.CheckConstraint(
                condition=Q(status__in=["queued", "running"]) | Q(finished_at__isnull=False),
                name="job_finished_has_time",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.pk} ({self.status})"

    @property
    def is_finished(self) -> bool:
        return self.status in (self.Status.SUCCEEDED, self.Status.FAILED)

    @property
    def elapsed(self) -> timedelta:
        return (self.finished_at or timezone.now()) - self.created_at

    @property
    def size(self) -> str:
        return f"{self.width}x{self.height}"

    def to_request(self) -> TextToImageRequest:
        return TextToImageRequest(
            text_prompts=tuple(Prompt(p["text"], float(p["weight"])) for p in self.text_prompts),
            width=self.width,
            height=self.height,
            samples=self.samples,
            steps=self.steps,
            cfg_scale=self.cfg_scale,
            seed=self.seed,
            sampler=self.sampler or None,
            clip_guidance_preset=self.clip_guidance_preset,
            style_preset=self.style_preset or None,
        )


class GalleryImageQuerySet(models.QuerySet["GalleryImage"]):
    def visible_to(self, user: Any) -> "GalleryImageQuerySet":
        return self.filter(team__memberships__user=user)

    def for_team(self, team: Any) -> "GalleryImageQuerySet":
        return self.filter(team=team)

    def newest_first(self) -> "GalleryImageQuerySet":
        return self.order_by("-created_at", "-id")

    def before(self, created_at: Any, pk: uuid.UUID) -> "GalleryImageQuerySet":
        """Keyset pagination: the images after (older than) the given one in newest-first order."""
        return self.filter(Q(created_at__lt=created_at) | Q(created_at=created_at, id__lt=pk))


def image_path(instance: "GalleryImage", filename: str) -> str:
    return f"images/{instance.team_id}/{instance.pk}.png"


def thumbnail_path(instance: "GalleryImage", filename: str) -> str:
    return f"thumbnails/{instance.team_id}/{instance.pk}.webp"


class GalleryImage(models.Model):
    """One artifact of a job: the original PNG, a WebP thumbnail and what made it."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    job = models.ForeignKey(GenerationJob, on_delete=models.CASCADE, related_name="images")
    index = models.PositiveSmallIntegerField()
    team = models.ForeignKey("accounts.Team", on_delete=models.CASCADE, related_name="images")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="images")
    image = models.FileField(upload_to=image_path, max_length=200)
    thumbnail = models.FileField(upload_to=thumbnail_path, max_length=200)
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    seed = models.BigIntegerField()
    finish_reason = models.CharField(max_length=20, default="SUCCESS")
    created_at = models.DateTimeField(default=timezone.now)

    objects = GalleryImageQuerySet.as_manager()

    class Meta:
        indexes = [models.Index(fields=["team", "-created_at", "-id"], name="image_team_newest")]
        constraints = [models.UniqueConstraint(fields=["job", "index"], name="image_unique_job_index")]

    def __str__(self) -> str:
        return f"{self.job.prompt[:40]} #{self.index}"

    @property
    def is_filtered(self) -> bool:
        return self.finish_reason == "CONTENT_FILTERED"

    @property
    def download_name(self) -> str:
        return f"studio-{self.seed}-{str(self.pk)[:8]}.png"
