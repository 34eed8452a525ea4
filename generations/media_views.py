"""Stored files (originals, thumbnails, uploads, job inputs), served only to members of their team."""

import re
from uuid import UUID

from django.contrib.auth.decorators import login_required
from django.db.models import Q
from django.db.models.fields.files import FieldFile
from django.http import FileResponse, Http404
from django.urls import URLPattern, path
from django.views.decorators.http import require_GET

from accounts.types import AuthedRequest
from generations.models import GalleryImage, GenerationJob, Upload

# Studio names every stored file after its row (generations.models image_path, thumbnail_path, input_path,
# upload_path): "<folder>/<team id>/<the row's uuid>…". The row is found by its primary key; the name is
# then compared whole, so a name that is not the row's own is refused.
STORED_NAME = re.compile(
    r"^(?P<folder>images|thumbnails|uploads|inputs)/(?P<team>\d+)/"
    r"(?P<pk>[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})"
)


def _stored_file(request: AuthedRequest, name: str) -> FieldFile:
    """The file stored under `name`, if the user is a member of its row's team; else 404. One query, by
    primary key."""
    match = STORED_NAME.match(name)
    if match is None or "\x00" in name:  # no stored name has one; PostgreSQL refuses to even compare it
        raise Http404("No such image")
    pk, team_id, folder = UUID(match["pk"]), int(match["team"]), match["folder"]
    file: FieldFile | None = None
    if folder == "uploads":
        upload = Upload.objects.visible_to(request.user).filter(pk=pk, team_id=team_id, image=name).first()
        file = upload.image if upload else None
    elif folder == "inputs":
        job = (
            GenerationJob.objects.visible_to(request.user)
            .filter(Q(init_image=name) | Q(mask_image=name), pk=pk, team_id=team_id)
            .only("init_image", "mask_image")
            .first()
        )
        file = (job.init_image if job.init_image.name == name else job.mask_image) if job else None
    else:
        image = (
            GalleryImage.objects.visible_to(request.user)
            .filter(Q(image=name) | Q(thumbnail=name), pk=pk, team_id=team_id)
            .only("image", "thumbnail")
            .first()
        )
        file = (image.image if image.image.name == name else image.thumbnail) if image else None
    if file is None:
        raise Http404("No such image")
    return file


@login_required
@require_GET
def media(request: AuthedRequest, path: str) -> FileResponse:
    """Originals, thumbnails, uploaded init images and the inputs jobs sent, only for members of their
    team."""
    file = _stored_file(request, path)
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
