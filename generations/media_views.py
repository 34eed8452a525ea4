"""Stored files (originals, thumbnails, uploads, job inputs), served only to members of their team.

A thumbnail is also served to whoever holds a signed link to it (`signed_thumbnail_url`), with no session
and no query: a gallery page asks for 24 thumbnails at once, and checking the session and the membership
for each was most of what they cost. The trade-off, chosen for thumbnails only:

- A signed link is issued only on pages rendered for a member (the gallery's tiles). It names one file:
  the signature covers the stored name, which holds the team's id and the image's own uuid, so it opens
  no other team's file nor another image's; an edited name or signature is refused.
- It keeps working for a bounded time, whoever holds it: the signature also covers the hour it was issued,
  and a link is accepted that hour and the next, so for one to two hours. A member removed from the team,
  or a stranger given a link copied out of a page, can open that thumbnail until then, and no longer; they
  cannot make new links. (An hour, not a day: a removed member's links die soon, and a gallery open across
  the hour only fetches its thumbnails again, at a fraction of a millisecond each.) Originals, uploads and
  inputs are never served this way.
- A link past its time, or with a wrong signature, opens only for a signed-in member of the team (as an
  unsigned link does); anyone else gets 404.
- Names are per row and a stored thumbnail never changes, so a signed thumbnail is cached by the browser
  for as long as its link is accepted ("immutable"); "private" keeps it out of shared caches.
"""

import base64
import re
import time
from typing import Any
from uuid import UUID

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.files.storage import default_storage
from django.db.models import Q
from django.db.models.fields.files import FieldFile
from django.http import FileResponse, Http404, HttpRequest
from django.urls import URLPattern, path
from django.utils.crypto import constant_time_compare, salted_hmac
from django.views.decorators.http import require_GET

from accounts.types import AuthedRequest
from generations.models import GalleryImage, GenerationJob, Upload, media_url

# Studio names every stored file after its row (generations.models image_path, thumbnail_path, input_path,
# upload_path): "<folder>/<team id>/<the row's uuid>…". The row is found by its primary key; the name is
# then compared whole, so a name that is not the row's own is refused.
ROW_UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
STORED_NAME = re.compile(rf"^(?P<folder>images|thumbnails|uploads|inputs)/(?P<team>\d+)/(?P<pk>{ROW_UUID})")


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


# Stored files by extension: originals, uploads and inputs are PNGs; thumbnails JPEGs, or WebP if made
# before they were JPEGs.
CONTENT_TYPES = {"png": "image/png", "jpg": "image/jpeg", "webp": "image/webp"}


def _response(handle: Any, name: str) -> FileResponse:
    content_type = CONTENT_TYPES.get(name.rpartition(".")[2], "application/octet-stream")
    response = FileResponse(handle, content_type=content_type)
    response["Cache-Control"] = "private, max-age=86400"
    return response


@login_required
def _members_file(request: AuthedRequest, path: str) -> FileResponse:
    file = _stored_file(request, path)
    try:
        return _response(file.open("rb"), file.name or "")
    except FileNotFoundError as exc:
        raise Http404("No such image") from exc


# --- signed thumbnail links (see this module's docstring) -----------------------------------------------

PERIOD = 3_600  # seconds: a link is accepted in the hour it was issued and the next
# What Studio names a thumbnail (generations.models.thumbnail_path), whole: nothing else is served signed.
THUMBNAIL_NAME = re.compile(rf"thumbnails/\d+/{ROW_UUID}\.(?:jpg|webp)")  # fullmatch
SIGNATURE_SALT = "generations.media_views.signed_thumbnail"


def _signature(period: int | str, name: str, secret: str | bytes) -> str:
    digest = salted_hmac(SIGNATURE_SALT, f"{period}/{name}", secret, algorithm="sha256").digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _period() -> int:
    """Hours since 1970: the link's bucket of time."""
    return int(time.time()) // PERIOD


def signed_thumbnail_url(name: str) -> str:
    """A link to the thumbnail stored under `name` that opens without a session for one to two hours:
    only for pages rendered for members of the image's team."""
    period = _period()
    return f"{media_url(name)}?t={period}&sig={_signature(period, name, settings.SECRET_KEY)}"


def _signed_thumbnail(request: HttpRequest, name: str) -> FileResponse | None:
    """The thumbnail, if the link's signature is Studio's for this name and hour, and the hour is this one or
    the one before; else None. No session, no query."""
    period, signature = request.GET.get("t", ""), request.GET.get("sig", "")
    fresh = period.isascii() and period.isdigit() and int(period) in (_period(), _period() - 1)
    if not fresh or not THUMBNAIL_NAME.fullmatch(name):
        return None
    # A link signed with a key being rotated out (SECRET_KEY_FALLBACKS) still opens until it expires.
    secrets = [settings.SECRET_KEY, *settings.SECRET_KEY_FALLBACKS]
    if not any(constant_time_compare(signature, _signature(period, name, secret)) for secret in secrets):
        return None
    try:
        response = _response(default_storage.open(name, "rb"), name)
    except FileNotFoundError as exc:  # purged with its image
        raise Http404("No such image") from exc
    # Cached for as long as the link is accepted: until the end of the hour after its own.
    response["Cache-Control"] = f"private, max-age={(int(period) + 2) * PERIOD - int(time.time())}, immutable"
    return response


@require_GET
def media(request: HttpRequest, path: str) -> FileResponse:
    """Originals, thumbnails, uploaded init images and the inputs jobs sent, only for members of their
    team; a thumbnail also through a signed link."""
    if "sig" in request.GET:
        served = _signed_thumbnail(request, path)
        if served is not None:
            return served
        if not request.user.is_authenticated:  # an image's link past its time: 404, not a sign-in page
            raise Http404("No such image")
    return _members_file(request, path)  # type: ignore[arg-type]  # signed in: login_required's check


urlpatterns: list[URLPattern] = [
    path("media/<path:path>", media, name="media"),
]
