"""The create form for a Stable Image model (generations.stable_image.MODELS), generated from the contract:
each field of the model's operation a person fills, with the contract's default, limits and choices, plus
Studio's number of images (one request each) and the init image for the models that take one. Validation
is the contract's own `violations()`, each sentence put next to the field it names, so the form refuses
exactly what the API would. `create_form` picks this form or the v1 one by the chosen engine."""

from decimal import Decimal
from functools import cached_property
from typing import Any, cast

from django import forms

from generations.forms import CreateForm, GenerateForm, InitPreview, engine_field_choices
from generations.labels import TIMES, field_label, style_label
from generations.models import GenerationJob, Upload
from generations.stability.contract import SAMPLES_RANGE
from generations.stability.v2beta.fields import Field, Kind, RuleViolation
from generations.stable_image import MODELS, OUTPUT_FORMAT, Model
from generations.tool_forms import stand_in

# The fields of a model's operation a person fills, in the order the page shows them; a model shows those
# its operation has. The rest are Studio's (output format), the model's own (`Model.fixed`), or follow the
# init image (SD 3.5's mode).
ASKED = ("prompt", "negative_prompt", "aspect_ratio", "style_preset", "seed", "cfg_scale", "strength")
PAGE_ORDER: tuple[str, ...] = ("prompt", "negative_prompt", "engine", "style_preset", "aspect_ratio")
PAGE_ORDER += ("samples", "init_image", "strength", "seed", "cfg_scale")
ADVANCED = {"seed": "Seed {}", "cfg_scale": "CFG scale {}"}
# The create form's own words where they differ from the tools' (generations.labels.FIELD_LABELS).
LABELS = {"negative_prompt": "Negative prompt", "cfg_scale": "CFG scale", "strength": "Strength"}
HELP = {
    "negative_prompt": "What the image should not show.",
    "seed": "Leave blank for a random seed.",
    "cfg_scale": "How strictly to follow the prompt.",
    "strength": "With an init image: 0 keeps it as it is, 1 replaces it entirely.",
}
PLACEHOLDERS = {
    "prompt": "A lighthouse on a cliff at dawn, oil painting",
    "negative_prompt": "blurry, low contrast",
}
# Where a contract field's refusal is shown, when the form's field has another name.
FIELD_OF = {"image": "init_image"}
# The contract's rules joining fields, as a person would be told (the init image is Studio's `image`).
ONLY_WITH_IMAGE = "applies only with an init image: choose one, or leave it blank."
RULES = {
    "may only be given with image": ONLY_WITH_IMAGE,
    "may only be given in image-to-image mode": ONLY_WITH_IMAGE,
    "required when image is given": "is needed with an init image: give one between {low} and {high}.",
    "required in image-to-image mode": "is needed with an init image: give one between {low} and {high}.",
}


def is_model(engine_id: str | None) -> bool:
    return engine_id in MODELS


def label(name: str) -> str:
    return LABELS.get(name) or field_label(name)


def aspect_label(model: Model, ratio: str) -> str:
    width, height = model.operation.output_size({"aspect_ratio": ratio})
    return f"{ratio} ({width} {TIMES} {height})"


def _number_attrs(field: Field, step: str) -> dict[str, str]:
    attrs = {"step": step}
    if field.low is not None:
        attrs["min"] = f"{field.low:g}"
    if field.high is not None:
        attrs["max"] = f"{field.high:g}"
    return attrs


def _form_field(model: Model, field: Field) -> forms.Field:
    """The form field for a contract field: its kind, limits and choices, and the model's default."""
    common: dict[str, Any] = {
        "required": False,
        "label": label(field.name),
        "help_text": HELP.get(field.name, ""),
    }
    match field.kind:
        case Kind.TEXT:
            rows = 3 if field.name == "prompt" else 2
            attrs: dict[str, Any] = {"rows": rows}
            if field.high:
                attrs["maxlength"] = int(field.high)
            if field.name in PLACEHOLDERS:
                attrs["placeholder"] = PLACEHOLDERS[field.name]
            return forms.CharField(**common, strip=True, widget=forms.Textarea(attrs=attrs))
        case Kind.NUMBER:
            default = model.cfg_default if field.name == "cfg_scale" else field.default
            step = "0.05" if field.high == 1 else "0.1"
            widget = forms.NumberInput(attrs=_number_attrs(field, step))
            return forms.FloatField(**common, initial=default, widget=widget)
        case Kind.INTEGER:
            # 0 asks for a random seed: shown blank, as "random".
            initial = None if field.name == "seed" else field.default
            return forms.IntegerField(
                **common, initial=initial, widget=forms.NumberInput(attrs=_number_attrs(field, "1"))
            )
        case Kind.CHOICE:
            if field.name == "aspect_ratio":
                choices = [(ratio, aspect_label(model, ratio)) for ratio in field.choices]
            else:
                choices = [(value, style_label(value)) for value in field.choices]
            if field.default is None:
                choices.insert(0, ("", style_label(None) if field.name == "style_preset" else "—"))
            return forms.ChoiceField(**common, initial=field.default, choices=choices)
    raise ValueError(f"the create form does not ask for a {field.kind} field")


class StableImageForm(CreateForm):
    """A Stable Image model's fields as the contract has them. After validation `job_arguments` are what
    services.stable_image_job_create takes."""

    is_stable_image = True
    page_order = PAGE_ORDER
    advanced = ADVANCED

    engine = forms.ChoiceField(label="Model")
    samples = forms.IntegerField(
        label="Number of images",
        initial=1,
        min_value=SAMPLES_RANGE[0],
        max_value=SAMPLES_RANGE[1],
        help_text="Each image is one request, charged on its own.",
    )

    def __init__(
        self, *args: Any, model: Model, engines: list[tuple[str, str]], team: Any = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.model, self.team = model, team
        self.init = None
        self.values: dict[str, Any] = {}
        self.images: dict[str, bytes] = {}
        self.chosen_seed = 0
        engine = cast(forms.ChoiceField, self.fields["engine"])
        engine.choices = engine_field_choices(engines)
        engine.initial = model.id
        self.engine_ids = [*MODELS, *(engine_id for engine_id, _ in engines)]
        for name in ASKED:
            if model.takes(name):
                self.fields[name] = _form_field(model, model.operation.field(name))
        if model.takes_image:
            init_image = self.fields["init_image"]
            init_image.help_text = "PNG, JPEG or WebP, up to 10 MB. The result takes its shape (about 1 MP)."
        else:
            for name in ("init_image", "init_upload", "init_from"):
                del self.fields[name]
        self._mark_advanced()

    @property
    def chosen_engine(self) -> str:
        return self.model.id

    @property
    def price(self) -> Decimal:
        return self.model.price

    @property
    def mask_needs_paint(self) -> bool:
        return False

    @property
    def shows_strength(self) -> bool:
        """Strength belongs to an init image: shown with one, or when it was given without one (to say so)."""
        if "strength" not in self.fields:
            return False
        given = self["strength"].value() not in (None, "")
        return self.init_preview is not None or given or "strength" in self.errors

    @cached_property
    def init_preview(self) -> InitPreview | None:
        """The init image chosen earlier, as the page shows it, with the size the result will have."""
        source = self._init_source() if self.model.takes_image else None
        if source is None:
            return None
        output = self.model.operation.output_size({"image": stand_in((source.width, source.height))})
        return InitPreview(
            url=source.image_url,
            width=source.width,
            height=source.height,
            has_alpha=isinstance(source, Upload) and source.has_alpha,
            field="init_upload" if isinstance(source, Upload) else "init_from",
            value=str(source.pk),
            output=output,
        )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        values: dict[str, Any] = {}
        for name in ASKED:
            value = cleaned.get(name)
            if name in self.fields and value not in (None, ""):
                values[name] = value
        self.chosen_seed = int(values.pop("seed", 0) or 0)  # 0: a random seed for each image
        values.update(self.model.fixed)
        images: dict[str, bytes] = {}
        if self.model.takes_image:
            self.init = self._clean_init()
            if self.init is not None:
                images["image"] = self.init.png
                # With an image the result takes its shape: SD 3.5 refuses an aspect ratio, Ultra ignores it.
                values.pop("aspect_ratio", None)
                if self.model.takes("mode"):
                    values["mode"] = "image-to-image"
        if "init_image" in self.errors:  # the image's own message stands; rules joining it would mislead
            return cleaned
        checked = {**values, **images, "output_format": OUTPUT_FORMAT}
        if self.chosen_seed:
            checked["seed"] = self.chosen_seed
        for violation in self.model.operation.violations(checked):
            self.add_violation(violation)
        self.values, self.images = values, images
        return cleaned

    def add_violation(self, violation: RuleViolation) -> None:
        """The contract's rule in a sentence next to the field it names; a rule on no field of the form
        (the request's size) for the whole form."""
        name = FIELD_OF.get(violation.field, violation.field)
        if name not in self.fields:
            self.add_error(None, f"{label(violation.field)}: {violation.rule}.")
            return
        if name in self.errors:
            return
        if violation.rule == "required":
            message = (
                "Describe the image you want." if name == "prompt" else f"Fill in {label(name).lower()}."
            )
        elif violation.rule in RULES:
            field = self.model.operation.field(violation.field)
            rule = RULES[violation.rule].format(low=f"{field.low or 0:g}", high=f"{field.high or 0:g}")
            message = f"{label(name)} {rule}"
        else:
            message = f"{label(name)} {violation.rule}."
        self.add_error(name, message)

    @property
    def job_arguments(self) -> dict[str, Any]:
        """What services.stable_image_job_create takes for this form's job (after is_valid)."""
        origin = self.job_origin
        origin.pop("resized_from", None)
        kind = GenerationJob.Kind.IMAGE_TO_IMAGE if self.images else GenerationJob.Kind.TEXT_TO_IMAGE
        return {
            "operation_id": self.model.operation.id,
            "engine_id": self.model.id,
            "kind": kind,
            "values": self.values,
            "images": self.images,
            "samples": self.cleaned_data["samples"],
            "seed": self.chosen_seed,
            **origin,
        }


def create_form(
    data: Any = None,
    files: Any = None,
    *,
    engines: list[tuple[str, str]],
    default_engine: str,
    team: Any = None,
    **kwargs: Any,
) -> CreateForm:
    """The create form for the engine sent (or, drawn anew, the initial one, else the default): a Stable
    Image model's, or the v1 engines' form."""
    source = data if data is not None else kwargs.get("initial") or {}
    engine_id = str(source.get("engine") or default_engine)
    if engine_id in MODELS:
        return StableImageForm(data, files, model=MODELS[engine_id], engines=engines, team=team, **kwargs)
    return GenerateForm(data, files, engines=engines, default_engine=default_engine, team=team, **kwargs)
