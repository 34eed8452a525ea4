"""Every Stable Image operation's answers, success and error, checked against the official v2beta OpenAPI
file (with the exceptions the notes document, listed once in tests/sandbox/v2beta_openapi.py)."""

import time

import httpx
import pytest

from generations.stability.v2beta import contract
from generations.stability.v2beta.fields import ASPECT_RATIOS, Kind
from sandbox.models import ApiKey, AsyncResult
from tests.images import png
from tests.sandbox.v2beta_openapi import assert_conforms, assert_error_shape

IMAGE = png(96, 96)
SMALL = png(64, 64)
MASK = png(96, 96, mode="L")
# The smallest request each operation accepts (big outputs as jpeg: faster to encode, same contract).
VALID: dict[str, tuple[dict[str, str], dict[str, bytes]]] = {
    "generate/ultra": ({"prompt": "a lighthouse", "aspect_ratio": "16:9", "output_format": "jpeg"}, {}),
    "generate/core": ({"prompt": "a lighthouse", "style_preset": "pixel-art", "output_format": "jpeg"}, {}),
    "generate/sd3": (
        {"prompt": "a lighthouse", "mode": "image-to-image", "strength": "0.6", "model": "sd3.5-flash"},
        {"image": IMAGE},
    ),
    "upscale/fast": ({"output_format": "webp"}, {"image": SMALL}),
    "upscale/conservative": ({"prompt": "crisp detail", "output_format": "jpeg"}, {"image": SMALL}),
    "upscale/creative": ({"prompt": "crisp detail", "creativity": "0.2"}, {"image": SMALL}),
    "edit/erase": ({"grow_mask": "2"}, {"image": IMAGE, "mask": MASK}),
    "edit/inpaint": ({"prompt": "a red door"}, {"image": IMAGE, "mask": MASK}),
    "edit/outpaint": ({"left": "32", "down": "16", "prompt": "more sea"}, {"image": IMAGE}),
    "edit/search-and-replace": ({"prompt": "a cat", "search_prompt": "ball"}, {"image": IMAGE}),
    "edit/search-and-recolor": ({"prompt": "a red ball", "select_prompt": "ball"}, {"image": IMAGE}),
    "edit/remove-background": ({}, {"image": IMAGE}),
    "edit/replace-background-and-relight": (
        {
            "background_prompt": "a beach at dusk",
            "light_source_direction": "left",
            "light_source_strength": "0.5",
        },
        {"subject_image": IMAGE},
    ),
    "control/sketch": ({"prompt": "a house"}, {"image": IMAGE}),
    "control/structure": ({"prompt": "a house", "control_strength": "0.5"}, {"image": IMAGE}),
    "control/style": (
        {"prompt": "a house", "aspect_ratio": "9:21", "output_format": "jpeg"},
        {"image": IMAGE},
    ),
    "control/style-transfer": ({"output_format": "jpeg"}, {"init_image": IMAGE, "style_image": SMALL}),
}
TEXT_FIELD = {
    operation.id: next(f.name for f in operation.fields if f.kind is Kind.TEXT)
    for operation in contract.OPERATIONS.values()
    if any(f.kind is Kind.TEXT for f in operation.fields)
}
assert set(VALID) == set(contract.OPERATIONS)


def post(api: httpx.Client, operation_id: str, fields: dict, files: dict, **headers: str) -> httpx.Response:
    parts = [(name, (None, value)) for name, value in fields.items()]
    parts += [(name, (f"{name}.png", data, "image/png")) for name, data in files.items()]
    return api.post(f"/v2beta/stable-image/{operation_id}", files=parts, headers=headers)


@pytest.fixture
def api(sandbox_url, sandbox_key, settings):
    settings.SANDBOX_RATE_LIMIT = 100_000
    with httpx.Client(
        base_url=sandbox_url, headers={"Authorization": f"Bearer {sandbox_key}"}, timeout=60
    ) as api:
        yield api


def _required_removed(operation: contract.Operation, fields: dict, files: dict) -> tuple[dict, dict]:
    first = next(f.name for f in operation.fields if f.required)
    return {k: v for k, v in fields.items() if k != first}, {k: v for k, v in files.items() if k != first}


@pytest.mark.parametrize("operation_id", VALID)
def test_every_answer_of_every_operation_conforms_to_the_official_spec(
    api, sandbox_key, operation_id, subtests
):
    operation = contract.OPERATIONS[operation_id]
    fields, files = VALID[operation_id]
    cases: dict[str, tuple[dict, dict, dict, int, str | None]] = {
        "200 image/*": (fields, files, {"Accept": "image/*"}, 200, None),
        "400 bad enum": ({**fields, "output_format": "gif"}, files, {}, 400, "bad_request"),
        "400 required field missing": (*_required_removed(operation, fields, files), {}, 400, "bad_request"),
        "413 over 10 MiB": (
            fields,
            {**files, "extra": b"\0" * (contract.MAX_REQUEST_BYTES + 1)},
            {},
            413,
            "payload_too_large",
        ),
        "401 no key": (fields, files, {"Authorization": ""}, 401, "unauthorized"),
    }
    if not operation.asynchronous:
        cases["200 application/json"] = (fields, files, {"Accept": "application/json"}, 200, None)
    if name := TEXT_FIELD.get(operation_id):
        cases["403 content_moderation"] = (
            {**fields, name: "contraband"},
            files,
            {},
            403,
            "content_moderation",
        )
        cases["422 invalid_language"] = ({**fields, name: "東京の夜景"}, files, {}, 422, "invalid_language")
    for case, (case_fields, case_files, headers, status, error_name) in cases.items():
        with subtests.test(case):
            response = post(api, operation_id, case_fields, case_files, **headers)
            assert response.status_code == status, response.text[:300]
            if error_name:
                assert response.json()["name"] == error_name
                assert response.headers["x-request-id"] == response.json()["id"]
            assert_conforms(response)
    with subtests.test("500 internal_error"):
        ApiKey.objects.filter(key=sandbox_key).update(error_rate=1.0)
        response = post(api, operation_id, fields, files)
        assert response.status_code == 500 and response.json()["name"] == "internal_error"
        assert_conforms(response)


def test_a_sync_answer_carries_finish_reason_and_seed_headers_or_a_json_body(api):
    as_image = post(api, "edit/remove-background", {}, {"image": IMAGE}, Accept="image/*")
    assert as_image.headers["content-type"] == "image/png"
    assert as_image.headers["finish-reason"] == "SUCCESS" and int(as_image.headers["seed"]) > 0
    as_json = post(api, "generate/sd3", {"prompt": "a fox", "seed": "77"}, {}, Accept="application/json")
    assert as_json.headers["content-type"] == "application/json; type=image/png"
    assert as_json.json()["seed"] == 77 and as_json.json()["finish_reason"] == "SUCCESS"
    assert "finish-reason" not in as_json.headers


def test_fields_are_checked_before_the_key(api):
    response = post(
        api, "generate/core", {"prompt": "x", "aspect_ratio": "4:3"}, {}, Authorization="Bearer sk-bad"
    )
    assert response.status_code == 400
    assert response.json()["errors"] == ["aspect_ratio: must be one of " + ", ".join(ASPECT_RATIOS)]
    assert_conforms(response)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"data": {"prompt": "a fox"}}, "content-type: must be multipart/form-data"),
        ({"content": b""}, "content-type: required"),
    ],
)
def test_a_body_that_is_not_multipart_is_refused(api, body, message):
    response = api.post("/v2beta/stable-image/generate/core", **body)
    assert response.status_code == 400 and response.json()["errors"] == [message]
    assert_conforms(response)


def test_an_asynchronous_result_is_in_progress_then_ready_for_its_key_only(api, make_sandbox_key, settings):
    settings.SANDBOX_ASYNC_SECONDS = 0.6
    submitted = post(api, "upscale/creative", {"prompt": "crisp", "seed": "9"}, {"image": SMALL})
    assert submitted.status_code == 200
    assert_conforms(submitted)
    generation_id = submitted.json()["id"]
    assert len(generation_id) == 64
    waiting = api.get(f"/v2beta/results/{generation_id}")
    assert waiting.status_code == 202 and waiting.json() == {"id": generation_id, "status": "in-progress"}
    assert_conforms(waiting)
    time.sleep(0.7)
    for path in (
        f"/v2beta/results/{generation_id}",
        f"/v2beta/stable-image/upscale/creative/result/{generation_id}",
    ):
        for accept in ("*/*", "application/json"):
            ready = api.get(path, headers={"Accept": accept})
            assert ready.status_code == 200, ready.text
            assert_conforms(ready)
    assert ready.json()["seed"] == 9
    stranger = make_sandbox_key(credits=1, email="stranger@example.com")
    foreign = api.get(f"/v2beta/results/{generation_id}", headers={"Authorization": f"Bearer {stranger}"})
    assert foreign.status_code == 404 and foreign.json()["name"] == "generation_not_found"
    assert_conforms(foreign)
    malformed = api.get("/v2beta/results/not-an-id")
    assert malformed.status_code == 400
    assert_conforms(malformed)


def test_a_result_is_gone_after_24_hours(api, settings):
    settings.SANDBOX_ASYNC_SECONDS = 0
    submitted = post(
        api, "edit/replace-background-and-relight", {"background_prompt": "snow"}, {"subject_image": IMAGE}
    )
    generation_id = submitted.json()["id"]
    assert api.get(f"/v2beta/results/{generation_id}").status_code == 200
    stored = AsyncResult.objects.get(pk=generation_id)
    day_ago = stored.created_at - contract.RESULT_RETENTION
    AsyncResult.objects.filter(pk=generation_id).update(
        created_at=day_ago - contract.RESULT_RETENTION, expires_at=day_ago, ready_at=day_ago
    )
    expired = api.get(f"/v2beta/results/{generation_id}")
    assert expired.status_code == 404
    assert expired.json()["errors"] == ["id: the generation either does not exist or has expired."]
    assert_conforms(expired)


def test_payment_required_and_the_shared_rate_limit_use_the_error_schema(api, make_sandbox_key, settings):
    poor = make_sandbox_key(credits=2, email="poor@example.com")
    refused = post(api, "generate/core", {"prompt": "a fox"}, {}, Authorization=f"Bearer {poor}")
    assert refused.status_code == 402 and refused.json()["name"] == "payment_required"
    assert_conforms(refused)
    settings.SANDBOX_RATE_LIMIT = 2
    key = make_sandbox_key(credits=100, email="busy@example.com")
    v1 = api.get("/v1/user/balance", headers={"Authorization": f"Bearer {key}"})
    fast = post(api, "upscale/fast", {}, {"image": SMALL}, Authorization=f"Bearer {key}")
    limited = post(api, "upscale/fast", {}, {"image": SMALL}, Authorization=f"Bearer {key}")
    assert [v1.status_code, fast.status_code, limited.status_code] == [200, 200, 429]  # one counter for both
    assert limited.json()["errors"] == [
        "You have exceeded the rate limit of 2 requests within a 10 second period, and have been timed out "
        "for 60 seconds."
    ]
    assert_conforms(limited)
    assert_error_shape(limited)
