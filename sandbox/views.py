"""The seven v1 operations. Each parses, validates with the shared contract, prices, renders, charges."""

import base64
import io
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.templatetags.static import static
from PIL import Image

from generations.stability.contract import ENGINES, EngineSpec, ErrorName, price_per_image
from generations.stability.types import (
    GenerationOptions,
    ImageToImageRequest,
    MaskingRequest,
    TextToImageRequest,
    UpscaleRequest,
)
from sandbox import parsing, render, services
from sandbox.api import Caller, operation
from sandbox.errors import ApiError

FILTERED_MESSAGE = "One or more prompts contains filtered words."
# The engines the v1 document published in September 2026 still describes (v2beta notes §10): the
# sandbox serves only these with SANDBOX_V1_ENGINES=current, as the platform does today.
CURRENT_V1_ENGINES = ("stable-diffusion-xl-1024-v1-0",)


def engines_served() -> dict[str, EngineSpec]:
    """Every engine the contract knows ("all"), or only today's v1 list ("current")."""
    if settings.SANDBOX_V1_ENGINES == "current":
        return {engine_id: ENGINES[engine_id] for engine_id in CURRENT_V1_ENGINES}
    return ENGINES


@dataclass(frozen=True)
class Artifact:
    image: Image.Image
    seed: int
    finish_reason: str


def _engine(engine_id: str, *, generates: bool) -> EngineSpec:
    spec = engines_served().get(engine_id)
    if spec is None or spec.generates != generates:
        raise ApiError(404, ErrorName.NOT_FOUND, f"The specified engine (ID {engine_id}) was not found.")
    return spec


def _words(texts: list[str]) -> set[str]:
    return {word for text in texts for word in re.findall(r"[\w'-]+", text.lower())}


def _moderate(prompts: tuple[tuple[str, float], ...]) -> bool:
    """Refuse banned words anywhere (negative prompts too); say whether the output must be blurred."""
    if _words([text for text, _ in prompts]) & {w.lower() for w in settings.SANDBOX_BANNED_WORDS}:
        raise ApiError(400, ErrorName.INVALID_PROMPTS, FILTERED_MESSAGE)
    positive = [text for text, weight in prompts if weight > 0]
    return bool(_words(positive) & {w.lower() for w in settings.SANDBOX_FLAGGED_WORDS})


def _seeds(seed: int, samples: int) -> list[int]:
    """Seed 0 asks for random seeds; seed s gives s, s+1, … so that each sample differs."""
    if not seed:
        return [secrets.randbelow(4_294_967_295) + 1 for _ in range(samples)]
    return [(seed + i - 1) % 4_294_967_295 + 1 for i in range(samples)]


def _answer(artifacts: list[Artifact], accept: str) -> HttpResponse:
    if accept == "image/png":
        (artifact,) = artifacts
        response = HttpResponse(render.png_bytes(artifact.image), content_type="image/png")
        response["Seed"] = str(artifact.seed)
        response["Finish-Reason"] = artifact.finish_reason
        return response
    return JsonResponse(
        {
            "artifacts": [
                {
                    "base64": base64.b64encode(render.png_bytes(a.image)).decode(),
                    "seed": a.seed,
                    "finishReason": a.finish_reason,
                }
                for a in artifacts
            ]
        }
    )


def _generate(
    caller: Caller, spec: EngineSpec, options: GenerationOptions, size: tuple[int, int], accept: str, finish
) -> HttpResponse:
    """Price, moderate, render each sample, charge what succeeded. `finish` turns a new picture into the
    operation's result (unchanged, blended with an init image, or painted into a mask)."""
    prompts = tuple((p.text, p.weight) for p in options.text_prompts)
    flagged = _moderate(prompts)
    price = price_per_image(spec.id, steps=options.steps, width=size[0], height=size[1])
    services.credits_check(caller.organization, price * options.samples)
    artifacts = []
    for seed in _seeds(options.seed, options.samples):
        scene = render.Scene(
            spec.id,
            prompts,
            seed,
            size[0],
            size[1],
            options.steps,
            options.cfg_scale,
            options.style_preset,
            options.sampler,
        )
        picture = finish(render.generate(scene))
        if flagged:
            artifacts.append(Artifact(render.blur(picture), seed, "CONTENT_FILTERED"))
        else:
            artifacts.append(Artifact(picture, seed, "SUCCESS"))
    charged = sum(1 for a in artifacts if a.finish_reason == "SUCCESS")
    services.credits_charge(caller.organization, price * charged)
    return _answer(artifacts, accept)


def _read[Parsed: (TextToImageRequest, ImageToImageRequest, MaskingRequest, UpscaleRequest)](
    request: HttpRequest, engine_id: str, parse: Callable[[HttpRequest], Parsed], *, generates: bool
) -> tuple[EngineSpec, str, Parsed]:
    """The engine, the answer format and the request, checked by the same rules as the client's."""
    spec = _engine(engine_id, generates=generates)
    accept = parsing.accept_of(request)
    parsed = parse(request)
    parsed.validate(engine_id, accept)
    return spec, accept, parsed


def _open(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


@operation("GET", foreign_org_status=401)
def engines_list(request: HttpRequest, caller: Caller) -> HttpResponse:
    engines = [
        {"id": spec.id, "name": spec.name, "description": spec.description, "type": "PICTURE"}
        for spec in engines_served().values()
    ]
    return JsonResponse(engines, safe=False)


@operation("GET", organization_header=False)
def user_account(request: HttpRequest, caller: Caller) -> HttpResponse:
    account = caller.key.account
    memberships = account.memberships.select_related("organization").order_by(
        "-is_default", "organization_id"
    )
    body = {
        "id": account.id,
        "email": account.email,
        "organizations": [
            {"id": m.organization.id, "name": m.organization.name, "role": m.role, "is_default": m.is_default}
            for m in memberships
        ],
    }
    # A picture served by this server, so that the sandbox works with no network.
    body["profile_picture"] = account.profile_picture or request.build_absolute_uri(
        static("img/sandbox-avatar.svg")
    )
    return JsonResponse(body)


@operation("GET", foreign_org_status=401)
def user_balance(request: HttpRequest, caller: Caller) -> HttpResponse:
    caller.organization.refresh_from_db(fields=["credits"])
    return JsonResponse({"credits": float(caller.organization.credits)})


@operation("POST")
def text_to_image(request: HttpRequest, caller: Caller, engine_id: str) -> HttpResponse:
    spec, accept, parsed = _read(request, engine_id, parsing.text_to_image, generates=True)
    return _generate(caller, spec, parsed, (parsed.width, parsed.height), accept, lambda picture: picture)


def _change(parsed: ImageToImageRequest) -> float:
    """How far the result moves from the init image (notes §7: start = 1 - strength; end trims it)."""
    if parsed.init_image_mode == "STEP_SCHEDULE":
        start = 0.65 if parsed.step_schedule_start is None else parsed.step_schedule_start
        return start * (1 - (parsed.step_schedule_end or 0.0))
    return 1 - parsed.image_strength


@operation("POST")
def image_to_image(request: HttpRequest, caller: Caller, engine_id: str) -> HttpResponse:
    spec, accept, parsed = _read(request, engine_id, parsing.image_to_image, generates=True)
    init = _open(parsed.init_image)
    change = _change(parsed)
    return _generate(
        caller, spec, parsed, init.size, accept, lambda picture: render.from_init(init, picture, change)
    )


def _replace_mask(parsed: MaskingRequest, init: Image.Image) -> Image.Image:
    """The mask as L, 255 where the picture is replaced."""
    if parsed.mask_source == "INIT_IMAGE_ALPHA":
        alpha = init.convert("RGBA").getchannel("A")
        return alpha.point(lambda value: 255 - value)
    assert parsed.mask_image is not None  # validated
    mask = _open(parsed.mask_image).convert("L")
    return mask if parsed.mask_source == "MASK_IMAGE_WHITE" else mask.point(lambda value: 255 - value)


@operation("POST")
def masking(request: HttpRequest, caller: Caller, engine_id: str) -> HttpResponse:
    spec, accept, parsed = _read(request, engine_id, parsing.masking, generates=True)
    init = _open(parsed.init_image)
    replace = _replace_mask(parsed, init)
    return _generate(
        caller, spec, parsed, init.size, accept, lambda picture: render.inpaint(init, picture, replace)
    )


@operation("POST")
def upscale(request: HttpRequest, caller: Caller, engine_id: str) -> HttpResponse:
    spec, accept, parsed = _read(request, engine_id, parsing.upscale, generates=False)
    size = parsed.output_size(engine_id)
    source = _open(parsed.image)
    prompts = tuple((p.text, p.weight) for p in parsed.text_prompts)
    flagged = _moderate(prompts) if prompts else False
    price = price_per_image(engine_id, width=source.width, height=source.height)
    services.credits_check(caller.organization, price)
    latent = spec.kind.value == "latent-upscaler"
    first = render.palette(prompts, engine_id)[0]
    tint = (int(first[0]), int(first[1]), int(first[2])) if latent and prompts else None
    picture = render.upscale(source, size, latent=latent, tint=tint)
    seed = parsed.seed or _seeds(0, 1)[0]
    if flagged:
        return _answer([Artifact(render.blur(picture), seed, "CONTENT_FILTERED")], accept)
    services.credits_charge(caller.organization, price)
    return _answer([Artifact(picture, seed, "SUCCESS")], accept)
