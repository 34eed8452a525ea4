"""Public share links for images: create one, revoke one, and who may revoke which.

A link is the only way an image leaves its team; the public page and the file are served only while the
link is live (generations.share_views), so revoking takes effect on the next request."""

from datetime import datetime

from django.db import transaction
from django.utils import timezone
from django.utils.text import Truncator

from accounts.models import AuditEvent, Membership, User
from accounts.policy import Action
from accounts.services.teams import audit_record
from generations.models import GalleryImage, ShareLink


def can_revoke(*, membership: Membership, link: ShareLink) -> bool:
    """Admins and owners revoke any link of their team; whoever may share revokes their own."""
    if membership.team_id != link.team_id:
        return False
    if membership.can(Action.MANAGE_SHARES):
        return True
    return link.created_by_id == membership.user_id and membership.can(Action.SHARE)


def _described(image: GalleryImage) -> str:
    return f"“{Truncator(image.job.prompt).chars(60)}”"


@transaction.atomic
def share_link_create(
    *, image: GalleryImage, user: User, show_details: bool, expires_at: datetime | None
) -> ShareLink:
    """A new public link to `image`, recorded in the team's audit log (without its token)."""
    if expires_at is not None and expires_at <= timezone.now():
        raise ValueError("A share link must expire in the future.")
    link = ShareLink.objects.create(
        image=image, team_id=image.team_id, show_details=show_details, created_by=user, expires_at=expires_at
    )
    details = "with its prompt and settings" if show_details else "image only"
    until = f"until {timezone.localtime(expires_at):%Y-%m-%d %H:%M}" if expires_at else "without expiry"
    audit_record(
        team=image.team,
        actor=user,
        action=AuditEvent.Action.SHARE_CREATED,
        summary=f"Shared {_described(image)} by public link ({details}, {until})",
    )
    return link


@transaction.atomic
def share_link_revoke(*, link: ShareLink, user: User) -> ShareLink:
    """Stop the link at once. Revoking twice changes nothing and is recorded once."""
    revoked = ShareLink.objects.filter(pk=link.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
    link.refresh_from_db(fields=["revoked_at"])
    if revoked:
        maker = link.created_by.username if link.created_by else "a former member"
        audit_record(
            team=link.team,
            actor=user,
            action=AuditEvent.Action.SHARE_REVOKED,
            summary=f"Revoked the public link to {_described(link.image)} made by {maker}",
        )
    return link
