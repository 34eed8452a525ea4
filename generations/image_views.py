"""An image's page and what can be done from it: variations, re-run, upscale, download, and the list of
Stable Image tools (their pages are generations/tool_views.py)."""

from decimal import Decimal
from uuid import UUID

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import FileResponse, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import URLPattern, path, reverse
from django.views.decorators.http import require_GET, require_POST

from accounts.permissions import membership_of, require
from accounts.policy import Action
from accounts.services.spend import AllowanceExceeded
from accounts.types import AuthedRequest
from generations import services
from generations.engines import upscaler_choices
from generations.forms import UpscaleForm
from generations.labels import size_label
from generations.models import ApiRequest, Favourite, GalleryImage, GenerationJob
from generations.stability.contract import RuleViolation
from generations.stable_image import CONTROL, EDIT, TOOLS, UPSCALE
from generations.tool_forms import source_plan

TOOL_GROUPS = ((UPSCALE, "Upscale"), (EDIT, "Edit"), (CONTROL, "Control"))
# PNG colour types with an alpha channel (grey + alpha, RGBA): byte 25 of the file, in its IHDR chunk.
PNG_ALPHA_TYPES = (4, 6)


def team_image(request: AuthedRequest, image_id: UUID, action: Action = Action.VIEW) -> GalleryImage:
    """An image of one of the user's teams (else 404) on which their role there allows `action` (else 403)."""
    image = get_object_or_404(
        GalleryImage.objects.visible_to(request.user).select_related(
            "job", "job__upload", "created_by", "team"
        ),
        pk=image_id,
    )
    require(request, image.team, action)
    return image


def image_cost(image: GalleryImage) -> Decimal:
    """What this picture was charged, as recorded when it came back (a price changed since does not
    change it); for jobs older than those records, its share of what the job spent."""
    charged = ApiRequest.objects.filter(
        job_id=image.job_id, index=image.index, outcome=ApiRequest.Outcome.CHARGED
    )
    recorded = charged.values_list("credits", flat=True).first()
    if recorded is not None:
        return recorded
    paid = image.job.images.filter(finish_reason="SUCCESS").count()
    return image.job.credits_spent / paid if paid else Decimal(0)


@login_required
@require_GET
def image_detail(request: AuthedRequest, image_id: UUID) -> HttpResponse:
    image = team_image(request, image_id)
    team_images = GalleryImage.objects.for_team(image.team).live()
    membership = membership_of(request, image.team)
    image.is_favourite = Favourite.objects.filter(user=request.user, image=image).exists()  # type: ignore[attr-defined]
    context = {
        "image": image,
        "membership": membership,
        "can_edit": membership.can(Action.GENERATE),
        "job": image.job,
        "image_cost": image_cost(image),
        "size_label": size_label((image.width, image.height)),
        "ancestors": image.ancestors(),
        "descendants": list(image.descendants()),
        "newer": team_images.after(image.created_at, image.pk).first(),
        "older": team_images.newest_first().before(image.created_at, image.pk).first(),
        "upscale_form": UpscaleForm(image=image, engines=upscaler_choices(image.team)),
        "tool_groups": _tool_groups(image) if membership.can(Action.GENERATE) else [],
        "transparent": shows_transparency(image),
    }
    return render(request, "generations/image_detail.html", context)


def _tool_groups(image: GalleryImage) -> list[tuple[str, list[dict[str, object]]]]:
    """Each group's tools, with the page to use one on this image, its price and, when the image can't be
    used with it (too small, or a shape it refuses), why."""
    groups = []
    for group, title in TOOL_GROUPS:
        entries = []
        for tool in TOOLS.values():
            if tool.group != group:
                continue
            plan = source_plan(tool, image.width, image.height)
            entries.append(
                {
                    "tool": tool,
                    "url": reverse("generations:image-tool", args=[image.pk, tool.slug]),
                    "price": tool.operation.price(),
                    "reason": plan.reason,
                }
            )
        groups.append((title, entries))
    return groups


def shows_transparency(image: GalleryImage) -> bool:
    """A background removed, or any PNG with an alpha channel: shown over a checkerboard."""
    if image.job.operation == "edit/remove-background":
        return True
    try:
        with image.image.open("rb") as file:
            header = file.read(26)
    except OSError:
        return False
    return header[:8] == b"\x89PNG\r\n\x1a\n" and len(header) == 26 and header[25] in PNG_ALPHA_TYPES


def _started(request: AuthedRequest, job: GenerationJob) -> HttpResponse:
    """After an action on an image: the create page, where the new job's card shows its progress."""
    return redirect(f"{reverse('generations:create')}#job-{job.pk}")


def _refused(request: AuthedRequest, image: GalleryImage, message: str) -> HttpResponse:
    messages.error(request, message)
    return redirect("generations:image-detail", image_id=image.pk)


@login_required
@require_POST
def image_variations(request: AuthedRequest, image_id: UUID) -> HttpResponse:
    image = team_image(request, image_id, Action.GENERATE)
    try:
        job = services.image_variations(
            image=image, user=request.user, default_engine=settings.STABILITY_DEFAULT_ENGINE
        )
    except RuleViolation as exc:
        return _refused(request, image, f"Variations can't be made: {exc.field} {exc.rule}.")
    except AllowanceExceeded as exc:
        return _refused(request, image, exc.message)
    return _started(request, job)


@login_required
@require_POST
def image_rerun(request: AuthedRequest, image_id: UUID) -> HttpResponse:
    image = team_image(request, image_id, Action.GENERATE)
    try:
        job = services.image_rerun(image=image, user=request.user)
    except RuleViolation as exc:
        return _refused(request, image, f"This image can't be re-run: {exc.field} {exc.rule}.")
    except AllowanceExceeded as exc:
        return _refused(request, image, exc.message)
    return _started(request, job)


@login_required
@require_POST
def image_upscale(request: AuthedRequest, image_id: UUID) -> HttpResponse:
    image = team_image(request, image_id, Action.GENERATE)
    form = UpscaleForm(request.POST, image=image, engines=upscaler_choices(image.team))
    if not form.is_valid():
        return _refused(
            request, image, " ".join(str(message) for errors in form.errors.values() for message in errors)
        )
    try:
        job = services.image_upscale(
            image=image,
            user=request.user,
            engine_id=form.cleaned_data["engine"],
            prompt=form.cleaned_data["prompt"],
        )
    except AllowanceExceeded as exc:
        return _refused(request, image, exc.message)
    return _started(request, job)


@login_required
@require_GET
def image_download(request: AuthedRequest, image_id: UUID) -> FileResponse:
    image = team_image(request, image_id, Action.DOWNLOAD)
    return FileResponse(image.image.open("rb"), as_attachment=True, filename=image.download_name)


urlpatterns: list[URLPattern] = [
    path("images/<uuid:image_id>/", image_detail, name="image-detail"),
    path("images/<uuid:image_id>/download/", image_download, name="image-download"),
    path("images/<uuid:image_id>/variations/", image_variations, name="image-variations"),
    path("images/<uuid:image_id>/rerun/", image_rerun, name="image-rerun"),
    path("images/<uuid:image_id>/upscale/", image_upscale, name="image-upscale"),
]
