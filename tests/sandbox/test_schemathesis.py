"""A spec-driven run over every v1 operation against the live sandbox: no 5xx, no answer the spec forbids."""

import copy

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from tests.sandbox.openapi import SPEC_DICT

UPSCALE = "/v1/generation/{engine_id}/image-to-image/upscale"


def fuzzable(spec: dict) -> dict:
    """The official spec, except that upscale's `oneOf` of two multipart bodies becomes the latent body
    (a superset of the ESRGAN one): schemathesis cannot yet generate binary fields inside a `oneOf`."""
    spec = copy.deepcopy(spec)
    body = spec["paths"][UPSCALE]["post"]["requestBody"]["content"]["multipart/form-data"]
    body["schema"] = {"$ref": "#/components/schemas/LatentUpscalerUpscaleRequestBody"}
    return spec


schema = schemathesis.openapi.from_dict(fuzzable(SPEC_DICT))
# The spec cannot say that an image field must hold a decodable image, nor each engine's sizes (its own
# default 512x512 is refused by SDXL), so "schema-valid" requests are rightly refused with a 400; every
# other check (server errors, status codes, content types, response schemas and headers, rejection of
# invalid data) runs.
EXCLUDED = [positive_data_acceptance]


@pytest.fixture
def funded_key(make_sandbox_key, settings) -> str:
    settings.SANDBOX_RATE_LIMIT = 100_000  # the run is faster than 150 requests per 10 s
    return make_sandbox_key(credits=1_000_000, email="fuzz@example.com")


@schema.parametrize()
@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
    ],
)
def test_the_sandbox_answers_every_generated_request_as_the_spec_says(case, sandbox_url, funded_key):
    case.call_and_validate(
        base_url=sandbox_url,
        headers={"Authorization": f"Bearer {funded_key}"},
        excluded_checks=EXCLUDED,
        timeout=60,
    )
