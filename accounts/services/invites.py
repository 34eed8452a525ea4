"""Invitations: a link (copied, or sent by email) that lets whoever opens it join a team with a role."""

import smtplib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.db.models import F
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from accounts.models import AuditEvent, Invite, Membership, User
from accounts.policy import Action, Role
from accounts.services.teams import TeamRuleBroken, audit_record, team_switch


class InviteUnusable(Exception):
    """The link was revoked, has expired or was used up: `message` says which, plainly."""

    MESSAGES: dict[str, str] = {
        Invite.State.REVOKED: "This invitation was revoked by the team. Ask them for a new link.",
        Invite.State.EXPIRED: "This invitation has expired. Ask the team for a new link.",
        Invite.State.USED: "This invitation has already been used. Ask the team for a new link.",
    }

    def __init__(self, state: str) -> None:
        self.state = state
        self.message = self.MESSAGES.get(state, "This invitation can no longer be used.")
        super().__init__(self.message)


class AlreadyMember(Exception):
    def __init__(self, membership: Membership) -> None:
        self.membership = membership
        super().__init__(f"You are already a member of {membership.team.name}.")


@dataclass(frozen=True)
class InviteCreated:
    invite: Invite
    link: str
    mail_problem: str = ""  # why the email could not be sent, when it could not


def invite_link(*, invite: Invite, absolute_url: Callable[[str], str]) -> str:
    """The invite's full URL; `absolute_url` is `request.build_absolute_uri`."""
    return absolute_url(reverse("teams:join", kwargs={"token": invite.token}))


def invite_create(
    *,
    actor: Membership,
    role: str,
    days: int,
    single_use: bool,
    email: str = "",
    absolute_url: Callable[[str], str],
) -> InviteCreated:
    """A new invitation to the actor's team; with an email, the link is also mailed there."""
    team = actor.team
    if not actor.can(Action.INVITE):
        raise TeamRuleBroken("A personal team is private: nobody can be invited into it.")
    if role not in (Role.ADMIN, Role.MEMBER, Role.VIEWER):
        raise TeamRuleBroken("Invite as admin, member or viewer; ownership is transferred, not invited.")
    with transaction.atomic():
        invite = Invite.objects.create(
            team=team,
            role=role,
            email=email,
            single_use=single_use,
            created_by=actor.user,
            expires_at=timezone.now() + timedelta(days=days),
        )
        use = "single use" if single_use else "reusable"
        audit_record(
            team=team,
            actor=actor.user,
            action=AuditEvent.Action.INVITE_CREATED,
            summary=f"Invite link as {invite.get_role_display().lower()}, {use}, for {days} days",
        )
    link = invite_link(invite=invite, absolute_url=absolute_url)
    if not email:
        return InviteCreated(invite=invite, link=link)
    return InviteCreated(invite=invite, link=link, mail_problem=invite_send(invite=invite, link=link))


def invite_send(*, invite: Invite, link: str) -> str:
    """Mail the link to the invite's address: "" when sent, else a sentence saying why it was not."""
    context = {"invite": invite, "team": invite.team, "link": link, "inviter": invite.created_by}
    subject = render_to_string("accounts/email/invite_subject.txt", context).strip()
    body = render_to_string("accounts/email/invite_body.txt", context)
    try:
        send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, [invite.email])
    except (smtplib.SMTPException, OSError) as exc:
        return (
            f"The invitation was created but the email to {invite.email} could not be sent ({exc}). "
            "Copy the link below and send it yourself."
        )
    audit_record(
        team=invite.team,
        actor=invite.created_by,
        action=AuditEvent.Action.INVITE_SENT,
        summary=f"Sent an invite to {invite.email} as {invite.get_role_display().lower()}",
    )
    return ""


def invite_revoke(*, actor: Membership, invite: Invite) -> bool:
    """Stop the link working from now on; False when it was already revoked."""
    if invite.team_id != actor.team_id:
        raise Invite.DoesNotExist
    now = timezone.now()
    with transaction.atomic():
        revoked = Invite.objects.filter(pk=invite.pk, revoked_at__isnull=True).update(revoked_at=now)
        if not revoked:
            return False
        invite.revoked_at = now
        audit_record(
            team=invite.team,
            actor=actor.user,
            action=AuditEvent.Action.INVITE_REVOKED,
            summary=f"Revoked an invite as {invite.get_role_display().lower()}"
            + (f" sent to {invite.email}" if invite.email else ""),
        )
    return True


def invite_accept(*, user: User, invite: Invite) -> Membership:
    """Join the invite's team with its role and work in it from now on.

    The use is counted by a conditional UPDATE on a still-usable invite, so two people opening a
    single-use link at once cannot both get in."""
    team = invite.team
    existing = Membership.objects.select_related("team").filter(user=user, team=team).first()
    if existing is not None:
        raise AlreadyMember(existing)
    try:
        with transaction.atomic():
            counted = Invite.objects.usable().filter(pk=invite.pk).update(uses=F("uses") + 1)
            if not counted:
                invite.refresh_from_db()
                raise InviteUnusable(invite.state)
            membership = Membership.objects.create(user=user, team=team, role=invite.role)
            team_switch(user=user, team=team)
            audit_record(
                team=team,
                actor=user,
                action=AuditEvent.Action.INVITE_ACCEPTED,
                summary=f"{user.username} joined as {membership.get_role_display().lower()}",
            )
    except IntegrityError as exc:  # the same person accepting twice at once: the other request won
        existing = Membership.objects.select_related("team").get(user=user, team=team)
        raise AlreadyMember(existing) from exc
    invite.uses += 1
    return membership
