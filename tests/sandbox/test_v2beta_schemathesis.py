"""A spec-driven run over every Stable Image path and the results paths against the live sandbox: no 5xx,
no answer the official document (with the notes' documented exceptions) forbids."""

import copy
import re

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import missing_required_header, positive_data_acceptance

from tests.sandbox.v2beta_openapi import SPEC_DICT

FUZZED = re.compile(r"^/v2beta/(stable-image/|results/)")  # not audio, 3D or the v2alpha aliases
IGNORED_HEADERS = {"accept", "content-type", "authorization"}


def fuzzable(spec: dict) -> dict:
    """The Stable Image and results paths, as OpenAPI 3.0 reads them: header parameters named Accept,
    Content-Type or Authorization "SHALL be ignored" (OpenAPI 3.0.3 §4.7.12.1). The key then comes from
    the security scheme, so that a case built to lack it really lacks it, and the body's multipart type is
    not overwritten."""
    spec = copy.deepcopy(spec)
    spec["paths"] = {path: item for path, item in spec["paths"].items() if FUZZED.match(path)}
    parameters = spec["components"]["parameters"]
    for path in spec["paths"].values():
        for operation in path.values():
            operation["parameters"] = [
                p
                for p in operation.get("parameters", [])
                if parameters.get(p.get("$ref", "").rsplit("/", 1)[-1], p).get("name", "").lower()
                not in IGNORED_HEADERS
            ]
    return spec


# The coverage phase's positive cases try every enum value of every field; for the text-to-image
# operations each is a real 1–2 MP render, which alone would take most of a minute. Their valid requests
# are still fuzzed below, and each operation's answers are validated in test_v2beta_contract.py.
CONFIG = SchemathesisConfig.from_dict(
    {
        "operations": [
            {
                "include-path-regex": "^/v2beta/stable-image/generate/",
                "phases": {"coverage": {"generation": {"mode": "negative"}}},
            }
        ]
    }
)
schema = schemathesis.openapi.from_dict(fuzzable(SPEC_DICT), config=CONFIG)
# The document cannot say that an image field must hold a decodable image of the right size, so requests
# that are "valid" by it are rightly refused with a 400. And fields are checked before the key (notes §8),
# so such a request without a key is a 400 too, not the 401 `missing_required_header` expects; a valid
# request without a key must be 401, which the `ignored_auth` check still demands. Every other check runs:
# server errors, status codes, content types, response schemas and headers, rejection of invalid data.
EXCLUDED = [positive_data_acceptance, missing_required_header]


@pytest.fixture
def funded_key(make_sandbox_key, settings) -> str:
    settings.SANDBOX_RATE_LIMIT = 100_000  # the run is faster than 150 requests per 10 s
    return make_sandbox_key(credits=1_000_000, email="fuzz@example.com")


@schema.parametrize()
@settings(
    max_examples=5,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
    ],
)
def test_the_sandbox_answers_every_generated_v2beta_request_as_the_spec_says(case, sandbox_url, funded_key):
    case.call_and_validate(
        base_url=sandbox_url,
        headers={"authorization": f"Bearer {funded_key}"},  # as the security scheme names it
        excluded_checks=EXCLUDED,
        timeout=60,
    )
