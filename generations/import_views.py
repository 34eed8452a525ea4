"""Drop a PNG on the create form: its parameters (Studio's JSON, or A1111's text) fill the form, and the
image itself becomes the init image only when the person asks."""

from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.files.uploadedfile import UploadedFile
from django.http import HttpResponse
from django.shortcuts import render
from django.urls import path
from django.views.decorators.http import require_POST
from django_htmx.http import reswap, retarget

from accounts.permissions import require
from accounts.policy import Action
from accounts.types import AuthedRequest
from generations import services
from generations.engines import nearest_size
from generations.forms import GenerateForm
from generations.metadata import MetadataUnreadable, ParsedParameters, parameters_from_png, stability_sampler
from generations.stability.contract import (
    CFG_SCALE_RANGE,
    CLIP_GUIDANCE_PRESETS,
    ENGINES,
    SEED_RANGE,
    STEPS_RANGE,
    STYLE_PRESETS,
    RuleViolation,
    check_size,
)
from generations.uploads import CleanImage, UploadRejected, clean_upload
from generations.views import _form, _recent_jobs
from studio.throttling import TOO_MANY, throttle

MAX_IMPORT_BYTES = 50 * 1024 * 1024  # only the chunk list is walked, so a big A1111 upscale is fine
CHOOSE_A_PNG = "Choose a PNG made by Studio or A1111."
KEPT_FIELDS = ("engine", "init_upload", "init_from")  # what the form had that a PNG does not replace


def _read(file: UploadedFile | None) -> bytes:
    if file is None:
        raise MetadataUnreadable(CHOOSE_A_PNG)
    if (file.size or 0) > MAX_IMPORT_BYTES:
        raise MetadataUnreadable(f"This file is over {MAX_IMPORT_BYTES // 2**20} MB. {CHOOSE_A_PNG}")
    data = file.read()
    if not data:
        raise MetadataUnreadable(f"The file is empty. {CHOOSE_A_PNG}")
    return data


def _clamped(value: Any, bounds: tuple[Any, Any], label: str, notes: list[str]) -> Any:
    low, high = bounds
    if low <= value <= high:
        return value
    kept = min(max(value, low), high)
    notes.append(f"{label} {value:g} is outside the API's {low:g}–{high:g}: the form has {kept:g}.")
    return kept


def form_initial(
    parsed: ParsedParameters, *, engine_ids: list[str], current_engine: str
) -> tuple[dict[str, Any], list[str]]:
    """The create form's values from a PNG's parameters, and a sentence for each one it could not take as
    it was (an engine or sampler the API lacks, a size or value outside its rules)."""
    notes: list[str] = []
    initial: dict[str, Any] = {
        "prompt": parsed.prompt,
        "negative_prompt": parsed.negative_prompt,
        "weighted_prompts": "\n".join(f"{p.text} | {p.weight:g}" for p in parsed.extra_prompts),
    }
    engine_id = current_engine
    if parsed.model in engine_ids:
        engine_id = initial["engine"] = parsed.model
    elif parsed.model:
        notes.append(f"The model “{parsed.model}” is not an engine here: the form keeps {engine_id}.")
    if parsed.steps is not None:
        initial["steps"] = _clamped(parsed.steps, STEPS_RANGE, "Steps", notes)
    if parsed.cfg_scale is not None:
        initial["cfg_scale"] = _clamped(parsed.cfg_scale, CFG_SCALE_RANGE, "CFG scale", notes)
    if parsed.seed is not None:
        if SEED_RANGE[0] <= parsed.seed <= SEED_RANGE[1]:
            initial["seed"] = parsed.seed
        else:
            notes.append(f"Seed {parsed.seed} is outside the API's range: the form asks for a random one.")
    if parsed.samples is not None:
        initial["samples"] = parsed.samples
    if parsed.sampler is not None:
        sampler = stability_sampler(parsed.sampler)
        initial["sampler"] = sampler or ""
        if sampler is None:
            notes.append(f"The API has no “{parsed.sampler}” sampler: the engine will choose one.")
    if parsed.style_preset in STYLE_PRESETS:
        initial["style_preset"] = parsed.style_preset
    if parsed.clip_guidance_preset in CLIP_GUIDANCE_PRESETS:
        initial["clip_guidance_preset"] = parsed.clip_guidance_preset
    if parsed.width and parsed.height:
        initial["size"] = _size(engine_id, parsed.width, parsed.height, notes)
    for name in ("init_image_mode", "image_strength", "step_schedule_start", "step_schedule_end"):
        if getattr(parsed, name) not in (None, ""):
            initial[name] = getattr(parsed, name)
    return initial, notes


def _size(engine_id: str, width: int, height: int, notes: list[str]) -> str:
    try:
        check_size(ENGINES.get(engine_id), width, height)
    except RuleViolation:
        near_width, near_height = nearest_size(engine_id, width, height)
        notes.append(
            f"{engine_id} does not make {width}×{height}: the form has {near_width}×{near_height}, "
            "the nearest size it accepts."
        )
        return f"{near_width}x{near_height}"
    return f"{width}x{height}"


def _posted(request: AuthedRequest) -> dict[str, Any]:
    """The form's values as posted, to show again unchanged when the PNG is refused."""
    names = GenerateForm.base_fields.keys() - {"init_image"}
    return {name: request.POST[name] for name in names if name in request.POST}


def _import_throttled(request: AuthedRequest, message: str) -> HttpResponse:
    context = {"import_error": message, "import_use_image": False}
    response = render(request, "generations/create.html#import-field", context, status=TOO_MANY)
    return reswap(retarget(response, "#import-field"), "outerHTML")


@login_required
@require_POST
@throttle("upload", refuse=_import_throttled)
def create_from_png(request: AuthedRequest) -> HttpResponse:
    """The create form filled from a dropped PNG's parameters; or, when they cannot be read, the same form
    with a sentence at the PNG field saying why (with htmx only that field is swapped: nothing changes)."""
    require(request, request.team, Action.GENERATE)
    use_image = request.POST.get("import_use_image") == "on"
    try:
        data = _read(request.FILES.get("import_png"))
        parsed = parameters_from_png(data)
        init: CleanImage | None = clean_upload(data) if use_image else None
        # Kept now, inside the try: a team over its upload quota is told so at the field.
        upload = services.upload_store(team=request.team, user=request.user, image=init) if init else None
    except (MetadataUnreadable, UploadRejected) as exc:
        context = {"import_error": exc.message, "import_use_image": use_image}
        if request.htmx:
            response = render(request, "generations/create.html#import-field", context)
            return reswap(retarget(response, "#import-field"), "outerHTML")
        form = _form(request, initial=_posted(request))
        return render(
            request, "generations/create.html", {**context, "form": form, "jobs": _recent_jobs(request)}
        )
    kept = {name: request.POST[name] for name in KEPT_FIELDS if request.POST.get(name)}
    before = _form(request, initial=kept)
    initial, notes = form_initial(parsed, engine_ids=before.engine_ids, current_engine=before.chosen_engine)
    initial = {**kept, **initial}
    if upload is not None:
        initial.update(init_upload=upload.pk, init_from="")
    context = {
        "form": _form(request, initial=initial),
        "import_done": f"Filled from the PNG's {parsed.source} parameters"
        + (", with the image as init image." if upload else "."),
        "import_notes": notes,
    }
    if request.htmx:
        return render(request, "generations/create.html#create-form", context)
    return render(request, "generations/create.html", {**context, "jobs": _recent_jobs(request)})


urlpatterns = [
    path("fill-from-png/", create_from_png, name="fill-from-png"),
]
