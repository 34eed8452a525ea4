"""The rules of Stability's v1 REST API that both sides of Studio obey: the client checks them before it
spends a request, the sandbox answers with the same error names when they are broken.

Facts from ../shared/reference/stability-v1-notes.md (§2 ranges and enums, §3 sizes, §6 prices) and the
official OpenAPI file; where those leave a point open, the choice is written next to the rule.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum

from generations.stability.prices import PRICES, SDXL_PRICE_STEPS

API_PATH = "/v1"
MAX_PROMPTS = 10  # not published; a bound so a form cannot send thousands
MAX_PROMPT_LENGTH = 2000
MAX_PROMPT_WEIGHT = 10.0  # gRPC docs: prompt weights live in [-10, 10]
CFG_SCALE_RANGE = (0.0, 35.0)
STEPS_RANGE = (10, 50)
SAMPLES_RANGE = (1, 10)
SEED_RANGE = (0, 4_294_967_295)
UPSCALE_MAX_PIXELS = 4_194_304
UPSCALE_MIN_SIDE = 512
MAX_UPLOAD_BYTES = 10 * 1024 * 1024  # v2beta documents 10 MiB; v1 is silent, so the same cap

CLIP_GUIDANCE_PRESETS = ("FAST_BLUE", "FAST_GREEN", "NONE", "SIMPLE", "SLOW", "SLOWER", "SLOWEST")
SAMPLERS = (
    "DDIM",
    "DDPM",
    "K_DPMPP_2M",
    "K_DPMPP_2S_ANCESTRAL",
    "K_DPM_2",
    "K_DPM_2_ANCESTRAL",
    "K_EULER",
    "K_EULER_ANCESTRAL",
    "K_HEUN",
    "K_LMS",
)
STYLE_PRESETS = (
    "3d-model",
    "analog-film",
    "anime",
    "cinematic",
    "comic-book",
    "digital-art",
    "enhance",
    "fantasy-art",
    "isometric",
    "line-art",
    "low-poly",
    "modeling-compound",
    "neon-punk",
    "origami",
    "photographic",
    "pixel-art",
    "tile-texture",
)
INIT_IMAGE_MODES = ("IMAGE_STRENGTH", "STEP_SCHEDULE")
MASK_SOURCES = ("MASK_IMAGE_WHITE", "MASK_IMAGE_BLACK", "INIT_IMAGE_ALPHA")
FINISH_REASONS = ("SUCCESS", "ERROR", "CONTENT_FILTERED")


class ErrorName(StrEnum):
    """The v1 error names (`name` in the error body). The last two are not in the v1 spec; see notes §10."""

    BAD_REQUEST = "bad_request"
    INVALID_SAMPLES = "invalid_samples"
    INVALID_HEIGHT_OR_WIDTH = "invalid_height_or_width"
    INVALID_FILE_SIZE = "invalid_file_size"
    INVALID_MIME_TYPE = "invalid_mime_type"
    INVALID_IMAGE_DIMENSIONS = "invalid_image_dimensions"
    INVALID_MASK_IMAGE = "invalid_mask_image"
    INVALID_PROMPTS = "invalid_prompts"
    INVALID_PIXEL_COUNT = "invalid_pixel_count"
    INVALID_SDXL_V222_DIMENSIONS = "invalid_sdxl_v222_dimensions"
    INVALID_SDXL_V1_DIMENSIONS = "invalid_sdxl_v1_dimensions"
    UNAUTHORIZED = "unauthorized"
    PERMISSION_DENIED = "permission_denied"
    NOT_FOUND = "not_found"
    SERVER_ERROR = "server_error"
    PAYMENT_REQUIRED = "payment_required"
    RATE_LIMIT_EXCEEDED = "rate_limit_exceeded"


class RuleViolation(ValueError):
    """A request the API would refuse with 400: which field, which rule, and the v1 error name."""

    def __init__(self, field: str, rule: str, name: ErrorName = ErrorName.BAD_REQUEST) -> None:
        super().__init__(f"{field}: {rule}")
        self.field = field
        self.rule = rule
        self.name = name


# --- engines -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SizeRule:
    """Which width × height an engine accepts, besides the universal 'multiple of 64, at least 128'."""

    sizes: tuple[tuple[int, int], ...] = ()  # exact list (SDXL 0.9/1.0)
    min_side: int = 128
    max_side: int | None = None
    min_pixels: int | None = None
    max_pixels: int | None = None
    error: ErrorName = ErrorName.INVALID_PIXEL_COUNT
    description: str = ""

    def allows(self, width: int, height: int) -> bool:
        if self.sizes:
            return (width, height) in self.sizes
        if min(width, height) < self.min_side or (self.max_side and max(width, height) > self.max_side):
            return False
        pixels = width * height
        return not (self.min_pixels and pixels < self.min_pixels) and not (
            self.max_pixels and pixels > self.max_pixels
        )

    def valid_sizes(self) -> list[tuple[int, int]]:
        """Every accepted size (multiples of 64), largest area first for equal aspect."""
        if self.sizes:
            return list(self.sizes)
        top = self.max_side or 2048
        return [(w, h) for w in range(128, top + 1, 64) for h in range(128, top + 1, 64) if self.allows(w, h)]


SDXL_V1_SIZES = (
    (1024, 1024),
    (1152, 896),
    (1216, 832),
    (1344, 768),
    (1536, 640),
    (640, 1536),
    (768, 1344),
    (832, 1216),
    (896, 1152),
)
SDXL_V1_RULE = SizeRule(
    sizes=SDXL_V1_SIZES,
    error=ErrorName.INVALID_SDXL_V1_DIMENSIONS,
    description="one of 1024x1024, 1152x896, 1216x832, 1344x768, 1536x640, 640x1536, 768x1344, "
    "832x1216 or 896x1152",
)
# SD 1.6's error name is not published; a side out of range is a width/height problem, so that name.
SD16_RULE = SizeRule(
    min_side=320,
    max_side=1536,
    error=ErrorName.INVALID_HEIGHT_OR_WIDTH,
    description="each side between 320 and 1536",
)
SD512_RULE = SizeRule(
    min_pixels=262_144,
    max_pixels=1_048_576,
    description="between 262,144 and 1,048,576 pixels (e.g. 512x512 to 1024x1024)",
)
SD768_RULE = SizeRule(
    min_pixels=589_824,
    max_pixels=1_048_576,
    description="between 589,824 and 1,048,576 pixels (e.g. 768x768 to 1024x1024)",
)


class EngineKind(StrEnum):
    GENERATE = "generate"
    ESRGAN = "esrgan"
    LATENT_UPSCALER = "latent-upscaler"


class Pricing(StrEnum):
    SDXL = "sdxl"
    PIXELS = "pixels"  # SD 1.5 / 2.1 formula
    PIXELS_FLOORED = "pixels-floored"  # SD 1.6: no published price, the SD 2.1 formula at >= 512x512
    ESRGAN = "esrgan"
    LATENT_UPSCALER = "latent-upscaler"


@dataclass(frozen=True)
class EngineSpec:
    id: str
    name: str
    kind: EngineKind
    pricing: Pricing
    size_rule: SizeRule | None = None
    default_size: tuple[int, int] = (512, 512)

    @property
    def description(self) -> str:
        return f"Stability-AI {self.name}"

    @property
    def generates(self) -> bool:
        return self.kind is EngineKind.GENERATE

    @property
    def upscales(self) -> bool:
        return self.kind is not EngineKind.GENERATE


ENGINES: dict[str, EngineSpec] = {
    spec.id: spec
    for spec in (
        EngineSpec(
            "stable-diffusion-xl-1024-v1-0",
            "Stable Diffusion XL v1.0",
            EngineKind.GENERATE,
            Pricing.SDXL,
            SDXL_V1_RULE,
            (1024, 1024),
        ),
        EngineSpec(
            "stable-diffusion-xl-1024-v0-9",
            "Stable Diffusion XL v0.9",
            EngineKind.GENERATE,
            Pricing.SDXL,
            SDXL_V1_RULE,
            (1024, 1024),
        ),
        EngineSpec(
            "stable-diffusion-v1-6",
            "Stable Diffusion v1.6",
            EngineKind.GENERATE,
            Pricing.PIXELS_FLOORED,
            SD16_RULE,
        ),
        EngineSpec(
            "stable-diffusion-512-v2-1",
            "Stable Diffusion v2.1",
            EngineKind.GENERATE,
            Pricing.PIXELS,
            SD512_RULE,
        ),
        EngineSpec(
            "stable-diffusion-768-v2-1",
            "Stable Diffusion v2.1-768",
            EngineKind.GENERATE,
            Pricing.PIXELS,
            SD768_RULE,
            (768, 768),
        ),
        EngineSpec("esrgan-v1-x2plus", "Real-ESRGAN x2", EngineKind.ESRGAN, Pricing.ESRGAN),
        EngineSpec(
            "stable-diffusion-x4-latent-upscaler",
            "Stable Diffusion x4 Latent Upscaler",
            EngineKind.LATENT_UPSCALER,
            Pricing.LATENT_UPSCALER,
        ),
    )
}


def engine_spec(engine_id: str) -> EngineSpec | None:
    return ENGINES.get(engine_id)


# --- prices (notes §6), in credits -------------------------------------------------------------------

CREDIT_QUANTUM = Decimal("0.000001")


def _credits(value: float) -> Decimal:
    return Decimal(repr(value)).quantize(CREDIT_QUANTUM, rounding=ROUND_HALF_UP)


def price_per_image(engine_id: str, *, steps: int = 30, width: int = 512, height: int = 512) -> Decimal:
    """Credits one successful artifact costs on `engine_id` (for upscalers, width/height of the input)."""
    spec = ENGINES[engine_id]
    pixels = width * height
    match spec.pricing:
        case Pricing.SDXL:
            price = PRICES["v1/sdxl"] * max(steps, SDXL_PRICE_STEPS) / SDXL_PRICE_STEPS  # prices.py
            return price.quantize(CREDIT_QUANTUM, rounding=ROUND_HALF_UP)
        case Pricing.PIXELS | Pricing.PIXELS_FLOORED:
            if spec.pricing is Pricing.PIXELS_FLOORED:
                pixels = max(pixels, 512 * 512)
            return _credits((pixels - 169_527) * steps / 30 * 2.16e-8 * 100)
        case Pricing.ESRGAN:
            return Decimal("0.2").quantize(CREDIT_QUANTUM)
        case Pricing.LATENT_UPSCALER:
            return Decimal(12 if pixels > 512 * 512 else 8).quantize(CREDIT_QUANTUM)


# --- checks ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Prompt:
    text: str
    weight: float = 1.0


def check_prompts(prompts: Sequence[Prompt], *, required: bool = True) -> None:
    if not prompts:
        if required:
            raise RuleViolation("text_prompts", "at least one prompt is required")
        return
    if len(prompts) > MAX_PROMPTS:
        raise RuleViolation("text_prompts", f"at most {MAX_PROMPTS} prompts")
    for index, prompt in enumerate(prompts):
        field = f"text_prompts[{index}]"
        if not prompt.text.strip():
            raise RuleViolation(f"{field}.text", "must not be empty")
        if len(prompt.text) > MAX_PROMPT_LENGTH:
            raise RuleViolation(f"{field}.text", f"must be at most {MAX_PROMPT_LENGTH} characters")
        if not math.isfinite(prompt.weight) or abs(prompt.weight) > MAX_PROMPT_WEIGHT:
            raise RuleViolation(
                f"{field}.weight", f"must be between -{MAX_PROMPT_WEIGHT:g} and {MAX_PROMPT_WEIGHT:g}"
            )
    if not any(prompt.weight > 0 for prompt in prompts):
        raise RuleViolation("text_prompts", "at least one prompt must have a positive weight")


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def check_range(field: str, value: float, bounds: tuple[float, float]) -> None:
    low, high = bounds
    if not (isinstance(value, int | float) and math.isfinite(value) and low <= value <= high):
        raise RuleViolation(field, f"must be between {_number(low)} and {_number(high)}")


def check_choice(field: str, value: str | None, choices: Sequence[str]) -> None:
    if value is not None and value not in choices:
        raise RuleViolation(field, f"must be one of {', '.join(choices)}")


def check_samples_accept(samples: int, accept: str) -> None:
    if samples > 1 and accept == "image/png":
        raise RuleViolation(
            "samples", "may only be greater than 1 with Accept: application/json", ErrorName.INVALID_SAMPLES
        )


def check_size(engine: EngineSpec | None, width: int, height: int, *, field: str = "width/height") -> None:
    """The universal rule (multiples of 64, at least 128), then the engine's own when it is known."""
    for name, value in (("width", width), ("height", height)):
        if value < 128 or value % 64:
            label = name if field == "width/height" else field
            raise RuleViolation(
                label, "must be a multiple of 64 and at least 128", ErrorName.INVALID_HEIGHT_OR_WIDTH
            )
    rule = engine.size_rule if engine else None
    if engine and rule and not rule.allows(width, height):
        raise RuleViolation(
            field, f"{width}x{height} is not accepted by {engine.id}: {rule.description}", rule.error
        )


def check_strength(
    *,
    mode: str,
    image_strength: float | None,
    step_schedule_start: float | None,
    step_schedule_end: float | None,
) -> None:
    check_choice("init_image_mode", mode, INIT_IMAGE_MODES)
    for field, value in (
        ("image_strength", image_strength),
        ("step_schedule_start", step_schedule_start),
        ("step_schedule_end", step_schedule_end),
    ):
        if value is not None:
            check_range(field, value, (0.0, 1.0))


def upscaled_size(
    width: int, height: int, *, target_width: int | None, target_height: int | None
) -> tuple[int, int]:
    """The output size of an upscale (2x by default, or one side given), checked against the cap."""
    if target_width is not None and target_height is not None:
        raise RuleViolation("width", "only one of width or height may be given")
    for field, value in (("width", target_width), ("height", target_height)):
        if value is not None and value < UPSCALE_MIN_SIDE:
            raise RuleViolation(field, f"must be at least {UPSCALE_MIN_SIDE}")
    if target_width is not None:
        size = (target_width, round(height * target_width / width))
    elif target_height is not None:
        size = (round(width * target_height / height), target_height)
    else:
        size = (width * 2, height * 2)
    if size[0] * size[1] > UPSCALE_MAX_PIXELS:
        raise RuleViolation(
            "image",
            f"the output {size[0]}x{size[1]} would exceed the maximum of {UPSCALE_MAX_PIXELS:,} pixels",
            ErrorName.INVALID_PIXEL_COUNT,
        )
    return size
