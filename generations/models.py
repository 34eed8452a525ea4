import functools
import uuid
from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import IntegrityError, models, transaction
from django.db.models import Lookup, Q
from django.db.models.functions import Lower
from django.urls import reverse
from django.utils import timezone

from accounts.models import TeamOwnedQuerySet, new_token
from generations import stable_image
from generations.imaging import THUMBNAIL_EXTENSION
from generations.stability.contract import Prompt, price_per_image
from generations.stability.types import (
    ImageToImageRequest,
    MaskingRequest,
    TextToImageRequest,
    UpscaleRequest,
)
from generations.stability.v2beta.contract import OPERATIONS as STABLE_IMAGE_OPERATIONS
from generations.stability.v2beta.types import StableImageRequest, request_for

MAX_ATTEMPTS = 5
MAX_LINEAGE_DEPTH = 50
TRASH_LIFETIME = timedelta(days=30)

JobRequest = TextToImageRequest | ImageToImageRequest | MaskingRequest | UpscaleRequest


class UploadQuerySet(TeamOwnedQuerySet["Upload"]):
    pass


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


class GenerationJobQuerySet(TeamOwnedQuerySet["GenerationJob"]):
    def newest_first(self) -> "GenerationJobQuerySet":
        return self.order_by("-created_at", "-id")


class GenerationJob(models.Model):
    """One request to the Stability API and its outcome; the Celery task reads everything from this row."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    class Kind(models.TextChoices):
        TEXT_TO_IMAGE = "text-to-image", "Text to image"
        IMAGE_TO_IMAGE = "image-to-image", "Image to image"
        MASKING = "masking", "Inpainting"
        UPSCALE = "upscale", "Upscale"
        EDIT = "edit", "Edit"
        CONTROL = "control", "Control"

    class Relation(models.TextChoices):
        """How the job's images came from its parent image."""

        INIT = "init", "Image to image"
        VARIATION = "variation", "Variation"
        UPSCALE = "upscale", "Upscale"
        RERUN = "rerun", "Re-run"
        EDIT = "edit", "Edit"
        CONTROL = "control", "Control"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    team = models.ForeignKey("accounts.Team", on_delete=models.CASCADE, related_name="jobs")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="jobs")
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.TEXT_TO_IMAGE)
    engine_id = models.CharField(max_length=100)
    # A Stable Image (v2beta) job: its operation ("generate/core", "edit/outpaint") and the values it sends
    # besides images and seed (generations/stable_image.py says which); blank and empty for a v1 job.
    operation = models.CharField(max_length=40, blank=True)
    options = models.JSONField(default=dict, blank=True)
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
    reference_image = models.FileField(
        upload_to=input_path, max_length=200, blank=True, help_text="A style or background image sent too."
    )
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
    # The seed of each image, chosen when the job is made, so that a retry asks for the same pictures.
    seeds = models.JSONField(default=list, blank=True)
    cancel_requested_at = models.DateTimeField(null=True, blank=True)
    # Last sign of life from the worker running it: the reconciler re-queues or fails a job silent too long.
    progress_at = models.DateTimeField(null=True, blank=True)
    # Credits: the price of every image asked for, known before sending; and what the API charged
    # (filtered images cost nothing), by the same price rules the sandbox charges by.
    credits_estimated = models.DecimalField(max_digits=12, decimal_places=6, default=Decimal(0))
    credits_spent = models.DecimalField(max_digits=12, decimal_places=6, default=Decimal(0))
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    objects = GenerationJobQuerySet.as_manager()

    class Meta:
        indexes = [
            models.Index(fields=["team", "-created_at"], name="job_team_newest"),
            # The fair queue counts each person's and team's open jobs and picks the oldest held one.
            models.Index(
                fields=["created_by"],
                condition=Q(status__in=["queued", "running"]),
                name="job_open_by_creator",
            ),
            models.Index(
                fields=["team"], condition=Q(status__in=["queued", "running"]), name="job_open_by_team"
            ),
            models.Index(fields=["created_at"], condition=Q(status="queued"), name="job_queued_oldest"),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(samples__gte=1, samples__lte=10), name="job_samples_1_10"),
            models.CheckConstraint(condition=Q(steps__gte=10, steps__lte=50), name="job_steps_10_50"),
            models.CheckConstraint(condition=Q(seed__gte=0, seed__lte=4_294_967_295), name="job_seed_uint32"),
            models.CheckConstraint(condition=Q(cfg_scale__gte=0, cfg_scale__lte=35), name="job_cfg_0_35"),
            models.CheckConstraint(
                condition=Q(status__in=["queued", "running", "succeeded", "failed", "cancelled"]),
                name="job_status_valid",
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
        return self.status in (self.Status.SUCCEEDED, self.Status.FAILED, self.Status.CANCELLED)

    @property
    def elapsed(self) -> timedelta:
        return (self.finished_at or timezone.now()) - self.created_at

    @property
    def card_url(self) -> str:
        """The job's card; Cancel (`cancel/`) and Retry (`retry/`) live under it (generations.job_views)."""
        return f"{uuid_url_prefix('generations:job-card')}{self.pk}/"

    @property
    def size(self) -> str:
        return f"{self.width}x{self.height}"

    @property
    def is_stable_image(self) -> bool:
        return bool(self.operation)

    @property
    def price_per_image(self) -> Decimal:
        """What one image of this job costs; a v1 upscale is priced by its source's size."""
        if self.operation:
            return STABLE_IMAGE_OPERATIONS[self.operation].price(self.options)
        width, height = self.width, self.height
        if self.kind == self.Kind.UPSCALE and self.upscale_factor:
            width, height = width // self.upscale_factor, height // self.upscale_factor
        return price_per_image(self.engine_id, steps=self.steps, width=width, height=height)

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

    def stable_image_values(self) -> dict[str, Any]:
        """Every value a Stable Image job sends but the seed: its options and its images."""
        values = dict(self.options)
        for name, column in stable_image.columns_of(self.operation).items():
            file = getattr(self, column)
            if file:
                values[name] = read_file(file)
        return values

    def to_stable_image_request(self, *, seed: int) -> StableImageRequest:
        values = {**self.stable_image_values(), "output_format": stable_image.OUTPUT_FORMAT}
        if "seed" in STABLE_IMAGE_OPERATIONS[self.operation].field_names:  # remove-background takes none
            values["seed"] = seed
        return request_for(self.operation, values)


def read_file(file: models.fields.files.FieldFile) -> bytes:
    """The stored file's bytes, through a handle of its own: a FieldFile keeps one file object, which
    another thread reading the same row (a job's images go out at once) would close under this one."""
    with file.storage.open(file.name or "", "rb") as handle:
        return handle.read()


class TsVectorField(models.Field):  # type: ignore[type-arg]
    """PostgreSQL's tsvector; plain text elsewhere. (django.contrib.postgres's SearchVectorField would need
    that app installed, and SQLite cannot create its column.)"""

    def db_type(self, connection: Any) -> str:
        return "tsvector" if connection.vendor == "postgresql" else "text"


class PromptSearchVector(models.Func):
    """The words of an image's prompts for full-text search (PostgreSQL; elsewhere NULL, and the library
    searches with icontains): the prompt alone, or with the negative prompt weighted lowest (D), so that a
    search that asks for negative prompts too ranks them after the prompt."""

    output_field = TsVectorField()

    def __init__(self, *, with_negative: bool = False) -> None:
        self.with_negative = with_negative
        super().__init__(models.F("prompt_text"), models.F("negative_text"))

    def as_sql(self, compiler: Any, connection: Any, *args: Any, **extra_context: Any) -> Any:
        return "NULL", ()

    def as_postgresql(self, compiler: Any, connection: Any, **extra_context: Any) -> Any:
        prompt, prompt_params = compiler.compile(self.source_expressions[0])
        if not self.with_negative:
            return f"to_tsvector('english'::regconfig, {prompt})", tuple(prompt_params)
        negative, negative_params = compiler.compile(self.source_expressions[1])
        sql = (
            f"(setweight(to_tsvector('english'::regconfig, {prompt}), 'A') || "
            f"setweight(to_tsvector('english'::regconfig, {negative}), 'D'))"
        )
        return sql, (*prompt_params, *negative_params)


class GalleryImageQuerySet(TeamOwnedQuerySet["GalleryImage"]):
    def newest_first(self) -> "GalleryImageQuerySet":
        return self.order_by("-created_at", "-id")

    def live(self) -> "GalleryImageQuerySet":
        """Images not in the trash: what the gallery, collections and exports show."""
        return self.filter(trashed_at__isnull=True)

    def trashed(self) -> "GalleryImageQuerySet":
        return self.filter(trashed_at__isnull=False)

    def purgeable(self, now: Any) -> "GalleryImageQuerySet":
        """Trashed longer than the trash keeps images: what the scheduled purge deletes, files and all."""
        return self.filter(trashed_at__lt=now - TRASH_LIFETIME)

    def for_listing(self) -> "GalleryImageQuerySet":
        """What a tile needs: its own columns (the prompt is copied here: no join to the job, which would
        be joined for every match before a ranked page is cut), the creator, not the search vectors."""
        return self.select_related("created_by").defer("search_prompt", "search_all", "negative_text")

    def before(self, created_at: Any, pk: uuid.UUID) -> "GalleryImageQuerySet":
        """Keyset pagination: the images after (older than) the given one in newest-first order."""
        return self.filter(OlderThan(created_at, pk))

    def after(self, created_at: Any, pk: uuid.UUID) -> "GalleryImageQuerySet":
        """The images newer than the given one, nearest first."""
        return self.filter(NewerThan(created_at, pk)).order_by("created_at", "id")


class _Row(models.Func):
    """(created_at, id), as a row value."""

    function = ""
    output_field = models.BooleanField()


class _RowComparison(Lookup):
    """`(created_at, id) < (at, pk)` (or `>`): one condition on the pair, which PostgreSQL and SQLite read as
    one range of the indexes that end in (created_at, id), so that a page or a neighbour starts where it is
    at any depth. The column-by-column OR does not bound the index past its first column. A lookup, not a
    function: Django compares a function with TRUE on SQLite (`… = 1`), and SQLite cannot bound an index by
    such a comparison, so a deep page read every row above it."""

    operator = "<"

    def __init__(self, created_at: Any, pk: uuid.UUID) -> None:
        columns = _Row(models.F("created_at"), models.F("id"))
        values = _Row(
            models.Value(created_at, output_field=models.DateTimeField()),
            models.Value(pk, output_field=models.UUIDField()),
        )
        super().__init__(columns, values)

    def as_sql(self, compiler: Any, connection: Any) -> Any:
        columns_sql, columns_params = compiler.compile(self.lhs)
        values_sql, values_params = compiler.compile(self.rhs)
        return f"{columns_sql} {self.operator} {values_sql}", (*columns_params, *values_params)


class OlderThan(_RowComparison):
    """Rows after the given one in newest-first order: `(created_at, id) < (at, pk)`."""

    operator = "<"


class NewerThan(_RowComparison):
    """Rows before the given one in newest-first order: `(created_at, id) > (at, pk)`."""

    operator = ">"


def image_path(instance: "GalleryImage", filename: str) -> str:
    return f"images/{instance.team_id}/{instance.pk}.png"


def thumbnail_path(instance: "GalleryImage", filename: str) -> str:
    # Thumbnails made before they were JPEGs keep their .webp names (media_views serves both).
    return f"thumbnails/{instance.team_id}/{instance.pk}.{THUMBNAIL_EXTENSION}"


LIVE = Q(trashed_at__isnull=True)


def image_kind(job: GenerationJob) -> str:
    """How an image was made, as the gallery's "kind" filter names it: a variation or a re-run first,
    else the job's kind."""
    if job.relation in (GenerationJob.Relation.VARIATION, GenerationJob.Relation.RERUN):
        return str(job.relation)
    return str(job.kind)


class GalleryImage(models.Model):
    """One artifact of a job: the original PNG, a JPEG thumbnail and what made it."""

    class Kind(models.TextChoices):
        TEXT_TO_IMAGE = "text-to-image", "Text to image"
        IMAGE_TO_IMAGE = "image-to-image", "Image to image"
        MASKING = "masking", "Inpainting"
        UPSCALE = "upscale", "Upscale"
        VARIATION = "variation", "Variation"
        RERUN = "rerun", "Re-run"
        EDIT = "edit", "Edit"
        CONTROL = "control", "Control"

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
    # Copied from the job when the image is stored (a job never changes afterwards), so that the library's
    # search, filters and counts read this one table and its indexes, never a join over every image.
    prompt_text = models.TextField(blank=True, default="", help_text="Every positive prompt sent.")
    negative_text = models.TextField(blank=True, default="", help_text="Every negative prompt sent.")
    engine_id = models.CharField(max_length=100, blank=True, default="")
    style_preset = models.CharField(max_length=40, blank=True, default="")
    kind = models.CharField(max_length=20, choices=Kind.choices, blank=True, default="")
    search_prompt = models.GeneratedField(
        expression=PromptSearchVector(), output_field=TsVectorField(), db_persist=True
    )
    search_all = models.GeneratedField(
        expression=PromptSearchVector(with_negative=True), output_field=TsVectorField(), db_persist=True
    )
    trashed_at = models.DateTimeField(null=True, blank=True)
    trashed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    objects = GalleryImageQuerySet.as_manager()

    class Meta:
        indexes = [
            models.Index(fields=["team", "-created_at", "-id"], name="image_team_newest"),
            # The gallery's orders and its commonest filters, on live images only (see docs/library.md).
            models.Index(fields=["team", "-created_at", "-id"], name="image_live_newest", condition=LIVE),
            models.Index(
                fields=["team", "created_by", "-created_at", "-id"], name="image_live_creator", condition=LIVE
            ),
            models.Index(
                fields=["team", "engine_id", "-created_at", "-id"], name="image_live_engine", condition=LIVE
            ),
            models.Index(
                fields=["team", "kind", "-created_at", "-id"], name="image_live_kind", condition=LIVE
            ),
            models.Index(
                fields=["team", "trashed_at"], name="image_trash", condition=Q(trashed_at__isnull=False)
            ),
        ]
        constraints = [models.UniqueConstraint(fields=["job", "index"], name="image_unique_job_index")]

    def __str__(self) -> str:
        return f"{self.job.prompt[:40]} #{self.index}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self.kind and self.job_id:
            self.copy_job_facts(self.job)
        adding = self._state.adding
        super().save(*args, **kwargs)
        if adding and self.trashed_at is None:
            GalleryTally.objects.adjust([self.tally_row()], +1)

    def tally_row(self) -> dict[str, Any]:
        row = {name: getattr(self, name) for name in TALLY_DIMENSIONS if name != "filtered"}
        return {**row, "team_id": self.team_id, "filtered": self.is_filtered}

    def copy_job_facts(self, job: GenerationJob) -> None:
        """The job's prompts, engine, style and kind, for the library (see the fields above)."""
        self.prompt_text = (
            "\n".join(p["text"] for p in job.text_prompts if float(p["weight"]) >= 0) or job.prompt
        )
        self.negative_text = "\n".join(p["text"] for p in job.text_prompts if float(p["weight"]) < 0)
        self.engine_id = job.engine_id
        self.style_preset = job.style_preset
        self.kind = image_kind(job)

    @property
    def is_trashed(self) -> bool:
        return self.trashed_at is not None

    @property
    def purge_at(self) -> Any:
        return self.trashed_at + TRASH_LIFETIME if self.trashed_at else None

    @property
    def is_filtered(self) -> bool:
        return self.finish_reason == "CONTENT_FILTERED"

    @property
    def download_name(self) -> str:
        return f"studio-{self.seed}-{str(self.pk)[:8]}.png"

    @property
    def url(self) -> str:
        return f"{uuid_url_prefix('generations:image-detail')}{self.pk}/"

    @property
    def caption(self) -> str:
        """The (first) prompt, as the job's title."""
        return self.prompt_text.partition("\n")[0]

    # Built on the detail URL, under which generations.library_views mounts them: no reverse() per tile.
    @property
    def favourite_url(self) -> str:
        return f"{self.url}favourite/"

    @property
    def library_url(self) -> str:
        return f"{self.url}library/"

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
def uuid_url_prefix(name: str) -> str:
    """What the URL named `name` puts before a row's uuid: one reverse() per process, not one per row."""
    example = uuid.UUID(int=0)
    return reverse(name, args=[example]).removesuffix(f"{example}/")


class ApiRequest(models.Model):
    """One request sent to the Stability API for one image of a job: what was asked, and whether it was
    charged. A request with no answer (a timeout, a dead worker) may have been charged: it is recorded as
    such, shown on the job and in the team's usage, and never silently sent again for an image stored."""

    class Outcome(models.TextChoices):
        PENDING = "pending", "Sent, waiting"
        CHARGED = "charged", "Answered with an image"
        NOT_CHARGED = "not_charged", "Refused by the API (not charged)"
        UNKNOWN = "unknown", "No answer (possibly charged)"

    job = models.ForeignKey(GenerationJob, on_delete=models.CASCADE, related_name="api_requests")
    index = models.PositiveSmallIntegerField(help_text="The image of the job it asked for.")
    attempt = models.PositiveSmallIntegerField()
    seed = models.BigIntegerField(default=0)
    outcome = models.CharField(max_length=12, choices=Outcome.choices, default=Outcome.PENDING)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    credits = models.DecimalField(
        max_digits=12, decimal_places=6, default=Decimal(0), help_text="Charged, or possibly charged."
    )
    # An asynchronous Stable Image operation's id, kept once it is submitted: its result is fetched later,
    # by this run or the next, and never paid for twice.
    generation_id = models.CharField(max_length=64, blank=True)
    sent_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["job", "index"], name="apirequest_job_index")]
        constraints = [
            models.CheckConstraint(
                condition=Q(outcome__in=["pending", "charged", "not_charged", "unknown"]),
                name="apirequest_outcome_valid",
            )
        ]

    def __str__(self) -> str:
        return f"{self.job_id} #{self.index} attempt {self.attempt}: {self.outcome}"


class ShareLinkQuerySet(TeamOwnedQuerySet["ShareLink"]):
    def live(self) -> "ShareLinkQuerySet":
        """Links that open now: not revoked, not expired, and their image not in the trash."""
        return self.filter(revoked_at__isnull=True, image__trashed_at__isnull=True).filter(
            Q(expires_at__isnull=True) | Q(expires_at__gt=timezone.now())
        )


class ShareLink(models.Model):
    """A public, unguessable URL for one image, which needs no login; revocable, optionally expiring."""

    image = models.ForeignKey(GalleryImage, on_delete=models.CASCADE, related_name="share_links")
    team = models.ForeignKey("accounts.Team", on_delete=models.CASCADE, related_name="share_links")
    token = models.CharField(max_length=64, unique=True, default=new_token, editable=False)
    show_details = models.BooleanField(
        default=False, help_text="Show the prompt and settings on the shared page."
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="share_links"
    )
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = ShareLinkQuerySet.as_manager()

    def __str__(self) -> str:
        return f"Share link for {self.image_id}"

    @property
    def is_live(self) -> bool:
        open_now = self.expires_at is None or self.expires_at > timezone.now()
        return self.revoked_at is None and open_now and self.image.trashed_at is None


IMAGE_FACTS = ("team_id", "created_by_id", "engine_id", "style_preset", "kind", "width", "height")


class ImageFacts(models.Model):
    """An image's team and filterable facts, copied (an image never changes them) onto a row that points at
    it, and whether it is live (kept by the trash services): so that the gallery counts favourites and
    collections by its filters without reading every image they point at. See generations/library_counts."""

    image_team_id = models.BigIntegerField(default=0)
    image_created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        db_index=False,
        related_name="+",
    )
    image_engine_id = models.CharField(max_length=100, default="")
    image_style_preset = models.CharField(max_length=40, default="")
    image_kind = models.CharField(max_length=20, default="")
    image_width = models.PositiveIntegerField(default=0)
    image_height = models.PositiveIntegerField(default=0)
    image_filtered = models.BooleanField(default=False)
    image_live = models.BooleanField(default=True)

    class Meta:
        abstract = True

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self.image_team_id:  # made one at a time (services copy in bulk)
            image = self.image  # type: ignore[attr-defined]
            row = {name: getattr(image, name) for name in (*IMAGE_FACTS, "finish_reason", "trashed_at")}
            for name, value in self.facts_of(row).items():
                setattr(self, name, value)
        super().save(*args, **kwargs)

    @staticmethod
    def facts_of(row: dict[str, Any]) -> dict[str, Any]:
        """The copied fields, from a dict of the image's IMAGE_FACTS, finish_reason and trashed_at."""
        return {
            **{f"image_{name}": row[name] for name in IMAGE_FACTS},
            "image_filtered": row["finish_reason"] == "CONTENT_FILTERED",
            "image_live": row["trashed_at"] is None,
        }


class Favourite(ImageFacts):
    """A person's star on an image: per person, whatever their role."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="favourites")
    image = models.ForeignKey(GalleryImage, on_delete=models.CASCADE, related_name="favourites")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "image"], name="favourite_unique_user_image")]
        indexes = [models.Index(fields=["user", "image_team_id"], name="favourite_user_team")]

    def __str__(self) -> str:
        return f"{self.user_id} ★ {self.image_id}"


class CollectionQuerySet(TeamOwnedQuerySet["Collection"]):
    def by_name(self) -> "CollectionQuerySet":
        return self.order_by(Lower("name"), "pk")

    def with_summary(self) -> "CollectionQuerySet":
        """Each collection's number of live images and its cover: the one chosen while it is live, else the
        live image added last (`cover_image_id`)."""
        live_items = CollectionItem.objects.filter(collection=models.OuterRef("pk"), image_live=True)
        latest = live_items.order_by("-added_at", "-pk").values("image_id")[:1]
        return self.annotate(
            image_count=models.Count("items", filter=Q(items__image_live=True)),
            latest_image_id=models.Subquery(latest),
            live_cover_id=models.Subquery(
                live_items.filter(image_id=models.OuterRef("cover_id")).values("image_id")[:1]
            ),
        )


class Collection(models.Model):
    """A named set of a team's images; an image can be in several. The cover is chosen, or else the image
    added last."""

    team = models.ForeignKey("accounts.Team", on_delete=models.CASCADE, related_name="collections")
    name = models.CharField(max_length=80)
    cover = models.ForeignKey(
        GalleryImage, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    images = models.ManyToManyField(GalleryImage, through="CollectionItem", related_name="collections")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    # How many of its images are live, kept by the library's services (generations.library
    # `collections_recount`), so that the gallery's unfiltered counts read ten rows, not every item.
    live_count = models.IntegerField(default=0)

    objects = CollectionQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(Lower("name"), "team", name="collection_unique_team_name"),
            models.CheckConstraint(condition=~Q(name=""), name="collection_name_not_blank"),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def url(self) -> str:
        return f"{reverse('generations:gallery')}?collection={self.pk}"

    @property
    def cover_image_id(self) -> uuid.UUID | None:
        """With CollectionQuerySet.with_summary: the image that stands for the collection."""
        value = getattr(self, "live_cover_id", None) or getattr(self, "latest_image_id", None)
        return uuid.UUID(str(value)) if value else None  # SQLite gives a subquery's UUID as hex text


class CollectionItem(ImageFacts):
    collection = models.ForeignKey(Collection, on_delete=models.CASCADE, related_name="items")
    image = models.ForeignKey(GalleryImage, on_delete=models.CASCADE, related_name="collection_items")
    added_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    added_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["collection", "image"], name="collection_item_unique"),
        ]
        indexes = [models.Index(fields=["image"], name="collection_item_image")]

    def __str__(self) -> str:
        return f"{self.image_id} in {self.collection_id}"


TALLY_DIMENSIONS = ("created_by_id", "engine_id", "style_preset", "kind", "width", "height", "filtered")


class GalleryTallyQuerySet(models.QuerySet["GalleryTally"]):
    def adjust(self, rows: Any, delta: int) -> None:
        """Add `delta` to the tally of each row of `rows` (dicts of TALLY_DIMENSIONS and `team_id`, `n`)."""
        for row in rows:
            key = {name: row[name] for name in ("team_id", *TALLY_DIMENSIONS)}
            change = delta * row.get("n", 1)
            if self.filter(**key).update(count=models.F("count") + change):
                continue
            try:
                with transaction.atomic():
                    self.create(**key, count=change)
            except IntegrityError:  # another transaction made the row first
                self.filter(**key).update(count=models.F("count") + change)

    def rebuild(self, team_id: int) -> None:
        """Count the team's live images again (after bulk inserts, and hourly with the trash purge, to heal
        any drift)."""
        rows = (
            GalleryImage.objects.filter(team_id=team_id)
            .live()
            .annotate(filtered=Q(finish_reason="CONTENT_FILTERED"))
            .values(*TALLY_DIMENSIONS)
            .annotate(n=models.Count("pk"))
            .order_by()
        )
        with transaction.atomic():
            # Hold the team's rows first, so that an image stored meanwhile is either counted here or
            # added to the rebuilt row after this commits, never lost.
            list(self.filter(team_id=team_id).select_for_update().values_list("pk", flat=True))
            self.filter(team_id=team_id).delete()
            GalleryTally.objects.bulk_create(
                [GalleryTally(team_id=team_id, count=row.pop("n"), **row) for row in rows]
            )


class GalleryTally(models.Model):
    """How many live images a team has for each combination of the gallery's filters (creator, engine,
    style, kind, size, filtered), so that the counts beside a library's filters are sums over a few thousand
    rows instead of a scan of every image. Kept by GalleryImage.save and the trash services."""

    team = models.ForeignKey("accounts.Team", on_delete=models.CASCADE, related_name="+")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    engine_id = models.CharField(max_length=100)
    style_preset = models.CharField(max_length=40)
    kind = models.CharField(max_length=20)
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    filtered = models.BooleanField()
    count = models.IntegerField(default=0)

    objects = GalleryTallyQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=[
                    "team",
                    "created_by",
                    "engine_id",
                    "style_preset",
                    "kind",
                    "width",
                    "height",
                    "filtered",
                ],
                name="tally_unique",
            )
        ]

    def __str__(self) -> str:
        return f"{self.team_id}: {self.count}"
