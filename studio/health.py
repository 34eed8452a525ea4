"""/healthz: is Studio up? 200 when it is, 503 otherwise.

Anyone (a load balancer, a monitor) gets {"ok": true|false} and nothing else, from state at most
HEALTHZ_CACHE_SECONDS old, and never makes Studio call the Stability API: the API's part is what the last
shared engine-list read found (down only when it failed). The studio's staff get each part's details,
with the API asked at most once per HEALTHZ_CACHE_SECONDS however often they reload."""

import logging
import time
from collections.abc import Callable

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET

from accounts.services import NO_KEY_MESSAGE
from accounts.services.stability import read_state, studio_client
from generations.engines import engines_listed
from generations.stability.types import StabilityError
from studio.celery import app as celery_app

logger = logging.getLogger(__name__)
PUBLIC_STATE_KEY = "healthz:public"


def _timed(check: Callable[[], str]) -> dict[str, object]:
    started = time.perf_counter()
    try:
        detail = check()
        state: dict[str, object] = {"ok": True, **({"detail": detail} if detail else {})}
    except Exception as exc:  # a health check reports every failure instead of raising it
        state = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    state["ms"] = round((time.perf_counter() - started) * 1000, 1)
    return state


def _database() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return connection.vendor


def _broker() -> str:
    with celery_app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=3)
        return conn.transport_cls if isinstance(conn.transport_cls, str) else conn.transport.driver_name


def _stability() -> str:
    client = studio_client()
    if client is None:
        raise RuntimeError(NO_KEY_MESSAGE)
    try:
        engines = engines_listed(client, max_age=settings.HEALTHZ_CACHE_SECONDS)
    except StabilityError as exc:
        raise RuntimeError(exc.message) from exc
    return f"{settings.STABILITY_API_HOST}: {len(engines)} engines"


def _api_not_known_down() -> str:
    client = studio_client()
    if client is not None and read_state("engines", client) is False:
        raise RuntimeError("the last engine-list read failed")
    return ""


def _public_state() -> bool:
    """Database, broker and the API's last known state, worked out once per HEALTHZ_CACHE_SECONDS."""
    try:
        cached = cache.get(PUBLIC_STATE_KEY)
    except Exception:  # the cache (Redis) is down: work it out each time
        cached = None
    if cached is not None:
        return bool(cached)
    healthy = all(_timed(check)["ok"] for check in (_database, _broker, _api_not_known_down))
    try:
        cache.set(PUBLIC_STATE_KEY, healthy, settings.HEALTHZ_CACHE_SECONDS)
    except Exception:
        logger.warning("healthz: the cache is unavailable", exc_info=True)
    return healthy


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    if not request.user.is_staff:
        healthy = _public_state()
        return JsonResponse({"ok": healthy}, status=200 if healthy else 503)
    checks = {"database": _timed(_database), "broker": _timed(_broker), "stability_api": _timed(_stability)}
    healthy = all(check["ok"] for check in checks.values())
    return JsonResponse({"ok": healthy, "checks": checks}, status=200 if healthy else 503)
