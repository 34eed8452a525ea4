from django.conf import settings
from django.http import HttpRequest


def studio(request: HttpRequest) -> dict[str, object]:
    return {"uses_sandbox": settings.STABILITY_USES_SANDBOX}
