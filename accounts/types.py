from django.http import HttpRequest
from django_htmx.middleware import HtmxDetails

from accounts.models import User


class AuthedRequest(HttpRequest):
    """A request behind @login_required, with django-htmx's details."""

    user: User
    htmx: HtmxDetails
