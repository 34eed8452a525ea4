"""What every v1 operation does before and after its own work: method, key, rate limit, faults, errors."""

import functools
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from typing import Any

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from generations.stability.contract import ErrorName, RuleViolation
from sandbox import services
from sandbox.errors import ApiError, error_response
from sandbox.models import ApiKey, Organization

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Faults:
    latency_ms: int = 0
    jitter_ms: int = 0
    error_rate: float = 0.0
    throttle_rate: float = 0.0
    hang_rate: float = 0.0

    @classmethod
    def parse(cls, text: str) -> "Faults":
        """`latency_ms=200,jitter_ms=100,error_rate=0.1` (SANDBOX_FAULTS); unknown names are an error."""
        known = {f.name for f in fields(cls)}
        faults = cls()
        for item in filter(None, (part.strip() for part in text.split(","))):
            name, _, value = (part.strip() for part in item.partition("="))
            if name not in known:
                raise ValueError(f"SANDBOX_FAULTS: unknown fault {name!r}; known: {', '.join(sorted(known))}")
            number: Any = int(value) if name.endswith("_ms") else float(value)
            faults = replace(faults, **{name: number})
        return faults

    @classmethod
    def of(cls, key: ApiKey) -> "Faults":
        """The key's own faults when it has any, else those of SANDBOX_FAULTS."""
        own = cls(**{f.name: getattr(key, f.name) for f in fields(cls)})
        return own if own != cls() else cls.parse(settings.SANDBOX_FAULTS)

    def apply(self) -> None:
        if self.latency_ms or self.jitter_ms:
            _idle((self.latency_ms + random.uniform(0, self.jitter_ms)) / 1000)
        if random.random() < self.hang_rate:
            _idle(settings.SANDBOX_HANG_SECONDS)
            raise ApiError(
                500, ErrorName.SERVER_ERROR, "An unexpected server error occurred, please try again."
            )
        if random.random() < self.error_rate:
            raise ApiError(
                500, ErrorName.SERVER_ERROR, "An unexpected server error occurred, please try again."
            )
        if random.random() < self.throttle_rate:
            raise ApiError(429, ErrorName.RATE_LIMIT_EXCEEDED, "Too many requests; please slow down.")


def _idle(seconds: float) -> None:
    """Wait without holding a database connection: a slow or hung answer must not tie one up."""
    if not connection.in_atomic_block:
        connection.close()
    time.sleep(seconds)


@dataclass(frozen=True)
class Caller:
    key: ApiKey
    organization: Organization


Operation = Callable[..., HttpResponse]


def operation(
    method: str, *, organization_header: bool = True, foreign_org_status: int = 403
) -> Callable[[Operation], Callable[..., HttpResponse]]:
    """Wrap a view as a v1 operation: it receives the caller and answers every failure in the v1 shape.

    An Organization the key has no part in is 403 where the spec declares 403; engines/list and
    user/balance declare only 401 for a key that may not act, so there it is 401."""

    def decorate(view: Operation) -> Callable[..., HttpResponse]:
        @csrf_exempt
        @functools.wraps(view)
        def wrapped(request: HttpRequest, **kwargs: str) -> HttpResponse:
            try:
                if request.method != method:
                    response: HttpResponse = error_response(
                        ApiError(405, "method_not_allowed", f"Use {method}.")
                    )
                    response["Allow"] = method
                    return response
                key = services.key_authenticate(request.headers.get("Authorization", ""))
                services.rate_limit_count(key)
                Faults.of(key).apply()
                org_id = request.headers.get("Organization", "") if organization_header else ""
                caller = Caller(key, services.organization_for(key, org_id, foreign_org_status))
                response = view(request, caller, **kwargs)
            except ApiError as refusal:
                response = error_response(refusal)
            except RuleViolation as violation:
                status = 404 if violation.name == ErrorName.NOT_FOUND else 400
                response = error_response(ApiError(status, violation.name, str(violation)))
            except Exception:
                logger.exception("sandbox %s %s failed", request.method, request.path)
                crash = ApiError(
                    500, ErrorName.SERVER_ERROR, "An unexpected server error occurred, please try again."
                )
                response = error_response(crash)
            response["Content-Length"] = str(len(response.content))
            return response

        return wrapped

    return decorate
