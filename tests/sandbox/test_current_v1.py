"""SANDBOX_V1_ENGINES=current: the sandbox serves v1 as the platform documents it today (v2beta notes §10),
only SDXL 1.0 and no upscaler, and Studio offers no more than that."""

import io
from decimal import Decimal

import pytest
from django.test import Client
from django.urls import reverse

from accounts.services import team_balance
from generations import services
from generations.engines import engine_choices, upscaler_choices
from generations.models import GenerationJob
from generations.stability.contract import ENGINES, Prompt
from generations.stability.types import TextToImageRequest
from tests.images import png

SDXL = "stable-diffusion-xl-1024-v1-0"
SD16 = "stable-diffusion-v1-6"
ESRGAN = "esrgan-v1-x2plus"
PROMPT = {"text_prompts": [{"text": "a lighthouse on a cliff"}], "seed": 11, "steps": 30}


@pytest.fixture
def current(settings) -> None:
    settings.SANDBOX_V1_ENGINES = "current"


@pytest.fixture
def api(make_sandbox_key) -> Client:
    return Client(HTTP_AUTHORIZATION=f"Bearer {make_sandbox_key(credits=100)}")


def balance(api: Client) -> Decimal:
    return Decimal(str(api.get("/sandbox/v1/user/balance").json()["credits"]))


def not_found(response, engine_id: str) -> None:
    assert response.status_code == 404, response.content
    assert response.json()["name"] == "not_found"
    assert response.json()["message"] == f"The specified engine (ID {engine_id}) was not found."


@pytest.mark.django_db
def test_by_default_every_engine_the_sandbox_knows_is_listed(api):
    listed = [engine["id"] for engine in api.get("/sandbox/v1/engines/list").json()]
    assert listed == list(ENGINES)
    assert ESRGAN in listed and SD16 in listed


@pytest.mark.django_db
@pytest.mark.usefixtures("current")
def test_today_the_engine_list_has_only_sdxl_1_0(api):
    response = api.get("/sandbox/v1/engines/list")
    assert response.status_code == 200
    assert response.json() == [
        {
            "id": SDXL,
            "name": "Stable Diffusion XL v1.0",
            "description": "Stability-AI Stable Diffusion XL v1.0",
            "type": "PICTURE",
        }
    ]


@pytest.mark.django_db
@pytest.mark.usefixtures("current")
def test_today_an_upscale_with_esrgan_is_not_found_and_charges_nothing(api):
    before = balance(api)
    response = api.post(
        f"/sandbox/v1/generation/{ESRGAN}/image-to-image/upscale",
        {"image": io.BytesIO(png(448, 320))},
        HTTP_ACCEPT="image/png",
    )
    not_found(response, ESRGAN)
    assert balance(api) == before


@pytest.mark.django_db
@pytest.mark.usefixtures("current")
@pytest.mark.parametrize("engine_id", [SD16, "stable-diffusion-xl-1024-v0-9", "stable-diffusion-512-v2-1"])
def test_today_generation_on_an_engine_no_longer_listed_is_not_found_and_charges_nothing(api, engine_id):
    before = balance(api)
    response = api.post(
        f"/sandbox/v1/generation/{engine_id}/text-to-image",
        {**PROMPT, "width": 1024, "height": 1024},
        content_type="application/json",
    )
    not_found(response, engine_id)
    assert balance(api) == before


@pytest.mark.django_db
@pytest.mark.usefixtures("current")
def test_today_sdxl_1_0_still_generates_at_its_current_price(api):
    before = balance(api)
    response = api.post(
        f"/sandbox/v1/generation/{SDXL}/text-to-image",
        {**PROMPT, "width": 1152, "height": 896, "samples": 2},
        content_type="application/json",
    )
    assert response.status_code == 200, response.content
    assert len(response.json()["artifacts"]) == 2
    assert before - balance(api) == Decimal("1.8")  # 0.9 an image at 30 steps


# --- through Studio ------------------------------------------------------------------------------------


@pytest.fixture
def sdxl_image(studio_engine, user):
    request = TextToImageRequest(text_prompts=(Prompt("a harbour at dusk"),), width=1024, height=1024)
    job = services.job_create(team=user.current_team, user=user, engine_id=SDXL, request=request)
    job.refresh_from_db()
    assert job.status == "succeeded", job.error_message
    return job.images.get()


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("current", "studio_engine")
def test_studio_offers_only_sdxl_1_0_among_v1_engines_and_no_v1_upscaler(user):
    offered = [engine_id for engine_id, _ in engine_choices(user.current_team) if engine_id in ENGINES]
    assert offered == [SDXL]
    assert upscaler_choices(user.current_team) == []


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("current")
def test_the_image_page_offers_no_v1_upscale(authed_client, sdxl_image):
    page = authed_client.get(reverse("generations:image-detail", args=[sdxl_image.pk]))
    assert page.status_code == 200
    upscale_url = reverse("generations:image-upscale", args=[sdxl_image.pk])
    assert f'action="{upscale_url}"' not in page.content.decode()


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("current")
def test_a_v1_upscale_posted_anyway_is_refused_and_charges_nothing(authed_client, sdxl_image):
    upscale_url = reverse("generations:image-upscale", args=[sdxl_image.pk])
    team = sdxl_image.team
    before, jobs = team_balance(team).credits, GenerationJob.objects.count()
    refused = authed_client.post(upscale_url, {"engine": ESRGAN}, follow=True)
    assert refused.status_code == 200
    assert f"{ESRGAN} is not one of the available choices" in refused.content.decode()  # said, on the page
    assert GenerationJob.objects.count() == jobs
    assert team_balance(team).credits == before
