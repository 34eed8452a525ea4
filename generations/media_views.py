"""Stored files (originals, thumbnails, uploads, job inputs), served only to members of their team."""

from django.contrib.auth.decorators import login_required
from django.db.models import Q
from django.http import FileResponse, Http404
from django.urls import URLPattern, path
from django.views.decorators.http import require_GET

from accounts.types import AuthedRequest
from generations.models import GalleryImage, GenerationJob, Upload


@login_required
@require_GET
def media(request: AuthedRequest, path: str) -> FileResponse:
    """Originals, thumbnails, uploaded init images and the inputs jobs sent, only for members of their
    team."""
    if "\x00" in path:  # no stored name has one; PostgreSQL refuses to even compare it
        raise Http404("No such image")
    if path.startswith("uploads/"):
        upload = Upload.objects.visible_to(request.user).filter(image=path).first()
        if upload is None:
            raise Http404("No such image")
        file = upload.image
    elif path.startswith("inputs/"):
        job = (
            GenerationJob.objects.visible_to(request.user)
            .filter(Q(init_image=path) | Q(mask_image=path))
            .first()
        )
        if job is None:
            raise Http404("No such image")
        file = job.init_image if job.init_image.name == path else job.mask_image
    else:
        image = (
            GalleryImage.objects.visible_to(request.user).filter(Q(image=path) | Q(thumbnail=path)).first()
        )
        if image is None:
            raise Http404("No such image")
        file = image.image if image.image.name == path else image.thumbnail
    content_type = "image/webp" if (file.name or "").endswith(".webp") else "image/png"
    try:
        handle = file.open("rb")
    except FileNotFoundError as exc:
        raise Http404("No such image") from exc
    response = FileResponse(handle, content_type=content_type)
    response["Cache-Control"] = "private, max-age=86400"
    return response


urlpatterns: list[URLPattern] = [
    path("media/<path:path>", media, name="media"),
]
