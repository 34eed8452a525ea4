from django.conf import settings
from django.http import HttpRequest

# Set by the notice's Dismiss button (static/js/studio.js); read here so later pages never flash it.
SANDBOX_NOTE_DISMISSED = "sandbox_note_dismissed"


def studio(request: HttpRequest) -> dict[str, object]:
    uses_sandbox = settings.STABILITY_USES_SANDBOX
    signed_in = getattr(request, "user", None) is not None and request.user.is_authenticated
    return {
        "uses_sandbox": uses_sandbox,
        "show_sandbox_note": uses_sandbox and signed_in and SANDBOX_NOTE_DISMISSED not in request.COOKIES,
    }
