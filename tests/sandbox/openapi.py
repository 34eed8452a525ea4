"""The official v1 OpenAPI file (a byte-identical copy) and adapters from httpx to openapi-core."""

import io
import json
import re
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
from openapi_core import OpenAPI
from openapi_core.datatypes import RequestParameters
from openapi_schema_validator import OAS30Validator
from werkzeug.datastructures import Headers, ImmutableMultiDict
from werkzeug.formparser import parse_form_data

SPEC_PATH = Path(__file__).with_name("stability-v1-openapi.json")
SPEC = OpenAPI.from_file_path(str(SPEC_PATH))
SPEC_DICT = json.loads(SPEC_PATH.read_text())
OFFICIAL_HOST = "https://api.stability.ai"
PROMPT_FIELD = re.compile(r"^text_prompts\[\d+\]\[(text|weight)\]$")


class OpenAPIRequest:
    """An httpx request to the sandbox, seen as the same request to api.stability.ai."""

    def __init__(self, request: httpx.Request, prefix: str = "/sandbox") -> None:
        self.request = request
        url = urlsplit(str(request.url))
        self.host_url = OFFICIAL_HOST
        self.path = url.path.removeprefix(prefix)
        self.method = request.method.lower()
        self.parameters = RequestParameters(
            query=ImmutableMultiDict(parse_qs(url.query)),
            header=Headers(dict(request.headers)),
            cookie=ImmutableMultiDict(),
        )

    @property
    def body(self) -> bytes:
        return self.request.read()

    @property
    def content_type(self) -> str:
        return self.request.headers.get("Content-Type", "")


class OpenAPIResponse:
    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self.data = response.content
        self.status_code = response.status_code
        self.content_type = response.headers.get("Content-Type", "")
        self.headers = Headers(dict(response.headers))


def assert_conforms(response: httpx.Response) -> None:
    """The answer is one the official spec allows for this operation and status (raises otherwise)."""
    SPEC.validate_response(OpenAPIRequest(response.request), OpenAPIResponse(response))


def _resolve(schema: dict) -> dict:
    while "$ref" in schema:
        schema = SPEC_DICT["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def _fields(schema: dict) -> tuple[set[str], set[str]]:
    """Property names and required names of a body schema, through $ref, allOf and oneOf."""
    schema = _resolve(schema)
    names, required = set(schema.get("properties", {})), set(schema.get("required", []))
    for part in schema.get("allOf", []):
        part_names, part_required = _fields(part)
        names |= part_names
        required |= part_required
    options = [_fields(part) for part in schema.get("oneOf", [])]
    for option_names, _ in options:
        names |= option_names
    if options:
        required |= set.intersection(*(option_required for _, option_required in options))
    return names, required


def assert_request_conforms(request: httpx.Request) -> None:
    """JSON and GET requests through openapi-core; multipart ones (which openapi-core reads without the
    `text_prompts[i][text]` convention or string-to-number coercion) field by field against the schema."""
    if not request.headers.get("Content-Type", "").startswith("multipart/form-data"):
        SPEC.validate_request(OpenAPIRequest(request))
        return
    environ = {
        "wsgi.input": io.BytesIO(request.read()),
        "CONTENT_TYPE": request.headers["Content-Type"],
        "CONTENT_LENGTH": str(len(request.content)),
        "REQUEST_METHOD": "POST",
    }
    _, form, files = parse_form_data(environ)
    path = OpenAPIRequest(request).path
    template = next(p for p in SPEC_DICT["paths"] if re.fullmatch(re.sub(r"\{[^}]+\}", "[^/]+", p), path))
    body = SPEC_DICT["paths"][template]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    names, required = _fields(body)
    sent = {PROMPT_FIELD.sub("text_prompts", name) for name in [*form.keys(), *files.keys()]}
    assert sent <= names, f"{template}: fields the spec does not know: {sent - names}"
    assert required <= sent, f"{template}: required fields missing: {required - sent}"


def assert_error_shape(response: httpx.Response) -> None:
    """For statuses the spec does not list (402, 429): the body is still the spec's Error object."""
    schema = SPEC_DICT["components"]["schemas"]["Error"]
    OAS30Validator(schema).validate(response.json())
