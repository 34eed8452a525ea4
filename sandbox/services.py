"""Keys, the rate limit and credits: the sandbox's writes."""

import secrets
from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from generations.stability.contract import ErrorName
from sandbox.errors import ApiError
from sandbox.models import Account, ApiKey, Organization, OrganizationMembership


@transaction.atomic
def key_create(*, credits: float, email: str = "sandbox@example.com") -> str:
    """A new key for the account with this email (made on first use), its default organization funded."""
    account = Account.objects.filter(email=email).first()
    if account is None:
        account = Account.objects.create(id=f"user-{secrets.token_hex(6)}", email=email)
        organization = Organization.objects.create(
            id=f"org-{secrets.token_hex(6)}", name=f"{email.split('@')[0]}'s organization", credits=Decimal(0)
        )
        OrganizationMembership.objects.create(
            account=account, organization=organization, role="OWNER", is_default=True
        )
    organization = account.memberships.get(is_default=True).organization
    Organization.objects.filter(pk=organization.pk).update(credits=F("credits") + Decimal(str(credits)))
    key = f"sk-{secrets.token_urlsafe(36)}"
    ApiKey.objects.create(key=key, account=account)
    return key


def key_authenticate(header: str) -> ApiKey:
    """The key from `Authorization: Bearer sk-…` (a bare key is accepted too, as the real API does)."""
    if not header:
        raise ApiError(401, ErrorName.UNAUTHORIZED, "missing authorization header")
    token = header.removeprefix("Bearer ").strip()
    key = ApiKey.objects.select_related("account").filter(key=token).first()
    if key is None:
        raise ApiError(401, ErrorName.UNAUTHORIZED, "Incorrect API key provided.")
    return key


def rate_limit_count(key: ApiKey) -> None:
    """Count a request: over SANDBOX_RATE_LIMIT in SANDBOX_RATE_WINDOW_SECONDS locks the key out."""
    now = timezone.now()
    window = timedelta(seconds=settings.SANDBOX_RATE_WINDOW_SECONDS)
    with transaction.atomic():
        row = ApiKey.objects.select_for_update().get(pk=key.pk)
        if row.locked_until and row.locked_until > now:
            locked = True
        else:
            if row.window_started_at is None or now - row.window_started_at >= window:
                row.window_started_at, row.window_count = now, 0
            row.window_count += 1
            locked = row.window_count > settings.SANDBOX_RATE_LIMIT
            if locked:
                row.locked_until = now + timedelta(seconds=settings.SANDBOX_RATE_LOCKOUT_SECONDS)
            row.save(update_fields=["window_started_at", "window_count", "locked_until"])
    if locked:
        raise ApiError(
            429,
            ErrorName.RATE_LIMIT_EXCEEDED,
            f"You have exceeded the rate limit of {settings.SANDBOX_RATE_LIMIT} requests within "
            f"{settings.SANDBOX_RATE_WINDOW_SECONDS} seconds; try again in "
            f"{settings.SANDBOX_RATE_LOCKOUT_SECONDS} seconds.",
        )


def organization_for(key: ApiKey, organization_id: str, refusal_status: int = 403) -> Organization:
    memberships = key.account.memberships.select_related("organization")
    membership = (
        memberships.filter(organization_id=organization_id).first()
        if organization_id
        else memberships.filter(is_default=True).first()
    )
    if membership is None and refusal_status == 401:
        raise ApiError(
            401, ErrorName.UNAUTHORIZED, f"This key cannot act for organization {organization_id}."
        )
    if membership is None:
        raise ApiError(403, ErrorName.PERMISSION_DENIED, "You do not have permission to access this resource")
    return membership.organization


def _payment_required(cost: Decimal, organization: Organization) -> ApiError:
    return ApiError(
        402,
        ErrorName.PAYMENT_REQUIRED,
        f"You lack sufficient credits to make this request: it costs {cost.normalize():f} credits and "
        f"{organization.name} has {organization.credits.normalize():f}.",
    )


def credits_check(organization: Organization, cost: Decimal) -> None:
    """Refuse before any work when the balance cannot pay for the request."""
    organization.refresh_from_db(fields=["credits"])
    if cost > organization.credits:
        raise _payment_required(cost, organization)


def credits_charge(organization: Organization, cost: Decimal) -> None:
    """Charge atomically; a balance spent meanwhile by another request refuses and charges nothing."""
    if cost <= 0:
        return
    charged = Organization.objects.filter(pk=organization.pk, credits__gte=cost).update(
        credits=F("credits") - cost
    )
    if not charged:
        organization.refresh_from_db(fields=["credits"])
        raise _payment_required(cost, organization)
