"""One request budget per Stability key, shared by every process that sends with it.

The platform allows 150 requests per 10 s per key and answers the 151st with 429 and a 60-second
lock-out for everyone using the key. So every request (generations and the pages' balance, account and
engine reads) first takes a slot in a moving window of STABILITY_RATE_LIMIT per
STABILITY_RATE_WINDOW_SECONDS, kept by the `limits` library in STABILITY_RATE_STORAGE: Redis when
REDIS_URL is set (every worker process and host shares it), else process-local memory (one worker
process with threads, as `make run` starts, shares it; pages in other processes are not counted).
A request that finds no slot waits for one, up to a bound; a 429 that announces a lock-out pauses the
key, in the same storage, for as long as it says, so that no process sends into the lock-out.

Keys are stored as a hash, never as themselves.
"""

import hashlib
import logging
import math
import os
import random
import re
import threading
import time
from collections.abc import Callable

from django.conf import settings
from limits import RateLimitItem, RateLimitItemPerSecond
from limits.storage import Storage, storage_from_string
from limits.strategies import MovingWindowRateLimiter

from generations.stability.types import TransientError

logger = logging.getLogger(__name__)

NAMESPACE = "stability"
# A page waits at most this long for a slot: it would rather show "try again" than hang.
PAGE_WAIT_SECONDS = 1.0
# "…; try again in 60 seconds." (the sandbox), "…and have been timed out for 60 seconds." (the platform).
ANNOUNCED_LOCKOUT = re.compile(r"\b(?:in|for)\s+(\d+(?:\.\d+)?)\s+seconds?\b", re.IGNORECASE)
LONGEST_PAUSE = 600.0  # a lock-out announced longer than this is not believed


class KeyPaused(TransientError):
    """The key has no slot free within the wait allowed, or is locked out: nothing was sent (or a 429 came
    back). Retrying after `retry_after` seconds can succeed; it says nothing against the request itself."""

    def __init__(
        self, message: str, *, retry_after: float, status: int | None = None, name: str = ""
    ) -> None:
        super().__init__(message, status=status, name=name)
        self.retry_after = retry_after


def key_id(api_key: str, host: str = "") -> str:
    """What the storage knows a key by."""
    return hashlib.sha256(f"{host}|{api_key}".encode()).hexdigest()[:32]


class _Limiter:
    def __init__(self, url: str) -> None:
        self.url = url
        storage = storage_from_string(url)
        assert isinstance(storage, Storage), "STABILITY_RATE_STORAGE names an asyncio storage"
        self.storage = storage
        self.window = MovingWindowRateLimiter(self.storage)


_limiter: _Limiter | None = None
_limiter_lock = threading.Lock()


def _shared() -> _Limiter:
    """The process's limiter for STABILITY_RATE_STORAGE, made on first use (so after a worker forks)."""
    global _limiter
    with _limiter_lock:
        if _limiter is None or _limiter.url != settings.STABILITY_RATE_STORAGE:
            _limiter = _Limiter(settings.STABILITY_RATE_STORAGE)
        return _limiter


def _forget_after_fork() -> None:
    global _limiter
    _limiter = None


os.register_at_fork(after_in_child=_forget_after_fork)


def _rate() -> RateLimitItem:
    return RateLimitItemPerSecond(settings.STABILITY_RATE_LIMIT, settings.STABILITY_RATE_WINDOW_SECONDS)


def _pace() -> RateLimitItem:
    """At most the window's average rate in any one second. Without it, a full window frees all its slots
    at once, 10 s after a burst, and a burst that the server counts a little late (a queue, a lock) can
    land in the same server window as the one before: a 429 and a 60 s lock-out."""
    per_second = math.ceil(settings.STABILITY_RATE_LIMIT / settings.STABILITY_RATE_WINDOW_SECONDS)
    return RateLimitItemPerSecond(max(1, per_second), 1)


def _storage_call[T](operation: Callable[[_Limiter], T], fallback: T) -> T:
    """The storage unreachable (Redis down) lets requests through: the platform's own limit still stands,
    and pages keep working."""
    try:
        return operation(_shared())
    except Exception:
        logger.warning("the Stability rate limiter's storage is unavailable", exc_info=True)
        return fallback


def _pause_key(key: str) -> str:
    return f"{NAMESPACE}/paused/{key}"


def paused_for(key: str) -> float:
    """Seconds left of the key's pause (0: not paused)."""

    def left(limiter: _Limiter) -> float:
        if not limiter.storage.get(_pause_key(key)):
            return 0.0
        return max(0.0, limiter.storage.get_expiry(_pause_key(key)) - time.time())

    return _storage_call(left, 0.0)


def pause(key: str, seconds: float) -> None:
    """Stop every process sending with the key for `seconds`. A counter that expires: the first 429 of a
    lock-out sets it, and the 429s of requests already in flight do not lengthen it."""
    seconds = min(max(seconds, 1.0), LONGEST_PAUSE)
    logger.warning("Stability key %s… is locked out; every request waits %.0f s", key[:8], seconds)
    _storage_call(lambda limiter: limiter.storage.incr(_pause_key(key), math.ceil(seconds)), 0)


def announced_lockout(message: str, retry_after_header: str | None = None) -> float | None:
    """How long a 429 says the key is locked out: Retry-After, else "in/for N seconds" in its message.
    None when it does not say (a 429 that announces nothing is an ordinary transient error)."""
    for text in (retry_after_header or "", message):
        if text.strip().replace(".", "", 1).isdigit():
            return float(text)
        if found := ANNOUNCED_LOCKOUT.findall(text):
            return float(found[-1])
    return None


def _slot_wait(limiter: _Limiter, key: str) -> float:
    """Take a slot (0), or say how long until the oldest request in the window leaves it. The pace is
    taken first: a pace slot taken in vain costs a moment, never a request over the limit."""
    for item, name in ((_pace(), "paced"), (_rate(), "sent")):
        if not limiter.window.hit(item, NAMESPACE, name, key):
            reset = limiter.window.get_window_stats(item, NAMESPACE, name, key).reset_time
            return max(0.01, reset - time.time())
    return 0.0


_gates: dict[str, threading.Lock] = {}


def _gate(key: str) -> threading.Lock:
    with _limiter_lock:
        return _gates.setdefault(key, threading.Lock())


def acquire(key: str, *, max_wait: float = PAGE_WAIT_SECONDS) -> None:
    """Take a slot for one request, waiting up to `max_wait` seconds for one. KeyPaused when the key is
    locked out or no slot comes free in time: nothing is sent.

    Within a process the threads wanting the same key take turns (a lock): only one at a time asks the
    storage, instead of a hundred waking for every slot that frees and asking together."""
    deadline = time.monotonic() + max_wait
    gate = _gate(key)
    if not gate.acquire(timeout=max_wait):
        raise KeyPaused(
            "Studio is sending this key's requests as fast as the Stability API allows; "
            "this one waits its turn.",
            retry_after=1.0,
        )
    try:
        _acquire_turn(key, deadline)
    finally:
        gate.release()


def _forget_gates_after_fork() -> None:
    _gates.clear()


os.register_at_fork(after_in_child=_forget_gates_after_fork)


def _acquire_turn(key: str, deadline: float) -> None:
    while True:
        if left := paused_for(key):
            raise KeyPaused(
                f"The Stability API locked this key out for exceeding its rate limit; "
                f"Studio waits {left:.0f} s before sending again.",
                retry_after=left,
            )
        wait = _storage_call(lambda limiter: _slot_wait(limiter, key), 0.0)
        if not wait:
            return
        wait += random.uniform(0, 0.05)  # the processes waiting for the same slot do not wake together
        if time.monotonic() + wait > deadline:
            raise KeyPaused(
                "Studio is sending this key's requests as fast as the Stability API allows; "
                "this one waits its turn.",
                retry_after=wait,
            )
        time.sleep(wait)
