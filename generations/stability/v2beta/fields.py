"""The vocabulary of the Stable Image contract: error names, what a field holds and which images it
takes, and the fields most operations share (notes §2, §2.2, §8). Operations are built from these in
contract.py."""

import io
import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from PIL import Image, UnidentifiedImageError

from generations.stability.contract import STYLE_PRESETS
from generations.stability.contract import RuleViolation as V1RuleViolation

MAX_TEXT = 10_000
SEED_RANGE = (0, 4_294_967_294)  # 0 (or omitted) asks for a random seed
ASPECT_RATIOS = ("21:9", "16:9", "3:2", "5:4", "1:1", "4:5", "2:3", "9:16", "9:21")
OUTPUT_FORMATS = ("png", "jpeg", "webp")
IMAGE_FORMATS = ("PNG", "JPEG", "WEBP")


class ErrorName(StrEnum):
    """The `name` of a v2beta error body {id, name, errors[]} (notes §8)."""

    BAD_REQUEST = "bad_request"
    UNAUTHORIZED = "unauthorized"
    PAYMENT_REQUIRED = "payment_required"
    CONTENT_MODERATION = "content_moderation"
    GENERATION_NOT_FOUND = "generation_not_found"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    INVALID_LANGUAGE = "invalid_language"
    PUBLIC_FIGURE = "public_figure"
    RATE_LIMIT_EXCEEDED = "rate_limit_exceeded"
    INTERNAL_ERROR = "internal_error"


class RuleViolation(V1RuleViolation):
    """A request the API would refuse: the field, the rule, and the status and name it would answer.
    `str()` is the API's own `errors[]` form, "<field>: <rule>". A kind of v1's, so that a page catching
    a refused request catches both APIs' refusals."""

    def __init__(
        self, field: str, rule: str, name: ErrorName = ErrorName.BAD_REQUEST, status: int = 400
    ) -> None:
        super().__init__(field, rule)
        self.name = name  # type: ignore[assignment]  # v2beta's names
        self.status = status


# --- images ----------------------------------------------------------------------------------------------


def image_size(data: bytes, field_name: str) -> tuple[int, int]:
    """Width and height from the header of a jpeg, png or webp file, without decoding its pixels."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.format in IMAGE_FORMATS:
                return image.size
    except Image.DecompressionBombError as exc:
        raise RuleViolation(field_name, "has too many pixels to be read") from exc
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        pass
    raise RuleViolation(field_name, "must be a jpeg, png or webp image")


@dataclass(frozen=True)
class ImageRule:
    """Which sizes an image field accepts (notes §2.2)."""

    min_side: int = 64
    max_side: int | None = None
    min_pixels: int | None = None
    max_pixels: int | None = None
    max_aspect: float | None = None  # 2.5: the ratio must lie between 1:2.5 and 2.5:1

    def check(self, name: str, width: int, height: int) -> None:
        got = f"(got {width}x{height})"
        if min(width, height) < self.min_side or (self.max_side and max(width, height) > self.max_side):
            upper = f" and at most {self.max_side:,}" if self.max_side else ""
            raise RuleViolation(
                name, f"width and height must be at least {self.min_side}{upper} pixels {got}"
            )
        pixels = width * height
        if (self.min_pixels and pixels < self.min_pixels) or (self.max_pixels and pixels > self.max_pixels):
            low, high = self.min_pixels or 0, self.max_pixels
            bounds = f"between {low:,} and {high:,}" if high else f"at least {low:,}"
            raise RuleViolation(name, f"must have {bounds} pixels {got}")
        if self.max_aspect and max(width, height) > self.max_aspect * min(width, height):
            raise RuleViolation(
                name, f"aspect ratio must be between 1:{self.max_aspect:g} and {self.max_aspect:g}:1 {got}"
            )


ANY_SIZE = ImageRule(min_side=1)
MAX_PIXELS = 9_437_184
GENERAL = ImageRule(min_pixels=4096, max_pixels=MAX_PIXELS)
GENERAL_AR = ImageRule(min_pixels=4096, max_pixels=MAX_PIXELS, max_aspect=2.5)


# --- fields ----------------------------------------------------------------------------------------------


class Kind(StrEnum):
    TEXT = "text"
    NUMBER = "number"
    INTEGER = "integer"
    CHOICE = "choice"
    FLAG = "flag"  # sent as "true" / "false"
    IMAGE = "image"


def _number(value: float) -> str:
    return f"{value:,}" if float(value).is_integer() and abs(value) >= 10_000 else f"{value:g}"


@dataclass(frozen=True)
class Field:
    """One form field: what it holds, whether it is required, the API's default when it is left out."""

    name: str
    kind: Kind
    required: bool = False
    default: str | float | bool | None = None
    low: float | None = None  # number range, or text length
    high: float | None = None
    choices: tuple[str, ...] = ()
    image: ImageRule | None = None

    def check(self, value: Any) -> None:
        if value is None:
            if self.required:
                raise RuleViolation(self.name, "required")
            return
        match self.kind:
            case Kind.TEXT:
                self._check_text(value)
            case Kind.NUMBER | Kind.INTEGER:
                self._check_number(value)
            case Kind.CHOICE:
                if not isinstance(value, str) or value not in self.choices:
                    raise RuleViolation(self.name, f"must be one of {', '.join(self.choices)}")
            case Kind.FLAG:
                if not isinstance(value, bool):
                    raise RuleViolation(self.name, "must be true or false")
            case Kind.IMAGE:
                if not isinstance(value, bytes):
                    raise RuleViolation(self.name, "must be a file (jpeg, png or webp)")
                width, height = image_size(value, self.name)
                (self.image or ANY_SIZE).check(self.name, width, height)

    def _check_text(self, value: Any) -> None:
        if not isinstance(value, str):
            raise RuleViolation(self.name, "must be text")
        if self.required and self.low and not value:
            raise RuleViolation(self.name, "required")
        if len(value) > (self.high or MAX_TEXT):
            raise RuleViolation(self.name, f"must be at most {int(self.high or MAX_TEXT):,} characters")

    def _check_number(self, value: Any) -> None:
        integer = self.kind is Kind.INTEGER
        if isinstance(value, bool) or not isinstance(value, int if integer else (int, float)):
            raise RuleViolation(self.name, "must be an integer" if integer else "must be a number")
        if not math.isfinite(value):
            raise RuleViolation(self.name, "must be a number")
        low, high = self.low, self.high
        if (low is not None and value < low) or (high is not None and value > high):
            raise RuleViolation(self.name, f"must be between {_number(low or 0)} and {_number(high or 0)}")


def text(name: str, *, required: bool = False, empty: bool = True) -> Field:
    return Field(name, Kind.TEXT, required, low=0 if empty else 1, high=MAX_TEXT)


def number(name: str, low: float, high: float, default: float | None = None) -> Field:
    return Field(name, Kind.NUMBER, default=default, low=low, high=high)


def image(name: str, rule: ImageRule, *, required: bool = True) -> Field:
    return Field(name, Kind.IMAGE, required, image=rule)


def choice(name: str, choices: tuple[str, ...], default: str | None = None) -> Field:
    return Field(name, Kind.CHOICE, default=default, choices=choices)


PROMPT = text("prompt", required=True, empty=False)
OPTIONAL_PROMPT = text("prompt")
NEGATIVE_PROMPT = text("negative_prompt")
SEED = Field("seed", Kind.INTEGER, default=0, low=SEED_RANGE[0], high=SEED_RANGE[1])
ASPECT_RATIO = choice("aspect_ratio", ASPECT_RATIOS, "1:1")
OUTPUT_FORMAT = choice("output_format", OUTPUT_FORMATS, "png")
STYLE_PRESET = choice("style_preset", STYLE_PRESETS)
MASK = image("mask", ANY_SIZE, required=False)  # any size: the API resizes it to the image (notes §2.1)


def grow_mask(high: float, default: float) -> Field:
    return number("grow_mask", 0, high, default)


def side(name: str) -> Field:
    return Field(name, Kind.INTEGER, default=0, low=0, high=2000)
