"""The Stability client against the live sandbox, over real HTTP: every operation and every error class."""

import httpx
import pytest

from generations.stability.client import StabilityClient
from generations.stability.contract import Prompt, RuleViolation, price_per_image
from generations.stability.types import (
    ImageToImageRequest,
    MaskingRequest,
    PermanentError,
    TextToImageRequest,
    TransientError,
    UpscaleRequest,
)
from sandbox.models import ApiKey
from tests.images import decode, png

SD16 = "stable-diffusion-v1-6"
SDXL = "stable-diffusion-xl-1024-v1-0"
PROMPTS = (Prompt("a lighthouse on a cliff"), Prompt("fog", -0.5))


@pytest.fixture
def client(sandbox_url, sandbox_key) -> StabilityClient:
    return StabilityClient(api_key=sandbox_key, host=sandbox_url)


def test_list_engines_names_every_engine_with_its_real_id(client):
    engines = {engine.id: engine for engine in client.list_engines()}
    assert set(engines) == {
        "stable-diffusion-v1-6",
        "stable-diffusion-xl-1024-v1-0",
        "stable-diffusion-xl-1024-v0-9",
        "stable-diffusion-512-v2-1",
        "stable-diffusion-768-v2-1",
        "esrgan-v1-x2plus",
        "stable-diffusion-x4-latent-upscaler",
    }
    assert engines[SDXL].name == "Stable Diffusion XL v1.0"
    assert engines[SDXL].description == "Stability-AI Stable Diffusion XL v1.0"
    assert {engine.type for engine in engines.values()} == {"PICTURE"}


def test_account_shows_the_keys_account_and_default_organization(sandbox_url, make_sandbox_key):
    client = StabilityClient(api_key=make_sandbox_key(credits=3, email="lee@studio.test"), host=sandbox_url)
    account = client.account()
    assert account.email == "lee@studio.test"
    assert account.id.startswith("user-")
    picture = httpx.get(account.profile_picture)  # served locally: the sandbox needs no network
    assert picture.status_code == 200 and picture.headers["Content-Type"].startswith("image/")
    (organization,) = account.organizations
    assert organization.is_default and organization.id.startswith("org-") and organization.role == "OWNER"
    assert client.balance() == 3


def test_text_to_image_returns_every_sample_and_charges_the_documented_price(client):
    before = client.balance()
    artifacts = client.text_to_image(
        SD16, TextToImageRequest(text_prompts=PROMPTS, width=576, height=448, samples=3, seed=41, steps=20)
    )
    assert [a.seed for a in artifacts] == [41, 42, 43]
    assert {decode(a.png).size for a in artifacts} == {(576, 448)}
    assert len({a.png for a in artifacts}) == 3
    assert all(a.finish_reason == "SUCCESS" for a in artifacts)
    price = price_per_image(SD16, steps=20, width=576, height=448)
    assert client.balance() == pytest.approx(before - float(price) * 3, abs=1e-6)


def test_sdxl_costs_0_9_credits_an_image_up_to_30_steps_and_in_proportion_above(client):
    before = client.balance()
    client.text_to_image(SDXL, TextToImageRequest(text_prompts=PROMPTS, width=1216, height=832, samples=2))
    assert client.balance() == pytest.approx(before - 1.8, abs=1e-9)
    before = client.balance()
    client.text_to_image(SDXL, TextToImageRequest(text_prompts=PROMPTS, width=1024, height=1024, steps=45))
    assert client.balance() == pytest.approx(before - 1.35, abs=1e-9)  # 0.9 x 45/30


def test_the_single_png_form_carries_seed_and_finish_reason_in_headers(client):
    (artifact,) = client.text_to_image(
        SD16, TextToImageRequest(text_prompts=PROMPTS, seed=7, steps=10), accept="image/png"
    )
    assert artifact.seed == 7 and artifact.finish_reason == "SUCCESS"
    assert decode(artifact.png).format == "PNG"


@pytest.mark.parametrize(
    "options",
    [
        {"init_image_mode": "IMAGE_STRENGTH", "image_strength": 0.6},
        {"init_image_mode": "STEP_SCHEDULE", "step_schedule_start": 0.5, "step_schedule_end": 0.1},
    ],
)
def test_image_to_image_in_both_modes_keeps_the_init_size(client, options):
    artifacts = client.image_to_image(
        SD16,
        ImageToImageRequest(text_prompts=PROMPTS, init_image=png(640, 448), samples=2, steps=10, **options),
    )
    assert [decode(a.png).size for a in artifacts] == [(640, 448), (640, 448)]


def test_masking_with_a_painted_mask_and_with_alpha(client):
    white = client.masking(
        SD16,
        MaskingRequest(text_prompts=PROMPTS, init_image=png(), mask_image=png(mode="L"), steps=10),
    )
    alpha = client.masking(
        SD16,
        MaskingRequest(
            text_prompts=PROMPTS, init_image=png(mode="RGBA"), mask_source="INIT_IMAGE_ALPHA", steps=10
        ),
    )
    assert decode(white[0].png).size == decode(alpha[0].png).size == (512, 512)


def test_upscale_doubles_by_default_or_follows_a_given_side(client):
    before = client.balance()
    (esrgan,) = client.upscale("esrgan-v1-x2plus", UpscaleRequest(image=png(512, 384)))
    (latent,) = client.upscale(
        "stable-diffusion-x4-latent-upscaler",
        UpscaleRequest(image=png(512, 512), width=1536, text_prompts=(Prompt("crisp detail"),), seed=3),
    )
    assert decode(esrgan.png).size == (1024, 768)
    assert decode(latent.png).size == (1536, 1536)
    assert client.balance() == pytest.approx(before - 0.2 - 8, abs=1e-9)


def test_a_refused_prompt_is_a_permanent_400_with_the_apis_name_and_message(client):
    before = client.balance()
    with pytest.raises(PermanentError) as error:
        client.text_to_image(SD16, TextToImageRequest(text_prompts=(Prompt("contraband"),)))
    assert (error.value.status, error.value.name, error.value.retryable) == (400, "invalid_prompts", False)
    assert "filtered words" in error.value.message
    assert client.balance() == before


def test_a_wrong_key_is_a_permanent_401(sandbox_url, sandbox_key):
    with pytest.raises(PermanentError) as error:
        StabilityClient(api_key="sk-nope", host=sandbox_url).balance()
    assert (error.value.status, error.value.name) == (401, "unauthorized")


def test_a_request_the_balance_cannot_pay_is_refused_and_charges_nothing(sandbox_url, make_sandbox_key):
    client = StabilityClient(api_key=make_sandbox_key(credits=1.5, email="low@studio.test"), host=sandbox_url)
    with pytest.raises(PermanentError) as error:  # two SDXL images: 1.8 credits
        client.text_to_image(
            SDXL, TextToImageRequest(text_prompts=PROMPTS, width=1024, height=1024, samples=2)
        )
    assert (error.value.status, error.value.name) == (402, "payment_required")
    assert client.balance() == 1.5
    client.text_to_image(SDXL, TextToImageRequest(text_prompts=PROMPTS, width=1024, height=1024, samples=1))
    assert client.balance() == pytest.approx(0.6)


def test_an_organization_the_key_has_no_part_in_is_a_permanent_403(sandbox_url, sandbox_key):
    client = StabilityClient(api_key=sandbox_key, host=sandbox_url, organization="org-elsewhere")
    with pytest.raises(PermanentError) as error:
        client.text_to_image(SD16, TextToImageRequest(text_prompts=PROMPTS))
    assert (error.value.status, error.value.name) == (403, "permission_denied")


def test_an_engine_the_api_does_not_have_is_a_permanent_404(client):
    with pytest.raises(PermanentError) as error:
        client.text_to_image("stable-diffusion-v9", TextToImageRequest(text_prompts=PROMPTS))
    assert (error.value.status, error.value.name) == (404, "not_found")
    assert "stable-diffusion-v9" in error.value.message


def test_the_rate_limit_is_a_transient_429(client, settings):
    settings.SANDBOX_RATE_LIMIT = 2
    client.balance()
    client.balance()
    with pytest.raises(TransientError) as error:
        client.balance()
    assert (error.value.status, error.value.name, error.value.retryable) == (429, "rate_limit_exceeded", True)


def test_a_server_error_is_a_transient_500(client, sandbox_key):
    ApiKey.objects.filter(key=sandbox_key).update(error_rate=1)
    with pytest.raises(TransientError) as error:
        client.list_engines()
    assert (error.value.status, error.value.name) == (500, "server_error")


def test_a_hung_answer_times_out_as_a_transient_error(sandbox_url, sandbox_key, settings):
    settings.SANDBOX_HANG_SECONDS = 2
    ApiKey.objects.filter(key=sandbox_key).update(hang_rate=1)
    client = StabilityClient(api_key=sandbox_key, host=sandbox_url, read_timeout=0.3)
    with pytest.raises(TransientError, match="did not answer in time"):
        client.balance()


def test_nothing_is_sent_for_a_request_the_api_would_refuse(client):
    before = client.balance()
    with pytest.raises(RuleViolation) as error:
        client.text_to_image(SDXL, TextToImageRequest(text_prompts=PROMPTS, width=512, height=512))
    assert (error.value.field, error.value.name) == ("width/height", "invalid_sdxl_v1_dimensions")
    assert "1024x1024" in error.value.rule
    assert client.balance() == before
