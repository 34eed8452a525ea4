import base64
import binascii
from datetime import datetime
from typing import Any
from uuid import UUID

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.db.models import Prefetch, Q
from django.http import FileResponse, Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.views.decorators.http import require_GET, require_http_methods
from django_htmx.http import HTMX_STOP_POLLING, reswap, retarget, trigger_client_event

from accounts.types import AuthedRequest
from generations import services
from generations.engines import engine_choices
from generations.forms import TextToImageForm
from generations.models import GalleryImage, GenerationJob

GALLERY_PAGE_SIZE = 24
RECENT_JOBS = 8


def _form(request: AuthedRequest, data: dict | None = None, **kwargs: Any) -> TextToImageForm:
    return TextToImageForm(
        data,
        engines=engine_choices(request.user.team),
        default_engine=settings.STABILITY_DEFAULT_ENGINE,
        **kwargs,
    )


def _recent_jobs(request: AuthedRequest) -> list[GenerationJob]:
    images = Prefetch("images", queryset=GalleryImage.objects.order_by("index"))
    jobs = GenerationJob.objects.for_team(request.user.team).newest_first().prefetch_related(images)
    return list(jobs[:RECENT_JOBS])


@login_required
@require_http_methods(["GET", "POST"])
def create(request: AuthedRequest) -> HttpResponse:
    if request.method == "GET":
        context = {"form": _form(request), "jobs": _recent_jobs(request)}
        return render(request, "generations/create.html", context)
    form = _form(request, request.POST)
    if not form.is_valid():
        if request.htmx:
            response = render(request, "generations/create.html#create-form", {"form": form})
            return reswap(retarget(response, "#create-form"), "outerHTML")
        return render(request, "generations/create.html", {"form": form, "jobs": _recent_jobs(request)})
    job = services.job_create(
        team=request.user.team, user=request.user, engine_id=form.cleaned_data["engine"], request=form.request
    )
    if not request.htmx:
        return redirect("generations:create")
    # The new card for the job list, and the form again (out of band) so earlier errors disappear.
    response = render(request, "generations/create.html#job-card", {"job": job}, status=201)
    form_html = render_to_string("generations/create.html#create-form", {"form": form, "oob": True}, request)
    response.content += form_html.encode()
    return response


@login_required
@require_GET
def job_card(request: AuthedRequest, job_id: UUID) -> HttpResponse:
    job = get_object_or_404(
        GenerationJob.objects.visible_to(request.user).prefetch_related("images"), pk=job_id
    )
    if not request.htmx:
        return render(request, "generations/job_detail.html", {"job": job})
    if not job.is_finished:
        return render(request, "generations/create.html#job-card", {"job": job})
    response = render(request, "generations/create.html#job-card", {"job": job}, status=HTMX_STOP_POLLING)
    return trigger_client_event(response, "balance-changed")


@login_required
@require_GET
def sizes(request: AuthedRequest) -> HttpResponse:
    """The size select for the engine chosen in the form."""
    form = _form(request, initial={"engine": request.GET.get("engine", "")})
    return render(request, "generations/create.html#size-field", {"form": form})


def _cursor(image: GalleryImage) -> str:
    return base64.urlsafe_b64encode(f"{image.created_at.isoformat()}|{image.pk}".encode()).decode()


def _parse_cursor(value: str) -> tuple[datetime, UUID] | None:
    try:
        created_at, pk = base64.urlsafe_b64decode(value.encode()).decode().split("|")
        return datetime.fromisoformat(created_at), UUID(pk)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return None


@login_required
@require_GET
def gallery(request: AuthedRequest) -> HttpResponse:
    images = GalleryImage.objects.for_team(request.user.team).newest_first()
    if cursor := _parse_cursor(request.GET.get("before", "")):
        images = images.before(*cursor)
    page = list(images.select_related("job")[: GALLERY_PAGE_SIZE + 1])
    has_more = len(page) > GALLERY_PAGE_SIZE
    page = page[:GALLERY_PAGE_SIZE]
    context = {"images": page, "next_cursor": _cursor(page[-1]) if has_more else ""}
    template = (
        "generations/gallery_list.html#gallery-page" if request.htmx else "generations/gallery_list.html"
    )
    return render(request, template, context)


@login_required
@require_GET
def image_detail(request: AuthedRequest, image_id: UUID) -> HttpResponse:
    image = get_object_or_404(
        GalleryImage.objects.visible_to(request.user).select_related("job", "created_by"), pk=image_id
    )
    return render(request, "generations/image_detail.html", {"image": image, "job": image.job})


@login_required
@require_GET
def image_download(request: AuthedRequest, image_id: UUID) -> FileResponse:
    image = get_object_or_404(GalleryImage.objects.visible_to(request.user), pk=image_id)
    return FileResponse(image.image.open("rb"), as_attachment=True, filename=image.download_name)


@login_required
@require_GET
def media(request: AuthedRequest, path: str) -> FileResponse:
    """Originals and thumbnails, only for members of the image's team."""
    image = GalleryImage.objects.visible_to(request.user).filter(Q(image=path) | Q(thumbnail=path)).first()
    if image is None:
        raise Http404("No such image")
    file = image.image if image.image.name == path else image.thumbnail
    response = FileResponse(
        file.open("rb"), content_type="image/png" if file is image.image else "image/webp"
    )
    response["Cache-Control"] = "private, max-age=86400"
    return response
