"""Read a Stable Image request into the values the client would have sent: multipart only, scalars from
their text, files as bytes. A value that does not read as its kind is kept as it came, so that the
contract refuses it in its turn, with the same sentence the client gives."""

import re
from typing import Any

from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent
from django.http import HttpRequest
from django.http.multipartparser import MultiPartParserError

from generations.stability.v2beta.contract import MAX_REQUEST_BYTES, Operation
from generations.stability.v2beta.fields import ErrorName, Field, Kind
from sandbox.errors import ApiError

NUMBER = re.compile(r"[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?")
INTEGER = re.compile(r"[-+]?\d{1,30}")
IMAGE = "image"
JSON = "json"


def body_size_check(request: HttpRequest) -> None:
    """413 for a body over 10 MiB, read to its end first so that the client hears the answer."""
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    if length > MAX_REQUEST_BYTES:
        while request.read(1 << 20):
            pass
        raise ApiError(413, ErrorName.PAYLOAD_TOO_LARGE, "body: payloads cannot be larger than 10MiB in size")


def multipart_check(request: HttpRequest) -> None:
    content_type = request.META.get("CONTENT_TYPE", "")
    # WSGI servers say text/plain when the client sent no type; an empty body has none to speak of.
    if not content_type or not request.META.get("CONTENT_LENGTH", "").strip("0"):
        raise ApiError(400, ErrorName.BAD_REQUEST, "content-type: required")
    if content_type.split(";")[0].strip().lower() != "multipart/form-data":
        raise ApiError(400, ErrorName.BAD_REQUEST, "content-type: must be multipart/form-data")


CLIENT_HEADERS = ("stability-client-id", "stability-client-user-id", "stability-client-version")


def client_headers_check(request: HttpRequest) -> None:
    """The optional headers naming the calling app, its user and version hold at most 256 characters."""
    for name in CLIENT_HEADERS:
        if len(request.headers.get(name, "")) > 256:
            raise ApiError(400, ErrorName.BAD_REQUEST, f"{name}: must be at most 256 characters")


def accept_of(request: HttpRequest, *, allow_json: bool = True) -> str:
    """IMAGE or JSON from the Accept header (absent, */*, image/* or an image type: the image)."""
    kinds = {part.split(";")[0].strip().lower() for part in request.headers.get("Accept", "").split(",")}
    kinds.discard("")
    if allow_json and "application/json" in kinds:
        return JSON
    if not kinds or kinds & {"*/*", "image/*"} or any(kind.startswith("image/") for kind in kinds):
        return IMAGE
    raise ApiError(400, ErrorName.BAD_REQUEST, "accept: must be image/* or application/json")


def _scalar(field: Field, raw: str) -> Any:
    text = raw.strip()
    match field.kind:
        case Kind.INTEGER if INTEGER.fullmatch(text):
            return int(text)
        case Kind.NUMBER if NUMBER.fullmatch(text):
            return float(text)
        case Kind.FLAG if text.lower() in ("true", "false"):
            return text.lower() == "true"
    return raw


def values_of(request: HttpRequest, operation: Operation) -> dict[str, Any]:
    """The operation's fields found in the form; other fields are ignored, as the API does."""
    try:
        form, files = request.POST, request.FILES
    except (MultiPartParserError, RequestDataTooBig, TooManyFieldsSent) as exc:
        raise ApiError(
            400, ErrorName.BAD_REQUEST, f"body: could not be read as multipart/form-data ({exc})"
        ) from None
    values: dict[str, Any] = {}
    for field in operation.fields:
        upload = files.get(field.name)
        if field.kind is Kind.IMAGE:
            if upload is not None:
                values[field.name] = upload.read()
            elif field.name in form:
                values[field.name] = form[field.name]  # text where a file belongs: refused as such
            continue
        if field.name in form:
            values[field.name] = _scalar(field, form[field.name])
        elif upload is not None:
            values[field.name] = upload.read()  # a file where a value belongs: refused as such
    return values
