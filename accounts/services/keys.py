"""A team's own Stability key: set (only once the API accepts it), the organization it bills, removal,
and re-encryption with the newest key material. The plain key lives only in local variables here and in
the client; the row holds it encrypted (accounts.crypto) and a masked hint for pages."""

from dataclasses import dataclass, field

from cryptography.fernet import InvalidToken
from django.db import transaction
from django.views.decorators.debug import sensitive_variables

from accounts import crypto
from accounts.models import AuditEvent, Team, User
from accounts.services.stability import UNREADABLE_KEY_MESSAGE, key_client, team_balance_forget
from accounts.services.teams import audit_record
from generations.stability.types import Account, Organization, PermanentError, StabilityError


class TeamKeyRefused(Exception):
    """Nothing was stored; `message` says why, for the form field named `field`."""

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


@sensitive_variables("api_key")
def key_account(*, api_key: str) -> Account:
    """The account behind a key, read through the API (quickly: a person is waiting)."""
    if not api_key.strip():
        raise TeamKeyRefused("Enter the team's Stability API key.", field="api_key")
    try:
        return key_client(api_key, interactive=True).account()
    except StabilityError as exc:
        # An API may quote the key it refuses; the page must not.
        message = exc.message.replace(api_key, crypto.mask(api_key))
        if isinstance(exc, PermanentError):
            raise TeamKeyRefused(f"The Stability API refused this key: {message}", field="api_key") from None
        raise TeamKeyRefused(
            f"The key could not be checked right now, so it was not saved: {message}", field="api_key"
        ) from None


def organization_pick(account: Account, wanted: str, *, keep: str = "") -> Organization | None:
    """The organization to bill: `wanted` if the key belongs to it, else `keep` if it does, else the
    key's default. TeamKeyRefused when `wanted` is not one of the key's organizations."""
    by_id = {org.id: org for org in account.organizations}
    if wanted:
        if wanted not in by_id:
            names = ", ".join(f"{org.name} ({org.id})" for org in account.organizations) or "none"
            raise TeamKeyRefused(
                f"{wanted} is not one of this key's organizations. The key belongs to: {names}.",
                field="organization",
            )
        return by_id[wanted]
    if keep in by_id:
        return by_id[keep]
    return next((org for org in account.organizations if org.is_default), None) or next(
        iter(account.organizations), None
    )


def _billed(org: Organization | None) -> str:
    return f"{org.name} ({org.id})" if org else "the key's default organization"


@sensitive_variables("api_key")
def team_key_set(*, team: Team, actor: User, api_key: str, organization: str = "") -> Team:
    """Store the team's key, encrypted, once the API has read its account with it; the team's jobs
    then bill `organization` (one of the key's own; blank keeps the current one if the key belongs to it,
    else the key's default). Raises TeamKeyRefused, storing nothing, when the key or organization is wrong."""
    account = key_account(api_key=api_key)  # before the transaction: no lock held across the network
    org = organization_pick(account, organization, keep=team.stability_organization)
    replacing = team.has_own_key
    team_balance_forget(team)
    with transaction.atomic():
        team.set_stability_api_key(api_key)
        team.stability_organization = org.id if org else ""
        team.save(
            update_fields=["stability_api_key_encrypted", "stability_api_key_hint", "stability_organization"]
        )
        audit_record(
            team=team,
            actor=actor,
            action=AuditEvent.Action.KEY_CHANGED if replacing else AuditEvent.Action.KEY_SET,
            summary=f"{'Replaced' if replacing else 'Set'} the team's Stability key with "
            f"{team.stability_api_key_hint}, billing {_billed(org)}",
        )
    team_balance_forget(team)
    return team


@sensitive_variables("api_key")
def team_key_account(*, team: Team) -> Account:
    """The account behind the team's own stored key."""
    if not team.has_own_key:
        raise TeamKeyRefused(
            "The team uses the studio's key; set a key of its own first.", field="organization"
        )
    try:
        api_key = team.stability_api_key
    except InvalidToken:
        raise TeamKeyRefused(UNREADABLE_KEY_MESSAGE, field="organization") from None
    try:
        return key_account(api_key=api_key)
    except TeamKeyRefused as exc:
        raise TeamKeyRefused(exc.message, field="organization") from None


def team_key_organization_set(
    *, team: Team, actor: User, organization: str, account: Account | None = None
) -> Team:
    """Bill another of the stored key's organizations; TeamKeyRefused if the key does not belong to it.
    `account` is the stored key's account when the caller has just read it."""
    org = organization_pick(account or team_key_account(team=team), organization)
    if org is None or org.id == team.stability_organization:
        return team
    team_balance_forget(team)
    with transaction.atomic():
        team.stability_organization = org.id
        team.save(update_fields=["stability_organization"])
        audit_record(
            team=team,
            actor=actor,
            action=AuditEvent.Action.KEY_CHANGED,
            summary=f"The team's Stability key now bills {_billed(org)}",
        )
    team_balance_forget(team)
    return team


def team_key_remove(*, team: Team, actor: User) -> bool:
    """Forget the team's key: its jobs use the studio-wide key again. False if it had none."""
    if not team.has_own_key:
        return False
    hint = team.stability_api_key_hint
    team_balance_forget(team)
    with transaction.atomic():
        team.set_stability_api_key("")
        team.stability_organization = ""
        team.save(
            update_fields=["stability_api_key_encrypted", "stability_api_key_hint", "stability_organization"]
        )
        audit_record(
            team=team,
            actor=actor,
            action=AuditEvent.Action.KEY_REMOVED,
            summary=f"Removed the team's Stability key {hint}; the team uses the studio's key",
        )
    team_balance_forget(team)
    return True


@dataclass
class Rotation:
    rotated: int = 0
    unreadable: list[int] = field(default_factory=list)  # team ids no key in STUDIO_FERNET_KEYS opens


def team_keys_rotate() -> Rotation:
    """Re-encrypt every team's key with the newest of STUDIO_FERNET_KEYS (MultiFernet.rotate). Each row
    is updated only if it still holds what was read, so a key set meanwhile is never overwritten."""
    result = Rotation()
    rows = Team.objects.exclude(stability_api_key_encrypted="").values_list(
        "pk", "stability_api_key_encrypted"
    )
    for pk, token in rows.iterator():
        try:
            rotated = crypto.rotate(token)
        except InvalidToken:
            result.unreadable.append(pk)
            continue
        result.rotated += Team.objects.filter(pk=pk, stability_api_key_encrypted=token).update(
            stability_api_key_encrypted=rotated
        )
    return result
