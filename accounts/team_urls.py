"""/teams/…: creating and switching teams, and each team's pages (members, invites, key, usage, audit).
Each views module lists its own routes; they are gathered here."""

from django.urls import path

from accounts.views import account, invites, keys, teams, usage

app_name = "teams"
urlpatterns = [
    path("new/", account.team_create, name="create"),
    path("switch/", account.team_switch, name="switch"),
    *teams.urlpatterns,
    *invites.urlpatterns,
    *keys.urlpatterns,
    *usage.urlpatterns,
]
