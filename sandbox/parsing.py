"""Read a v1 request (JSON or multipart) into the typed request the client would have sent."""

import json
import re
from typing import Any

from django.http import HttpRequest

from generations.stability import contract
from generations.stability.contract import ErrorName, Prompt, RuleViolation
from generations.stability.types import (
    ImageToImageRequest,
    MaskingRequest,
    TextToImageRequest,
    UpscaleRequest,
)

PROMPT_FIELD = re.compile(r"^text_prompts\[(\d+)\]\[(text|weight)\]$")
INTEGER_FIELDS = {"width", "height", "samples", "seed", "steps"}
NUMBER_FIELDS = {"cfg_scale", "image_strength", "step_schedule_start", "step_schedule_end"}
TEXT_FIELDS = {"clip_guidance_preset", "sampler", "style_preset", "init_image_mode", "mask_source"}


def accept_of(request: HttpRequest) -> str:
    accept = request.headers.get("Accept", "")
    if "image/png" in accept and "application/json" not in accept:
        return "image/png"
    if not accept or "application/json" in accept or "*/*" in accept:
        return "application/json"
    raise RuleViolation("Accept", "must be application/json or image/png")


def _integer(name: str, value: Any) -> int:
    if isinstance(value, bool):
        raise RuleViolation(name, "must be an integer")
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"[-+]?\d{1,20}", value.strip()):
        return int(value)
    raise RuleViolation(name, "must be an integer")


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool):
        raise RuleViolation(name, "must be a number")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise RuleViolation(name, "must be a number") from None
    if number != number or number in (float("inf"), float("-inf")):
        raise RuleViolation(name, "must be a number")
    return number


def _text(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise RuleViolation(name, "must be a string")
    return value


def _options(source: dict[str, Any]) -> dict[str, Any]:
    """The typed optional fields present in `source`."""
    options: dict[str, Any] = {}
    for name, value in source.items():
        if name in INTEGER_FIELDS:
            options[name] = _integer(name, value)
        elif name in NUMBER_FIELDS:
            options[name] = _number(name, value)
        elif name in TEXT_FIELDS:
            options[name] = _text(name, value)
    return options


def _prompt(index: str, text: Any, weight: Any) -> Prompt:
    if not isinstance(text, str):
        raise RuleViolation(f"text_prompts[{index}].text", "is required and must be a string")
    return Prompt(text, 1.0 if weight is None else _number(f"text_prompts[{index}].weight", weight))


def text_to_image(request: HttpRequest) -> TextToImageRequest:
    try:
        body = json.loads(request.body or b"null")
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise RuleViolation("body", "must be a JSON object") from None
    if not isinstance(body, dict):
        raise RuleViolation("body", "must be a JSON object")
    prompts = body.get("text_prompts")
    if not isinstance(prompts, list) or not all(isinstance(p, dict) for p in prompts):
        raise RuleViolation("text_prompts", "is required: a list of {text, weight}")
    extras = body.get("extras")
    if extras is not None and not isinstance(extras, dict):
        raise RuleViolation("extras", "must be an object")
    options = _options(body)
    options.setdefault("clip_guidance_preset", "NONE")
    return TextToImageRequest(
        text_prompts=tuple(_prompt(str(i), p.get("text"), p.get("weight")) for i, p in enumerate(prompts)),
        extras=extras,
        **options,
    )


def _form_prompts(request: HttpRequest) -> tuple[Prompt, ...]:
    """`text_prompts[i][text]` and `[weight]` fields, ordered by index; a repeated index overrides."""
    parts: dict[int, dict[str, str]] = {}
    for name, value in request.POST.items():
        if match := PROMPT_FIELD.match(name):
            parts.setdefault(int(match[1]), {})[match[2]] = str(value)
    return tuple(_prompt(str(i), parts[i].get("text"), parts[i].get("weight")) for i in sorted(parts))


def _optional_file(request: HttpRequest, name: str) -> bytes | None:
    upload = request.FILES.get(name)
    if upload is None:
        return None
    if upload.size is None or upload.size > contract.MAX_UPLOAD_BYTES or upload.size == 0:
        raise RuleViolation(name, "has an invalid file size", ErrorName.INVALID_FILE_SIZE)
    return upload.read()


def _file(request: HttpRequest, name: str) -> bytes:
    data = _optional_file(request, name)
    if data is None:
        raise RuleViolation(name, "is required")
    return data


def _form_options(request: HttpRequest) -> dict[str, Any]:
    options = _options(dict(request.POST.items()))
    options.setdefault("clip_guidance_preset", "NONE")
    return options


def image_to_image(request: HttpRequest) -> ImageToImageRequest:
    options = _form_options(request)
    mode = options.get("init_image_mode", "IMAGE_STRENGTH")
    if mode == "STEP_SCHEDULE":
        options.pop("image_strength", None)
        options.setdefault("step_schedule_start", 0.65)
    else:
        options.pop("step_schedule_start", None)
        options.pop("step_schedule_end", None)
    return ImageToImageRequest(
        text_prompts=_form_prompts(request), init_image=_file(request, "init_image"), **options
    )


def masking(request: HttpRequest) -> MaskingRequest:
    options = _form_options(request)
    if "mask_source" not in options:
        raise RuleViolation("mask_source", "is required")
    for name in ("image_strength", "step_schedule_start", "step_schedule_end", "init_image_mode"):
        options.pop(name, None)
    return MaskingRequest(
        text_prompts=_form_prompts(request),
        init_image=_file(request, "init_image"),
        mask_image=_optional_file(request, "mask_image"),
        **options,
    )


def upscale(request: HttpRequest) -> UpscaleRequest:
    fields = dict(request.POST.items())
    return UpscaleRequest(
        image=_file(request, "image"),
        width=_integer("width", fields["width"]) if "width" in fields else None,
        height=_integer("height", fields["height"]) if "height" in fields else None,
        text_prompts=_form_prompts(request),
        seed=_integer("seed", fields["seed"]) if "seed" in fields else None,
        steps=_integer("steps", fields["steps"]) if "steps" in fields else None,
        cfg_scale=_number("cfg_scale", fields["cfg_scale"]) if "cfg_scale" in fields else None,
    )
