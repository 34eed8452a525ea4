import functools
import uuid
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from generations.stability.contract import Prompt
from generations.stability.types import (
    ImageToImageRequest,
    MaskingRequest,
    TextToImageRequest,
    UpscaleRequest,
)

MAX_ATTEMPTS = 5
MAX_LINEAGE_DEPTH = 50

JobRequest = TextToImageRequest | ImageToImageRequest | MaskingRequest | UpscaleRequest


class UploadQuerySet(models.QuerySet["Upload"]):
    def visible_to(self, user: Any) -> "UploadQuerySet":
        return self.filter(team__memberships__user=user)

    def for_team(self, team: Any) -> "UploadQuerySet":
        return self.filter(team=team)


def upload_path(instance: "Upload", filename: str) -> str:
    return f"uploads/{instance.team_id}/{instance.pk}.png"


class Upload(models.Model):
    """An init image a person uploaded, re-encoded as PNG under a name Studio chose."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    team = models.ForeignKey("accounts.Team", on_delete=models.CASCADE, related_name="uploads")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="uploads")
    image = models.FileField(upload_to=upload_path, max_length=200)
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    has_alpha = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)

    objects = UploadQuerySet.as_manager()

    def __str__(self) -> str:
        return f"Upload {self.pk} ({self.width}x{self.height})"

    @property
    def image_url(self) -> str:
        return media_url(self.image.name)


def input_path(instance: "GenerationJob", filename: str) -> str:
    """The exact image a job sent (init, mask or upscale source), named by the job."""
    return f"inputs/{instance.team_id}/{instance.pk}-{filename}"


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
        IMAGE_TO_IMAGE = "image-to-image", "Image to image"
        MASKING = "masking", "Inpainting"
        UPSCALE = "upscale", "Upscale"

    class Relation(models.TextChoices):
        """How the job's images came from its parent image."""

        INIT = "init", "Image to image"
        VARIATION = "variation", "Variation"
        UPSCALE = "upscale", "Upscale"
        RERUN = "rerun", "Re-run"

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
    # Image inputs: the exact files sent, so that a re-run sends the same bytes.
    init_image = models.FileField(upload_to=input_path, max_length=200, blank=True)
    mask_image = models.FileField(upload_to=input_path, max_length=200, blank=True)
    init_image_mode = models.CharField(max_length=20, blank=True)
    image_strength = models.FloatField(null=True, blank=True)
    step_schedule_start = models.FloatField(null=True, blank=True)
    step_schedule_end = models.FloatField(null=True, blank=True)
    mask_source = models.CharField(max_length=20, blank=True)
    upscale_factor = models.PositiveSmallIntegerField(null=True, blank=True)
    resized_from = models.CharField(
        max_length=20, blank=True, help_text="The init image's size when Studio resized it for the engine."
    )
    # Lineage: the gallery image this job started from, and how.
    parent = models.ForeignKey(
        "GalleryImage", null=True, blank=True, on_delete=models.SET_NULL, related_name="derived_jobs"
    )
    relation = models.CharField(max_length=12, choices=Relation.choices, blank=True)
    upload = models.ForeignKey(Upload, null=True, blank=True, on_delete=models.SET_NULL, related_name="jobs")
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
            models.CheckConstraint(
                condition=Q(kind="text-to-image") | ~Q(init_image=""), name="job_image_kinds_have_input"
            ),
            models.CheckConstraint(
                condition=~Q(kind="masking") | Q(mask_source="INIT_IMAGE_ALPHA") | ~Q(mask_image=""),
                name="job_painted_mask_present",
            ),
            models.CheckConstraint(
                condition=(Q(image_strength__isnull=True) | Q(image_strength__gte=0, image_strength__lte=1))
                & (
                    Q(step_schedule_start__isnull=True)
                    | Q(step_schedule_start__gte=0, step_schedule_start__lte=1)
                )
                & (Q(step_schedule_end__isnull=True) | Q(step_schedule_end__gte=0, step_schedule_end__lte=1)),
                name="job_schedule_0_1",
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

    @property
    def prompts(self) -> tuple[Prompt, ...]:
        return tuple(Prompt(p["text"], float(p["weight"])) for p in self.text_prompts)

    def _options(self) -> dict[str, Any]:
        return {
            "text_prompts": self.prompts,
            "samples": self.samples,
            "steps": self.steps,
            "cfg_scale": self.cfg_scale,
            "seed": self.seed,
            "sampler": self.sampler or None,
            "clip_guidance_preset": self.clip_guidance_preset,
            "style_preset": self.style_preset or None,
        }

    def to_request(self) -> JobRequest:
        """The API request this row stands for; image inputs are read from storage."""
        match self.kind:
            case self.Kind.IMAGE_TO_IMAGE:
                return ImageToImageRequest(
                    **self._options(),
                    init_image=read_file(self.init_image),
                    init_image_mode=self.init_image_mode,
                    image_strength=self.image_strength if self.image_strength is not None else 0.35,
                    step_schedule_start=self.step_schedule_start,
                    step_schedule_end=self.step_schedule_end,
                )
            case self.Kind.MASKING:
                return MaskingRequest(
                    **self._options(),
                    init_image=read_file(self.init_image),
                    mask_source=self.mask_source,
                    mask_image=read_file(self.mask_image) if self.mask_image else None,
                )
            case self.Kind.UPSCALE:
                # Seed, steps and cfg reach only the latent upscaler; the request leaves them out for ESRGAN.
                return UpscaleRequest(
                    image=read_file(self.init_image),
                    # 2x is the API's default; other factors are asked for by width.
                    width=self.width if self.upscale_factor != 2 else None,
                    text_prompts=self.prompts,
                    seed=self.seed or None,
                    steps=self.steps,
                    cfg_scale=self.cfg_scale,
                )
        return TextToImageRequest(**self._options(), width=self.width, height=self.height)


def read_file(file: models.fields.files.FieldFile) -> bytes:
    with file.open("rb") as handle:
        return handle.read()


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

    def after(self, created_at: Any, pk: uuid.UUID) -> "GalleryImageQuerySet":
        """The images newer than the given one, nearest first."""
        newer = self.filter(Q(created_at__gt=created_at) | Q(created_at=created_at, id__gt=pk))
        return newer.order_by("created_at", "id")


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

    @property
    def url(self) -> str:
        return f"{_detail_prefix()}{self.pk}/"

    @property
    def image_url(self) -> str:
        return media_url(self.image.name)

    @property
    def thumbnail_url(self) -> str:
        return media_url(self.thumbnail.name)

    @property
    def parent(self) -> "GalleryImage | None":
        return self.job.parent

    def ancestors(self) -> list["GalleryImage"]:
        """The trail back: parent, grandparent, … up to the image whose job started from a prompt or an
        upload. Each step is one query (a trail is short; a cycle cannot exist, but is guarded anyway)."""
        trail: list[GalleryImage] = []
        seen = {self.pk}
        parent_id = self.job.parent_id
        while parent_id and parent_id not in seen and len(trail) < MAX_LINEAGE_DEPTH:
            parent = GalleryImage.objects.select_related("job").get(pk=parent_id)
            trail.append(parent)
            seen.add(parent.pk)
            parent_id = parent.job.parent_id
        return trail

    def descendants(self) -> "GalleryImageQuerySet":
        """What was made from this image directly."""
        return (
            GalleryImage.objects.filter(job__parent=self)
            .select_related("job")
            .order_by("created_at", "index")
        )


# A gallery page lists many images: their URLs are built from a prefix reversed once, not reversed each
# (the script prefix is the same for every request of a deployment).
@functools.cache
def _media_prefix() -> str:
    return reverse("generations:media", args=["x"]).removesuffix("x")


def media_url(name: str | None) -> str:
    """Where Studio serves a stored file (to the members of its team)."""
    return _media_prefix() + (name or "")


@functools.cache
def _detail_prefix() -> str:
    example = uuid.UUID(int=0)
    return reverse("generations:image-detail", args=[example]).removesuffix(f"{example}/")
