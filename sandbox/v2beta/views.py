"""The Stable Image operations and the results endpoint. Each operation draws its result from a checked,
paid-for call (sandbox.v2beta.api does the rest); the pictures are procedural previews."""

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from PIL import Image

from generations.stability.v2beta import contract
from sandbox import render
from sandbox.v2beta import effects, parsing, results
from sandbox.v2beta.api import Call, answering_errors, caller, image_response, stable_image

# --- generate --------------------------------------------------------------------------------------------


@stable_image(contract.ULTRA)
def generate_ultra(call: Call) -> Image.Image:
    new = call.picture(call.operation.output_size(call.values), model="ultra")
    if call.values["image"] is None:
        return new
    return effects.from_init(call.image("image"), new, call.values["strength"])


@stable_image(contract.CORE)
def generate_core(call: Call) -> Image.Image:
    return call.picture(call.operation.output_size(call.values), model="core")


@stable_image(contract.SD3)
def generate_sd3(call: Call) -> Image.Image:
    model = contract.sd3_model(call.values["model"])
    cfg_scale = call.values["cfg_scale"] or contract.SD3_CFG_DEFAULTS[model]
    new = call.picture(call.operation.output_size(call.values), model=model, cfg_scale=cfg_scale * 3.5)
    if call.values["mode"] != "image-to-image":
        return new
    return effects.from_init(call.image("image"), new, call.values["strength"])


# --- upscale ---------------------------------------------------------------------------------------------


@stable_image(contract.UPSCALE_FAST)
def upscale_fast(call: Call) -> Image.Image:
    return effects.upscale(call.image("image"), call.operation.output_size(call.values))


@stable_image(contract.UPSCALE_CONSERVATIVE)
def upscale_conservative(call: Call) -> Image.Image:
    return effects.upscale(call.image("image"), call.operation.output_size(call.values))


@stable_image(contract.UPSCALE_CREATIVE)
def upscale_creative(call: Call) -> Image.Image:
    red, green, blue = render.palette(((call.values["prompt"], 1.0),), call.operation.id)[0]
    tint = (int(red), int(green), int(blue))
    return effects.upscale(call.image("image"), call.operation.output_size(call.values), tint=tint)


# --- edit ------------------------------------------------------------------------------------------------


@stable_image(contract.ERASE)
def erase(call: Call) -> Image.Image:
    return effects.erase(call.image("image"), call.values["mask"], call.values["grow_mask"])


@stable_image(contract.INPAINT)
def inpaint(call: Call) -> Image.Image:
    image = call.image("image")
    return effects.inpaint(image, call.values["mask"], call.values["grow_mask"], call.picture(image.size))


@stable_image(contract.OUTPAINT)
def outpaint(call: Call) -> Image.Image:
    values = call.values
    new = call.picture(call.operation.output_size(values))
    return effects.outpaint(
        call.image("image"),
        values["left"],
        values["right"],
        values["up"],
        values["down"],
        values["creativity"],
        new,
    )


@stable_image(contract.SEARCH_AND_REPLACE)
def search_and_replace(call: Call) -> Image.Image:
    image = call.image("image")
    return effects.search_and_replace(
        image, call.values["search_prompt"], call.values["grow_mask"], call.picture(image.size)
    )


@stable_image(contract.SEARCH_AND_RECOLOR)
def search_and_recolor(call: Call) -> Image.Image:
    hue = effects.prompt_hue(call.values["prompt"], call.operation.id)
    return effects.recolor(call.image("image"), call.values["select_prompt"], call.values["grow_mask"], hue)


@stable_image(contract.REMOVE_BACKGROUND)
def remove_background(call: Call) -> Image.Image:
    return effects.remove_background(call.image("image"))


@stable_image(contract.REPLACE_BACKGROUND_AND_RELIGHT)
def replace_background_and_relight(call: Call) -> Image.Image:
    values = call.values
    subject = call.image("subject_image")
    if values["keep_original_background"]:
        background = None
    elif values["background_reference"] is not None:
        background = call.image("background_reference")
    else:
        background = call.picture(subject.size)
    return effects.relight(
        subject,
        background,
        preserve_original_subject=values["preserve_original_subject"],
        original_background_depth=values["original_background_depth"],
        light_direction=values["light_source_direction"],
        light_reference=call.image("light_reference") if values["light_reference"] is not None else None,
        light_strength=values["light_source_strength"],
    )


# --- control ---------------------------------------------------------------------------------------------


def _follow_layout(sketch: bool) -> Callable[[Call], Image.Image]:
    def draw(call: Call) -> Image.Image:
        control = call.image("image")
        new = call.picture(control.size)
        return effects.follow_layout(control, new, call.values["control_strength"], sketch=sketch)

    return draw


control_sketch = stable_image(contract.CONTROL_SKETCH)(_follow_layout(sketch=True))
control_structure = stable_image(contract.CONTROL_STRUCTURE)(_follow_layout(sketch=False))


@stable_image(contract.CONTROL_STYLE)
def control_style(call: Call) -> Image.Image:
    new = call.picture(call.operation.output_size(call.values))
    return effects.take_palette(new, call.image("image"), call.values["fidelity"])


@stable_image(contract.CONTROL_STYLE_TRANSFER)
def control_style_transfer(call: Call) -> Image.Image:
    return effects.style_transfer(
        call.image("init_image"),
        call.image("style_image"),
        call.picture(call.operation.output_size(call.values)),
        style_strength=call.values["style_strength"],
        composition_fidelity=call.values["composition_fidelity"],
        change_strength=call.values["change_strength"],
    )


# --- results ---------------------------------------------------------------------------------------------

FORMATS = {media_type: name for name, media_type in contract.MEDIA_TYPES.items()}


@answering_errors("GET")
def result(request: HttpRequest, request_id: str, generation_id: str) -> HttpResponse:
    """202 while in progress, then the image in the asked encoding; 404 for another key's or expired."""
    encoding = parsing.accept_of(request)
    parsing.client_headers_check(request)
    contract.check_generation_id(generation_id)
    key, _ = caller(request)
    stored = results.result_fetch(key=key, generation_id=generation_id)
    if not stored.is_ready(timezone.now()):
        return JsonResponse({"id": stored.id, "status": "in-progress"}, status=202)
    return image_response(
        bytes(stored.image), FORMATS[stored.media_type], stored.seed, stored.finish_reason, encoding
    )


VIEWS: dict[str, Callable[..., HttpResponse]] = {
    "generate/ultra": generate_ultra,
    "generate/core": generate_core,
    "generate/sd3": generate_sd3,
    "upscale/fast": upscale_fast,
    "upscale/conservative": upscale_conservative,
    "upscale/creative": upscale_creative,
    "edit/erase": erase,
    "edit/inpaint": inpaint,
    "edit/outpaint": outpaint,
    "edit/search-and-replace": search_and_replace,
    "edit/search-and-recolor": search_and_recolor,
    "edit/remove-background": remove_background,
    "edit/replace-background-and-relight": replace_background_and_relight,
    "control/sketch": control_sketch,
    "control/structure": control_structure,
    "control/style": control_style,
    "control/style-transfer": control_style_transfer,
}
assert set(VIEWS) == set(contract.OPERATIONS), "every operation is served"
