"""Typed requests, responses and errors of the v1 API. Each request knows how to check itself against
the contract, so that nothing the API would refuse is ever sent."""

import io
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from PIL import Image, UnidentifiedImageError

from generations.stability import contract
from generations.stability.contract import ENGINES, EngineKind, ErrorName, Prompt, RuleViolation

__all__ = [
    "Account",
    "Artifact",
    "Engine",
    "ImageToImageRequest",
    "MaskingRequest",
    "Organization",
    "Prompt",
    "RuleViolation",
    "StabilityError",
    "TextToImageRequest",
    "UpscaleRequest",
]


Check = Callable[[], object]


# --- errors ------------------------------------------------------------------------------------------


class StabilityError(Exception):
    """Any failure of a call. `retryable` says whether the same request may succeed later."""

    retryable = False

    def __init__(
        self, message: str, *, status: int | None = None, name: str = "", error_id: str = ""
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.name = name
        self.error_id = error_id


class TransientError(StabilityError):
    """429, 5xx, a timeout, a cut connection or an unreadable answer: retrying can help."""

    retryable = True


class PermanentError(StabilityError):
    """400, 401, 402, 403, 404: the same request will fail again; a person has to act."""


# --- responses ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Artifact:
    png: bytes
    seed: int
    finish_reason: str

    @property
    def filtered(self) -> bool:
        return self.finish_reason == "CONTENT_FILTERED"


@dataclass(frozen=True)
class Engine:
    id: str
    name: str
    description: str
    type: str


@dataclass(frozen=True)
class Organization:
    id: str
    name: str
    role: str
    is_default: bool


@dataclass(frozen=True)
class Account:
    id: str
    email: str
    organizations: tuple[Organization, ...]
    profile_picture: str | None = None


# --- requests ----------------------------------------------------------------------------------------


def image_size(data: bytes, field_name: str) -> tuple[int, int]:
    """Width and height from the image header, without decoding the pixels."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.size
    except (UnidentifiedImageError, OSError) as exc:
        raise RuleViolation(
            field_name, "must be a PNG, JPEG or WebP image", ErrorName.INVALID_MIME_TYPE
        ) from exc


def _check_upload(data: bytes, field_name: str) -> tuple[int, int]:
    if not data or len(data) > contract.MAX_UPLOAD_BYTES:
        raise RuleViolation(
            field_name,
            f"must be between 1 byte and {contract.MAX_UPLOAD_BYTES:,} bytes",
            ErrorName.INVALID_FILE_SIZE,
        )
    return image_size(data, field_name)


def _generation_engine(engine_id: str) -> contract.EngineSpec | None:
    """The engine's facts; None for an engine the contract does not know, whose rules the API applies."""
    spec = ENGINES.get(engine_id)
    if spec is not None and not spec.generates:
        raise RuleViolation(
            "engine_id", f"{engine_id} is not an image generation engine", ErrorName.NOT_FOUND
        )
    return spec


@dataclass(frozen=True, kw_only=True)
class GenerationOptions:
    """The options every generation operation shares (notes §2.1)."""

    text_prompts: tuple[Prompt, ...]
    cfg_scale: float = 7.0
    clip_guidance_preset: str = "NONE"
    sampler: str | None = None
    samples: int = 1
    seed: int = 0
    steps: int = 30
    style_preset: str | None = None
    extras: dict[str, Any] | None = field(default=None, compare=False)

    def option_checks(self, accept: str) -> list[Check]:
        """One check per field, so that a form can show every problem at once."""
        return [
            lambda: contract.check_prompts(self.text_prompts),
            lambda: contract.check_range("cfg_scale", self.cfg_scale, contract.CFG_SCALE_RANGE),
            lambda: contract.check_range("steps", self.steps, contract.STEPS_RANGE),
            lambda: contract.check_range("samples", self.samples, contract.SAMPLES_RANGE),
            lambda: contract.check_range("seed", self.seed, contract.SEED_RANGE),
            # An empty sampler or style is not sent at all (the engine chooses), so it breaks no rule.
            lambda: contract.check_choice("sampler", self.sampler or None, contract.SAMPLERS),
            lambda: contract.check_choice(
                "clip_guidance_preset", self.clip_guidance_preset, contract.CLIP_GUIDANCE_PRESETS
            ),
            lambda: contract.check_choice("style_preset", self.style_preset or None, contract.STYLE_PRESETS),
            lambda: contract.check_samples_accept(self.samples, accept),
        ]

    def checks(self, engine_id: str, accept: str) -> list[Check]:
        raise NotImplementedError

    def violations(self, engine_id: str, accept: str = "application/json") -> list[RuleViolation]:
        """Every rule the request breaks (empty when the API would accept it)."""
        found = []
        for check in self.checks(engine_id, accept):
            try:
                check()
            except RuleViolation as violation:
                found.append(violation)
        return found

    def validate(self, engine_id: str, accept: str = "application/json") -> None:
        if found := self.violations(engine_id, accept):
            raise found[0]

    def option_fields(self) -> dict[str, Any]:
        """The optional fields, as the API names them, leaving out what the API should default."""
        fields: dict[str, Any] = {
            "cfg_scale": self.cfg_scale,
            "clip_guidance_preset": self.clip_guidance_preset,
            "samples": self.samples,
            "seed": self.seed,
            "steps": self.steps,
        }
        if self.sampler:
            fields["sampler"] = self.sampler
        if self.style_preset:
            fields["style_preset"] = self.style_preset
        return fields


@dataclass(frozen=True, kw_only=True)
class TextToImageRequest(GenerationOptions):
    width: int = 512
    height: int = 512

    def checks(self, engine_id: str, accept: str) -> list[Check]:
        spec = ENGINES.get(engine_id)
        known = spec if spec and spec.generates else None
        return [
            lambda: _generation_engine(engine_id),
            *self.option_checks(accept),
            lambda: contract.check_size(known, self.width, self.height),
        ]

    def to_json(self) -> dict[str, Any]:
        body = {
            "text_prompts": [{"text": p.text, "weight": p.weight} for p in self.text_prompts],
            "width": self.width,
            "height": self.height,
            **self.option_fields(),
        }
        if self.extras:
            body["extras"] = self.extras
        return body


def _multipart_prompts(prompts: tuple[Prompt, ...]) -> dict[str, str]:
    fields = {}
    for index, prompt in enumerate(prompts):
        fields[f"text_prompts[{index}][text]"] = prompt.text
        fields[f"text_prompts[{index}][weight]"] = repr(float(prompt.weight))
    return fields


@dataclass(frozen=True, kw_only=True)
class ImageToImageRequest(GenerationOptions):
    init_image: bytes = field(repr=False)
    init_image_mode: str = "IMAGE_STRENGTH"
    image_strength: float = 0.35
    step_schedule_start: float | None = None
    step_schedule_end: float | None = None

    def checks(self, engine_id: str, accept: str) -> list[Check]:
        return [lambda: self._check_init(engine_id), *self.option_checks(accept)]

    def _check_init(self, engine_id: str) -> None:
        spec = _generation_engine(engine_id)
        contract.check_strength(
            mode=self.init_image_mode,
            image_strength=self.image_strength,
            step_schedule_start=self.step_schedule_start,
            step_schedule_end=self.step_schedule_end,
        )
        width, height = _check_upload(self.init_image, "init_image")
        contract.check_size(spec, width, height, field="init_image")

    def form_fields(self) -> dict[str, str]:
        fields = {**_multipart_prompts(self.text_prompts), "init_image_mode": self.init_image_mode}
        if self.init_image_mode == "IMAGE_STRENGTH":
            fields["image_strength"] = repr(self.image_strength)
        else:
            if self.step_schedule_start is not None:
                fields["step_schedule_start"] = repr(self.step_schedule_start)
            if self.step_schedule_end is not None:
                fields["step_schedule_end"] = repr(self.step_schedule_end)
        fields.update({key: str(value) for key, value in self.option_fields().items()})
        return fields

    def files(self) -> dict[str, bytes]:
        return {"init_image": self.init_image}


@dataclass(frozen=True, kw_only=True)
class MaskingRequest(GenerationOptions):
    init_image: bytes = field(repr=False)
    mask_source: str = "MASK_IMAGE_WHITE"
    mask_image: bytes | None = field(default=None, repr=False)

    def checks(self, engine_id: str, accept: str) -> list[Check]:
        return [lambda: self._check_images(engine_id), *self.option_checks(accept)]

    def _check_images(self, engine_id: str) -> None:
        spec = _generation_engine(engine_id)
        contract.check_choice("mask_source", self.mask_source, contract.MASK_SOURCES)
        width, height = _check_upload(self.init_image, "init_image")
        contract.check_size(spec, width, height, field="init_image")
        if self.mask_source == "INIT_IMAGE_ALPHA":
            return
        if self.mask_image is None:
            raise RuleViolation(
                "mask_image",
                f"is required when mask_source is {self.mask_source}",
                ErrorName.INVALID_MASK_IMAGE,
            )
        if _check_upload(self.mask_image, "mask_image") != (width, height):
            raise RuleViolation(
                "mask_image",
                "must have the same dimensions as init_image",
                ErrorName.INVALID_IMAGE_DIMENSIONS,
            )

    def form_fields(self) -> dict[str, str]:
        fields = {**_multipart_prompts(self.text_prompts), "mask_source": self.mask_source}
        fields.update({key: str(value) for key, value in self.option_fields().items()})
        return fields

    def files(self) -> dict[str, bytes]:
        files = {"init_image": self.init_image}
        if self.mask_image is not None and self.mask_source != "INIT_IMAGE_ALPHA":
            files["mask_image"] = self.mask_image
        return files


@dataclass(frozen=True, kw_only=True)
class UpscaleRequest:
    """ESRGAN takes only the image and one target side; the latent upscaler also prompts, seed, steps, cfg."""

    image: bytes = field(repr=False)
    width: int | None = None
    height: int | None = None
    text_prompts: tuple[Prompt, ...] = ()
    seed: int | None = None
    steps: int | None = None
    cfg_scale: float | None = None

    def output_size(self, engine_id: str) -> tuple[int, int]:
        spec = ENGINES.get(engine_id)
        if spec is not None and spec.generates:
            raise RuleViolation("engine_id", f"{engine_id} is not an upscale engine", ErrorName.NOT_FOUND)
        width, height = _check_upload(self.image, "image")
        return contract.upscaled_size(width, height, target_width=self.width, target_height=self.height)

    def _takes_prompts(self, engine_id: str) -> bool:
        """The latent upscaler takes prompts, seed, steps and cfg; so may an engine the contract lacks."""
        spec = ENGINES.get(engine_id)
        return spec is None or spec.kind is EngineKind.LATENT_UPSCALER

    def validate(self, engine_id: str, accept: str = "application/json") -> None:
        self.output_size(engine_id)
        if self._takes_prompts(engine_id):
            contract.check_prompts(self.text_prompts, required=False)
            if self.seed is not None:
                contract.check_range("seed", self.seed, contract.SEED_RANGE)
            if self.steps is not None:
                contract.check_range("steps", self.steps, contract.STEPS_RANGE)
            if self.cfg_scale is not None:
                contract.check_range("cfg_scale", self.cfg_scale, contract.CFG_SCALE_RANGE)

    def form_fields(self, engine_id: str) -> dict[str, str]:
        fields: dict[str, str] = {}
        if self.width is not None:
            fields["width"] = str(self.width)
        if self.height is not None:
            fields["height"] = str(self.height)
        if self._takes_prompts(engine_id):
            fields.update(_multipart_prompts(self.text_prompts))
            for name in ("seed", "steps", "cfg_scale"):
                if (value := getattr(self, name)) is not None:
                    fields[name] = str(value)
        return fields

    def files(self) -> dict[str, bytes]:
        return {"image": self.image}
