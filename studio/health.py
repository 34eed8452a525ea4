"""/healthz: is each part Studio needs answering? JSON, 200 when all are, 503 otherwise."""

import time

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET

from accounts.services import studio_api_key
from generations.stability.client import StabilityClient
from generations.stability.types import StabilityError
from studio.celery import app as celery_app


def _timed(check) -> dict[str, object]:  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    try:
        detail = check()
        state = {"ok": True, **({"detail": detail} if detail else {})}
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
    client = StabilityClient(api_key=studio_api_key(), host=settings.STABILITY_API_HOST, read_timeout=5)
    try:
        engines = client.list_engines()
    except StabilityError as exc:
        raise RuntimeError(exc.message) from exc
    return f"{settings.STABILITY_API_HOST}: {len(engines)} engines"


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    checks = {"database": _timed(_database), "broker": _timed(_broker), "stability_api": _timed(_stability)}
    healthy = all(check["ok"] for check in checks.values())
    return JsonResponse({"ok": healthy, "checks": checks}, status=200 if healthy else 503)
