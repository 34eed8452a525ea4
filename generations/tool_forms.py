"""The form of a Stable Image tool on an image (generations.stable_image.TOOLS), generated from the
contract: each field a person fills (`Tool.asks`) with the contract's default, limits and choices, the
reference image the tool takes, and the mask the editor paints. Validation is the contract's own
`violations()`, each sentence put next to the field it names.

The source image is the gallery image itself. When it breaks the tool's image rule only by being too
large, it is sent shrunk to fit (keeping its shape); `source_plan` says so before anything is sent.
"""

import functools
import io
import json
import math
from dataclasses import dataclass
from typing import Any

from django import forms
from django.core.files.uploadedfile import UploadedFile
from PIL import Image

from generations.labels import TIMES, field_label, style_label
from generations.stability.v2beta.fields import ANY_SIZE, Field, Kind, RuleViolation
from generations.stable_image import OUTPUT_FORMAT, Tool
from generations.uploads import UploadRejected, clean_mask, clean_upload

PROMPT_HELP = {
    "prompt": "What the result shows.",
    "search_prompt": "Name the thing to find, e.g. “the red ball”.",
    "select_prompt": "Name the thing to recolour, e.g. “the red ball”.",
    "seed": "0 picks a new one each time.",
}
# The prompt the source image was made with fills the form of these tools (they keep the picture).
PROMPT_FROM_SOURCE = ("upscale", "control")
SIDES = ("left", "right", "up", "down")
NO_CHOICE = "The platform's default"
MASK_MISSING = {
    "erase": "Paint over what should go first.",
    "inpaint": "Paint over the area to change first.",
}


def size_text(size: tuple[int, int]) -> str:
    return f"{size[0]} {TIMES} {size[1]}"


# --- the source image ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SourcePlan:
    """How the image is sent to a tool: at `sent` (its own size, or shrunk to fit), or not at all
    (`reason` says why)."""

    size: tuple[int, int]
    sent: tuple[int, int] | None
    reason: str = ""

    @property
    def usable(self) -> bool:
        return self.sent is not None

    @property
    def resized(self) -> bool:
        return self.sent is not None and self.sent != self.size

    @property
    def resized_from(self) -> str:
        return f"{self.size[0]}x{self.size[1]}" if self.resized else ""


def _without_got(rule: str) -> str:
    return rule.split(" (got ")[0]


def source_plan(tool: Tool, width: int, height: int) -> SourcePlan:
    """The size the tool's image rule lets the picture be sent at: its own, or the largest of the same
    shape under the rule's side and pixel limits. A picture too small, or of a shape the rule refuses,
    cannot be used, and the reason says so."""
    rule = tool.operation.field(tool.source).image or ANY_SIZE
    try:
        rule.check(tool.source, width, height)
        return SourcePlan((width, height), (width, height))
    except RuleViolation as violation:
        refusal = violation
    scale = 1.0
    if rule.max_side and max(width, height) > rule.max_side:
        scale = min(scale, rule.max_side / max(width, height))
    if rule.max_pixels and width * height > rule.max_pixels:
        scale = min(scale, math.sqrt(rule.max_pixels / (width * height)))
    if scale < 1.0:
        # A hair over the exact scale, floored: 1536 × 2/3 is 1024, not 1023.
        fitted = (max(1, math.floor(width * scale + 1e-6)), max(1, math.floor(height * scale + 1e-6)))
        while rule.max_pixels and fitted[0] * fitted[1] > rule.max_pixels:
            fitted = (fitted[0] - 1, max(1, round((fitted[0] - 1) * height / width)))
        try:
            rule.check(tool.source, *fitted)
            return SourcePlan((width, height), fitted)
        except RuleViolation as violation:
            refusal = violation
    reason = f"Not available for a {size_text((width, height))} image: {_without_got(refusal.rule)}."
    return SourcePlan((width, height), None, reason)


def _resized(png: bytes, size: tuple[int, int], mode: str | None = None) -> bytes:
    with Image.open(io.BytesIO(png)) as picture:
        picture.load()
        pixels = picture.convert(mode) if mode else picture
        fitted = pixels.resize(size, Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    fitted.save(buffer, "PNG")
    return buffer.getvalue()


def source_bytes(png: bytes, plan: SourcePlan) -> bytes:
    """The picture as the tool receives it: unchanged, or shrunk to the plan's size."""
    if plan.sent is None or not plan.resized:
        return png
    return _resized(png, plan.sent)


@functools.lru_cache(maxsize=32)
def stand_in(size: tuple[int, int]) -> bytes:
    """A blank PNG of `size`: the contract reads only its header to tell the size of a result."""
    buffer = io.BytesIO()
    Image.new("L", size).save(buffer, "PNG")
    return buffer.getvalue()


# --- the form --------------------------------------------------------------------------------------------


def _number_attrs(field: Field, step: str) -> dict[str, Any]:
    attrs: dict[str, Any] = {"step": step}
    if field.low is not None:
        attrs["min"] = f"{field.low:g}"
    if field.high is not None:
        attrs["max"] = f"{field.high:g}"
    return attrs


def _form_field(field: Field, initial: Any) -> forms.Field:
    label, help_text = field_label(field.name), PROMPT_HELP.get(field.name, "")
    match field.kind:
        case Kind.TEXT:
            widget = forms.Textarea(attrs={"rows": 2}) if field.name.endswith("prompt") else forms.TextInput
            return forms.CharField(
                required=False, label=label, help_text=help_text, initial=initial, widget=widget
            )
        case Kind.NUMBER:
            return forms.FloatField(
                required=False,
                label=label,
                help_text=help_text,
                initial=initial,
                widget=forms.NumberInput(attrs=_number_attrs(field, "any")),
            )
        case Kind.INTEGER:
            return forms.IntegerField(
                required=False,
                label=label,
                help_text=help_text,
                initial=initial,
                widget=forms.NumberInput(attrs=_number_attrs(field, "1")),
            )
        case Kind.CHOICE:
            named = style_label if field.name == "style_preset" else (lambda choice: choice.capitalize())
            choices = [(choice, named(choice)) for choice in field.choices]
            if field.default is None:
                choices.insert(0, ("", NO_CHOICE))
            return forms.ChoiceField(
                required=False, label=label, help_text=help_text, initial=initial, choices=choices
            )
        case Kind.FLAG:
            return forms.BooleanField(required=False, label=label, help_text=help_text, initial=initial)
    raise ValueError(f"a tool does not ask for a {field.kind} field")


class ToolForm(forms.Form):
    """A tool's fields as the contract has them. `source` is the picture as it will be sent (shrunk to
    fit); after validation `values`, `images` and `chosen_seed` are what the job sends."""

    mask = forms.CharField(required=False, widget=forms.HiddenInput)

    def __init__(
        self,
        *args: Any,
        tool: Tool,
        plan: SourcePlan,
        source: bytes | None = None,
        prompt: str = "",
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.tool, self.plan, self.source = tool, plan, source
        self.values: dict[str, Any] = {}
        self.images: dict[str, bytes] = {}
        self.chosen_seed = 0
        self.refusal = ""  # said for the whole form before it is read (the throttle)
        if not tool.mask:
            del self.fields["mask"]
        else:
            self.fields["mask"].label = field_label("mask")
        for field in tool.asks:
            initial = field.default
            if field.name == "prompt" and tool.group in PROMPT_FROM_SOURCE:
                initial = prompt
            self.fields[field.name] = _form_field(field, initial)
        if tool.reference:
            reference = tool.operation.field(tool.reference)
            self.fields[tool.reference] = forms.FileField(
                required=False,
                label=field_label(tool.reference) + ("" if reference.required else " (optional)"),
                help_text="A PNG, JPEG or WebP image.",
                widget=forms.ClearableFileInput(attrs={"accept": "image/png,image/jpeg,image/webp"}),
            )

    # --- what the page shows before submit ---

    @property
    def sides(self) -> list[forms.BoundField]:
        return [self[name] for name in SIDES if name in self.fields]

    @property
    def other_fields(self) -> list[forms.BoundField]:
        """Every visible field but the outpaint sides, which the page lays out around the preview."""
        return [self[name] for name in self.fields if name not in SIDES and name != "mask" and name != "seed"]

    @property
    def side_errors(self) -> list[str]:
        return [str(error) for field in self.sides for error in field.errors]

    def _shown_values(self) -> dict[str, Any]:
        """The values the page shows now: as sent when they were valid, else the initial ones."""
        shown: dict[str, Any] = {}
        cleaned = getattr(self, "cleaned_data", {})
        for field in self.tool.asks:
            value = cleaned.get(field.name) if field.name in cleaned else self[field.name].initial
            if value not in (None, ""):
                shown[field.name] = value
        return shown

    def output_size(self, values: dict[str, Any] | None = None) -> tuple[int, int] | None:
        """The size of the result, from the contract, for the values shown (None: not yet knowable)."""
        if self.plan.sent is None:
            return None
        values = {**self._shown_values(), **(values or {}), self.tool.source: stand_in(self.plan.sent)}
        try:
            return self.tool.operation.output_size(values)
        except (RuleViolation, KeyError, TypeError, ValueError):
            return None

    def output_sizes_by_choice(self) -> str:
        """JSON {"field": name, "sizes": {choice: "W × H"}} for a choice the result's size follows (the
        style guide's aspect ratio), so the page can update the size shown; "" when none does."""
        for field in self.tool.asks:
            if field.kind is not Kind.CHOICE:
                continue
            sizes = {choice: self.output_size({field.name: choice}) for choice in field.choices}
            if len(set(sizes.values())) > 1 and None not in sizes.values():
                texts = {choice: size_text(size) for choice, size in sizes.items() if size}
                return json.dumps({"field": field.name, "sizes": texts})
        return ""

    @property
    def price(self) -> Any:
        return self.tool.operation.price(self._shown_values())

    # --- validation ---

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if self.plan.sent is None or self.source is None:
            raise forms.ValidationError(self.plan.reason or "This image can't be used with this tool.")
        asked = {field.name: field for field in self.tool.asks}
        values: dict[str, Any] = {}
        for name, field in asked.items():
            value = cleaned.get(name)
            if isinstance(value, str):
                value = value.strip()
            # Left at the API's default, a value is not sent: the API applies it, and rules such as
            # "light strength only with a light" speak only of what the person chose.
            if value in (None, "") or value == field.default:
                continue
            values[name] = value
        self.chosen_seed = int(values.pop("seed", 0) or 0)
        images = {self.tool.source: self.source}
        self._clean_reference(cleaned, images)
        self._clean_mask(cleaned, images)
        if self.errors:
            return cleaned
        checked = {**values, **images, "output_format": OUTPUT_FORMAT}
        if self.chosen_seed:
            checked["seed"] = self.chosen_seed
        for violation in self.tool.operation.violations(checked):
            self._add_violation(violation)
        self.values, self.images = values, images
        return cleaned

    def _clean_reference(self, cleaned: dict[str, Any], images: dict[str, bytes]) -> None:
        name = self.tool.reference
        file = cleaned.get(name) if name else None
        if not name or not isinstance(file, UploadedFile):
            return
        try:
            images[name] = clean_upload(file, what=field_label(name).lower()).png
        except UploadRejected as exc:
            self.add_error(name, exc.message)

    def _clean_mask(self, cleaned: dict[str, Any], images: dict[str, bytes]) -> None:
        if not self.tool.mask or self.plan.sent is None:
            return
        painted = cleaned.get("mask") or ""
        if not painted:
            self.add_error("mask", MASK_MISSING.get(self.tool.slug, "Paint the area to change first."))
            return
        try:
            mask = clean_mask(painted, size=self.plan.size)
        except UploadRejected as exc:
            self.add_error("mask", exc.message)
            return
        # Painted over the picture as it is shown; sent at the size the picture is sent.
        images["mask"] = _resized(mask, self.plan.sent, "L") if self.plan.resized else mask

    def _add_violation(self, violation: RuleViolation) -> None:
        """The contract's sentence next to the field it names; a rule on the source image or on no one
        field (the request's size) for the whole form."""
        field = violation.field
        if field == "/".join(SIDES):
            self.add_error("left", "Grow at least one side: give it more than 0 pixels.")
        elif field in self.fields:
            if violation.rule == "required":
                message = f"Fill in {field_label(field).lower()}."
            else:
                message = f"{field_label(field)} {violation.rule}."
            self.add_error(field, message)
        elif field == self.tool.source:
            self.add_error(None, f"This image can't be sent: {violation.rule}.")
        else:
            self.add_error(None, f"{field_label(field)}: {violation.rule}.")
