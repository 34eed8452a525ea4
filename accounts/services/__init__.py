"""Writes and look-ups for accounts, by concern: `teams` (sign-up, current team, audit), `stability`
(the team's client, balance and account). Import from the submodule; the names below are the common ones."""

from accounts.services.stability import (
    INTERACTIVE_READ_TIMEOUT,
    NO_KEY_MESSAGE,
    Balance,
    studio_api_key,
    team_balance,
    team_balance_forget,
    team_client,
    team_stability_account,
)
from accounts.services.teams import current_membership, personal_team_create, user_memberships, user_signup

__all__ = [
    "INTERACTIVE_READ_TIMEOUT",
    "NO_KEY_MESSAGE",
    "Balance",
    "current_membership",
    "personal_team_create",
    "studio_api_key",
    "team_balance",
    "team_balance_forget",
    "team_client",
    "team_stability_account",
    "user_memberships",
    "user_signup",
]
