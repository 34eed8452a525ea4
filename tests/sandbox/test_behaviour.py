"""What a person sees from the sandbox: deterministic, parameter-driven pictures, honest credits, limits."""

import base64
import io
import time
from decimal import Decimal

import numpy as np
import pytest
from django.core.management import call_command
from django.test import Client
from PIL import Image

from generations.stability.contract import STYLE_PRESETS, price_per_image
from sandbox.api import Faults
from sandbox.models import ApiKey, Organization
from tests.images import decode, encode, png

pytestmark = pytest.mark.django_db
SD16 = "stable-diffusion-v1-6"
BASE = {
    "text_prompts": [{"text": "a lighthouse on a cliff"}],
    "width": 512,
    "height": 512,
    "seed": 11,
    "steps": 30,
}


@pytest.fixture
def key(make_sandbox_key) -> str:
    return make_sandbox_key(credits=1000)


@pytest.fixture
def api(key) -> Client:
    return Client(HTTP_AUTHORIZATION=f"Bearer {key}")


def generate(api: Client, engine: str = SD16, **changes) -> list[dict]:
    response = api.post(
        f"/sandbox/v1/generation/{engine}/text-to-image", {**BASE, **changes}, content_type="application/json"
    )
    assert response.status_code == 200, response.content
    return response.json()["artifacts"]


def pixels(artifact: dict) -> np.ndarray:
    return np.asarray(decode(base64.b64decode(artifact["base64"])).convert("RGB"), dtype=np.int16)


def difference(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).mean())


def balance(api: Client) -> Decimal:
    return Decimal(str(api.get("/sandbox/v1/user/balance").json()["credits"]))


def form(api: Client, path: str, data: dict, files: dict[str, bytes]):
    uploads = {name: io.BytesIO(content) for name, content in files.items()}
    for name, upload in uploads.items():
        upload.name = f"{name}.png"
    return api.post(f"/sandbox/v1/generation/{SD16}/{path}", {**data, **uploads})


def test_the_same_request_gives_the_same_bytes(api):
    assert generate(api)[0]["base64"] == generate(api)[0]["base64"]


def test_seeds_and_prompts_change_the_picture_visibly(api):
    first = pixels(generate(api)[0])
    assert difference(first, pixels(generate(api, seed=12)[0])) > 10
    assert difference(first, pixels(generate(api, text_prompts=[{"text": "a red fox in snow"}])[0])) > 10


def test_samples_have_their_own_seeds_and_the_requested_size(api):
    artifacts = generate(api, samples=3, width=640, height=384, seed=0)
    assert len({a["seed"] for a in artifacts}) == 3
    assert {decode(base64.b64decode(a["base64"])).size for a in artifacts} == {(640, 384)}


@pytest.mark.parametrize("style", STYLE_PRESETS)
def test_every_style_preset_has_a_look_of_its_own(api, style):
    plain = pixels(generate(api, width=320, height=320)[0])
    styled = pixels(generate(api, width=320, height=320, style_preset=style)[0])
    assert difference(plain, styled) > 3


def test_cfg_scale_and_steps_have_a_visible_effect(api):
    plain = pixels(generate(api)[0])
    assert difference(plain, pixels(generate(api, cfg_scale=30)[0])) > 5
    assert difference(plain, pixels(generate(api, steps=50)[0])) > 1


def test_image_strength_keeps_the_init_image_in_proportion(api):
    init = png()
    original = np.asarray(decode(init).convert("RGB"), dtype=np.int16)
    results = {}
    for strength in (0.2, 0.9):
        response = form(
            api,
            "image-to-image",
            {"text_prompts[0][text]": "a storm", "image_strength": str(strength), "seed": "3"},
            {"init_image": init},
        )
        results[strength] = difference(original, pixels(response.json()["artifacts"][0]))
    assert results[0.9] < results[0.2] / 3


def test_a_step_schedule_starting_at_zero_returns_the_init_image(api):
    init = png()
    response = form(
        api,
        "image-to-image",
        {"text_prompts[0][text]": "a storm", "init_image_mode": "STEP_SCHEDULE", "step_schedule_start": "0"},
        {"init_image": init},
    )
    assert difference(np.asarray(decode(init), dtype=np.int16), pixels(response.json()["artifacts"][0])) < 1


def test_masking_changes_only_the_masked_region(api):
    init = png()
    mask = Image.new("L", (512, 512), 0)
    mask.paste(255, (0, 0, 256, 512))  # replace the left half
    response = form(
        api,
        "image-to-image/masking",
        {"text_prompts[0][text]": "a storm", "mask_source": "MASK_IMAGE_WHITE"},
        {"init_image": init, "mask_image": encode(mask)},
    )
    result = pixels(response.json()["artifacts"][0])
    original = np.asarray(decode(init).convert("RGB"), dtype=np.int16)
    assert np.array_equal(result[:, 256:], original[:, 256:])
    assert difference(result[:, :256], original[:, :256]) > 10


def test_alpha_masking_replaces_only_transparent_pixels(api):
    image = decode(png(mode="RGBA"))
    image.putalpha(Image.new("L", image.size, 255))
    image.paste((0, 0, 0, 0), (0, 0, 512, 128))  # the top strip is transparent
    response = form(
        api,
        "image-to-image/masking",
        {"text_prompts[0][text]": "sky", "mask_source": "INIT_IMAGE_ALPHA"},
        {"init_image": encode(image)},
    )
    result = pixels(response.json()["artifacts"][0])
    original = np.asarray(image.convert("RGB"), dtype=np.int16)
    assert np.array_equal(result[128:], original[128:])
    assert difference(result[:128], original[:128]) > 10


def test_upscale_really_returns_the_larger_image(api):
    response = api.post(
        "/sandbox/v1/generation/esrgan-v1-x2plus/image-to-image/upscale",
        {"image": io.BytesIO(png(448, 320))},
        HTTP_ACCEPT="image/png",
    )
    assert response.status_code == 200
    assert decode(response.content).size == (896, 640)


def test_a_banned_word_is_refused_and_charges_nothing(api):
    before = balance(api)
    response = api.post(
        f"/sandbox/v1/generation/{SD16}/text-to-image",
        {**BASE, "text_prompts": [{"text": "a cat"}, {"text": "Contraband!", "weight": -1}]},
        content_type="application/json",
    )
    assert response.status_code == 400 and response.json()["name"] == "invalid_prompts"
    assert balance(api) == before


def test_a_flagged_word_returns_a_blurred_image_that_is_not_charged(api):
    before = balance(api)
    (filtered,) = generate(api, text_prompts=[{"text": "a lurid poster"}])
    (plain,) = generate(api, text_prompts=[{"text": "a calm poster"}])
    assert filtered["finishReason"] == "CONTENT_FILTERED" and plain["finishReason"] == "SUCCESS"
    sharpest = [np.percentile(np.abs(np.diff(pixels(a), axis=1)), 99.9) for a in (filtered, plain)]
    assert sharpest[0] < sharpest[1] / 3  # blurred: no sharp edge left
    assert before - balance(api) == price_per_image(SD16, steps=30)


def test_the_rate_limit_locks_a_key_out_for_a_minute(api, key, settings):
    settings.SANDBOX_RATE_LIMIT = 3
    assert [api.get("/sandbox/v1/user/balance").status_code for _ in range(4)] == [200, 200, 200, 429]
    row = ApiKey.objects.get(key=key)
    assert 59 <= (row.locked_until - row.window_started_at).total_seconds() <= 61
    ApiKey.objects.filter(key=key).update(window_started_at=row.window_started_at.replace(year=2000))
    assert api.get("/sandbox/v1/user/balance").status_code == 429  # a new window, but still locked out


def test_latency_faults_slow_the_answer(api, key):
    ApiKey.objects.filter(key=key).update(latency_ms=300)
    started = time.monotonic()
    assert api.get("/sandbox/v1/user/balance").status_code == 200
    assert time.monotonic() - started >= 0.3


def test_global_faults_are_read_from_settings(api, settings):
    settings.SANDBOX_FAULTS = "throttle_rate=1"
    response = api.get("/sandbox/v1/engines/list")
    assert response.status_code == 429 and response.json()["name"] == "rate_limit_exceeded"
    with pytest.raises(ValueError, match="unknown fault 'lag'"):
        Faults.parse("lag=3")


def test_faults_never_hide_a_bad_key(settings):
    settings.SANDBOX_FAULTS = "error_rate=1"
    response = Client(HTTP_AUTHORIZATION="Bearer sk-bad").get("/sandbox/v1/engines/list")
    assert response.status_code == 401


def test_the_sandbox_key_command_prints_only_a_working_key(capsys):
    call_command("sandbox_key", "--credits", "25", "--email", "cli@example.com")
    key = capsys.readouterr().out.strip()
    assert key.startswith("sk-") and " " not in key
    assert Client(HTTP_AUTHORIZATION=f"Bearer {key}").get("/sandbox/v1/user/balance").json() == {
        "credits": 25.0
    }
    assert Organization.objects.get(memberships__account__email="cli@example.com").credits == 25


def test_standalone_the_api_sits_at_the_root_as_api_stability_ai_serves_it(api, settings):
    settings.ROOT_URLCONF = "sandbox.urls"  # what SANDBOX_STANDALONE=1 (make sandbox) selects
    engines = api.get("/v1/engines/list")
    assert engines.status_code == 200
    assert "stable-diffusion-v1-6" in {engine["id"] for engine in engines.json()}
