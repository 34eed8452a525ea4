"""The create page: the generate form, and the fields that follow each other in it (sizes, the init image)."""

from typing import Any

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.db.models import Prefetch
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.views.decorators.http import require_GET, require_http_methods
from django_htmx.http import reswap, retarget, trigger_client_event

from accounts.permissions import require
from accounts.policy import Action
from accounts.services.spend import AllowanceExceeded
from accounts.types import AuthedRequest
from generations import services
from generations.engines import engine_choices
from generations.forms import REUSES, GenerateForm, initial_from
from generations.models import GalleryImage, GenerationJob
from generations.uploads import UploadRejected, clean_upload
from studio.throttling import TOO_MANY, throttle

RECENT_JOBS = 8


def _form(request: AuthedRequest, data: Any = None, files: Any = None, **kwargs: Any) -> GenerateForm:
    return GenerateForm(
        data,
        files,
        engines=engine_choices(request.team),
        default_engine=settings.STABILITY_DEFAULT_ENGINE,
        team=request.team,
        **kwargs,
    )


def _reuse_initial(request: AuthedRequest) -> dict[str, Any]:
    """?from=<image>&use=remix|prompt|seed|init: the form filled from an earlier image."""
    use, image_id = request.GET.get("use", ""), request.GET.get("from", "")
    if use not in REUSES or not image_id:
        return {}
    try:
        image = GalleryImage.objects.for_team(request.team).select_related("job").get(pk=image_id)
    except (GalleryImage.DoesNotExist, ValueError, ValidationError):
        return {}
    engine_ids = [engine_id for engine_id, _ in engine_choices(request.team)]
    return initial_from(image, use, engine_ids)


def _recent_jobs(request: AuthedRequest) -> list[GenerationJob]:
    images = Prefetch("images", queryset=GalleryImage.objects.live().order_by("index"))
    jobs = (
        GenerationJob.objects.for_team(request.team)
        .newest_first()
        .select_related("created_by")
        .prefetch_related(images)
    )
    return list(jobs[:RECENT_JOBS])


def _generate_throttled(request: AuthedRequest, message: str) -> HttpResponse:
    """Past THROTTLE_RATES["generate"]: the form again (its fields as sent, no file read), saying so."""
    form = _form(request, request.POST)
    form.add_error(None, message)
    if request.htmx:
        response = render(request, "generations/create.html#create-form", {"form": form})
        return reswap(retarget(response, "#create-form"), "outerHTML")
    context = {"form": form, "jobs": _recent_jobs(request)}
    return render(request, "generations/create.html", context, status=TOO_MANY)


@login_required
@require_http_methods(["GET", "POST"])
@throttle("generate", refuse=_generate_throttled)
def create(request: AuthedRequest) -> HttpResponse:
    if request.method == "GET":
        context = {"form": _form(request, initial=_reuse_initial(request)), "jobs": _recent_jobs(request)}
        return render(request, "generations/create.html", context)
    require(request, request.team, Action.GENERATE)
    form = _form(request, request.POST, request.FILES)
    valid = form.is_valid()
    if form.init is not None and form.init.new_upload is not None:
        # Keep a good init image even when another field is wrong, so the page can show it again.
        try:
            form.keep_upload(
                services.upload_store(team=request.team, user=request.user, image=form.init.new_upload)
            )
        except UploadRejected as exc:  # over the team's upload quota
            form.add_error("init_image", exc.message)
            valid = False
    job = None
    if valid:
        try:
            job = services.job_create(
                team=request.team,
                user=request.user,
                engine_id=form.cleaned_data["engine"],
                request=form.request,
                **form.job_origin,
            )
        except AllowanceExceeded as exc:
            form.add_error("samples", exc.message)
    if job is None:
        if request.htmx:
            response = render(request, "generations/create.html#create-form", {"form": form})
            return reswap(retarget(response, "#create-form"), "outerHTML")
        return render(request, "generations/create.html", {"form": form, "jobs": _recent_jobs(request)})
    if not request.htmx:
        return redirect("generations:create")
    # The new card for the job list, and the form again (out of band) so earlier errors disappear.
    response = render(request, "generations/job_card.html", {"job": job}, status=201)
    form_html = render_to_string("generations/create.html#create-form", {"form": form, "oob": True}, request)
    response.content += form_html.encode()
    return response


@login_required
@require_GET
def sizes(request: AuthedRequest) -> HttpResponse:
    """The size select for the engine chosen in the form (or, with an init image, the size it will have)."""
    initial = {name: request.GET.get(name, "") for name in ("engine", "init_upload", "init_from")}
    response = render(
        request, "generations/create.html#size-field", {"form": _form(request, initial=initial)}
    )
    # The cost estimate prices the new size, once the new field is in the page.
    return trigger_client_event(response, "size-changed", after="settle")


def _init_field(request: AuthedRequest, initial: dict[str, Any], error: str) -> HttpResponse:
    """The init field (with `error` at it) and, out of band, the size field, which follows the init image."""
    context = {"form": _form(request, initial=initial), "init_error": error, "size_oob": True}
    response = render(request, "generations/create.html#init-field", context)
    response.content += render_to_string("generations/create.html#size-field", context, request).encode()
    # The cost estimate prices the new size, once the new field is in the page.
    return trigger_client_event(response, "size-changed", after="settle")


def _upload_throttled(request: AuthedRequest, message: str) -> HttpResponse:
    """Past THROTTLE_RATES["upload"]: the image chosen before stays, and the field says why."""
    initial = {name: request.POST.get(name, "") for name in ("engine", "init_upload", "init_from")}
    return _init_field(request, initial, message)


@login_required
@require_http_methods(["GET", "POST"])
@throttle("upload", refuse=_upload_throttled)
def upload(request: AuthedRequest) -> HttpResponse:
    """POST: an init image chosen or dropped in the form, checked and kept at once so the form can preview it
    and the mask editor can paint on it. GET: the field without one. Answers the init field, and the size
    field, which follows the init image."""
    initial: dict[str, Any] = {"engine": request.GET.get("engine", "")}
    error = ""
    if request.method == "POST":
        require(request, request.team, Action.GENERATE)
        # If the new file is refused, the image chosen before stays.
        initial = {name: request.POST.get(name, "") for name in ("engine", "init_upload", "init_from")}
        try:
            file = request.FILES.get("init_image")
            if file is None:
                raise UploadRejected("Choose a PNG, JPEG or WebP image.")
            image = clean_upload(file)
            stored = services.upload_store(team=request.team, user=request.user, image=image)
            initial.update(init_upload=stored.pk, init_from="")
        except UploadRejected as exc:
            error = exc.message
    return _init_field(request, initial, error)
