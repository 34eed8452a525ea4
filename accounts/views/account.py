from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from axes.helpers import get_client_username, get_cool_off
from django.conf import settings
from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import AuthenticationForm, PasswordChangeForm
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import Resolver404, resolve, reverse, reverse_lazy
from django.utils.csp import CSP, build_policy
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts import services
from accounts.forms import SignupForm, TeamCreateForm
from accounts.models import Invite, Membership, Team, User
from accounts.policy import Action
from accounts.services.teams import team_create as create_team
from accounts.services.teams import team_switch as switch_team
from accounts.types import AuthedRequest
from studio.throttling import TOO_MANY, throttle

FORBIDDEN = 403


def _safe_next(request: HttpRequest) -> str:
    """Where to go after signing up (an invite link, say): only a path on this site."""
    target = request.POST.get("next") or request.GET.get("next") or ""
    allowed = url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    )
    return target if allowed else ""


def _invite_at(url: str) -> Invite | None:
    """The usable invite whose join page `url` is."""
    try:
        match = resolve(urlsplit(url).path)
    except Resolver404:
        return None
    if match.view_name != "teams:join":
        return None
    return Invite.objects.usable().filter(token=match.kwargs.get("token", "")).first()


def signup_refusal(next_url: str) -> str:
    """Why this visitor cannot make an account (SIGNUP_MODE), or "" when they can. The first account of a
    new studio can always be made: it is the studio's admin."""
    mode = settings.SIGNUP_MODE
    if mode == "open" or not User.objects.exists():
        return ""
    if mode == "invite":
        if _invite_at(next_url) is not None:
            return ""
        return (
            "Accounts here are by invitation: open the invite link a team sent you, and sign up from there."
        )
    return "This studio is not taking new accounts. Ask its administrator for one."


def _signup_throttled(request: HttpRequest, message: str) -> HttpResponse:
    form = SignupForm(
        initial={"username": request.POST.get("username", ""), "email": request.POST.get("email", "")}
    )
    context = {"form": form, "next": _safe_next(request), "throttled": message}
    return render(request, "accounts/signup.html", context, status=TOO_MANY)


@require_http_methods(["GET", "POST"])
@throttle("signup", refuse=_signup_throttled)
def signup(request: HttpRequest) -> HttpResponse:
    next_url = _safe_next(request)
    if request.user.is_authenticated:
        return redirect(next_url or "generations:create")
    if refusal := signup_refusal(next_url):
        return render(request, "accounts/signup.html", {"refusal": refusal}, status=FORBIDDEN)
    form = SignupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = services.user_signup(
            username=form.cleaned_data["username"],
            email=form.cleaned_data["email"],
            password=form.cleaned_data["password1"],
        )
        login(request, user, backend="accounts.backends.UserWithTeamBackend")
        return redirect(next_url or "generations:create")
    return render(request, "accounts/signup.html", {"form": form, "next": next_url})


class LoginView(auth_views.LoginView):
    """Django's sign-in; the "create an account" link shows only to those who may (SIGNUP_MODE)."""

    redirect_authenticated_user = True

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        context["signup_refusal"] = signup_refusal(context.get("next") or "")
        return context


def _minutes(period: timedelta | None) -> str:
    minutes = max(1, round((period or timedelta(minutes=15)).total_seconds() / 60))
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


def login_locked_out(
    request: HttpRequest, original_response: HttpResponse | None = None, credentials: dict | None = None
) -> HttpResponse:
    """django-axes' answer to a username+address with too many wrong passwords (AXES_LOCKOUT_CALLABLE)."""
    username = get_client_username(request, credentials) or ""
    message = (
        f"Too many failed sign-ins for “{username}” from your network. Signing in to this account from "
        f"here is locked for {_minutes(get_cool_off(request))} after the last failed try, even with the "
        "right password; wait, then try again."
    )
    context = {
        "form": AuthenticationForm(request, initial={"username": username}),
        "next": _safe_next(request),
        "locked_out": message,
        "signup_refusal": signup_refusal(_safe_next(request)),
    }
    return render(request, "registration/login.html", context, status=TOO_MANY)


def _password_change_throttled(request: HttpRequest, message: str) -> HttpResponse:
    context = {"form": PasswordChangeForm(request.user), "throttled": message}  # type: ignore[arg-type]
    return render(request, "registration/password_change_form.html", context, status=TOO_MANY)


password_change = login_required(
    throttle("password", refuse=_password_change_throttled)(
        auth_views.PasswordChangeView.as_view(success_url=reverse_lazy("accounts:password-done"))
    )
)


def _stability_account_for(request: AuthedRequest) -> tuple[Any, str]:
    """The Stability account behind the key the team uses, for those who may see it: a team's own key to
    its owners and admins, the studio's key (the operator's account) to the studio's staff only."""
    team = request.team
    if team.has_own_key:
        if not request.membership.can(Action.SET_KEY):
            return None, "The team's own Stability key and its account are shown to its owners and admins."
    elif not request.user.is_staff:
        return None, "The studio's Stability account is shown to the studio's administrators only."
    return services.team_stability_account(team)


def _allow_picture(response: HttpResponse, picture: str) -> None:
    """Let the page show the account's profile picture from the API's host (the CSP allows only ours)."""
    parts = urlsplit(picture)
    if parts.scheme in ("http", "https") and parts.netloc:
        policy: dict[str, Any] = dict(settings.SECURE_CSP)
        policy["img-src"] = [*policy.get("img-src", [CSP.SELF]), f"{parts.scheme}://{parts.netloc}"]
        response.headers[str(CSP.HEADER_ENFORCE)] = build_policy(policy)


@login_required
@require_GET
def account(request: AuthedRequest) -> HttpResponse:
    stability_account, problem = _stability_account_for(request)
    # The page a person opens after topping up: its balance, and the header's after it, are fresh.
    balance = services.team_balance(request.team, fresh=True)
    context = {
        "team": request.team,
        "stability_account": stability_account,
        "problem": problem,
        "balance": balance,
    }
    response = render(request, "accounts/account.html", context)
    if stability_account is not None and stability_account.profile_picture:
        _allow_picture(response, stability_account.profile_picture)
    return response


@login_required
@require_GET
def balance(request: AuthedRequest) -> HttpResponse:
    """The header's credit balance, loaded after the page so a slow engine never holds the page back;
    `?fresh=1` (the tab shown again) asks past the shared cache, at most every few seconds per key."""
    fresh = request.GET.get("fresh") == "1"
    balance = services.team_balance(request.team, fresh=fresh)
    return render(request, "accounts/balance.html", {"balance": balance})


@login_required
@require_http_methods(["GET", "POST"])
def team_create(request: AuthedRequest) -> HttpResponse:
    form = TeamCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        team = create_team(user=request.user, name=form.cleaned_data["name"])
        return redirect("teams:settings", team_id=team.pk)
    return render(request, "accounts/team_create.html", {"form": form})


# Pages that show the current team's own lists stay where they are after a switch; any other page (an
# image of the old team, its settings) would be the wrong team's, so the switch lands on Create.
STAY_AFTER_SWITCH = ("generations:create", "generations:gallery")


@login_required
@require_POST
def team_switch(request: AuthedRequest) -> HttpResponse:
    try:
        team = Team.objects.get(pk=int(request.POST.get("team", "")))
        switch_team(user=request.user, team=team)
    except (ValueError, Team.DoesNotExist, Membership.DoesNotExist) as exc:
        raise Http404("No such team") from exc
    target = request.POST.get("next", "")
    stays = {reverse(name) for name in STAY_AFTER_SWITCH}
    if target in stays:
        return redirect(target)
    return redirect("generations:create")
