"""What every Stable Image operation does around its own drawing, in the API's order: the method, the
10 MiB limit, multipart, the fields (before the key: a bad field with a bad key is 400, notes §8), the
key, the shared rate limit, faults, moderation, credits; then the image in the asked encoding, or, for
an asynchronous operation, its id. Every refusal is the v2beta error {id, name, errors[]}."""

import base64
import functools
import logging
import re
import secrets
import unicodedata
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from PIL import Image

from generations.stability.v2beta.contract import MEDIA_TYPES, Operation
from generations.stability.v2beta.fields import ErrorName, Kind, RuleViolation
from sandbox import render, services
from sandbox.api import Faults
from sandbox.errors import ApiError
from sandbox.models import ApiKey, Organization
from sandbox.v2beta import effects, parsing, results

logger = logging.getLogger(__name__)

MODERATION_MESSAGE = (
    "Your request was flagged by our content moderation system, as a result your request was denied and "
    "you were not charged."
)
LANGUAGE_MESSAGE = "English is the only supported language for this service."
INTERNAL_MESSAGE = "An unexpected server error has occurred, please try again later."


@dataclass(frozen=True)
class Call:
    """A checked, paid-for request: the values with the API's defaults filled in, and the seed to use."""

    operation: Operation
    values: dict[str, Any]
    seed: int

    def text(self, name: str) -> str:
        return self.values.get(name) or ""

    def image(self, name: str) -> Image.Image:
        return effects.open_image(self.values[name])

    def picture(
        self, size: tuple[int, int], *, model: str | None = None, cfg_scale: float = 7.0
    ) -> Image.Image:
        """A new picture from the call's prompt, negative prompt, seed and style preset."""
        return effects.picture(
            model or self.operation.id,
            self.text("prompt") or self.text("background_prompt"),
            self.text("negative_prompt"),
            self.seed,
            size,
            style_preset=self.values.get("style_preset"),
            cfg_scale=cfg_scale,
        )


Draw = Callable[[Call], Image.Image]


def error_response(status: int, name: str, errors: list[str], request_id: str) -> JsonResponse:
    response = JsonResponse({"id": request_id, "name": name, "errors": errors}, status=status)
    response["x-request-id"] = request_id
    return response


def _translated(refusal: ApiError) -> tuple[int, str, str]:
    """Status, name and sentence of a refusal raised by the shared (v1) services, as v2beta words them."""
    match refusal.name:
        case "server_error":
            return 500, ErrorName.INTERNAL_ERROR, INTERNAL_MESSAGE
        case "unauthorized":
            return 401, ErrorName.UNAUTHORIZED, "authorization: invalid or missing header value"
        case "rate_limit_exceeded":
            return (
                429,
                ErrorName.RATE_LIMIT_EXCEEDED,
                f"You have exceeded the rate limit of {settings.SANDBOX_RATE_LIMIT} requests within a "
                f"{settings.SANDBOX_RATE_WINDOW_SECONDS} second period, and have been timed out for "
                f"{settings.SANDBOX_RATE_LOCKOUT_SECONDS} seconds.",
            )
    return refusal.status, refusal.name, refusal.message


def answering_errors(method: str) -> Callable[[Callable[..., HttpResponse]], Callable[..., HttpResponse]]:
    """The method check, and every failure as a v2beta error with its request id (never an HTML 500)."""

    def decorate(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @csrf_exempt
        @functools.wraps(view)
        def wrapped(request: HttpRequest, **kwargs: str) -> HttpResponse:
            request_id = uuid.uuid4().hex
            try:
                response: HttpResponse
                if request.method != method:
                    response = error_response(
                        405, "method_not_allowed", [f"method: use {method}"], request_id
                    )
                    response["Allow"] = method
                    return response
                response = view(request, request_id, **kwargs)
            except RuleViolation as violation:
                response = error_response(violation.status, violation.name, [str(violation)], request_id)
            except ApiError as refusal:
                status, name, message = _translated(refusal)
                response = error_response(status, name, [message], request_id)
            except Exception:
                logger.exception("sandbox %s %s failed", request.method, request.path)
                response = error_response(500, ErrorName.INTERNAL_ERROR, [INTERNAL_MESSAGE], request_id)
            response["x-request-id"] = request_id
            response["Content-Length"] = str(len(response.content))
            return response

        return wrapped

    return decorate


def caller(request: HttpRequest) -> tuple[ApiKey, Organization]:
    """The key (401 otherwise), counted against the limit v1 shares; then the key's faults."""
    key = services.key_authenticate(request.headers.get("Authorization", ""))
    services.rate_limit_count(key)
    Faults.of(key).apply()
    return key, services.organization_for(key, "")


def _words(text: str) -> set[str]:
    return set(re.findall(r"[\w'-]+", text.lower()))


def _is_english(text: str) -> bool:
    """Letters mostly from the Latin script (a stand-in for language detection)."""
    letters = [character for character in text if character.isalpha()]
    latin = sum(1 for character in letters if "LATIN" in unicodedata.name(character, ""))
    return not letters or latin * 2 >= len(letters)


def moderate(operation: Operation, values: dict[str, Any]) -> bool:
    """403 for a banned word in any text, 422 for a text not in English; say whether to blur."""
    texts = {f.name: values[f.name] for f in operation.fields if f.kind is Kind.TEXT and values.get(f.name)}
    words = set().union(*(_words(text) for text in texts.values()))
    if words & {word.lower() for word in settings.SANDBOX_BANNED_WORDS}:
        raise ApiError(403, ErrorName.CONTENT_MODERATION, MODERATION_MESSAGE)
    if not all(_is_english(text) for text in texts.values()):
        raise ApiError(422, ErrorName.INVALID_LANGUAGE, LANGUAGE_MESSAGE)
    shown = set().union(*(_words(text) for name, text in texts.items() if name != "negative_prompt"))
    return bool(shown & {word.lower() for word in settings.SANDBOX_FLAGGED_WORDS})


def image_response(
    data: bytes, output_format: str, seed: int, finish_reason: str, encoding: str
) -> HttpResponse:
    media_type = MEDIA_TYPES[output_format]
    if encoding == parsing.JSON:
        body = {"image": base64.b64encode(data).decode(), "finish_reason": finish_reason, "seed": seed}
        return JsonResponse(body, content_type=f"application/json; type={media_type}")
    response = HttpResponse(data, content_type=media_type)
    response["finish-reason"] = finish_reason
    response["seed"] = str(seed)
    return response


def stable_image(operation: Operation) -> Callable[[Draw], Callable[..., HttpResponse]]:
    """Make `draw` (a Call → the result picture) the view of `operation`."""

    def decorate(draw: Draw) -> Callable[..., HttpResponse]:
        @answering_errors("POST")
        @functools.wraps(draw)
        def view(request: HttpRequest, request_id: str) -> HttpResponse:
            parsing.body_size_check(request)
            parsing.multipart_check(request)
            parsing.client_headers_check(request)
            encoding = parsing.IMAGE if operation.asynchronous else parsing.accept_of(request)
            values = parsing.values_of(request, operation)
            if violations := operation.violations(values):
                raise violations[0]
            key, organization = caller(request)
            flagged = moderate(operation, values)
            price = operation.price(values)
            services.credits_check(organization, price)
            resolved = operation.resolved(values)
            seed = resolved.get("seed") or secrets.randbelow(4_294_967_294) + 1
            picture = draw(Call(operation, resolved, seed))
            if flagged:
                picture, finish_reason = render.blur(picture), "CONTENT_FILTERED"
            else:
                services.credits_charge(organization, price)
                finish_reason = "SUCCESS"
            output_format = resolved["output_format"]
            data = effects.encode(picture, output_format)
            if operation.asynchronous:
                stored = results.result_store(
                    key=key,
                    operation=operation.id,
                    image=data,
                    media_type=MEDIA_TYPES[output_format],
                    finish_reason=finish_reason,
                    seed=seed,
                )
                return JsonResponse({"id": stored.id})
            return image_response(data, output_format, seed, finish_reason, encoding)

        return view

    return decorate
