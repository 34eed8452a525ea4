"""Views by concern: `account` (sign-up, account, balance, creating and switching teams), `teams` (the
team page, members and roles, audit), `invites`, `keys` (the team's Stability key), `usage` (spend)."""
