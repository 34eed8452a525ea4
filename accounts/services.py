"""Writes and engine look-ups for users and teams: sign-up, the team's Stability client, its balance."""

import hashlib
import logging
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache
from django.db import transaction

from accounts.models import Membership, Team, User
from generations.stability.client import StabilityClient
from generations.stability.types import Account, StabilityError

logger = logging.getLogger(__name__)


@transaction.atomic
def user_signup(*, username: str, email: str, password: str) -> User:
    """A new user with their personal team, which they own."""
    user = User.objects.create_user(username=username, email=email, password=password)
    personal_team_create(user=user)
    return user


@transaction.atomic
def personal_team_create(*, user: User) -> Team:
    team = Team.objects.create(name=f"{user.username}'s team", is_personal=True)
    Membership.objects.create(user=user, team=team, role=Membership.Role.OWNER)
    return team


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


def team_client(team: Team, *, interactive: bool = False) -> StabilityClient | None:
    api_key = team.stability_api_key or studio_api_key()
    if not api_key:
        return None
    return StabilityClient(
        api_key=api_key,
        host=settings.STABILITY_API_HOST,
        organization=team.stability_organization or settings.STABILITY_ORGANIZATION,
        read_timeout=INTERACTIVE_READ_TIMEOUT if interactive else None,
    )


NO_KEY_MESSAGE = (
    "No Stability API key is configured. Set STABILITY_API_KEY, or run `make run` to use the sandbox."
)


@dataclass(frozen=True)
class Balance:
    credits: float | None
    problem: str = ""


def _balance_cache_key(client: StabilityClient) -> str:
    digest = hashlib.sha256(f"{client.host}|{client.api_key}|{client.organization}".encode()).hexdigest()
    return f"balance:{digest[:32]}"


def team_balance(team: Team) -> Balance:
    """The team's credits, cached briefly: the header asks on every page."""
    client = team_client(team, interactive=True)
    if client is None:
        return Balance(None, NO_KEY_MESSAGE)
    key = _balance_cache_key(client)
    cached = cache.get(key)
    if cached is not None:
        return Balance(cached)
    try:
        credits = client.balance()
    except StabilityError as exc:
        logger.warning("balance for team %s failed: %s", team.pk, exc)
        if exc.status in (401, 403):
            return Balance(None, f"The Stability API refused the key: {exc.message}")
        return Balance(None, f"The balance is unavailable right now: {exc.message}")
    cache.set(key, credits, settings.STABILITY_BALANCE_CACHE_SECONDS)
    return Balance(credits)


def team_balance_forget(team: Team) -> None:
    client = team_client(team)
    if client is not None:
        cache.delete(_balance_cache_key(client))


def team_stability_account(team: Team) -> tuple[Account | None, str]:
    """The Stability account behind the team's key, or why it cannot be shown."""
    client = team_client(team, interactive=True)
    if client is None:
        return None, NO_KEY_MESSAGE
    try:
        return client.account(), ""
    except StabilityError as exc:
        return None, f"The Stability API did not return the account: {exc.message}"
