"""Throttling of the forms that cost something when hammered: sign-up, password change, uploads and job
creation (django-ratelimit, counted in the default cache: the file cache locally, Redis in production),
and the client's address behind trusted proxies, which django-axes' sign-in lock-out uses too."""

import ipaddress
import logging
import math
from collections.abc import Callable
from functools import wraps
from typing import Any, cast

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django_ratelimit.core import get_usage

logger = logging.getLogger(__name__)

TOO_MANY = 429
WHAT = {
    "signup": "Too many accounts were created from your network",
    "password": "Too many password changes were tried",
    "upload": "You are uploading images faster than the studio allows",
    "generate": "You are starting jobs faster than the studio allows",
}

View = Callable[..., HttpResponseBase]
Refusal = Callable[..., HttpResponse]  # (request, message) -> the answer instead of the view


def client_ip(request: HttpRequest) -> str:
    """The address of whoever sent the request: the one the outermost of TRUSTED_PROXY_COUNT proxies saw
    (each proxy appends to X-Forwarded-For what connected to it), else the connection's own."""
    remote = request.META.get("REMOTE_ADDR") or "0.0.0.0"
    proxies = settings.TRUSTED_PROXY_COUNT
    forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
    if proxies and len(forwarded) >= proxies:
        try:
            return str(ipaddress.ip_address(forwarded[-proxies]))
        except ValueError:
            pass
    return remote


def _wait(seconds: int) -> str:
    if seconds < 90:
        return f"{max(seconds, 1)} seconds"
    return f"{math.ceil(seconds / 60)} minutes"


def _refusal_message(name: str, request: HttpRequest, key: str) -> str:
    """Count this request against the limit; the sentence to show when it is over, else ""."""
    try:
        usage = get_usage(
            request,
            group=f"studio.throttle.{name}",
            key=key,
            rate=settings.THROTTLE_RATES[name],
            method="POST",
            increment=True,
        )
    except Exception:  # a cache that cannot count (Redis down) lets the request through, never a 500
        logger.warning("throttle %s could not count this request", name, exc_info=True)
        return ""
    if usage is None or not usage["should_limit"]:
        return ""
    return f"{WHAT[name]}. Try again in {_wait(usage['time_left'])}."


def throttle[V: View](name: str, *, refuse: Refusal, key: str = "user_or_ip") -> Callable[[V], V]:
    """Count the view's POSTs per signed-in user (else per address) against THROTTLE_RATES[name]; past the
    limit, answer `refuse(request, message)` instead of running the view."""

    def decorator(view: V) -> V:
        @wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
            if request.method == "POST" and (message := _refusal_message(name, request, key)):
                logger.info("throttled %s for %s", name, client_ip(request))
                return refuse(request, message)
            return view(request, *args, **kwargs)

        return cast(V, wrapped)

    return decorator
