"""Every operation's success and error answers, checked against the official v1 OpenAPI file."""

from collections.abc import Callable

import httpx
import pytest

from sandbox.models import ApiKey
from tests.images import png
from tests.sandbox.openapi import assert_conforms, assert_error_shape, assert_request_conforms

SD16 = "stable-diffusion-v1-6"
SDXL = "stable-diffusion-xl-1024-v1-0"
T2I = {"text_prompts": [{"text": "a lighthouse", "weight": 1}], "width": 512, "height": 512, "steps": 10}
PROMPT = {"text_prompts[0][text]": "a lighthouse", "text_prompts[0][weight]": "1"}


def t2i(
    body: dict | None = None, engine: str = SD16, **headers: str
) -> Callable[[httpx.Client], httpx.Response]:
    return lambda api: api.post(f"/v1/generation/{engine}/text-to-image", json=body or T2I, headers=headers)


def i2i(data: dict | None = None, files: dict | None = None, engine: str = SD16, **headers: str):
    files = {"init_image": ("init.png", png(), "image/png")} if files is None else files
    data = {**PROMPT, "init_image_mode": "IMAGE_STRENGTH", "image_strength": "0.4"} if data is None else data
    return lambda api: api.post(
        f"/v1/generation/{engine}/image-to-image", data=data, files=files, headers=headers
    )


def mask(data: dict | None = None, files: dict | None = None, engine: str = SD16, **headers: str):
    files = (
        {
            "init_image": ("i.png", png(), "image/png"),
            "mask_image": ("m.png", png(mode="L", colour=0), "image/png"),
        }
        if files is None
        else files
    )
    data = {**PROMPT, "mask_source": "MASK_IMAGE_WHITE"} if data is None else data
    return lambda api: api.post(
        f"/v1/generation/{engine}/image-to-image/masking", data=data, files=files, headers=headers
    )


def upscale(
    data: dict | None = None, image: bytes | None = None, engine: str = "esrgan-v1-x2plus", **headers
):
    files = {"image": ("image.png", image or png(512, 512), "image/png")}
    return lambda api: api.post(
        f"/v1/generation/{engine}/image-to-image/upscale", data=data or {}, files=files, headers=headers
    )


def get(path: str, **headers: str):
    return lambda api: api.get(path, headers=headers)


CASES = {
    "listEngines 200": (get("/v1/engines/list"), 200, None),
    "userAccount 200": (get("/v1/user/account"), 200, None),
    "userBalance 200": (get("/v1/user/balance"), 200, None),
    "textToImage 200 json": (t2i({**T2I, "samples": 2}), 200, None),
    "textToImage 200 png": (t2i(Accept="image/png"), 200, None),
    "textToImage 400 bad_request": (t2i({**T2I, "cfg_scale": 99}), 400, "bad_request"),
    "textToImage 400 invalid_samples": (
        t2i({**T2I, "samples": 2}, Accept="image/png"),
        400,
        "invalid_samples",
    ),
    "textToImage 400 invalid_height_or_width": (t2i({**T2I, "width": 500}), 400, "invalid_height_or_width"),
    "textToImage 400 invalid_sdxl_v1_dimensions": (t2i(engine=SDXL), 400, "invalid_sdxl_v1_dimensions"),
    "textToImage 400 invalid_pixel_count": (
        t2i({**T2I, "width": 256, "height": 256}, engine="stable-diffusion-512-v2-1"),
        400,
        "invalid_pixel_count",
    ),
    "textToImage 400 invalid_prompts": (
        t2i({**T2I, "text_prompts": [{"text": "a cat"}, {"text": "contraband", "weight": -1}]}),
        400,
        "invalid_prompts",
    ),
    "textToImage 403": (t2i(Organization="org-not-mine"), 403, "permission_denied"),
    "textToImage 404": (t2i(engine="some-fake-engine"), 404, "not_found"),
    "imageToImage 200": (i2i(), 200, None),
    "imageToImage 200 step schedule": (
        i2i(
            {
                **PROMPT,
                "init_image_mode": "STEP_SCHEDULE",
                "step_schedule_start": "0.6",
                "step_schedule_end": "0.1",
            }
        ),
        200,
        None,
    ),
    "imageToImage 400 bad_request": (i2i(files={}), 400, "bad_request"),
    "imageToImage 400 invalid_mime_type": (
        i2i(files={"init_image": ("x.png", b"not an image", "image/png")}),
        400,
        "invalid_mime_type",
    ),
    "imageToImage 403": (i2i(Organization="org-not-mine"), 403, "permission_denied"),
    "imageToImage 404": (i2i(engine="esrgan-v1-x2plus"), 404, "not_found"),
    "masking 200 white": (mask(), 200, None),
    "masking 200 alpha": (
        mask(
            {**PROMPT, "mask_source": "INIT_IMAGE_ALPHA"},
            {"init_image": ("i.png", png(mode="RGBA"), "image/png")},
        ),
        200,
        None,
    ),
    "masking 400 invalid_mask_image": (
        mask(files={"init_image": ("i.png", png(), "image/png")}),
        400,
        "invalid_mask_image",
    ),
    "masking 400 invalid_image_dimensions": (
        mask(
            files={
                "init_image": ("i.png", png(), "image/png"),
                "mask_image": ("m.png", png(576, 512), "image/png"),
            }
        ),
        400,
        "invalid_image_dimensions",
    ),
    "masking 403": (mask(Organization="org-not-mine"), 403, "permission_denied"),
    "masking 404": (mask(engine="nope"), 404, "not_found"),
    "upscale 200 esrgan": (upscale(), 200, None),
    "upscale 200 latent": (
        upscale({**PROMPT, "seed": "5", "steps": "20"}, engine="stable-diffusion-x4-latent-upscaler"),
        200,
        None,
    ),
    "upscale 400 invalid_pixel_count": (upscale(image=png(1536, 1536)), 400, "invalid_pixel_count"),
    "upscale 400 bad_request": (upscale({"width": "1024", "height": "1024"}), 400, "bad_request"),
    "upscale 403": (upscale(Organization="org-not-mine"), 403, "permission_denied"),
    "upscale 404": (upscale(engine=SD16), 404, "not_found"),
}
OPERATIONS = {
    "listEngines": get("/v1/engines/list"),
    "userAccount": get("/v1/user/account"),
    "userBalance": get("/v1/user/balance"),
    "textToImage": t2i(),
    "imageToImage": i2i(),
    "masking": mask(),
    "upscale": upscale(),
}


@pytest.fixture
def api(sandbox_url, sandbox_key):
    with httpx.Client(
        base_url=sandbox_url, headers={"Authorization": f"Bearer {sandbox_key}"}, timeout=60
    ) as api:
        yield api


@pytest.mark.parametrize("case", CASES)
def test_every_answer_conforms_to_the_official_spec(api, case):
    call, status, name = CASES[case]
    response = call(api)
    assert response.status_code == status, response.text
    if name:
        assert response.json()["name"] == name
    assert_conforms(response)


@pytest.mark.parametrize("operation", OPERATIONS)
def test_a_missing_or_wrong_key_is_401_in_the_spec_shape(api, operation):
    for authorization in ("", "Bearer sk-wrong"):
        api.headers["Authorization"] = authorization
        if not authorization:
            del api.headers["Authorization"]
        response = OPERATIONS[operation](api)
        assert response.status_code == 401
        assert response.json()["name"] == "unauthorized"
        assert_conforms(response)


@pytest.mark.parametrize("operation", OPERATIONS)
def test_a_server_error_is_500_in_the_spec_shape(api, sandbox_key, operation):
    ApiKey.objects.filter(key=sandbox_key).update(error_rate=1.0)
    response = OPERATIONS[operation](api)
    assert response.status_code == 500
    assert response.json()["name"] == "server_error"
    assert_conforms(response)


def test_payment_required_and_rate_limit_answers_use_the_error_schema(api, make_sandbox_key, settings):
    api.headers["Authorization"] = f"Bearer {make_sandbox_key(credits=0.01, email='poor@example.com')}"
    refused = t2i()(api)
    assert refused.status_code == 402 and refused.json()["name"] == "payment_required"
    assert_error_shape(refused)
    settings.SANDBOX_RATE_LIMIT = 2
    api.headers["Authorization"] = f"Bearer {make_sandbox_key(credits=1)}"
    answers = [get("/v1/user/balance")(api) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 429]
    assert answers[-1].json()["name"] == "rate_limit_exceeded"
    assert_error_shape(answers[-1])


def test_the_clients_requests_conform_to_the_official_spec(sandbox_url, sandbox_key):
    from generations.stability.client import StabilityClient
    from generations.stability.contract import Prompt
    from generations.stability.types import (
        ImageToImageRequest,
        MaskingRequest,
        TextToImageRequest,
        UpscaleRequest,
    )

    sent: list[httpx.Request] = []
    http = httpx.Client(event_hooks={"request": [sent.append]}, timeout=60)
    client = StabilityClient(api_key=sandbox_key, host=sandbox_url, http=http)
    prompts = (Prompt("a lighthouse"), Prompt("fog", -1))
    client.list_engines()
    client.account()
    client.balance()
    client.text_to_image(SD16, TextToImageRequest(text_prompts=prompts, steps=10))
    client.image_to_image(SD16, ImageToImageRequest(text_prompts=prompts, init_image=png(), steps=10))
    client.masking(
        SD16, MaskingRequest(text_prompts=prompts, init_image=png(), mask_image=png(mode="L"), steps=10)
    )
    client.upscale("esrgan-v1-x2plus", UpscaleRequest(image=png()))
    assert len(sent) == 7
    for request in sent:
        assert_request_conforms(request)
