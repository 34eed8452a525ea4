from django.contrib import admin
from django.urls import include, path

from studio.health import healthz

urlpatterns = [
    path("", include("generations.urls")),
    path("accounts/", include("accounts.urls")),
    path("teams/", include("accounts.team_urls")),
    path("sandbox/", include("sandbox.urls")),
    path("healthz", healthz, name="healthz"),
    path("admin/", admin.site.urls),
]
