"""Typed requests and results of the Stable Image API.

Each request class names its operation in the contract and must declare exactly that operation's fields
(checked when the class is made), so a field cannot be added in one place and forgotten in the other.
A field left as None is not sent: the API applies its default (`Operation.defaults()`).
"""

import inspect
import io
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, ClassVar

from PIL import Image, UnidentifiedImageError

from generations.stability.types import PermanentError, StabilityError, TransientError
from generations.stability.v2beta import contract
from generations.stability.v2beta.contract import Operation
from generations.stability.v2beta.fields import RuleViolation

__all__ = [
    "REQUEST_TYPES",
    "AsyncRequest",
    "ConservativeUpscaleRequest",
    "CoreRequest",
    "CreativeUpscaleRequest",
    "EraseRequest",
    "FastUpscaleRequest",
    "ImageResult",
    "InProgress",
    "InpaintRequest",
    "OutpaintRequest",
    "PermanentError",
    "RemoveBackgroundRequest",
    "ReplaceBackgroundAndRelightRequest",
    "RuleViolation",
    "SD3Request",
    "SearchAndRecolorRequest",
    "SearchAndReplaceRequest",
    "SketchRequest",
    "StabilityError",
    "StableImageRequest",
    "StructureRequest",
    "StyleRequest",
    "StyleTransferRequest",
    "Submitted",
    "SyncRequest",
    "TransientError",
    "UltraRequest",
    "request_for",
]

# A multipart part as httpx takes it: (None, text) is a plain field, (filename, bytes, type) a file.
Part = tuple[str, tuple[None, str] | tuple[str, bytes, str]]


def form_value(value: str | float | bool) -> str:
    """A scalar as the API reads it from a form field (`seed=5`, `strength=0.6`, `...=false`)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _file_part(name: str, data: bytes) -> tuple[str, bytes, str]:
    try:
        with Image.open(io.BytesIO(data)) as image:
            kind = (image.format or "").lower()
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        kind = ""
    if kind in contract.MEDIA_TYPES:
        return f"{name}.{'jpg' if kind == 'jpeg' else kind}", data, contract.MEDIA_TYPES[kind]
    return name, data, "application/octet-stream"


# --- requests --------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class StableImageRequest:
    operation: ClassVar[Operation]

    def __init_subclass__(cls, operation: Operation | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if operation is None:
            return
        cls.operation = operation
        declared = set(inspect.get_annotations(cls))
        if declared != set(operation.field_names):
            raise TypeError(
                f"{cls.__name__} must declare exactly the fields of {operation.id}: "
                f"missing {sorted(set(operation.field_names) - declared)}, "
                f"unknown {sorted(declared - set(operation.field_names))}"
            )

    def values(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.operation.field_names}

    def violations(self) -> list[RuleViolation]:
        """Every rule the request breaks, in the API's order (empty when the API would accept it)."""
        return self.operation.violations(self.values())

    def validate(self) -> None:
        if found := self.violations():
            raise found[0]

    @property
    def price(self) -> Decimal:
        """Credits the result costs when it succeeds."""
        return self.operation.price(self.values())

    def output_size(self) -> tuple[int, int]:
        """Width and height of the result (for a request that validates)."""
        return self.operation.output_size(self.values())

    def parts(self) -> list[Part]:
        """The multipart body, in the contract's field order; None is left out."""
        parts: list[Part] = []
        for name, value in self.values().items():
            if isinstance(value, bytes):
                parts.append((name, _file_part(name, value)))
            elif value is not None:
                parts.append((name, (None, form_value(value))))
        return parts


@dataclass(frozen=True, kw_only=True)
class SyncRequest(StableImageRequest):
    """An operation that answers with the image."""


@dataclass(frozen=True, kw_only=True)
class AsyncRequest(StableImageRequest):
    """An operation that answers with a generation id; the image is fetched from /v2beta/results/{id}."""


@dataclass(frozen=True, kw_only=True)
class UltraRequest(SyncRequest, operation=contract.ULTRA):
    prompt: str
    negative_prompt: str | None = None
    aspect_ratio: str | None = None
    seed: int | None = None
    output_format: str | None = None
    image: bytes | None = field(default=None, repr=False)
    style_preset: str | None = None
    strength: float | None = None


@dataclass(frozen=True, kw_only=True)
class CoreRequest(SyncRequest, operation=contract.CORE):
    prompt: str
    aspect_ratio: str | None = None
    negative_prompt: str | None = None
    seed: int | None = None
    style_preset: str | None = None
    output_format: str | None = None


@dataclass(frozen=True, kw_only=True)
class SD3Request(SyncRequest, operation=contract.SD3):
    prompt: str
    mode: str | None = None
    image: bytes | None = field(default=None, repr=False)
    strength: float | None = None
    aspect_ratio: str | None = None
    model: str | None = None
    seed: int | None = None
    output_format: str | None = None
    style_preset: str | None = None
    negative_prompt: str | None = None
    cfg_scale: float | None = None


@dataclass(frozen=True, kw_only=True)
class FastUpscaleRequest(SyncRequest, operation=contract.UPSCALE_FAST):
    image: bytes = field(repr=False)
    output_format: str | None = None


@dataclass(frozen=True, kw_only=True)
class ConservativeUpscaleRequest(SyncRequest, operation=contract.UPSCALE_CONSERVATIVE):
    image: bytes = field(repr=False)
    prompt: str
    negative_prompt: str | None = None
    seed: int | None = None
    output_format: str | None = None
    creativity: float | None = None


@dataclass(frozen=True, kw_only=True)
class CreativeUpscaleRequest(AsyncRequest, operation=contract.UPSCALE_CREATIVE):
    image: bytes = field(repr=False)
    prompt: str
    negative_prompt: str | None = None
    output_format: str | None = None
    seed: int | None = None
    creativity: float | None = None
    style_preset: str | None = None


@dataclass(frozen=True, kw_only=True)
class EraseRequest(SyncRequest, operation=contract.ERASE):
    image: bytes = field(repr=False)
    mask: bytes | None = field(default=None, repr=False)
    grow_mask: float | None = None
    seed: int | None = None
    output_format: str | None = None


@dataclass(frozen=True, kw_only=True)
class InpaintRequest(SyncRequest, operation=contract.INPAINT):
    image: bytes = field(repr=False)
    prompt: str
    negative_prompt: str | None = None
    mask: bytes | None = field(default=None, repr=False)
    grow_mask: float | None = None
    seed: int | None = None
    output_format: str | None = None
    style_preset: str | None = None


@dataclass(frozen=True, kw_only=True)
class OutpaintRequest(SyncRequest, operation=contract.OUTPAINT):
    image: bytes = field(repr=False)
    left: int | None = None
    right: int | None = None
    up: int | None = None
    down: int | None = None
    creativity: float | None = None
    prompt: str | None = None
    seed: int | None = None
    output_format: str | None = None
    style_preset: str | None = None


@dataclass(frozen=True, kw_only=True)
class SearchAndReplaceRequest(SyncRequest, operation=contract.SEARCH_AND_REPLACE):
    image: bytes = field(repr=False)
    prompt: str
    search_prompt: str
    negative_prompt: str | None = None
    grow_mask: float | None = None
    seed: int | None = None
    output_format: str | None = None
    style_preset: str | None = None


@dataclass(frozen=True, kw_only=True)
class SearchAndRecolorRequest(SyncRequest, operation=contract.SEARCH_AND_RECOLOR):
    image: bytes = field(repr=False)
    prompt: str
    select_prompt: str
    negative_prompt: str | None = None
    grow_mask: float | None = None
    seed: int | None = None
    output_format: str | None = None
    style_preset: str | None = None


@dataclass(frozen=True, kw_only=True)
class RemoveBackgroundRequest(SyncRequest, operation=contract.REMOVE_BACKGROUND):
    image: bytes = field(repr=False)
    output_format: str | None = None


@dataclass(frozen=True, kw_only=True)
class ReplaceBackgroundAndRelightRequest(AsyncRequest, operation=contract.REPLACE_BACKGROUND_AND_RELIGHT):
    subject_image: bytes = field(repr=False)
    background_reference: bytes | None = field(default=None, repr=False)
    background_prompt: str | None = None
    foreground_prompt: str | None = None
    negative_prompt: str | None = None
    preserve_original_subject: float | None = None
    original_background_depth: float | None = None
    keep_original_background: bool | None = None
    light_source_direction: str | None = None
    light_reference: bytes | None = field(default=None, repr=False)
    light_source_strength: float | None = None
    seed: int | None = None
    output_format: str | None = None


@dataclass(frozen=True, kw_only=True)
class SketchRequest(SyncRequest, operation=contract.CONTROL_SKETCH):
    prompt: str
    image: bytes = field(repr=False)
    control_strength: float | None = None
    negative_prompt: str | None = None
    seed: int | None = None
    output_format: str | None = None
    style_preset: str | None = None


@dataclass(frozen=True, kw_only=True)
class StructureRequest(SyncRequest, operation=contract.CONTROL_STRUCTURE):
    prompt: str
    image: bytes = field(repr=False)
    control_strength: float | None = None
    negative_prompt: str | None = None
    seed: int | None = None
    output_format: str | None = None
    style_preset: str | None = None


@dataclass(frozen=True, kw_only=True)
class StyleRequest(SyncRequest, operation=contract.CONTROL_STYLE):
    prompt: str
    image: bytes = field(repr=False)
    negative_prompt: str | None = None
    aspect_ratio: str | None = None
    fidelity: float | None = None
    seed: int | None = None
    output_format: str | None = None
    style_preset: str | None = None


@dataclass(frozen=True, kw_only=True)
class StyleTransferRequest(SyncRequest, operation=contract.CONTROL_STYLE_TRANSFER):
    init_image: bytes = field(repr=False)
    style_image: bytes = field(repr=False)
    prompt: str | None = None
    negative_prompt: str | None = None
    seed: int | None = None
    style_strength: float | None = None
    composition_fidelity: float | None = None
    change_strength: float | None = None
    output_format: str | None = None


REQUEST_TYPES: dict[str, type[StableImageRequest]] = {
    cls.operation.id: cls
    for cls in (
        UltraRequest,
        CoreRequest,
        SD3Request,
        FastUpscaleRequest,
        ConservativeUpscaleRequest,
        CreativeUpscaleRequest,
        EraseRequest,
        InpaintRequest,
        OutpaintRequest,
        SearchAndReplaceRequest,
        SearchAndRecolorRequest,
        RemoveBackgroundRequest,
        ReplaceBackgroundAndRelightRequest,
        SketchRequest,
        StructureRequest,
        StyleRequest,
        StyleTransferRequest,
    )
}
assert set(REQUEST_TYPES) == set(contract.OPERATIONS), "every operation has a request type"


def request_for(operation_id: str, values: Mapping[str, Any]) -> StableImageRequest:
    """The typed request of an operation from stored values (e.g. a job row), unknown keys refused."""
    return REQUEST_TYPES[operation_id](**values)


# --- results ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImageResult:
    """One finished image, from either response encoding."""

    image: bytes = field(repr=False)
    media_type: str  # image/png, image/jpeg or image/webp
    seed: int
    finish_reason: str
    request_id: str = ""

    @property
    def filtered(self) -> bool:
        """The moderation blurred the image (still a success, with an image)."""
        return self.finish_reason == "CONTENT_FILTERED"

    @property
    def extension(self) -> str:
        return {"image/jpeg": "jpg", "image/webp": "webp"}.get(self.media_type, "png")


@dataclass(frozen=True)
class Submitted:
    """An asynchronous operation accepted: fetch `id` from the results endpoint after `poll_after` s."""

    id: str
    poll_after: int = contract.RESULT_POLL_SECONDS


@dataclass(frozen=True)
class InProgress:
    """The result is not ready yet: ask again after `poll_after` seconds (not sooner)."""

    id: str
    poll_after: int = contract.RESULT_POLL_SECONDS
