"""The team's own Stability key: set or replace it (checked with the API first), choose the organization it
bills, remove it. The key is a password input never filled back in, and Django's error reports hide it."""

from collections.abc import Sequence
from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import path
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_http_methods, require_POST

from accounts.models import Membership
from accounts.permissions import require
from accounts.policy import Action
from accounts.services import keys as key_services
from accounts.services.stability import team_stability_account
from accounts.types import AuthedRequest
from generations.stability.types import Account, Organization


class TeamKeyForm(forms.Form):
    api_key = forms.CharField(
        label="Stability API key",
        max_length=200,
        # render_value=False: after an error the field comes back empty, never holding the key.
        widget=forms.PasswordInput(
            render_value=False, attrs={"autocomplete": "off", "spellcheck": "false", "autocapitalize": "off"}
        ),
        help_text="From your Stability account’s API keys page. Studio checks it with Stability before "
        "saving, stores it encrypted and only ever shows its last four characters.",
        error_messages={"required": "Enter the team's Stability API key."},
    )

    def clean_api_key(self) -> str:
        key: str = self.cleaned_data["api_key"]
        if any(character.isspace() for character in key):
            raise forms.ValidationError("A key has no spaces or line breaks in it; paste it again.")
        if not key.isascii():
            raise forms.ValidationError(
                "A Stability key has only plain letters, digits and dashes; paste it again."
            )
        return key


def _organization_label(org: Organization) -> str:
    return f"{org.name} ({org.id}){' · default' if org.is_default else ''}"


class TeamOrganizationForm(forms.Form):
    organization = forms.ChoiceField(
        label="Organization to bill",
        help_text="The team's jobs and balance use this organization's credits.",
        error_messages={"invalid_choice": "%(value)s is not one of this key's organizations."},
    )

    def __init__(self, *args: Any, organizations: Sequence[Organization], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["organization"]
        assert isinstance(field, forms.ChoiceField)
        field.choices = [(org.id, _organization_label(org)) for org in organizations]


def _page(
    request: AuthedRequest,
    membership: Membership,
    *,
    key_form: TeamKeyForm | None = None,
    organization_form: TeamOrganizationForm | None = None,
    account: Account | None = None,
) -> HttpResponse:
    team = membership.team
    problem = ""
    if team.has_own_key and account is None:
        account, problem = team_stability_account(team)
    if account is not None and organization_form is None:
        organization_form = TeamOrganizationForm(
            organizations=account.organizations, initial={"organization": team.stability_organization}
        )
    organizations = account.organizations if account else ()
    billed = next((org for org in organizations if org.id == team.stability_organization), None)
    context = {
        "team": team,
        "membership": membership,
        "key_form": key_form or TeamKeyForm(),
        "organization_form": organization_form,
        "billed": billed,
        "problem": problem,
        "can_remove": membership.can(Action.DELETE_KEY),
    }
    return render(request, "accounts/team_key.html", context)


@login_required
@sensitive_post_parameters("api_key")
@require_http_methods(["GET", "POST"])
def key_page(request: AuthedRequest, team_id: int) -> HttpResponse:
    membership = require(request, team_id, Action.SET_KEY)
    form = TeamKeyForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            team = key_services.team_key_set(
                team=membership.team, actor=request.user, api_key=form.cleaned_data["api_key"]
            )
        except key_services.TeamKeyRefused as exc:
            form.add_error("api_key", exc.message)
        else:
            messages.success(
                request, f"Saved. {team.name} now uses its own key {team.stability_api_key_hint}."
            )
            return redirect("teams:key", team_id=team.pk)
    return _page(request, membership, key_form=form)


@login_required
@require_POST
def key_organization(request: AuthedRequest, team_id: int) -> HttpResponse:
    membership = require(request, team_id, Action.SET_KEY)
    team = membership.team
    try:
        account = key_services.team_key_account(team=team)
    except key_services.TeamKeyRefused as exc:
        messages.error(request, exc.message)
        return redirect("teams:key", team_id=team.pk)
    form = TeamOrganizationForm(request.POST, organizations=account.organizations)
    if form.is_valid():
        try:
            key_services.team_key_organization_set(
                team=team, actor=request.user, organization=form.cleaned_data["organization"], account=account
            )
        except key_services.TeamKeyRefused as exc:
            form.add_error("organization", exc.message)
        else:
            messages.success(request, "Saved. The team's jobs now bill the organization you chose.")
            return redirect("teams:key", team_id=team.pk)
    return _page(request, membership, organization_form=form, account=account)


@login_required
@require_POST
def key_remove(request: AuthedRequest, team_id: int) -> HttpResponse:
    membership = require(request, team_id, Action.DELETE_KEY)
    if key_services.team_key_remove(team=membership.team, actor=request.user):
        messages.success(request, "Removed. The team uses the studio's key again.")
    else:
        messages.info(request, "The team had no key of its own.")
    return redirect("teams:key", team_id=membership.team.pk)


urlpatterns = [
    path("<int:team_id>/key/", key_page, name="key"),
    path("<int:team_id>/key/organization/", key_organization, name="key-organization"),
    path("<int:team_id>/key/remove/", key_remove, name="key-remove"),
]
