"""The team's usage: credits, jobs and images per member for this month and last (page and CSV), and the
monthly allowance admins set for each member."""

import csv
from decimal import Decimal
from typing import Any

from django import forms
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path
from django.views.decorators.http import require_GET, require_POST

from accounts.models import Membership, Team
from accounts.permissions import require
from accounts.policy import Action
from accounts.services.spend import MemberUsage, TeamUsage, Usage, membership_allowance_set, team_usage
from accounts.services.teams import TeamRuleBroken
from accounts.types import AuthedRequest


class AllowanceForm(forms.Form):
    monthly_allowance = forms.DecimalField(
        label="Monthly allowance",
        required=False,
        min_value=0,
        max_digits=12,
        decimal_places=2,
        widget=forms.NumberInput(attrs={"min": "0", "step": "any", "placeholder": "No limit"}),
        error_messages={
            "invalid": "Enter a number of credits, or leave it blank for no limit.",
            "min_value": "An allowance can't be negative; leave it blank for no limit.",
            "max_digits": "That is more credits than an allowance can hold.",
            "max_whole_digits": "That is more credits than an allowance can hold.",
            "max_decimal_places": "Give the allowance to at most two decimal places.",
        },
        help_text="Credits per calendar month; blank for no limit.",
    )


def _allowance_form(membership: Membership, data: Any = None) -> AllowanceForm:
    return AllowanceForm(
        data,
        initial={"monthly_allowance": membership.monthly_allowance},
        auto_id=f"id_allowance_{membership.pk}_%s",
    )


def _page(
    membership: Membership, usage: TeamUsage, forms_by_member: dict[int, AllowanceForm]
) -> dict[str, Any]:
    may_set = membership.can(Action.SET_ALLOWANCE)
    rows = [
        {
            "usage": row,
            "form": (forms_by_member.get(row.membership.pk) or _allowance_form(row.membership))
            if may_set and row.membership is not None
            else None,
        }
        for row in usage.rows
    ]
    return {
        "team": membership.team,
        "membership": membership,
        "usage": usage,
        "rows": rows,
        "may_set": may_set,
    }


@login_required
@require_GET
def usage(request: AuthedRequest, team_id: int) -> HttpResponse:
    membership = require(request, team_id, Action.VIEW_USAGE)
    context = _page(membership, team_usage(team=membership.team), {})
    return render(request, "accounts/team_usage.html", context)


def _csv_text(value: str) -> str:
    # A cell a spreadsheet would read as a formula is kept as text.
    return f"'{value}" if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def _csv_credits(value: Decimal | None) -> str:
    return "" if value is None else f"{value.normalize():f}"


def _csv_row(row: MemberUsage) -> list[str]:
    membership = row.membership
    cells = [
        _csv_text(row.user.username),
        _csv_text(row.user.email),
        membership.get_role_display() if membership else "Former member",
        _csv_credits(membership.monthly_allowance if membership else None),
    ]
    for month in row.months:
        cells += _csv_month(month)
    return cells


def _csv_month(month: Usage) -> list[str]:
    return [_csv_credits(month.credits), _csv_credits(month.possibly), str(month.jobs), str(month.images)]


@login_required
@require_GET
def usage_csv(request: AuthedRequest, team_id: int) -> HttpResponse:
    membership = require(request, team_id, Action.VIEW_USAGE)
    usage = team_usage(team=membership.team)
    first = usage.months[0]
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="studio-usage-team-{team_id}-{first:%Y-%m}.csv"'
    writer = csv.writer(response)
    header = ["Member", "Email", "Role", "Monthly allowance"]
    for start in usage.months:
        header += [
            f"{start:%Y-%m} credits",
            f"{start:%Y-%m} possibly charged",
            f"{start:%Y-%m} jobs",
            f"{start:%Y-%m} images",
        ]
    writer.writerow(header)
    for row in usage.rows:
        writer.writerow(_csv_row(row))
    totals = ["Total", "", "", ""]
    for month in usage.totals:
        totals += _csv_month(month)
    writer.writerow(totals)
    return response


@login_required
@require_POST
def allowance_set(request: AuthedRequest, team_id: int, membership_id: int) -> HttpResponse:
    actor = require(request, team_id, Action.SET_ALLOWANCE)
    team: Team = actor.team
    member = get_object_or_404(Membership.objects.select_related("user", "team"), pk=membership_id, team=team)
    form = _allowance_form(member, request.POST)
    if form.is_valid():
        try:
            membership_allowance_set(
                actor=actor, membership=member, allowance=form.cleaned_data["monthly_allowance"]
            )
        except TeamRuleBroken as exc:
            form.add_error("monthly_allowance", exc.message)
    if form.is_valid() and not request.htmx:
        return redirect("teams:usage", team_id=team.pk)
    forms_by_member = {} if form.is_valid() else {member.pk: form}
    context = _page(actor, team_usage(team=team), forms_by_member)
    if request.htmx:
        context["row"] = next(row for row in context["rows"] if row["usage"].user.pk == member.user_id)
        return render(request, "accounts/team_usage.html#member-row", context)
    return render(request, "accounts/team_usage.html", context)


urlpatterns = [
    path("<int:team_id>/usage/", usage, name="usage"),
    path("<int:team_id>/usage.csv", usage_csv, name="usage-csv"),
    path("<int:team_id>/members/<int:membership_id>/allowance/", allowance_set, name="allowance"),
]
