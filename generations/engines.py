"""Which engines and sizes the create form offers: the API's engine list (cached) and each engine's rule."""

import math

from django.conf import settings

from accounts.models import Team
from accounts.services import team_client
from accounts.services.stability import shared_read
from generations.labels import size_label
from generations.stability.client import StabilityClient
from generations.stability.contract import ENGINES, EngineKind, upscaled_size
from generations.stability.types import StabilityError

ESRGAN = "esrgan-v1-x2plus"
LATENT_UPSCALER = "stable-diffusion-x4-latent-upscaler"
ASPECTS = ((1, 1), (4, 3), (3, 2), (16, 9), (3, 4), (2, 3), (9, 16))


def engines_listed(client: StabilityClient, *, max_age: float | None = None) -> dict[str, str]:
    """The engines the API lists for the client's key, as {id: name}: one call per key and cache period,
    shared by every team and page on that key (and by /healthz)."""
    return shared_read(
        "engines",
        client,
        lambda c: {engine.id: engine.name for engine in c.list_engines()},
        seconds=settings.STABILITY_ENGINES_CACHE_SECONDS,
        max_age=max_age,
    )


def _listed_engines(team: Team) -> dict[str, str] | None:
    """The engines listed for the team's key; None when the API can't be asked (a failure is remembered
    briefly, so that pages do not wait on an unreachable API each time)."""
    client = team_client(team, interactive=True)
    if client is None:
        return None
    try:
        return engines_listed(client) or None
    except StabilityError:
        return None


def engine_choices(team: Team) -> list[tuple[str, str]]:
    """Generation engines the key can use, as (id, name); the known list when the API can't be asked."""
    known = [(spec.id, spec.name) for spec in ENGINES.values() if spec.generates]
    listed = _listed_engines(team)
    if listed is None:
        return known
    return [(engine_id, name) for engine_id, name in listed.items() if engine_id in dict(known)] or known


def upscaler_choices(team: Team) -> list[tuple[str, str]]:
    """Upscale engines the engine list offers; ESRGAN alone when the API can't be asked."""
    listed = _listed_engines(team)
    if listed is None:
        listed = {ESRGAN: ENGINES[ESRGAN].name}
    return [(spec.id, spec.name) for spec in ENGINES.values() if spec.upscales and spec.id in listed]


def nearest_size(engine_id: str, width: int, height: int) -> tuple[int, int]:
    """The accepted size closest to width x height: the same shape first, then the same area. An engine
    the contract does not know keeps the size it was given (the API applies its own rule)."""
    spec = ENGINES.get(engine_id)
    if spec is None or spec.size_rule is None:
        return width, height
    if width % 64 == 0 and height % 64 == 0 and spec.size_rule.allows(width, height):
        return width, height
    aspect, area = math.log(width / height), math.log(width * height)

    def distance(size: tuple[int, int]) -> float:
        return 4 * abs(math.log(size[0] / size[1]) - aspect) + abs(math.log(size[0] * size[1]) - area)

    return min(spec.size_rule.valid_sizes(), key=distance)


def size_choices(engine_id: str) -> list[tuple[str, str]]:
    """Aspect-ratio choices valid for the engine, as ("WxH", "9:7 landscape, 1152 × 896"), the default
    first."""
    spec = ENGINES.get(engine_id)
    if spec is None or spec.size_rule is None:
        return []
    rule = spec.size_rule
    if rule.sizes:
        return [(f"{w}x{h}", size_label((w, h))) for w, h in rule.sizes]
    area = spec.default_size[0] * spec.default_size[1]
    choices: dict[str, str] = {}
    for across, down in ASPECTS:
        width = round(math.sqrt(area * across / down) / 64) * 64
        height = round(width * down / across / 64) * 64
        if rule.allows(width, height):
            choices.setdefault(f"{width}x{height}", size_label((width, height)))
    for side in (768, 1024):
        if side * side > area and rule.allows(side, side):
            choices.setdefault(f"{side}x{side}", size_label((side, side)))
    return list(choices.items())


def default_size(engine_id: str) -> str:
    spec = ENGINES[engine_id]
    return f"{spec.default_size[0]}x{spec.default_size[1]}"


def upscale_factor(engine_id: str) -> int:
    """ESRGAN doubles; the latent upscaler is asked for four times the width (the API's default is 2x)."""
    spec = ENGINES.get(engine_id)
    return 4 if spec is not None and spec.kind is EngineKind.LATENT_UPSCALER else 2


def upscale_output(engine_id: str, width: int, height: int) -> tuple[int, int]:
    """The size an upscale would make, or RuleViolation saying why the API would refuse it."""
    target = width * 4 if upscale_factor(engine_id) == 4 else None
    return upscaled_size(width, height, target_width=target, target_height=None)
