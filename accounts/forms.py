from typing import Any

from django import forms
from django.conf import settings
from django.contrib.auth.forms import UserCreationForm

from accounts.models import Team, User
from accounts.policy import Role

MAX_INVITE_DAYS = 90


class SignupForm(UserCreationForm):
    email = forms.EmailField(help_text="For your account only; never shared.")

    class Meta:
        model = User
        fields = ("username", "email")

    def clean_email(self) -> str:
        email = self.cleaned_data["email"].lower()
        if User.objects.filter(email__iexact=email).exists():
            raise forms.ValidationError("An account with this email already exists. Sign in instead.")
        return email


class TeamCreateForm(forms.Form):
    name = forms.CharField(
        max_length=120,
        help_text="What your teammates will see, e.g. “Poster studio”.",
        error_messages={"required": "Give the team a name."},
    )

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        if not name:
            raise forms.ValidationError("Give the team a name.")
        return name


class TeamRenameForm(TeamCreateForm):
    pass


class MemberRoleForm(forms.Form):
    """A member's new role, from the roles the acting member may give (admins: below owner)."""

    role = forms.ChoiceField(error_messages={"invalid_choice": "You can't give that role."})

    def __init__(self, *args: Any, assignable: list[Role], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        role_field = self.fields["role"]
        assert isinstance(role_field, forms.ChoiceField)
        role_field.choices = [(role.value, role.label) for role in assignable]


class InviteCreateForm(forms.Form):
    role = forms.ChoiceField(
        choices=[(role.value, role.label) for role in (Role.ADMIN, Role.MEMBER, Role.VIEWER)],
        initial=Role.MEMBER,
        help_text="Members generate and spend; viewers only look and download; admins also manage people.",
    )
    days = forms.IntegerField(
        label="Expires after (days)",
        min_value=1,
        max_value=MAX_INVITE_DAYS,
        error_messages={
            "required": "Say how many days the link works.",
            "min_value": "A link works for at least 1 day.",
            "max_value": f"A link works for at most {MAX_INVITE_DAYS} days.",
            "invalid": "Give a whole number of days.",
        },
    )
    reusable = forms.BooleanField(
        required=False,
        label="Reusable",
        help_text="Anyone with the link may join until it expires; unticked, only the first person.",
    )
    email = forms.EmailField(
        required=False,
        help_text="Optional: we email the link to this address.",
        error_messages={"invalid": "Enter an email address like ada@example.com, or leave it empty."},
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["days"].initial = settings.INVITE_LIFETIME_DAYS


class TeamDeleteForm(forms.Form):
    """Deleting a team is typed out: the team's exact name."""

    confirm = forms.CharField(
        label="Type the team's name to confirm",
        error_messages={"required": "Type the team's name to confirm."},
    )

    def __init__(self, *args: Any, team: Team, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.team = team

    def clean_confirm(self) -> str:
        typed: str = self.cleaned_data["confirm"]
        if typed.strip() != self.team.name:
            raise forms.ValidationError(f"That is not the team's name. Type “{self.team.name}” exactly.")
        return typed
