"""The results of asynchronous operations: kept for the key that asked, in progress for a while, gone
after 24 hours (notes §1.3)."""

import secrets
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from generations.stability.v2beta.contract import RESULT_RETENTION
from generations.stability.v2beta.fields import ErrorName
from sandbox.errors import ApiError
from sandbox.models import ApiKey, AsyncResult

# How long a result shows as in progress. The real service takes 10–46 s; settings may shorten it.
NOT_FOUND_MESSAGE = "id: the generation either does not exist or has expired."


def result_store(
    *, key: ApiKey, operation: str, image: bytes, media_type: str, finish_reason: str, seed: int
) -> AsyncResult:
    """Keep a finished image under a new 64-character id (and forget results past their 24 hours)."""
    now = timezone.now()
    AsyncResult.objects.expired(now).delete()
    in_progress = float(settings.SANDBOX_ASYNC_SECONDS)
    return AsyncResult.objects.create(
        id=secrets.token_hex(32),
        key=key,
        operation=operation,
        image=image,
        media_type=media_type,
        finish_reason=finish_reason,
        seed=seed,
        created_at=now,
        ready_at=now + timedelta(seconds=in_progress),
        expires_at=now + RESULT_RETENTION,
    )


def result_fetch(*, key: ApiKey, generation_id: str) -> AsyncResult:
    """The key's own unexpired result; 404 for an unknown id, another key's or an expired one."""
    stored = AsyncResult.objects.owned_by(key).unexpired(timezone.now()).filter(pk=generation_id).first()
    if stored is None:
        raise ApiError(404, ErrorName.GENERATION_NOT_FOUND, NOT_FOUND_MESSAGE)
    return stored
