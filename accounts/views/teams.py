"""The team page: members and their roles, the role matrix, invites; member management; the audit log."""

from collections.abc import Callable
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.forms import Form
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path
from django.views.decorators.http import require_GET, require_POST

from accounts.forms import InviteCreateForm, MemberRoleForm, TeamDeleteForm, TeamRenameForm
from accounts.models import AuditEvent, Invite, Membership
from accounts.permissions import require
from accounts.policy import Action, Role, matrix_rows
from accounts.services.invites import invite_link
from accounts.services.teams import (
    TeamRuleBroken,
    membership_leave,
    membership_remove,
    membership_role_set,
    ownership_transfer,
    team_delete,
    team_rename,
)
from accounts.types import AuthedRequest

AUDIT_PAGE_SIZE = 50
INVITES_SHOWN = 50


def assignable_roles(actor: Membership) -> list[Role]:
    """The roles `actor` may give: an owner any, an admin those below owner."""
    return list(Role) if actor.is_owner else [Role.ADMIN, Role.MEMBER, Role.VIEWER]


def may_manage(actor: Membership, member: Membership) -> bool:
    """Whether `actor` may change `member`'s role or remove them (admins act below owner only)."""
    return actor.can(Action.CHANGE_ROLE) and (actor.is_owner or not member.is_owner)


def team_page(request: AuthedRequest, membership: Membership, **forms: Form) -> HttpResponse:
    """The team page, with any bound form given (so its errors show at its fields)."""
    team = membership.team
    members = list(team.memberships.select_related("user").order_by("created_at"))
    roles = assignable_roles(membership)
    rows = [
        (
            member,
            MemberRoleForm(initial={"role": member.role}, assignable=roles, prefix=f"m{member.pk}")
            if may_manage(membership, member) and member.pk != membership.pk
            else None,
        )
        for member in members
    ]
    invites: list[tuple[Invite, str]] = []
    if membership.can(Action.INVITE):
        recent = team.invites.select_related("created_by").order_by("-created_at")[:INVITES_SHOWN]
        invites = [
            (invite, invite_link(invite=invite, absolute_url=request.build_absolute_uri)) for invite in recent
        ]
    context: dict[str, Any] = {
        "team": team,
        "membership": membership,
        "rows": rows,
        "roles": list(Role),
        "matrix": matrix_rows(),
        "invites": invites,
        "invite_form": forms.get("invite_form") or InviteCreateForm(),
        "rename_form": forms.get("rename_form") or TeamRenameForm(initial={"name": team.name}),
        "delete_form": forms.get("delete_form") or TeamDeleteForm(team=team),
    }
    return render(request, "accounts/team_settings.html", context)


def _back(team_id: int, anchor: str = "") -> HttpResponse:
    response = redirect("teams:settings", team_id=team_id)
    response["Location"] += f"#{anchor}" if anchor else ""
    return response


@login_required
@require_GET
def team_settings(request: AuthedRequest, team_id: int) -> HttpResponse:
    return team_page(request, require(request, team_id, Action.VIEW))


@login_required
@require_POST
def team_rename_view(request: AuthedRequest, team_id: int) -> HttpResponse:
    actor = require(request, team_id, Action.RENAME_TEAM)
    form = TeamRenameForm(request.POST)
    if not form.is_valid():
        return team_page(request, actor, rename_form=form)
    team_rename(actor=actor, name=form.cleaned_data["name"])
    messages.success(request, f"The team is now called “{actor.team.name}”.")
    return _back(team_id)


def _attempt(request: AuthedRequest, change: Callable[[], object], success: str) -> bool:
    """Make a change the team's rules may refuse, and tell the person how it went."""
    try:
        change()
    except TeamRuleBroken as exc:
        messages.error(request, exc.message)
        return False
    messages.success(request, success)
    return True


def _member(actor: Membership, membership_id: int) -> Membership:
    return get_object_or_404(
        Membership.objects.select_related("user", "team"), pk=membership_id, team=actor.team
    )


@login_required
@require_POST
def member_role(request: AuthedRequest, team_id: int, membership_id: int) -> HttpResponse:
    actor = require(request, team_id, Action.CHANGE_ROLE)
    member = _member(actor, membership_id)
    form = MemberRoleForm(request.POST, assignable=assignable_roles(actor), prefix=f"m{member.pk}")
    if not form.is_valid():
        messages.error(
            request, f"{member.user.username}: {' '.join(str(error) for error in form.errors['role'])}"
        )
        return _back(team_id, "members-heading")
    role = Role(form.cleaned_data["role"])
    _attempt(
        request,
        lambda: membership_role_set(actor=actor, membership=member, role=role),
        f"{member.user.username} is now {role.label.lower()}.",
    )
    return _back(team_id, "members-heading")


@login_required
@require_POST
def member_remove(request: AuthedRequest, team_id: int, membership_id: int) -> HttpResponse:
    actor = require(request, team_id, Action.REMOVE_MEMBER)
    member = _member(actor, membership_id)
    _attempt(
        request,
        lambda: membership_remove(actor=actor, membership=member),
        f"{member.user.username} was removed. Their images stay in the team, credited to them.",
    )
    return _back(team_id, "members-heading")


@login_required
@require_POST
def member_make_owner(request: AuthedRequest, team_id: int, membership_id: int) -> HttpResponse:
    actor = require(request, team_id, Action.TRANSFER_OWNERSHIP)
    member = _member(actor, membership_id)
    _attempt(
        request,
        lambda: ownership_transfer(actor=actor, to=member),
        f"{member.user.username} now owns {actor.team.name}; you are an admin.",
    )
    return _back(team_id, "members-heading")


@login_required
@require_POST
def team_leave(request: AuthedRequest, team_id: int) -> HttpResponse:
    membership = require(request, team_id, Action.LEAVE)
    if not _attempt(
        request, lambda: membership_leave(membership=membership), f"You left {membership.team.name}."
    ):
        return _back(team_id)
    return redirect("generations:create")


@login_required
@require_POST
def team_delete_view(request: AuthedRequest, team_id: int) -> HttpResponse:
    actor = require(request, team_id, Action.DELETE_TEAM)
    form = TeamDeleteForm(request.POST, team=actor.team)
    if not form.is_valid():
        return team_page(request, actor, delete_form=form)
    name = actor.team.name
    if not _attempt(
        request, lambda: team_delete(actor=actor), f"{name} was deleted, with its images and jobs."
    ):
        return _back(team_id)
    return redirect("generations:create")


@login_required
@require_GET
def team_audit(request: AuthedRequest, team_id: int) -> HttpResponse:
    membership = require(request, team_id, Action.VIEW_AUDIT)
    events = (
        AuditEvent.objects.filter(team=membership.team).select_related("actor").order_by("-created_at", "-pk")
    )
    page = Paginator(events, AUDIT_PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "accounts/team_audit.html", {"team": membership.team, "page": page})


urlpatterns = [
    path("<int:team_id>/", team_settings, name="settings"),
    path("<int:team_id>/rename/", team_rename_view, name="rename"),
    path("<int:team_id>/members/<int:membership_id>/role/", member_role, name="member-role"),
    path("<int:team_id>/members/<int:membership_id>/remove/", member_remove, name="member-remove"),
    path("<int:team_id>/members/<int:membership_id>/make-owner/", member_make_owner, name="make-owner"),
    path("<int:team_id>/leave/", team_leave, name="leave"),
    path("<int:team_id>/delete/", team_delete_view, name="delete"),
    path("<int:team_id>/audit/", team_audit, name="audit"),
]
