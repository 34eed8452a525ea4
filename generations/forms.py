"""The create form. Field types are Django's; the rules are the client's (generations.stability), so the
form refuses exactly what the API would, and says so next to the field. With an init image the same form
makes an image-to-image request, and with a mask a masking one."""

import base64
import io
import re
from dataclasses import dataclass, replace
from decimal import Decimal
from functools import cached_property
from typing import Any, cast
from uuid import UUID

from django import forms
from PIL import Image

from generations import labels
from generations.engines import default_size, nearest_size, size_choices, upscale_factor, upscale_output
from generations.imaging import fit_image, fit_to_engine, invert_mask, png_size
from generations.models import GalleryImage, GenerationJob, Upload, read_file
from generations.stability.contract import (
    ENGINES,
    MAX_PROMPT_LENGTH,
    UPSCALE_MAX_PIXELS,
    Prompt,
    RuleViolation,
)
from generations.stability.types import ImageToImageRequest, MaskingRequest, TextToImageRequest
from generations.stable_image import MODELS
from generations.uploads import EMPTY_MESSAGE, CleanImage, UploadRejected, clean_mask, clean_upload

NEGATIVE_WEIGHT = -1.0
WEIGHTED_LINE = re.compile(r"^(?P<text>.*?)\s*(?:\|\s*(?P<weight>[-+]?\d+(?:\.\d+)?))?\s*$")

# Where each rule's field lands in the form.
FIELD_OF_RULE = {
    "engine_id": "engine",
    "width": "size",
    "height": "size",
    "width/height": "size",
    "text_prompts": "prompt",
    "cfg_scale": "cfg_scale",
    "steps": "steps",
    "samples": "samples",
    "seed": "seed",
    "sampler": "sampler",
    "clip_guidance_preset": "clip_guidance_preset",
    "style_preset": "style_preset",
    "init_image": "init_image",
    "init_image_mode": "init_image_mode",
    "image_strength": "image_strength",
    "step_schedule_start": "step_schedule_start",
    "step_schedule_end": "step_schedule_end",
    "mask_source": "mask_source",
    "mask_image": "mask_source",
}
PAINTED_MASKS = ("MASK_IMAGE_WHITE", "MASK_IMAGE_BLACK")
# The fields in the order the create page shows them, so a refusal names the first one a person meets.
PAGE_ORDER = (
    "prompt",
    "negative_prompt",
    "engine",
    "style_preset",
    "size",
    "samples",
    "init_image",
    "mask_source",
    "image_strength",
    "step_schedule_start",
    "step_schedule_end",
    "weighted_prompts",
    "seed",
    "steps",
    "cfg_scale",
    "sampler",
    "clip_guidance_preset",
)
# The Advanced part of the form, which folds shut: how each field reads in its summary line when it is
# not at its initial value (which Reset puts back).
ADVANCED = {
    "weighted_prompts": "1 more prompt|{} more prompts",
    "seed": "Seed {}",
    "steps": "{} steps",
    "cfg_scale": "CFG scale {}",
    "sampler": "Sampler {}",
    "clip_guidance_preset": "CLIP guidance {}",
}
ACCEPTED_TYPES = "image/png,image/jpeg,image/webp"


@dataclass(frozen=True)
class InitImage:
    """The init image a form will send: from an upload (new or earlier) or from the gallery."""

    png: bytes
    width: int
    height: int
    has_alpha: bool
    upload: Upload | None = None
    parent: GalleryImage | None = None
    new_upload: CleanImage | None = None

    @property
    def size(self) -> tuple[int, int]:
        return self.width, self.height


@dataclass(frozen=True)
class InitPreview:
    """What the page shows of the chosen init image, without reading the file."""

    url: str
    width: int
    height: int
    has_alpha: bool
    field: str  # the hidden field that carries it: init_upload or init_from
    value: str
    output: tuple[int, int]  # the size the engine will be sent

    @property
    def resized(self) -> bool:
        return self.output != (self.width, self.height)


def engine_field_choices(engines: list[tuple[str, str]]) -> list[tuple[str, Any]]:
    """The engine select: the Stable Image models with their flat price per image, then the v1 engines the
    key can use (priced by size and steps, so the estimate beside Generate says what they cost)."""
    models = [(model.id, f"{model.name} ({_credits(model.price)} an image)") for model in MODELS.values()]
    v1 = [
        (engine_id, name if labels.engine_name(engine_id) == engine_id else labels.engine_name(engine_id))
        for engine_id, name in engines
    ]
    return [("Stable Image", models), ("Stable Diffusion (v1)", v1)]


def _credits(price: Decimal) -> str:
    return f"{price.normalize():f} credit{'' if price == 1 else 's'}"


def _init_of(source: Upload | GalleryImage) -> InitImage:
    """An earlier upload or a gallery image as the init image, read from storage."""
    if isinstance(source, Upload):
        return InitImage(
            read_file(source.image), source.width, source.height, source.has_alpha, upload=source
        )
    return InitImage(read_file(source.image), source.width, source.height, False, parent=source)


class CreateForm(forms.Form):
    """What the create form's two kinds (v1 engines, Stable Image models) share: the init image (a new
    file, an earlier upload or a gallery image), the folded Advanced part's summary, and the sentence
    beside Generate when it is refused."""

    # The fields in the order the page shows them, and the Advanced ones with their summary words.
    page_order: tuple[str, ...] = ()
    advanced: dict[str, str] = {}
    is_stable_image = False

    init_image = forms.FileField(
        label="Init image",
        required=False,
        widget=forms.FileInput(attrs={"accept": ACCEPTED_TYPES}),
        error_messages={"empty": EMPTY_MESSAGE},
        help_text="PNG, JPEG or WebP, up to 10 MB (kept at 2048 px at most). The result takes its size.",
    )
    # Ids of an earlier upload or a gallery image; checked (as the team's) when the init image is read.
    init_upload = forms.CharField(required=False, widget=forms.HiddenInput)
    init_from = forms.CharField(required=False, widget=forms.HiddenInput)

    init: InitImage | None
    resized_from: str = ""
    team: Any
    engine_ids: list[str]  # every engine or model the select offers

    @property
    def chosen_engine(self) -> str:
        """The engine or model the form is drawn for."""
        raise NotImplementedError

    def _mark_advanced(self) -> None:
        """Each Advanced field carries its summary words and initial value, for static/js/create.js."""
        for name, summary in self.advanced.items():
            if name not in self.fields:
                continue
            default = self.fields[name].initial
            self.fields[name].widget.attrs.update(
                {"data-summary": summary, "data-default": "" if default is None else str(default)}
            )

    @property
    def advanced_summary(self) -> list[str]:
        """Each Advanced value that is not its default, in a few words ("Seed 7", "2 more prompts"): what
        the next job will take from the folded part of the form. static/js/create.js says the same as the
        person edits, from the data-summary and data-default attributes."""
        parts = []
        for name, summary in self.advanced.items():
            if name not in self.fields:
                continue
            value = str(self[name].value() or "").strip()
            if _same_value(value, self.fields[name].widget.attrs["data-default"]):
                continue
            if name == "weighted_prompts":
                count = sum(1 for line in value.splitlines() if line.strip())
                one, many = summary.split("|")
                parts.append(one if count == 1 else many.replace("{}", str(count)))
                continue
            field = self.fields[name]
            if isinstance(field, forms.ChoiceField):
                value = str(dict(field.choices).get(value, value))  # type: ignore[arg-type]
            parts.append(summary.replace("{}", value))
        return parts

    @property
    def advanced_errors(self) -> bool:
        return self.is_bound and any(name in self.errors for name in self.advanced)

    @property
    def refusal(self) -> str:
        """Why Generate was refused, in a sentence for the alert beside the button: the first field to fix
        (in the order the page shows them) and how many more."""
        if not self.is_bound or not self.errors:
            return ""
        if self.non_field_errors():
            return " ".join(str(message) for message in self.non_field_errors())
        fields = [name for name in self.page_order if name in self.errors]
        fields += [name for name in self.errors if name not in fields]
        first = fields[0]
        label = self.fields[first].label or first.replace("_", " ").capitalize()
        more = len(fields) - 1
        rest = f" ({more} more field{'s' if more > 1 else ''} to fix.)" if more else ""
        return f"Not generated. {label}: {' '.join(str(m) for m in self.errors[first])}{rest}"

    def _hidden(self, name: str) -> str:
        value = self.data.get(name, "") if self.is_bound else self.initial.get(name, "")
        return str(value or "").strip()

    def _lookup_upload(self, value: str) -> Upload | None:
        if self.team is None or not _is_uuid(value):
            return None
        return Upload.objects.for_team(self.team).filter(pk=value).first()

    def _lookup_image(self, value: str) -> GalleryImage | None:
        if self.team is None or not _is_uuid(value):
            return None
        return GalleryImage.objects.for_team(self.team).filter(pk=value).first()

    def _init_source(self) -> Upload | GalleryImage | None:
        """The init image chosen earlier: an upload or a gallery image (None when there is none)."""
        if self.init is not None and self.init.new_upload is None:
            return self.init.upload or self.init.parent
        if value := self._hidden("init_upload"):
            return self._lookup_upload(value)
        if value := self._hidden("init_from"):
            return self._lookup_image(value)
        return None

    def clean_init_image(self) -> CleanImage | None:
        file = self.cleaned_data.get("init_image")
        if not file:
            return None
        try:
            return clean_upload(file)
        except UploadRejected as exc:
            raise forms.ValidationError(exc.message) from exc

    def _clean_init(self) -> InitImage | None:
        """The init image from a new file, an earlier upload or a gallery image (in that order)."""
        data = self.cleaned_data
        if "init_image" in self.errors:
            return None
        if new := data.get("init_image"):
            return InitImage(new.png, new.width, new.height, new.has_alpha, new_upload=new)
        if upload_id := data.get("init_upload"):
            upload = self._lookup_upload(str(upload_id))
            if upload is None:
                self.add_error("init_image", "That uploaded image is no longer available; choose it again.")
                return None
            return _init_of(upload)
        if image_id := data.get("init_from"):
            image = self._lookup_image(str(image_id))
            if image is None:
                self.add_error("init_image", "That gallery image is no longer available; choose another.")
                return None
            return _init_of(image)
        return None

    def keep_upload(self, upload: Upload) -> None:
        """The new init image is stored now: the job, and the page if shown again, refer to it."""
        assert self.init is not None
        self.init = replace(self.init, upload=upload, new_upload=None)
        self.__dict__.pop("init_preview", None)  # computed again from the stored upload

    @property
    def job_origin(self) -> dict[str, Any]:
        """Where the job's init image came from, for its lineage (after is_valid)."""
        if self.init is None:
            return {}
        return {
            "upload": self.init.upload,
            "parent": self.init.parent,
            "relation": GenerationJob.Relation.INIT if self.init.parent else "",
            "resized_from": self.resized_from,
        }


class GenerateForm(CreateForm):
    """A v1 engine's form: pixel sizes, steps, sampler, weighted prompts, an init image and a mask."""

    page_order = PAGE_ORDER
    advanced = ADVANCED

    prompt = forms.CharField(
        widget=forms.Textarea(
            attrs={"rows": 3, "placeholder": "A lighthouse on a cliff at dawn, oil painting"}
        ),
        max_length=MAX_PROMPT_LENGTH,
        error_messages={"required": "Describe the image you want."},
    )
    negative_prompt = forms.CharField(
        required=False,
        max_length=MAX_PROMPT_LENGTH,
        widget=forms.Textarea(attrs={"rows": 2, "placeholder": "blurry, low contrast"}),
        help_text="What the image should not show.",
    )
    weighted_prompts = forms.CharField(
        label="More prompts",
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "placeholder": "golden hour light | 0.6\nfog | -0.4"}),
        help_text="One per line, optionally with a weight after a bar (e.g. “fog | -0.4”); "
        "negative weights steer away.",
    )
    engine = forms.ChoiceField(label="Model")
    style_preset = forms.ChoiceField(required=False, choices=labels.style_choices())
    size = forms.ChoiceField(help_text="Only sizes the chosen engine accepts.")
    samples = forms.IntegerField(label="Number of images", initial=4)
    seed = forms.IntegerField(required=False, help_text="Leave blank for a random seed.")
    steps = forms.IntegerField(initial=30)
    cfg_scale = forms.FloatField(
        label="CFG scale", initial=7.0, help_text="How strictly to follow the prompt."
    )
    sampler = forms.ChoiceField(required=False, choices=labels.sampler_choices())
    clip_guidance_preset = forms.ChoiceField(
        label="CLIP guidance", initial="NONE", choices=labels.clip_guidance_choices()
    )
    init_image_mode = forms.ChoiceField(
        label="Mode",
        required=False,
        initial="IMAGE_STRENGTH",
        choices=[("IMAGE_STRENGTH", "Image strength"), ("STEP_SCHEDULE", "Step schedule")],
        widget=forms.RadioSelect,
    )
    image_strength = forms.FloatField(
        label="Image strength",
        required=False,
        initial=0.35,
        widget=forms.NumberInput(attrs={"type": "range", "min": "0", "max": "1", "step": "0.05"}),
        help_text="Near 1 the result stays close to the image; near 0 it departs from it.",
    )
    step_schedule_start = forms.FloatField(
        label="Schedule start",
        required=False,
        initial=0.65,
        widget=forms.NumberInput(attrs={"min": "0", "max": "1", "step": "0.05"}),
        help_text="How much of the image to redraw (0–1).",
    )
    step_schedule_end = forms.FloatField(
        label="Schedule end",
        required=False,
        widget=forms.NumberInput(attrs={"min": "0", "max": "1", "step": "0.05"}),
        help_text="Skip this last fraction of steps (0–1).",
    )
    mask_source = forms.ChoiceField(
        label="Mask",
        required=False,
        choices=[
            ("", "No mask: the whole image may change"),
            ("MASK_IMAGE_WHITE", "Painted mask, sent white on black"),
            ("MASK_IMAGE_BLACK", "Painted mask, sent black on white"),
            ("INIT_IMAGE_ALPHA", "The image's transparent pixels"),
        ],
        help_text="Paint over the parts to change; everything else stays as it is.",
    )
    mask = forms.CharField(required=False, widget=forms.HiddenInput)

    def __init__(
        self,
        *args: Any,
        engines: list[tuple[str, str]],
        default_engine: str,
        team: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.team = team
        self.init: InitImage | None = None
        cast(forms.ChoiceField, self.fields["engine"]).choices = engine_field_choices(engines)
        self.engine_ids = ids = [engine_id for engine_id, _ in engines]
        self.fields["engine"].initial = default_engine if default_engine in ids else ids[0]
        chosen = self.chosen_engine
        sizes = size_choices(chosen)
        # Accept any WxH (sent, or remixed from an earlier image) so the engine's own rule, not the choice
        # list, says what is wrong with it.
        submitted = self.data.get("size", "") if self.is_bound else str(self.initial.get("size", ""))
        if submitted and submitted not in dict(sizes):
            sizes = [*sizes, (submitted, submitted)]
        cast(forms.ChoiceField, self.fields["size"]).choices = sizes
        self.fields["size"].initial = default_size(chosen)
        self._mark_advanced()

    @property
    def mask_needs_paint(self) -> bool:
        """A painted mask is asked for but the form was filled without one (Remix, when the mask could not
        be brought back): the page says so at the mask, before Generate."""
        return not self.is_bound and self._hidden("mask_source") in PAINTED_MASKS and not self._hidden("mask")

    @property
    def chosen_engine(self) -> str:
        ids = self.engine_ids
        chosen = self.data.get("engine") if self.is_bound else self.initial.get("engine")
        return chosen if chosen in ids else str(self.fields["engine"].initial)

    @cached_property
    def init_preview(self) -> InitPreview | None:
        """The init image chosen earlier (an upload or a gallery image), as the page shows it."""
        source = self._init_source()
        if source is None:
            return None
        return InitPreview(
            url=source.image_url,
            width=source.width,
            height=source.height,
            has_alpha=isinstance(source, Upload) and source.has_alpha,
            field="init_upload" if isinstance(source, Upload) else "init_from",
            value=str(source.pk),
            output=nearest_size(self.chosen_engine, source.width, source.height),
        )

    def _clean_mask(self, init: InitImage | None) -> bytes | None:
        """The mask to send, 255 where the picture changes (inverted for MASK_IMAGE_BLACK), at init size."""
        source = self.cleaned_data.get("mask_source") or ""
        if source and init is None:
            if "init_image" not in self.errors:
                self.add_error("init_image", "Choose an init image first: a mask applies to an image.")
            return None
        if source == "INIT_IMAGE_ALPHA":
            if not init or not init.has_alpha:
                self.add_error(
                    "mask_source",
                    "This image has no transparent pixels. Paint a mask, or upload a PNG or WebP "
                    "whose transparent parts are the ones to change.",
                )
            return None
        if source not in PAINTED_MASKS or init is None:
            return None
        try:
            mask = clean_mask(self.cleaned_data.get("mask") or "", size=init.size)
        except UploadRejected as exc:
            self.add_error("mask_source", exc.message)
            return None
        if source == "MASK_IMAGE_BLACK":
            mask = invert_mask(mask)
        return mask

    def clean_size(self) -> tuple[int, int]:
        value = self.cleaned_data["size"]
        match = re.fullmatch(r"(\d{2,5})x(\d{2,5})", value)
        if not match:
            raise forms.ValidationError("Choose a size from the list.")
        return int(match[1]), int(match[2])

    def clean_weighted_prompts(self) -> list[Prompt]:
        prompts = []
        for number, line in enumerate(self.cleaned_data["weighted_prompts"].splitlines(), start=1):
            if not line.strip():
                continue
            match = WEIGHTED_LINE.match(line.strip())
            if not match or not match["text"]:
                raise forms.ValidationError(f"Line {number}: write the prompt, then optionally “| weight”.")
            prompts.append(Prompt(match["text"], float(match["weight"]) if match["weight"] else 1.0))
        return prompts

    def prompts(self) -> tuple[Prompt, ...]:
        data = self.cleaned_data
        prompts = [Prompt(data.get("prompt", ""))]
        if data.get("negative_prompt"):
            prompts.append(Prompt(data["negative_prompt"], NEGATIVE_WEIGHT))
        return (*prompts, *data.get("weighted_prompts", []))

    def clean(self) -> dict[str, Any]:
        """The client's rules, on every field that parsed, so that every problem shows at once."""
        super().clean()
        data = self.cleaned_data
        engine_id = data.get("engine") or self.chosen_engine
        # A field that did not parse has its message already; its initial value stands in for it here.
        options: dict[str, Any] = {
            "text_prompts": self.prompts(),
            "samples": data.get("samples", self.fields["samples"].initial),
            "seed": data.get("seed") or 0,
            "steps": data.get("steps", self.fields["steps"].initial),
            "cfg_scale": data.get("cfg_scale", self.fields["cfg_scale"].initial),
            "sampler": data.get("sampler") or None,
            "clip_guidance_preset": data.get("clip_guidance_preset") or "NONE",
            "style_preset": data.get("style_preset") or None,
        }
        self.init = init = self._clean_init()
        mask = self._clean_mask(init)
        self.resized_from = ""
        self.request: TextToImageRequest | ImageToImageRequest | MaskingRequest
        if init is None:
            width, height = data.get("size") or (0, 0)
            self.request = TextToImageRequest(**options, width=width, height=height)
        else:
            png, self.resized_from = fit_to_engine(init.png, engine_id)
            if mask is not None and self.resized_from:
                mask = fit_image(mask, nearest_size(engine_id, *init.size))
            if data.get("mask_source"):
                self.request = MaskingRequest(
                    **options, init_image=png, mask_source=data["mask_source"], mask_image=mask
                )
            else:
                self.request = self._image_to_image(options, png)
        for violation in self.request.violations(data.get("engine", "")):
            field = self._field_of(violation)
            if field not in self.errors and (field != "engine" or "engine" in data):
                self.add_error(field, _sentence(violation))
        return data

    def _image_to_image(self, options: dict[str, Any], png: bytes) -> ImageToImageRequest:
        data = self.cleaned_data
        mode = data.get("init_image_mode") or "IMAGE_STRENGTH"
        if mode == "STEP_SCHEDULE":
            start = data.get("step_schedule_start")
            return ImageToImageRequest(
                **options,
                init_image=png,
                init_image_mode=mode,
                step_schedule_start=self.fields["step_schedule_start"].initial if start is None else start,
                step_schedule_end=data.get("step_schedule_end"),
            )
        strength = data.get("image_strength")
        if strength is None:
            strength = self.fields["image_strength"].initial
        return ImageToImageRequest(**options, init_image=png, init_image_mode=mode, image_strength=strength)

    def _field_of(self, violation: RuleViolation) -> str:
        if violation.field.startswith("text_prompts["):
            index = int(violation.field[len("text_prompts[") :].split("]")[0])
            has_negative = bool(self.cleaned_data.get("negative_prompt"))
            if index == 0:
                return "prompt"
            if index == 1 and has_negative:
                return "negative_prompt"
            return "weighted_prompts"
        return FIELD_OF_RULE.get(violation.field, "prompt")


def _same_value(value: str, default: str) -> bool:
    """Whether a field's value is its default: as numbers when both are ("7.0" is 7), else as text."""
    try:
        return float(value) == float(default)
    except ValueError:
        return value == default


def _is_uuid(value: str) -> bool:
    try:
        UUID(value)
    except ValueError:
        return False
    return True


def _sentence(violation: RuleViolation) -> str:
    rule = violation.rule
    return f"{rule[0].upper()}{rule[1:]}."


@dataclass(frozen=True)
class UpscaleOption:
    engine_id: str
    label: str
    output: tuple[int, int] | None
    reason: str  # why the API would refuse it, when output is None


UPSCALE_LABELS = {"esrgan": "Real-ESRGAN ×2", "latent-upscaler": "Latent upscaler ×4, guided by a prompt"}


def upscale_options(image: GalleryImage, engines: list[tuple[str, str]]) -> list[UpscaleOption]:
    """Each offered upscaler with the size it would make, or why it cannot: known before anything is sent."""
    options = []
    for engine_id, name in engines:
        factor = upscale_factor(engine_id)
        spec = ENGINES.get(engine_id)
        label = UPSCALE_LABELS.get(spec.kind.value, name) if spec else f"{name} ×{factor}"
        try:
            output = upscale_output(engine_id, image.width, image.height)
        except RuleViolation as violation:
            reason = (
                f"×{factor} would make {image.width * factor}×{image.height * factor}, over the API's limit "
                f"of {UPSCALE_MAX_PIXELS:,} pixels."
                if violation.name == "invalid_pixel_count"
                else f"The API would refuse it: {violation.field} {violation.rule}."
            )
            options.append(UpscaleOption(engine_id, label, None, reason))
        else:
            options.append(UpscaleOption(engine_id, label, output, ""))
    return options


class UpscaleForm(forms.Form):
    engine = forms.ChoiceField(label="Upscaler", widget=forms.RadioSelect)
    prompt = forms.CharField(
        required=False,
        max_length=MAX_PROMPT_LENGTH,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Guides the latent upscaler; ESRGAN does not use it.",
    )

    def __init__(
        self, *args: Any, image: GalleryImage, engines: list[tuple[str, str]], **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.options = upscale_options(image, engines)
        possible = [(option.engine_id, option.label) for option in self.options if option.output]
        cast(forms.ChoiceField, self.fields["engine"]).choices = possible
        self.fields["engine"].initial = possible[0][0] if possible else None
        self.fields["prompt"].initial = image.job.prompt

    def clean_engine(self) -> str:
        engine_id = self.cleaned_data["engine"]
        option = next(option for option in self.options if option.engine_id == engine_id)
        if option.output is None:
            raise forms.ValidationError(option.reason)
        return engine_id

    @property
    def takes_prompt(self) -> bool:
        return any(option.output and upscale_factor(option.engine_id) == 4 for option in self.options)

    @property
    def refusals(self) -> list[UpscaleOption]:
        return [option for option in self.options if option.output is None]


REUSES = ("remix", "prompt", "seed", "init")


def initial_from(image: GalleryImage, use: str, engine_ids: list[str]) -> dict[str, Any]:
    """The create form's values taken from an earlier image: Remix (every setting, a new seed), its
    prompts, its seed, or the image itself as init image. An image a Stable Image model made brings the
    form back on that model, since a seed or a prompt reads differently on another."""
    job = image.job
    model = job.engine_id if job.operation and job.engine_id in MODELS and job.engine_id in engine_ids else ""
    on_model = {"engine": model} if model else {}
    if use == "seed":
        return {"seed": image.seed, **on_model}
    if use == "init":
        return {"init_from": image.pk}
    prompts = list(job.prompts)
    positive = next((p for p in prompts if p.weight > 0), Prompt(job.prompt))
    negative = next((p for p in prompts if p.weight == NEGATIVE_WEIGHT), None)
    others = [p for p in prompts if p is not positive and p is not negative]
    initial: dict[str, Any] = {
        "prompt": positive.text,
        "negative_prompt": negative.text if negative else "",
        "weighted_prompts": "\n".join(f"{p.text} | {p.weight:g}" for p in others),
        **on_model,
    }
    if use != "remix" or job.kind == GenerationJob.Kind.UPSCALE:
        return initial
    if job.operation:
        if not model:  # a tool's result: its prompt, on the form as it is
            return initial
        # The options as the job sent them; the model's form takes those it has fields for.
        options = {name: value for name, value in job.options.items() if name not in initial}
        initial.update(options, samples=job.samples)
        if job.kind == GenerationJob.Kind.IMAGE_TO_IMAGE:
            initial.update(_init_origin(job))
        return initial
    initial.update(
        samples=job.samples,
        steps=job.steps,
        cfg_scale=job.cfg_scale,
        sampler=job.sampler,
        clip_guidance_preset=job.clip_guidance_preset,
        style_preset=job.style_preset,
    )
    if job.engine_id in engine_ids:
        initial["engine"] = job.engine_id
    if job.kind == GenerationJob.Kind.TEXT_TO_IMAGE:
        initial["size"] = job.size
        return initial
    initial.update(_init_origin(job))
    if job.kind == GenerationJob.Kind.MASKING:
        origin = _origin(job)
        shown = origin.parent if "init_from" in initial else job.upload if "init_upload" in initial else None
        initial.update(_mask_initial(job, (shown.width, shown.height) if shown is not None else None))
    if job.kind == GenerationJob.Kind.IMAGE_TO_IMAGE:
        initial["init_image_mode"] = job.init_image_mode
        for name in ("image_strength", "step_schedule_start", "step_schedule_end"):
            if getattr(job, name) is not None:
                initial[name] = getattr(job, name)
    return initial


def _origin(job: GenerationJob) -> GenerationJob:
    """A re-run started from the same init image as the job it repeats: look through to that job."""
    origin = job
    while origin.relation == GenerationJob.Relation.RERUN and origin.parent is not None:
        origin = origin.parent.job
    return origin


def _init_origin(job: GenerationJob) -> dict[str, Any]:
    """The init image a job started from, as the form's hidden field: a gallery image or an upload."""
    origin = _origin(job)
    if origin.parent_id and origin.relation in (
        GenerationJob.Relation.INIT,
        GenerationJob.Relation.VARIATION,
    ):
        return {"init_from": origin.parent_id}
    if job.upload_id:
        return {"init_upload": job.upload_id}
    return {}


def _mask_initial(job: GenerationJob, init_size: tuple[int, int] | None) -> dict[str, Any]:
    """The mask source again, and a painted mask as the editor paints it (255 = change) over the init
    image the form shows (`init_size`). When the init image was resized for the engine, the mask that was
    sent is laid back over it at its own size. Without a mask the form asks for one to be painted again."""
    initial: dict[str, Any] = {"mask_source": job.mask_source}
    if job.mask_source not in PAINTED_MASKS or not job.mask_image or init_size is None:
        return initial
    try:
        mask = read_file(job.mask_image)
        if job.mask_source == "MASK_IMAGE_BLACK":
            mask = invert_mask(mask)
        if png_size(mask) != init_size:
            mask = unfit_mask(mask, init_size)
    except (OSError, ValueError):
        return initial  # the mask file is gone or unreadable: the form asks for a new one
    initial["mask"] = "data:image/png;base64," + base64.b64encode(mask).decode()
    return initial


def unfit_mask(mask: bytes, size: tuple[int, int]) -> bytes:
    """A mask made for an init image that `fit_image` scaled and centre-cropped to the engine's size, laid
    back over the image at its own `size`: scaled back onto the part the crop kept, the cropped-off edges
    unpainted (they were not sent, and fitting the image again crops them again)."""
    with Image.open(io.BytesIO(mask)) as picture:
        painted = picture.convert("L")
    out_width, out_height = painted.size
    width, height = size
    # ImageOps.fit's crop: the largest centred box with the output's shape.
    if width * out_height > height * out_width:
        crop = (height * out_width / out_height, float(height))
    else:
        crop = (float(width), width * out_height / out_width)
    crop_size = (max(1, round(crop[0])), max(1, round(crop[1])))
    restored = Image.new("L", size, 0)
    restored.paste(
        painted.resize(crop_size, Image.Resampling.BILINEAR),
        (round((width - crop[0]) / 2), round((height - crop[1]) / 2)),
    )
    buffer = io.BytesIO()
    restored.save(buffer, "PNG")
    return buffer.getvalue()
