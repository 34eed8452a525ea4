"""The rules of Stability's Stable Image API (v2beta), one declarative description per operation.

Each `Operation` lists its fields (kind, required, API default, range or choices, image limits), the
rules that join fields, its price and the size of what it returns. The client checks a request against it
before spending one; the sandbox parses a request into the same values and refuses with the same
sentence. Facts from ../shared/reference/stability-v2beta-notes.md (§2 shared fields, §2.2 image limits,
§3–6 endpoints, §7 prices); where the notes leave a point open, the choice is written next to the rule.
"""

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

from generations.stability.prices import price_of
from generations.stability.v2beta.fields import (
    ASPECT_RATIO,
    GENERAL,
    GENERAL_AR,
    MASK,
    MAX_PIXELS,
    MAX_TEXT,
    NEGATIVE_PROMPT,
    OPTIONAL_PROMPT,
    OUTPUT_FORMAT,
    PROMPT,
    SEED,
    STYLE_PRESET,
    ErrorName,
    Field,
    ImageRule,
    Kind,
    RuleViolation,
    choice,
    grow_mask,
    image,
    image_size,
    number,
    side,
    text,
)

API_PREFIX = "/v2beta/stable-image"
RESULTS_PATH = "/v2beta/results"
MAX_REQUEST_BYTES = 10 * 1024 * 1024  # notes §1.1: the whole request, else 413
GENERATION_ID_LENGTH = 64
RESULT_POLL_SECONDS = 10  # notes §1.3: polling faster "may" be rate-limited
RESULT_RETENTION = timedelta(hours=24)
MULTIPART_PART_OVERHEAD = 200  # boundary and headers of one part, rounded up, for the size estimate

MEDIA_TYPES = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}
FINISH_REASONS = ("SUCCESS", "CONTENT_FILTERED")
SD3_MODELS = ("sd3.5-large", "sd3.5-large-turbo", "sd3.5-medium", "sd3.5-flash")
# notes §3.3: since 2025-04-17 the SD 3.0 ids are re-routed to SD 3.5 at the SD 3.5 price.
SD3_ALIASES = {
    "sd3-large": "sd3.5-large",
    "sd3-large-turbo": "sd3.5-large-turbo",
    "sd3-medium": "sd3.5-medium",
}
SD3_CFG_DEFAULTS = {"sd3.5-large": 4.0, "sd3.5-medium": 4.0, "sd3.5-large-turbo": 1.0, "sd3.5-flash": 1.0}
LIGHT_DIRECTIONS = ("left", "right", "above", "below")
SD3_MODES = ("text-to-image", "image-to-image")


def sd3_model(model: str | None) -> str:
    """The SD 3.5 model a request runs on (the default, or the target of an SD 3.0 alias)."""
    chosen = model or "sd3.5-large"
    return SD3_ALIASES.get(chosen, chosen)


# --- output sizes (the sandbox draws them; a form can show them before anything is spent) -----------------

Values = Mapping[str, Any]
ONE_MEGAPIXEL = 1_048_576
ASPECT_SIZES = {
    "21:9": (1536, 640),
    "16:9": (1344, 768),
    "3:2": (1216, 832),
    "5:4": (1152, 896),
    "1:1": (1024, 1024),
    "4:5": (896, 1152),
    "2:3": (832, 1216),
    "9:16": (768, 1344),
    "9:21": (640, 1536),
}


def aspect_size(ratio: str | None, scale: float = 1.0) -> tuple[int, int]:
    width, height = ASPECT_SIZES[ratio or "1:1"]
    return round(width * scale), round(height * scale)


def area_size(width: int, height: int, pixels: int, *, grow_only: bool = False) -> tuple[int, int]:
    """`width`×`height` scaled to about `pixels` pixels, keeping its shape (sides rounded to 8)."""
    scale = math.sqrt(pixels / (width * height))
    if grow_only:
        scale = max(scale, 1.0)
    return max(8, round(width * scale / 8) * 8), max(8, round(height * scale / 8) * 8)


def _size_of(values: Values, name: str) -> tuple[int, int]:
    return image_size(values[name], name)


def _text_to_image_size(scale: float = 1.0) -> Callable[[Values], tuple[int, int]]:
    def size(values: Values) -> tuple[int, int]:
        if values.get("image") is not None:  # image-to-image: 1 MP in the shape of the input
            return area_size(*_size_of(values, "image"), ONE_MEGAPIXEL)
        return aspect_size(values.get("aspect_ratio"), scale)

    return size


def _same_as(name: str) -> Callable[[Values], tuple[int, int]]:
    return lambda values: _size_of(values, name)


def _outpainted(values: Values) -> tuple[int, int]:
    width, height = _size_of(values, "image")
    grow = {name: values.get(name) or 0 for name in ("left", "right", "up", "down")}
    return width + grow["left"] + grow["right"], height + grow["up"] + grow["down"]


def _fast_upscaled(values: Values) -> tuple[int, int]:
    width, height = _size_of(values, "image")
    return width * 4, height * 4


CREATIVE_MAX_PIXELS = 3840 * 2160  # "up to 4K"


def _creative_upscaled(values: Values) -> tuple[int, int]:
    width, height = _size_of(values, "image")
    if width * height * 16 <= CREATIVE_MAX_PIXELS:
        return width * 4, height * 4
    return area_size(width, height, CREATIVE_MAX_PIXELS)


# --- cross-field rules ------------------------------------------------------------------------------------


def _ultra_strength(values: Values) -> None:
    if values.get("image") is not None and values.get("strength") is None:
        raise RuleViolation("strength", "required when image is given")
    if values.get("image") is None and values.get("strength") is not None:
        raise RuleViolation("strength", "may only be given with image")


def _sd3_mode(values: Values) -> None:
    if values.get("mode") == "image-to-image":
        for name in ("image", "strength"):
            if values.get(name) is None:
                raise RuleViolation(name, "required in image-to-image mode")
        if values.get("aspect_ratio") is not None:  # notes §3.3: refused by the server [obs]
            raise RuleViolation("aspect_ratio", "may not be given in image-to-image mode")
    else:
        for name in ("image", "strength"):
            if values.get(name) is not None:
                raise RuleViolation(name, "may only be given in image-to-image mode")


def _outpaint_direction(values: Values) -> None:
    if not any(values.get(name) for name in ("left", "right", "up", "down")):
        raise RuleViolation("left/right/up/down", "at least one direction must be greater than 0")


def _relight_background(values: Values) -> None:
    if values.get("background_prompt") is None and values.get("background_reference") is None:
        raise RuleViolation("background_prompt", "required when no background_reference is given")
    if values.get("light_source_strength") is not None and (
        values.get("light_reference") is None and values.get("light_source_direction") is None
    ):
        raise RuleViolation(
            "light_source_strength", "may only be given with light_reference or light_source_direction"
        )


# --- operations -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Operation:
    """One Stable Image operation: its fields, the rules joining them, price and result size."""

    id: str  # "generate/core", as in the path
    title: str
    fields: tuple[Field, ...]
    output_size: Callable[[Values], tuple[int, int]]
    asynchronous: bool = False
    rules: tuple[Callable[[Values], None], ...] = ()
    transparent: bool = False  # the result has an alpha channel
    by_model: bool = False  # priced per `model` (generate/sd3)

    @property
    def path(self) -> str:
        return f"{API_PREFIX}/{self.id}"

    @property
    def field_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)

    def field(self, name: str) -> Field:
        return next(f for f in self.fields if f.name == name)

    def price(self, values: Values | None = None) -> Decimal:
        """Credits one successful result costs (generate/sd3: by model)."""
        key = f"{self.id}:{sd3_model((values or {}).get('model'))}" if self.by_model else self.id
        return price_of(key)

    def defaults(self) -> dict[str, Any]:
        """What the API uses for each field left out (None: nothing, or chosen by the API)."""
        return {f.name: f.default for f in self.fields}

    def resolved(self, values: Values) -> dict[str, Any]:
        """The values with the API's defaults filled in where a field was left out."""
        return {f.name: f.default if values.get(f.name) is None else values[f.name] for f in self.fields}

    def body_size(self, values: Values) -> int:
        """An upper estimate of the multipart body's size in bytes."""
        size = 0
        for f in self.fields:
            value = values.get(f.name)
            if value is not None:
                data = value if isinstance(value, bytes) else str(value).encode()
                size += len(data) + len(f.name) + MULTIPART_PART_OVERHEAD
        return size

    def violations(self, values: Values) -> list[RuleViolation]:
        """Every rule the values break, in the order the API checks them (empty: it would accept)."""
        if self.body_size(values) > MAX_REQUEST_BYTES:
            return [
                RuleViolation(
                    "body",
                    "payloads cannot be larger than 10MiB in size",
                    ErrorName.PAYLOAD_TOO_LARGE,
                    413,
                )
            ]
        found = []
        for f in self.fields:
            try:
                f.check(values.get(f.name))
            except RuleViolation as violation:
                found.append(violation)
        if found:  # a rule joining fields speaks only when each field is right on its own
            return found
        for rule in self.rules:
            try:
                rule(values)
            except RuleViolation as violation:
                found.append(violation)
        return found


def _operation(id: str, title: str, *fields: Field, **options: Any) -> Operation:
    return Operation(id, title, fields, **options)


ULTRA = _operation(
    "generate/ultra",
    "Stable Image Ultra",
    PROMPT,
    NEGATIVE_PROMPT,
    ASPECT_RATIO,
    SEED,
    OUTPUT_FORMAT,
    image("image", ImageRule(max_side=16_384, min_pixels=4096), required=False),
    STYLE_PRESET,
    number("strength", 0, 1),
    output_size=_text_to_image_size(),
    rules=(_ultra_strength,),
)
# notes §3.2 and §12.1: the spec says 1.5 MP; 1:1 was observed as 1536x1536, so the 1 MP sizes x 1.5.
CORE = _operation(
    "generate/core",
    "Stable Image Core",
    PROMPT,
    ASPECT_RATIO,
    NEGATIVE_PROMPT,
    SEED,
    STYLE_PRESET,
    OUTPUT_FORMAT,
    output_size=_text_to_image_size(1.5),
)
SD3 = _operation(
    "generate/sd3",
    "Stable Diffusion 3.5",
    PROMPT,
    choice("mode", SD3_MODES, "text-to-image"),
    image("image", ImageRule(), required=False),
    number("strength", 0, 1),
    ASPECT_RATIO,
    choice("model", (*SD3_MODELS, *SD3_ALIASES), "sd3.5-large"),
    SEED,
    OUTPUT_FORMAT,
    STYLE_PRESET,
    NEGATIVE_PROMPT,
    number("cfg_scale", 1, 10),  # default by model: SD3_CFG_DEFAULTS
    output_size=_text_to_image_size(),
    rules=(_sd3_mode,),
    by_model=True,
)
UPSCALE_FAST = _operation(
    "upscale/fast",
    "Fast upscale",
    image("image", ImageRule(min_side=32, max_side=1536, min_pixels=1024, max_pixels=ONE_MEGAPIXEL)),
    OUTPUT_FORMAT,
    output_size=_fast_upscaled,
)
# notes §4.2: "4 megapixels" (spec); the sandbox follows the spec and never shrinks an image.
UPSCALE_CONSERVATIVE = _operation(
    "upscale/conservative",
    "Conservative upscale",
    image("image", GENERAL_AR),
    PROMPT,
    NEGATIVE_PROMPT,
    SEED,
    OUTPUT_FORMAT,
    number("creativity", 0.2, 0.5, 0.35),
    output_size=lambda values: area_size(*_size_of(values, "image"), 4 * ONE_MEGAPIXEL, grow_only=True),
)
UPSCALE_CREATIVE = _operation(
    "upscale/creative",
    "Creative upscale",
    image("image", ImageRule(min_pixels=4096, max_pixels=ONE_MEGAPIXEL)),
    PROMPT,
    NEGATIVE_PROMPT,
    OUTPUT_FORMAT,
    SEED,
    number("creativity", 0.1, 0.5, 0.3),
    STYLE_PRESET,
    output_size=_creative_upscaled,
    asynchronous=True,
)
# notes §5.1: the spec's `required` names a `prompt` it does not define; the server asks for none.
ERASE = _operation(
    "edit/erase",
    "Erase",
    image("image", GENERAL),
    MASK,
    grow_mask(20, 5),
    SEED,
    OUTPUT_FORMAT,
    output_size=_same_as("image"),
)
INPAINT = _operation(
    "edit/inpaint",
    "Inpaint",
    image("image", GENERAL),
    PROMPT,
    NEGATIVE_PROMPT,
    MASK,
    grow_mask(100, 5),
    SEED,
    OUTPUT_FORMAT,
    STYLE_PRESET,
    output_size=_same_as("image"),
)
# notes §5.3: `creativity` is allOf [0.2–0.5] + [0–1]; 0.2–0.5 satisfies both readings.
OUTPAINT = _operation(
    "edit/outpaint",
    "Outpaint",
    image("image", GENERAL_AR),
    side("left"),
    side("right"),
    side("up"),
    side("down"),
    number("creativity", 0.2, 0.5, 0.5),
    OPTIONAL_PROMPT,
    SEED,
    OUTPUT_FORMAT,
    STYLE_PRESET,
    output_size=_outpainted,
    rules=(_outpaint_direction,),
)
SEARCH_AND_REPLACE = _operation(
    "edit/search-and-replace",
    "Search and replace",
    image("image", GENERAL_AR),
    PROMPT,
    Field("search_prompt", Kind.TEXT, required=True, low=0, high=MAX_TEXT),
    NEGATIVE_PROMPT,
    grow_mask(20, 3),
    SEED,
    OUTPUT_FORMAT,
    STYLE_PRESET,
    output_size=_same_as("image"),
)
SEARCH_AND_RECOLOR = _operation(
    "edit/search-and-recolor",
    "Search and recolor",
    image("image", GENERAL_AR),
    PROMPT,
    Field("select_prompt", Kind.TEXT, required=True, low=0, high=MAX_TEXT),
    NEGATIVE_PROMPT,
    grow_mask(20, 3),
    SEED,
    OUTPUT_FORMAT,
    STYLE_PRESET,
    output_size=_same_as("image"),
)
REMOVE_BACKGROUND = _operation(
    "edit/remove-background",
    "Remove background",
    image("image", ImageRule(min_pixels=4096, max_pixels=4_194_304)),
    choice("output_format", ("png", "webp"), "png"),
    output_size=_same_as("image"),
    transparent=True,
)
REPLACE_BACKGROUND_AND_RELIGHT = _operation(
    "edit/replace-background-and-relight",
    "Replace background and relight",
    image("subject_image", GENERAL_AR),
    image("background_reference", GENERAL, required=False),
    text("background_prompt"),
    text("foreground_prompt"),
    NEGATIVE_PROMPT,
    number("preserve_original_subject", 0, 1, 0.6),
    number("original_background_depth", 0, 1, 0.5),
    Field("keep_original_background", Kind.FLAG, default=False),
    choice("light_source_direction", LIGHT_DIRECTIONS),
    image("light_reference", GENERAL, required=False),
    number("light_source_strength", 0, 1, 0.3),
    SEED,
    OUTPUT_FORMAT,
    output_size=_same_as("subject_image"),
    asynchronous=True,
    rules=(_relight_background,),
)


def _control(id: str, title: str) -> Operation:
    return _operation(
        id,
        title,
        PROMPT,
        image(
            "image", ImageRule(max_pixels=MAX_PIXELS, max_aspect=2.5) if id.endswith("sketch") else GENERAL_AR
        ),
        number("control_strength", 0, 1, 0.7),
        NEGATIVE_PROMPT,
        SEED,
        OUTPUT_FORMAT,
        STYLE_PRESET,
        output_size=_same_as("image"),
    )


CONTROL_SKETCH = _control("control/sketch", "Sketch")
CONTROL_STRUCTURE = _control("control/structure", "Structure")
CONTROL_STYLE = _operation(
    "control/style",
    "Style guide",
    PROMPT,
    image("image", GENERAL_AR),
    NEGATIVE_PROMPT,
    ASPECT_RATIO,
    number("fidelity", 0, 1, 0.5),
    SEED,
    OUTPUT_FORMAT,
    STYLE_PRESET,
    output_size=lambda values: aspect_size(values.get("aspect_ratio")),
)
STYLE_TRANSFER_IMAGE = ImageRule(max_side=16_383, min_pixels=4096, max_pixels=MAX_PIXELS)
CONTROL_STYLE_TRANSFER = _operation(
    "control/style-transfer",
    "Style transfer",
    image("init_image", ImageRule(max_side=16_383, min_pixels=4096, max_pixels=MAX_PIXELS, max_aspect=2.5)),
    image("style_image", STYLE_TRANSFER_IMAGE),
    OPTIONAL_PROMPT,
    NEGATIVE_PROMPT,
    SEED,
    number("style_strength", 0, 1, 1),
    number("composition_fidelity", 0, 1, 0.9),
    number("change_strength", 0.1, 1, 0.9),
    OUTPUT_FORMAT,
    output_size=lambda values: area_size(*_size_of(values, "init_image"), ONE_MEGAPIXEL),
)

OPERATIONS: dict[str, Operation] = {
    op.id: op
    for op in (
        ULTRA,
        CORE,
        SD3,
        UPSCALE_FAST,
        UPSCALE_CONSERVATIVE,
        UPSCALE_CREATIVE,
        ERASE,
        INPAINT,
        OUTPAINT,
        SEARCH_AND_REPLACE,
        SEARCH_AND_RECOLOR,
        REMOVE_BACKGROUND,
        REPLACE_BACKGROUND_AND_RELIGHT,
        CONTROL_SKETCH,
        CONTROL_STRUCTURE,
        CONTROL_STYLE,
        CONTROL_STYLE_TRANSFER,
    )
}


def check_generation_id(generation_id: str) -> None:
    if len(generation_id) != GENERATION_ID_LENGTH:
        raise RuleViolation("id", f"must be a {GENERATION_ID_LENGTH}-character generation id")
