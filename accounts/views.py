from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from accounts import services
from accounts.forms import SignupForm
from accounts.types import AuthedRequest


@require_http_methods(["GET", "POST"])
def signup(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return redirect("generations:create")
    form = SignupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = services.user_signup(
            username=form.cleaned_data["username"],
            email=form.cleaned_data["email"],
            password=form.cleaned_data["password1"],
        )
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        return redirect("generations:create")
    return render(request, "accounts/signup.html", {"form": form})


@login_required
@require_GET
def account(request: AuthedRequest) -> HttpResponse:
    team = request.user.team
    stability_account, problem = services.team_stability_account(team)
    context = {"team": team, "stability_account": stability_account, "problem": problem}
    return render(request, "accounts/account.html", context)


@login_required
@require_GET
def balance(request: AuthedRequest) -> HttpResponse:
    """The header's credit balance, loaded after the page so a slow engine never holds the page back."""
    return render(request, "accounts/balance.html", {"balance": services.team_balance(request.user.team)})
