"""Property: for any Stable Image operation and parameters, the client refuses exactly what the sandbox
refuses, with the same status, name and sentence. The bytes sent are the ones the client builds."""

import functools
import io
import math
import string
from typing import Any

import pytest
from django.test import Client
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from PIL import Image

from generations.stability.v2beta import contract
from generations.stability.v2beta.client import StableImageClient
from generations.stability.v2beta.fields import ANY_SIZE, Field, ImageRule, Kind, RuleViolation
from generations.stability.v2beta.types import REQUEST_TYPES
from sandbox.services import key_create

pytestmark = pytest.mark.django_db

# Sizes near every limit in notes §2.2 (sides 32/64, 1,024 and 4,096 pixels, ratio 2.5, 1 MP, 9.4 MP).
SIZES = [
    (64, 64),
    (96, 64),
    (160, 64),
    (64, 160),
    (161, 64),
    (63, 80),
    (32, 32),
    (40, 30),
    (30, 40),
    (1100, 1000),
]
HUGE = (3073, 3073)  # over 9,437,184 pixels: refused by all but Ultra and SD 3.5, which must still answer
LETTERS = string.ascii_lowercase.replace("c", "") + "  "  # no banned word ("contraband") can appear


@functools.cache
def encoded(size: tuple[int, int], image_format: str) -> bytes:
    image = Image.new("RGB", size, (40, 120, 200))
    image.paste((250, 250, 250), (size[0] // 4, size[1] // 4, size[0] * 3 // 4, size[1] * 3 // 4))
    buffer = io.BytesIO()
    image.save(buffer, image_format, **({"quality": 60} if image_format != "PNG" else {"compress_level": 1}))
    return buffer.getvalue()


def _fits(rule: ImageRule, size: tuple[int, int]) -> bool:
    try:
        rule.check("image", *size)
    except RuleViolation:
        return False
    return True


def valid_value(field: Field) -> st.SearchStrategy[Any]:
    match field.kind:
        case Kind.TEXT:
            return st.text(LETTERS, min_size=int(field.low or 0), max_size=24)
        case Kind.NUMBER:
            return st.floats(field.low, field.high) | st.sampled_from([field.low, field.high])
        case Kind.INTEGER:
            high = min(int(field.high or 0), 400)  # outpaint sides: small, so the canvas renders fast
            return st.integers(int(field.low or 0), high) | st.just(
                int(field.high or 0) if field.name == "seed" else 0
            )
        case Kind.CHOICE:
            return st.sampled_from(field.choices)
        case Kind.FLAG:
            return st.booleans()
    rule = field.image or ANY_SIZE
    sizes = [size for size in SIZES if _fits(rule, size)]
    return st.builds(encoded, st.sampled_from(sizes), st.sampled_from(["PNG", "JPEG", "WEBP"]))


def invalid_value(field: Field) -> st.SearchStrategy[Any]:
    match field.kind:
        case Kind.TEXT:
            return st.just("a" * 10_001) | (st.just("") if field.required and field.low else st.just(b"x"))
        case Kind.NUMBER:
            below = st.floats(max_value=field.low, exclude_max=True, allow_nan=False)
            above = st.floats(min_value=field.high, exclude_min=True, allow_nan=False)
            return below | above | st.sampled_from([math.nan, math.inf, -math.inf])
        case Kind.INTEGER:
            below = st.integers(max_value=int(field.low or 0) - 1)
            above = st.integers(min_value=int(field.high or 0) + 1)
            return below | above | st.sampled_from([5.5, 3.0])
        case Kind.CHOICE:
            return st.sampled_from(["", "bogus", field.choices[0].upper() + "!"])
        case Kind.FLAG:
            return st.sampled_from(["yes", 1])
    rule = field.image or ANY_SIZE
    sizes = [size for size in [*SIZES, HUGE] if not _fits(rule, size)]
    wrong_size = st.builds(encoded, st.sampled_from(sizes), st.just("PNG")) if sizes else st.nothing()
    return wrong_size | st.sampled_from([b"", b"GIF89a not really", "text where a file belongs"])


@st.composite
def requests(draw: st.DrawFn) -> tuple[contract.Operation, dict[str, Any], str]:
    """An operation's values with at most one field broken (so both outcomes are common); optional fields
    are often left out, which exercises the rules that join fields."""
    operation = draw(st.sampled_from(list(contract.OPERATIONS.values())), label="operation")
    broken = draw(st.sampled_from([None, *operation.field_names]), label="broken field")
    values: dict[str, Any] = {}
    for field in operation.fields:
        if field.name == broken:
            invalid = invalid_value(field) | st.none() if field.required else invalid_value(field)
            values[field.name] = draw(invalid, label=f"broken {field.name}")
        elif field.required or draw(st.booleans()):
            values[field.name] = draw(valid_value(field), label=field.name)
        else:
            values[field.name] = None
    if operation.id == "generate/ultra" and values["image"] is not None and draw(st.booleans()):
        values["image"] = encoded(HUGE, "JPEG")  # Ultra takes any pixel count: the sandbox must cope
    accept = draw(st.sampled_from(["image/*", "application/json"]))
    return operation, values, accept


@pytest.fixture
def sandbox(settings) -> tuple[Client, StableImageClient]:
    settings.SANDBOX_RATE_LIMIT = 1_000_000
    key = key_create(credits=1_000_000, email="property@example.com")
    return Client(), StableImageClient(api_key=key, host="http://testserver/sandbox")


@settings(
    max_examples=90,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(drawn=requests())
def test_the_client_refuses_exactly_what_the_sandbox_refuses(sandbox, drawn):
    api, client = sandbox
    operation, values, accept = drawn
    request = REQUEST_TYPES[operation.id](**values)
    violations = request.violations()
    sent = client.build_request(request, accept=accept)
    response = api.generic(
        "POST",
        sent.url.path,
        sent.read(),
        content_type=sent.headers["Content-Type"],
        headers={"authorization": sent.headers["Authorization"], "accept": sent.headers.get("Accept", "")},
    )
    event(f"{operation.id}: {response.status_code}")
    if response.status_code == 200:
        assert violations == [], f"the sandbox accepted what the client refuses: {violations}"
        return
    assert violations, f"the client would send what the sandbox refuses: {response.content[:300]!r}"
    body = response.json()
    first = violations[0]
    assert (response.status_code, body["name"], body["errors"]) == (first.status, first.name, [str(first)])
