"""The Stability API as a team sees it: which key and client it uses, its balance and account."""

import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cryptography.fernet import InvalidToken
from django.conf import settings
from django.core.cache import cache
from django.views.decorators.debug import sensitive_variables

from accounts.models import Team
from generations.stability.client import StabilityClient
from generations.stability.types import Account, PermanentError, StabilityError, TransientError

logger = logging.getLogger(__name__)


def studio_api_key() -> str:
    """The studio-wide key: STABILITY_API_KEY, else the sandbox key `make run` wrote on first start."""
    if settings.STABILITY_API_KEY:
        return settings.STABILITY_API_KEY
    try:
        return settings.SANDBOX_KEY_FILE.read_text().strip()
    except FileNotFoundError:
        return ""


# Page-facing calls (balance, account, engine list) give up quickly so a slow engine never stalls a page.
INTERACTIVE_READ_TIMEOUT = 3.0


def key_client(
    api_key: str, *, organization: str = "", interactive: bool = False, read_timeout: float | None = None
) -> StabilityClient:
    """A client for this key against STABILITY_API_HOST; `interactive` gives up quickly, for pages;
    `read_timeout` bounds one answer otherwise (the client's default when None)."""
    return StabilityClient(
        api_key=api_key,
        host=settings.STABILITY_API_HOST,
        organization=organization,
        read_timeout=INTERACTIVE_READ_TIMEOUT if interactive else read_timeout,
    )


@sensitive_variables("api_key")
def team_client(
    team: Team, *, interactive: bool = False, read_timeout: float | None = None
) -> StabilityClient | None:
    """The team's own key (billed to its organization) when it has one, else the studio-wide key.
    None when there is no key, or the team's key cannot be decrypted: never the studio's key instead,
    which would bill the studio for the team."""
    if team.has_own_key:
        try:
            api_key = team.stability_api_key
        except InvalidToken:
            logger.error("team %s: its Stability key cannot be decrypted with STUDIO_FERNET_KEYS", team.pk)
            return None
        return key_client(
            api_key,
            organization=team.stability_organization,
            interactive=interactive,
            read_timeout=read_timeout,
        )
    api_key = studio_api_key()
    if not api_key:
        return None
    return key_client(
        api_key,
        organization=settings.STABILITY_ORGANIZATION,
        interactive=interactive,
        read_timeout=read_timeout,
    )


NO_KEY_MESSAGE = (
    "No Stability API key is configured. Set STABILITY_API_KEY, or run `make run` to use the sandbox."
)
UNREADABLE_KEY_MESSAGE = (
    "The team's Stability key cannot be decrypted (its encryption key is no longer in "
    "STUDIO_FERNET_KEYS). An owner or admin can set the key again on the team's key page."
)


def no_client_message(team: Team) -> str:
    """Why team_client gave no client."""
    return UNREADABLE_KEY_MESSAGE if team.has_own_key else NO_KEY_MESSAGE


@dataclass(frozen=True)
class Balance:
    credits: float | None
    problem: str = ""


# --- Page-facing reads, shared per key --------------------------------------------------------------
# Every page shows the balance, the create form lists engines and the account page shows the account:
# asked of the API on each page, reloads and probes would spend the key's rate limit and lock it out for
# everyone. So each is asked at most once per key and period, by one process; the others wait for its
# answer. Failures are remembered briefly too, so an API that refuses is not asked again on each page.
FAILURE_CACHE_SECONDS = 30
WAIT_FOR_ANSWER_SECONDS = INTERACTIVE_READ_TIMEOUT + 1
BUSY_MESSAGE = "The Stability API is slow to answer; try again in a moment."


def read_cache_key(kind: str, client: StabilityClient) -> str:
    """Per host, key and organization, and only a hash of them: one team never sees another's answers."""
    digest = hashlib.sha256(f"{client.host}|{client.api_key}|{client.organization}".encode()).hexdigest()
    return f"{kind}:{digest[:32]}"


def _cache_call(operation: Callable[[], Any], default: Any = None) -> Any:
    """A cache that cannot be reached (Redis down) counts as empty: the page asks the API itself."""
    try:
        return operation()
    except Exception:
        logger.warning("the cache is unavailable", exc_info=True)
        return default


def _ask(key: str, client: StabilityClient, fetch: Callable[[StabilityClient], Any], seconds: int) -> tuple:
    try:
        found: tuple = ("ok", fetch(client), time.time())
        lifetime = seconds
    except StabilityError as exc:
        logger.warning("%s failed: %s", key.split(":")[0], exc)
        found = ("error", exc.retryable, exc.message, exc.status, exc.name)
        lifetime = FAILURE_CACHE_SECONDS
    _cache_call(lambda: cache.set(key, found, lifetime))
    return found


def shared_read[T](
    kind: str,
    client: StabilityClient,
    fetch: Callable[[StabilityClient], T],
    *,
    seconds: int,
    max_age: float | None = None,
) -> T:
    """`fetch(client)`, cached per key for `seconds` (a failure for FAILURE_CACHE_SECONDS, raised again as
    the same StabilityError). `max_age` asks again when the cached answer is older than that."""
    key = read_cache_key(kind, client)
    found = _cache_call(lambda: cache.get(key))
    stale = (
        found is not None and found[0] == "ok" and max_age is not None and time.time() - found[2] > max_age
    )
    if found is None or stale:
        lock = f"{key}:asking"
        if _cache_call(lambda: cache.add(lock, 1, WAIT_FOR_ANSWER_SECONDS + 2), default=True):
            try:
                found = _ask(key, client, fetch, seconds)
            finally:
                _cache_call(lambda: cache.delete(lock))
        elif found is None:  # another process is asking right now: wait for its answer
            deadline = time.monotonic() + WAIT_FOR_ANSWER_SECONDS
            while found is None and time.monotonic() < deadline:
                time.sleep(0.05)
                found = _cache_call(lambda: cache.get(key))
            found = found or ("error", True, BUSY_MESSAGE, None, "")
    if found[0] == "ok":
        return found[1]
    _, retryable, message, status, name = found
    raise (TransientError if retryable else PermanentError)(message, status=status, name=name)


def read_state(kind: str, client: StabilityClient) -> bool | None:
    """Whether the last shared read of `kind` for this key succeeded (None: not asked lately), without
    asking the API: what anonymous health probes are told."""
    found = _cache_call(lambda: cache.get(read_cache_key(kind, client)))
    return None if found is None else found[0] == "ok"


def studio_client(*, interactive: bool = True) -> StabilityClient | None:
    """A client for the studio-wide key (what teams without their own key use)."""
    api_key = studio_api_key()
    if not api_key:
        return None
    return key_client(api_key, organization=settings.STABILITY_ORGANIZATION, interactive=interactive)


# How old a balance may be when a person asks for a fresh one (the account page, coming back to the tab
# after a top-up): recent enough to show the top-up, yet repeated asks within it reach the API once.
BALANCE_FRESH_SECONDS = 5


def team_balance(team: Team, *, fresh: bool = False) -> Balance:
    """The team's credits, shared by every team and page on the same key for a short while; `fresh` asks
    the API again unless the shared answer is under BALANCE_FRESH_SECONDS old."""
    client = team_client(team, interactive=True)
    if client is None:
        return Balance(None, no_client_message(team))
    try:
        credits = shared_read(
            "balance",
            client,
            lambda c: c.balance(),
            seconds=settings.STABILITY_BALANCE_CACHE_SECONDS,
            max_age=BALANCE_FRESH_SECONDS if fresh else None,
        )
    except StabilityError as exc:
        if exc.status in (401, 403):
            return Balance(None, f"The Stability API refused the key: {exc.message}")
        return Balance(None, f"The balance is unavailable right now: {exc.message}")
    return Balance(credits)


def team_balance_forget(team: Team) -> None:
    """Drop the cached balance of the key and organization the team uses now."""
    client = team_client(team)
    if client is not None:
        _cache_call(lambda: cache.delete(read_cache_key("balance", client)))


def team_stability_account(team: Team) -> tuple[Account | None, str]:
    """The Stability account behind the team's key, or why it cannot be shown."""
    client = team_client(team, interactive=True)
    if client is None:
        return None, no_client_message(team)
    try:
        account = shared_read(
            "account", client, lambda c: c.account(), seconds=settings.STABILITY_ACCOUNT_CACHE_SECONDS
        )
        return account, ""
    except StabilityError as exc:
        return None, f"The Stability API did not return the account: {exc.message}"
