"""The create form. Field types are Django's; the rules are the client's (generations.stability), so the
form refuses exactly what the API would, and says so next to the field."""

import re
from typing import Any, cast

from django import forms

from generations.engines import default_size, size_choices
from generations.stability.contract import (
    CLIP_GUIDANCE_PRESETS,
    MAX_PROMPT_LENGTH,
    SAMPLERS,
    STYLE_PRESETS,
    Prompt,
    RuleViolation,
)
from generations.stability.types import TextToImageRequest

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
}


def _labelled(values: tuple[str, ...], none_label: str) -> list[tuple[str, str]]:
    return [("", none_label)] + [
        (value, value.replace("_", " ").replace("-", " ").title()) for value in values
    ]


class TextToImageForm(forms.Form):
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
    engine = forms.ChoiceField()
    style_preset = forms.ChoiceField(required=False, choices=_labelled(STYLE_PRESETS, "No style"))
    size = forms.ChoiceField(help_text="Only sizes the chosen engine accepts.")
    samples = forms.IntegerField(label="Number of images", initial=4)
    seed = forms.IntegerField(required=False, help_text="Leave blank for a random seed.")
    steps = forms.IntegerField(initial=30)
    cfg_scale = forms.FloatField(
        label="CFG scale", initial=7.0, help_text="How strictly to follow the prompt."
    )
    sampler = forms.ChoiceField(required=False, choices=_labelled(SAMPLERS, "Engine's choice"))
    clip_guidance_preset = forms.ChoiceField(
        label="CLIP guidance",
        initial="NONE",
        choices=[(value, value.replace("_", " ").title()) for value in CLIP_GUIDANCE_PRESETS],
    )

    def __init__(
        self, *args: Any, engines: list[tuple[str, str]], default_engine: str, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        cast(forms.ChoiceField, self.fields["engine"]).choices = engines
        ids = [engine_id for engine_id, _ in engines]
        initial_engine = default_engine if default_engine in ids else ids[0]
        self.fields["engine"].initial = initial_engine
        chosen = self.data.get("engine") if self.is_bound else self.initial.get("engine", initial_engine)
        if chosen not in ids:
            chosen = initial_engine
        sizes = size_choices(chosen)
        # Accept any WxH so the engine's own rule, not the choice list, says what is wrong with it.
        submitted = self.data.get("size", "") if self.is_bound else ""
        if submitted and submitted not in dict(sizes):
            sizes = [*sizes, (submitted, submitted)]
        cast(forms.ChoiceField, self.fields["size"]).choices = sizes
        self.fields["size"].initial = default_size(chosen)

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
        width, height = data.get("size") or (0, 0)
        # A field that did not parse has its message already; its initial value stands in for it here.
        self.request = TextToImageRequest(
            text_prompts=self.prompts(),
            width=width,
            height=height,
            samples=data.get("samples", self.fields["samples"].initial),
            seed=data.get("seed") or 0,
            steps=data.get("steps", self.fields["steps"].initial),
            cfg_scale=data.get("cfg_scale", self.fields["cfg_scale"].initial),
            sampler=data.get("sampler") or None,
            clip_guidance_preset=data.get("clip_guidance_preset") or "NONE",
            style_preset=data.get("style_preset") or None,
        )
        for violation in self.request.violations(data.get("engine", "")):
            field = self._field_of(violation)
            if field not in self.errors and (field != "engine" or "engine" in data):
                self.add_error(field, _sentence(violation))
        return data

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


def _sentence(violation: RuleViolation) -> str:
    rule = violation.rule
    return f"{rule[0].upper()}{rule[1:]}."
