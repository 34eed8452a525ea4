"""Property: for any engine and parameters, the client refuses exactly what the sandbox refuses, by name."""

import functools
import json

import pytest
from django.test import Client
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from generations.stability.contract import CLIP_GUIDANCE_PRESETS, ENGINES, SAMPLERS, STYLE_PRESETS, Prompt
from generations.stability.types import TextToImageRequest

pytestmark = pytest.mark.django_db

# Engines the contract lacks are the API's call (see test_client); upscalers are refused by both as 404.
ENGINE_IDS = list(ENGINES)
SIDES = st.one_of(
    st.sampled_from(
        [128, 320, 384, 448, 512, 576, 640, 768, 832, 896, 1024, 1152, 1216, 1344, 1536, 1600, 500, 64]
    ),
    st.integers(0, 1700),
)
# Each example breaks at most one field (or none), so accepted and refused requests both occur often.
VALID_OR_NOT = {
    "weight": (st.floats(-2, 2, allow_nan=False), st.floats(-1e6, 1e6, allow_nan=False)),
    "cfg_scale": (st.floats(0, 35, allow_nan=False), st.floats(-1e3, 1e3, allow_nan=False)),
    "steps": (st.integers(10, 50), st.integers(-5, 200)),
    "samples": (st.integers(1, 2), st.integers(-1, 12)),
    "seed": (st.integers(0, 4_294_967_295), st.integers(-(2**33), 2**33)),
    "sampler": (st.sampled_from([*SAMPLERS, None]), st.sampled_from(["K_BOGUS", "ddim", ""])),
    "clip_guidance_preset": (st.sampled_from(CLIP_GUIDANCE_PRESETS), st.sampled_from(["FASTEST", "none"])),
    "style_preset": (st.sampled_from([*STYLE_PRESETS, None]), st.sampled_from(["watercolour", "Anime"])),
    "accept": (st.just("application/json"), st.just("image/png")),
}


@functools.cache
def small_valid_sizes(engine_id: str) -> list[tuple[int, int]]:
    rule = ENGINES[engine_id].size_rule
    return [size for size in rule.valid_sizes() if size[0] * size[1] <= 1024 * 1024] if rule else [(512, 512)]


@pytest.fixture
def sandbox(make_sandbox_key, settings) -> Client:
    settings.SANDBOX_RATE_LIMIT = 100_000
    return Client(HTTP_AUTHORIZATION=f"Bearer {make_sandbox_key(credits=1_000_000)}")


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_the_client_refuses_exactly_what_the_sandbox_refuses(sandbox, data):
    engine_id = data.draw(st.sampled_from(ENGINE_IDS), label="engine")
    broken = data.draw(st.sampled_from([None, "size", *VALID_OR_NOT]), label="broken field")
    values = {name: data.draw(pair[name == broken], label=name) for name, pair in VALID_OR_NOT.items()}
    if broken == "size":
        width, height = data.draw(SIDES), data.draw(SIDES)
    else:
        width, height = data.draw(st.sampled_from(small_valid_sizes(engine_id)), label="size")
    accept = values.pop("accept")
    weight = values.pop("weight")
    request = TextToImageRequest(
        text_prompts=(Prompt("a lighthouse"), Prompt("fog", weight)), width=width, height=height, **values
    )
    violations = request.violations(engine_id, accept)
    response = sandbox.post(
        f"/sandbox/v1/generation/{engine_id}/text-to-image",
        json.dumps(request.to_json()),
        content_type="application/json",
        HTTP_ACCEPT=accept,
    )
    event(f"sandbox answered {response.status_code}")
    if response.status_code == 200:
        assert violations == [], f"the sandbox accepted what the client refuses: {violations}"
    else:
        assert violations, f"the client would send what the sandbox refuses: {response.content!r}"
        assert response.json()["name"] == violations[0].name, (response.json(), violations)
