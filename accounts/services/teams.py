"""Teams and who is in them: sign-up, the current team, creating and switching teams, the audit log."""

from django.db import connection, transaction

from accounts.models import AuditEvent, Membership, Team, User
from accounts.policy import Role


def _studio_is_new() -> bool:
    """No account exists yet. Two first sign-ups at once must not both pass: PostgreSQL locks the table
    against inserts until this transaction ends (SQLite's IMMEDIATE transactions already serialise)."""
    if User.objects.exists():
        return False
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(f'LOCK TABLE "{User._meta.db_table}" IN SHARE ROW EXCLUSIVE MODE')
    return not User.objects.exists()


@transaction.atomic
def user_signup(*, username: str, email: str, password: str) -> User:
    """A new user with their personal team, which they own. The first user of a new studio is its
    admin: staff and superuser, who sees the studio's Stability account and the admin site."""
    first = _studio_is_new()
    user = User.objects.create_user(
        username=username, email=email, password=password, is_staff=first, is_superuser=first
    )
    personal_team_create(user=user)
    return user


@transaction.atomic
def personal_team_create(*, user: User) -> Team:
    team = Team.objects.create(name=f"{user.username}'s team", is_personal=True)
    Membership.objects.create(user=user, team=team, role=Role.OWNER)
    User.objects.filter(pk=user.pk, current_team__isnull=True).update(current_team=team)
    user.current_team = user.current_team or team
    return team


@transaction.atomic
def team_create(*, user: User, name: str) -> Team:
    """A shared team owned by its creator, who now works in it."""
    team = Team.objects.create(name=name.strip())
    Membership.objects.create(user=user, team=team, role=Role.OWNER)
    audit_record(
        team=team, actor=user, action=AuditEvent.Action.TEAM_CREATED, summary=f"Created “{team.name}”"
    )
    team_switch(user=user, team=team)
    return team


def team_switch(*, user: User, team: Team) -> None:
    """Work in another of the user's teams from the next request on, in every tab."""
    if not Membership.objects.filter(user=user, team=team).exists():
        raise Membership.DoesNotExist
    User.objects.filter(pk=user.pk).update(current_team=team)
    user.current_team = team


def user_memberships(user: User) -> list[Membership]:
    """Every team the user is in (personal first, then by name), with its team: one query, which gives
    both the current team and the header's team switcher."""
    memberships = list(
        Membership.objects.select_related("team")
        .filter(user=user)
        .order_by("-team__is_personal", "team__name")
    )
    if not memberships:  # a user made outside sign-up (createsuperuser) gets their personal team here
        personal_team_create(user=user)
        return user_memberships(user)
    return memberships


def current_membership(user: User, memberships: list[Membership] | None = None) -> Membership:
    """The membership of the team the user works in: the one they chose, else their personal team."""
    memberships = memberships if memberships is not None else user_memberships(user)
    chosen = next((m for m in memberships if m.team_id == user.current_team_id), None)
    return chosen or next((m for m in memberships if m.team.is_personal), memberships[0])


def audit_record(*, team: Team, actor: User | None, action: str, summary: str) -> AuditEvent:
    return AuditEvent.objects.create(team=team, actor=actor, action=action, summary=summary[:300])


class TeamRuleBroken(Exception):
    """An action the role allows but the team's rules refuse (the last owner leaving, an admin touching an
    owner): `message` is the sentence the person reads."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _owners_left_after(*, team: Team, losing: Membership) -> int:
    """Owners the team keeps once `losing` stops being one; the rows are locked so two owners stepping down
    at once cannot both pass (PostgreSQL; SQLite serialises writers anyway)."""
    owners = Membership.objects.select_for_update().filter(team=team, role=Role.OWNER)
    return sum(1 for owner in owners if owner.pk != losing.pk)


def _check_may_touch(*, actor: Membership, membership: Membership, verb: str) -> None:
    if membership.team_id != actor.team_id:
        raise Membership.DoesNotExist
    if membership.is_owner and not actor.is_owner:
        raise TeamRuleBroken(f"Only an owner can {verb} an owner.")


def _last_owner_message(team: Team) -> str:
    return (
        f"{team.name} must keep at least one owner: make another member owner first "
        "(Transfer ownership), or delete the team."
    )


@transaction.atomic
def membership_role_set(*, actor: Membership, membership: Membership, role: str) -> Membership:
    """Give a member another role. Admins act only below owner; the team keeps an owner."""
    if role not in Role.values:
        raise TeamRuleBroken("Choose one of the roles: owner, admin, member or viewer.")
    _check_may_touch(actor=actor, membership=membership, verb="change the role of")
    if role == Role.OWNER and not actor.is_owner:
        raise TeamRuleBroken("Only an owner can make someone an owner.")
    if membership.role == role:
        return membership
    if membership.is_owner and _owners_left_after(team=membership.team, losing=membership) == 0:
        raise TeamRuleBroken(_last_owner_message(membership.team))
    before = membership.get_role_display()
    membership.role = role
    membership.save(update_fields=["role"])
    audit_record(
        team=membership.team,
        actor=actor.user,
        action=AuditEvent.Action.ROLE_CHANGED,
        summary=f"{membership.user.username}: {before} → {membership.get_role_display()}",
    )
    return membership


def _membership_end(*, membership: Membership) -> None:
    """Delete the membership; a user who was working in the team lands on their personal team next."""
    membership.delete()
    User.objects.filter(pk=membership.user_id, current_team=membership.team_id).update(current_team=None)


@transaction.atomic
def membership_remove(*, actor: Membership, membership: Membership) -> None:
    """Take someone out of the team, from their next request on. Their images stay, credited to them."""
    if membership.pk == actor.pk:
        raise TeamRuleBroken("To take yourself out of the team, use Leave team.")
    _check_may_touch(actor=actor, membership=membership, verb="remove")
    _membership_end(membership=membership)
    audit_record(
        team=membership.team,
        actor=actor.user,
        action=AuditEvent.Action.MEMBER_REMOVED,
        summary=f"Removed {membership.user.username} ({membership.get_role_display().lower()})",
    )


@transaction.atomic
def membership_leave(*, membership: Membership) -> None:
    team = membership.team
    if team.is_personal:
        raise TeamRuleBroken("Your personal team is yours alone: it cannot be left.")
    if membership.is_owner and _owners_left_after(team=team, losing=membership) == 0:
        raise TeamRuleBroken(
            f"You are the last owner of {team.name}: transfer ownership to another member first, "
            "or delete the team."
        )
    _membership_end(membership=membership)
    audit_record(
        team=team,
        actor=membership.user,
        action=AuditEvent.Action.MEMBER_LEFT,
        summary=f"{membership.user.username} left",
    )


@transaction.atomic
def ownership_transfer(*, actor: Membership, to: Membership) -> None:
    """`to` becomes an owner and the acting owner an admin."""
    if not actor.is_owner:
        raise TeamRuleBroken("Only an owner can transfer ownership.")
    if to.team_id != actor.team_id:
        raise Membership.DoesNotExist
    if to.pk == actor.pk:
        raise TeamRuleBroken("Choose another member to make owner.")
    Membership.objects.filter(pk=to.pk).update(role=Role.OWNER)
    Membership.objects.filter(pk=actor.pk).update(role=Role.ADMIN)
    to.role, actor.role = Role.OWNER, Role.ADMIN
    audit_record(
        team=actor.team,
        actor=actor.user,
        action=AuditEvent.Action.OWNERSHIP_TRANSFERRED,
        summary=f"{actor.user.username} made {to.user.username} owner and became admin",
    )


@transaction.atomic
def team_rename(*, actor: Membership, name: str) -> Team:
    team = actor.team
    before, team.name = team.name, name.strip()
    if team.name == before:
        return team
    team.save(update_fields=["name"])
    audit_record(
        team=team,
        actor=actor.user,
        action=AuditEvent.Action.TEAM_RENAMED,
        summary=f"Renamed “{before}” to “{team.name}”",
    )
    return team


@transaction.atomic
def team_delete(*, actor: Membership) -> None:
    """Delete the team with its jobs, images, uploads, share links, invites and audit log; the files go
    once the rows are gone for good (on commit), so a failed delete loses nothing."""
    from generations.models import GalleryImage, GenerationJob, Upload

    team = actor.team
    if team.is_personal:
        raise TeamRuleBroken("Your personal team cannot be deleted.")
    if not actor.is_owner:
        raise TeamRuleBroken("Only an owner can delete the team.")
    files = [file for image in GalleryImage.objects.for_team(team) for file in (image.image, image.thumbnail)]
    files += [
        file for job in GenerationJob.objects.for_team(team) for file in (job.init_image, job.mask_image)
    ]
    files += [upload.image for upload in Upload.objects.for_team(team)]
    team.delete()

    def delete_files() -> None:
        for file in files:
            if file.name:
                file.storage.delete(file.name)

    transaction.on_commit(delete_files)
