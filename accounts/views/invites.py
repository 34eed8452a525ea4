"""Inviting people: creating and revoking links (admins), and the page the link opens (anyone).

A link that was revoked, has expired or was used up answers 410 Gone with a sentence saying which;
an unknown token is 404."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path
from django.views.decorators.http import require_http_methods, require_POST

from accounts.forms import InviteCreateForm
from accounts.models import Invite, Membership
from accounts.permissions import require
from accounts.policy import Action
from accounts.services.invites import (
    AlreadyMember,
    InviteUnusable,
    invite_accept,
    invite_create,
    invite_revoke,
)
from accounts.services.teams import TeamRuleBroken, team_switch
from accounts.types import AuthedRequest
from accounts.views.teams import team_page

GONE = 410


@login_required
@require_POST
def invite_new(request: AuthedRequest, team_id: int) -> HttpResponse:
    actor = require(request, team_id, Action.INVITE)
    form = InviteCreateForm(request.POST)
    if not form.is_valid():
        return team_page(request, actor, invite_form=form)
    try:
        created = invite_create(
            actor=actor,
            role=form.cleaned_data["role"],
            days=form.cleaned_data["days"],
            single_use=not form.cleaned_data["reusable"],
            email=form.cleaned_data["email"],
            absolute_url=request.build_absolute_uri,
        )
    except TeamRuleBroken as exc:
        form.add_error(None, exc.message)
        return team_page(request, actor, invite_form=form)
    if created.mail_problem:
        messages.error(request, created.mail_problem)
    elif created.invite.email:
        messages.success(request, f"Invitation sent to {created.invite.email}. The link is also below.")
    else:
        messages.success(request, "Invite link created: copy it from the list below and send it.")
    response = redirect("teams:settings", team_id=team_id)
    response["Location"] += f"#invite-{created.invite.pk}"
    return response


@login_required
@require_POST
def invite_revoke_view(request: AuthedRequest, team_id: int, invite_id: int) -> HttpResponse:
    actor = require(request, team_id, Action.INVITE)
    invite = get_object_or_404(Invite, pk=invite_id, team=actor.team)
    if invite_revoke(actor=actor, invite=invite):
        messages.success(request, "The invite link was revoked: it no longer works.")
    else:
        messages.error(request, "That invite link was already revoked.")
    response = redirect("teams:settings", team_id=team_id)
    response["Location"] += "#invites-heading"
    return response


def _gone(request: HttpRequest, invite: Invite, message: str) -> HttpResponse:
    return render(request, "accounts/invite_gone.html", {"invite": invite, "message": message}, status=GONE)


@require_http_methods(["GET", "POST"])
def join(request: HttpRequest, token: str) -> HttpResponse:
    """What an invite link opens: who invites you and as what; signed in, a button that joins."""
    invite = get_object_or_404(Invite.objects.select_related("team", "created_by"), token=token)
    if not invite.is_usable:
        return _gone(request, invite, InviteUnusable(invite.state).message)
    if not request.user.is_authenticated:
        if request.method == "POST":
            return redirect_to_login(request.get_full_path())
        return render(request, "accounts/invite_join.html", {"invite": invite, "next": request.path})
    member = Membership.objects.filter(user=request.user, team=invite.team).first()
    if request.method == "GET":
        return render(request, "accounts/invite_join.html", {"invite": invite, "member": member})
    try:
        membership = invite_accept(user=request.user, invite=invite)  # type: ignore[arg-type]
    except InviteUnusable as exc:
        return _gone(request, invite, exc.message)
    except AlreadyMember as exc:
        team_switch(user=request.user, team=exc.membership.team)  # type: ignore[arg-type]
        messages.info(request, f"You are already a member of {invite.team.name}; you are working in it now.")
        return redirect("teams:settings", team_id=invite.team_id)
    messages.success(
        request, f"Welcome to {invite.team.name}! You joined as {membership.get_role_display().lower()}."
    )
    return redirect("teams:settings", team_id=invite.team_id)


urlpatterns = [
    path("<int:team_id>/invites/", invite_new, name="invite-create"),
    path("<int:team_id>/invites/<int:invite_id>/revoke/", invite_revoke_view, name="invite-revoke"),
    path("join/<str:token>/", join, name="join"),
]
