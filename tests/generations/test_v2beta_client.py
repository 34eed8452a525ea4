"""The Stable Image client against the live sandbox, over real HTTP: every operation, the async flow,
both encodings, multipart for text-only requests, and every error class."""

import time
from collections.abc import Callable
from decimal import Decimal

import httpx
import pytest

from generations.stability.client import StabilityClient
from generations.stability.v2beta import types as v2
from generations.stability.v2beta.client import StableImageClient
from generations.stability.v2beta.fields import RuleViolation
from sandbox.models import ApiKey
from tests.images import decode, png
from tests.sandbox.v2beta_openapi import assert_request_conforms

SQUARE = png(96, 96)
WIDE = png(96, 64)
TINY = png(64, 48)
# Each operation's call, and the size of the picture it must return.
SYNC: dict[str, tuple[Callable[[StableImageClient], v2.ImageResult], tuple[int, int]]] = {
    "generate/ultra": (
        lambda c: c.generate_ultra(
            v2.UltraRequest(prompt="a harbour", aspect_ratio="16:9", output_format="jpeg")
        ),
        (1344, 768),
    ),
    "generate/ultra image-to-image": (
        lambda c: c.generate_ultra(v2.UltraRequest(prompt="a harbour", image=SQUARE, strength=0.5)),
        (1024, 1024),
    ),
    "generate/core": (
        lambda c: c.generate_core(
            v2.CoreRequest(prompt="a harbour", aspect_ratio="21:9", output_format="jpeg")
        ),
        (2304, 960),
    ),
    "generate/sd3 text-to-image": (
        lambda c: c.generate_sd3(v2.SD3Request(prompt="a harbour", model="sd3.5-flash", aspect_ratio="9:16")),
        (768, 1344),
    ),
    "generate/sd3 image-to-image": (
        lambda c: c.generate_sd3(
            v2.SD3Request(
                prompt="a harbour", mode="image-to-image", image=SQUARE, strength=0.7, model="sd3.5-medium"
            )
        ),
        (1024, 1024),
    ),
    "upscale/fast": (lambda c: c.upscale_fast(v2.FastUpscaleRequest(image=TINY)), (256, 192)),
    "upscale/conservative": (
        lambda c: c.upscale_conservative(
            v2.ConservativeUpscaleRequest(image=png(64, 64), prompt="crisp", output_format="jpeg")
        ),
        (2048, 2048),
    ),
    "edit/erase": (lambda c: c.erase(v2.EraseRequest(image=WIDE, mask=png(96, 64, mode="L"))), (96, 64)),
    "edit/inpaint": (
        lambda c: c.inpaint(v2.InpaintRequest(image=WIDE, prompt="a door", grow_mask=20)),
        (96, 64),
    ),
    "edit/outpaint": (lambda c: c.outpaint(v2.OutpaintRequest(image=WIDE, left=10, up=6)), (106, 70)),
    "edit/search-and-replace": (
        lambda c: c.search_and_replace(
            v2.SearchAndReplaceRequest(image=WIDE, prompt="a cat", search_prompt="disc")
        ),
        (96, 64),
    ),
    "edit/search-and-recolor": (
        lambda c: c.search_and_recolor(
            v2.SearchAndRecolorRequest(image=WIDE, prompt="a green disc", select_prompt="white")
        ),
        (96, 64),
    ),
    "edit/remove-background": (
        lambda c: c.remove_background(v2.RemoveBackgroundRequest(image=WIDE, output_format="webp")),
        (96, 64),
    ),
    "control/sketch": (lambda c: c.control_sketch(v2.SketchRequest(prompt="a house", image=WIDE)), (96, 64)),
    "control/structure": (
        lambda c: c.control_structure(v2.StructureRequest(prompt="a house", image=WIDE)),
        (96, 64),
    ),
    "control/style": (
        lambda c: c.control_style(v2.StyleRequest(prompt="a house", image=WIDE, aspect_ratio="2:3")),
        (832, 1216),
    ),
    "control/style-transfer": (
        lambda c: c.control_style_transfer(v2.StyleTransferRequest(init_image=SQUARE, style_image=WIDE)),
        (1024, 1024),
    ),
}
PRICES = {
    "generate/ultra": 8,
    "generate/ultra image-to-image": 8,
    "generate/core": 3,
    "generate/sd3 text-to-image": 2.5,
    "generate/sd3 image-to-image": 3.5,
    "upscale/fast": 2,
    "upscale/conservative": 40,
    "control/style-transfer": 8,
    "edit/outpaint": 4,
}


@pytest.fixture
def sent() -> list[httpx.Request]:
    return []


@pytest.fixture
def client(sandbox_url, sandbox_key, sent, settings):
    settings.SANDBOX_RATE_LIMIT = 100_000
    with httpx.Client(event_hooks={"request": [sent.append]}, timeout=60) as http:
        yield StableImageClient(api_key=sandbox_key, host=sandbox_url, http=http)


@pytest.fixture
def balance(sandbox_url, sandbox_key) -> Callable[[], float]:
    return StabilityClient(api_key=sandbox_key, host=sandbox_url).balance


@pytest.mark.parametrize("case", SYNC)
def test_every_operation_returns_its_image_and_charges_its_listed_price(client, sent, balance, case):
    call, size = SYNC[case]
    before = balance()
    result = call(client)
    assert decode(result.image).size == size
    assert result.finish_reason == "SUCCESS" and result.seed > 0 and len(result.request_id) == 32
    assert result.media_type == f"image/{decode(result.image).format.lower()}"
    assert before - balance() == pytest.approx(PRICES.get(case, 5))
    (request,) = sent
    assert_request_conforms(request)


def test_the_json_encoding_gives_the_same_picture_as_the_image_encoding(client):
    request = v2.SD3Request(prompt="a quiet harbour", seed=1234, aspect_ratio="1:1", output_format="webp")
    as_image = client.generate_sd3(request)
    as_json = client.generate_sd3(request, accept="application/json")
    assert as_json.media_type == "image/webp" and as_json.seed == as_image.seed == 1234
    assert as_json.image == as_image.image


def test_a_text_only_request_is_sent_as_multipart_which_a_form_body_would_not_be(client, sent, sandbox_url):
    result = client.generate_core(v2.CoreRequest(prompt="a lighthouse", output_format="jpeg"))
    assert decode(result.image).format == "JPEG"
    (request,) = sent
    assert request.headers["Content-Type"].startswith("multipart/form-data; boundary=")
    assert b'name="prompt"\r\n\r\na lighthouse' in request.read()
    assert request.headers["Authorization"].startswith("Bearer sk-")
    plain = httpx.post(
        f"{sandbox_url}/v2beta/stable-image/generate/core",
        data={"prompt": "a lighthouse"},
        headers={"Authorization": request.headers["Authorization"]},
    )
    assert plain.status_code == 400 and plain.json()["errors"] == [
        "content-type: must be multipart/form-data"
    ]


@pytest.mark.parametrize(
    ("submit", "size"),
    [
        (
            lambda c: c.upscale_creative(
                v2.CreativeUpscaleRequest(image=png(64, 80), prompt="crisp", seed=5)
            ),
            (256, 320),
        ),
        (
            lambda c: c.replace_background_and_relight(
                v2.ReplaceBackgroundAndRelightRequest(
                    subject_image=WIDE, background_prompt="a beach", light_source_direction="above", seed=5
                )
            ),
            (96, 64),
        ),
    ],
    ids=["upscale/creative", "edit/replace-background-and-relight"],
)
def test_an_asynchronous_operation_is_submitted_then_polled_until_ready(client, sent, settings, submit, size):
    settings.SANDBOX_ASYNC_SECONDS = 0.5
    submitted = submit(client)
    assert len(submitted.id) == 64 and submitted.poll_after == 10
    waiting = client.result(submitted.id)
    assert waiting == v2.InProgress(id=submitted.id)
    time.sleep(0.6)
    ready = client.result(submitted.id)
    assert isinstance(ready, v2.ImageResult)
    assert decode(ready.image).size == size and ready.seed == 5 and ready.media_type == "image/png"
    again = client.result(submitted.id, accept="application/json")
    assert isinstance(again, v2.ImageResult) and again.image == ready.image
    assert_request_conforms(sent[0])
    assert [r.headers["Accept"] for r in sent[1:]] == ["*/*", "*/*", "application/json"]


def test_a_result_belongs_to_the_key_that_asked(client, sandbox_url, make_sandbox_key, settings):
    settings.SANDBOX_ASYNC_SECONDS = 0
    submitted = client.upscale_creative(v2.CreativeUpscaleRequest(image=png(64, 64), prompt="crisp"))
    stranger = StableImageClient(
        api_key=make_sandbox_key(credits=1, email="other@studio.test"), host=sandbox_url
    )
    with pytest.raises(v2.PermanentError) as error:
        stranger.result(submitted.id)
    assert (error.value.status, error.value.name) == (404, "generation_not_found")
    assert isinstance(client.result(submitted.id), v2.ImageResult)


def test_a_filtered_image_is_returned_blurred_and_not_charged(client, balance):
    before = balance()
    result = client.generate_core(v2.CoreRequest(prompt="a lurid poster", output_format="jpeg"))
    assert result.filtered and result.finish_reason == "CONTENT_FILTERED"
    assert balance() == before


@pytest.mark.parametrize(
    ("request_", "status", "name", "message"),
    [
        (v2.CoreRequest(prompt="contraband"), 403, "content_moderation", "flagged by our content moderation"),
        (
            v2.CoreRequest(prompt="港の灯台"),
            422,
            "invalid_language",
            "English is the only supported language",
        ),
    ],
    ids=["403", "422"],
)
def test_a_refused_prompt_is_a_permanent_error_with_the_apis_name_and_not_charged(
    client, balance, request_, status, name, message
):
    before = balance()
    with pytest.raises(v2.PermanentError) as error:
        client.generate_core(request_)
    assert (error.value.status, error.value.name, error.value.retryable) == (status, name, False)
    assert message in error.value.message and len(error.value.error_id) == 32
    assert balance() == before


def test_a_wrong_key_is_a_permanent_401(sandbox_url):
    with pytest.raises(v2.PermanentError) as error:
        StableImageClient(api_key="sk-nope", host=sandbox_url).upscale_fast(v2.FastUpscaleRequest(image=TINY))
    assert (error.value.status, error.value.name) == (401, "unauthorized")


def test_a_request_the_balance_cannot_pay_is_a_permanent_402_and_charges_nothing(
    sandbox_url, make_sandbox_key
):
    key = make_sandbox_key(credits=7.5, email="low@studio.test")
    client = StableImageClient(api_key=key, host=sandbox_url)
    with pytest.raises(v2.PermanentError) as error:
        client.generate_ultra(v2.UltraRequest(prompt="a harbour", output_format="jpeg"))
    assert (error.value.status, error.value.name) == (402, "payment_required")
    client.generate_core(v2.CoreRequest(prompt="a harbour", output_format="jpeg"))
    assert StabilityClient(api_key=key, host=sandbox_url).balance() == pytest.approx(4.5)


def test_an_unknown_generation_is_a_permanent_404(client):
    with pytest.raises(v2.PermanentError) as error:
        client.result("0" * 64)
    assert (error.value.status, error.value.name) == (404, "generation_not_found")


def test_the_shared_rate_limit_is_a_transient_429(client, settings):
    settings.SANDBOX_RATE_LIMIT = 1
    client.upscale_fast(v2.FastUpscaleRequest(image=TINY))
    with pytest.raises(v2.TransientError) as error:
        client.upscale_fast(v2.FastUpscaleRequest(image=TINY))
    assert (error.value.status, error.value.name, error.value.retryable) == (429, "rate_limit_exceeded", True)


def test_a_server_error_is_a_transient_500(client, sandbox_key):
    ApiKey.objects.filter(key=sandbox_key).update(error_rate=1)
    with pytest.raises(v2.TransientError) as error:
        client.remove_background(v2.RemoveBackgroundRequest(image=WIDE))
    assert (error.value.status, error.value.name) == (500, "internal_error")


def test_a_hung_answer_times_out_as_a_transient_error(sandbox_url, sandbox_key, settings):
    settings.SANDBOX_HANG_SECONDS = 2
    ApiKey.objects.filter(key=sandbox_key).update(hang_rate=1)
    client = StableImageClient(api_key=sandbox_key, host=sandbox_url, read_timeout=0.3)
    with pytest.raises(v2.TransientError, match="did not answer in time"):
        client.upscale_fast(v2.FastUpscaleRequest(image=TINY))


def test_nothing_is_sent_for_a_request_the_api_would_refuse(client, sent):
    with pytest.raises(RuleViolation) as error:
        client.generate_sd3(
            v2.SD3Request(
                prompt="a fox", mode="image-to-image", image=SQUARE, strength=0.5, aspect_ratio="1:1"
            )
        )
    assert str(error.value) == "aspect_ratio: may not be given in image-to-image mode"
    with pytest.raises(RuleViolation) as error:
        client.upscale_fast(v2.FastUpscaleRequest(image=png(16, 16)))
    assert error.value.rule == "width and height must be at least 32 and at most 1,536 pixels (got 16x16)"
    noise = v2.FastUpscaleRequest(image=b"\x89PNG" + bytes(11 * 1024 * 1024))
    with pytest.raises(RuleViolation) as error:
        client.upscale_fast(noise)
    assert (error.value.status, error.value.name) == (413, "payload_too_large")
    with pytest.raises(RuleViolation):
        client.result("not-a-generation-id")
    assert sent == []


def test_the_price_of_a_request_is_known_before_it_is_sent():
    assert v2.SD3Request(prompt="a").price == Decimal("6.5")
    assert v2.SD3Request(prompt="a", model="sd3-large-turbo").price == Decimal("4")
    assert v2.CreativeUpscaleRequest(image=TINY, prompt="a").price == Decimal("60")
    assert v2.OutpaintRequest(image=WIDE, left=40, down=8).output_size() == (136, 72)
