from typing import Any
from uuid import UUID

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.db.models import Prefetch, Q
from django.http import FileResponse, Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HTMX_STOP_POLLING, reswap, retarget, trigger_client_event

from accounts.permissions import membership_of, require
from accounts.policy import Action
from accounts.services.spend import AllowanceExceeded
from accounts.types import AuthedRequest
from generations import services
from generations.engines import engine_choices, upscaler_choices
from generations.forms import REUSES, GenerateForm, UpscaleForm, initial_from
from generations.models import GalleryImage, GenerationJob, Upload
from generations.stability.contract import ENGINES, RuleViolation
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
    response = render(request, "generations/create.html#job-card", {"job": job}, status=201)
    form_html = render_to_string("generations/create.html#create-form", {"form": form, "oob": True}, request)
    response.content += form_html.encode()
    return response


@login_required
@require_GET
def job_card(request: AuthedRequest, job_id: UUID) -> HttpResponse:
    job = get_object_or_404(
        GenerationJob.objects.visible_to(request.user)
        .select_related("created_by")
        .prefetch_related("images"),
        pk=job_id,
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
    """The size select for the engine chosen in the form (or, with an init image, the size it will have)."""
    initial = {name: request.GET.get(name, "") for name in ("engine", "init_upload", "init_from")}
    response = render(
        request, "generations/create.html#size-field", {"form": _form(request, initial=initial)}
    )
    return trigger_client_event(response, "size-changed")  # the cost estimate prices the new size


def _init_field(request: AuthedRequest, initial: dict[str, Any], error: str) -> HttpResponse:
    """The init field (with `error` at it) and, out of band, the size field, which follows the init image."""
    context = {"form": _form(request, initial=initial), "init_error": error, "size_oob": True}
    response = render(request, "generations/create.html#init-field", context)
    response.content += render_to_string("generations/create.html#size-field", context, request).encode()
    return trigger_client_event(response, "size-changed")  # the cost estimate prices the new size


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


def _team_image(request: AuthedRequest, image_id: UUID, action: Action = Action.VIEW) -> GalleryImage:
    """An image of one of the user's teams (else 404) on which their role there allows `action` (else 403)."""
    image = get_object_or_404(
        GalleryImage.objects.visible_to(request.user).select_related(
            "job", "job__upload", "created_by", "team"
        ),
        pk=image_id,
    )
    require(request, image.team, action)
    return image


@login_required
@require_GET
def image_detail(request: AuthedRequest, image_id: UUID) -> HttpResponse:
    image = _team_image(request, image_id)
    team_images = GalleryImage.objects.for_team(image.team).live()
    engine = ENGINES.get(image.job.engine_id)  # its name, as people know it; the id if we don't know it
    context = {
        "image": image,
        "membership": membership_of(request, image.team),
        "job": image.job,
        "engine_name": engine.name if engine else image.job.engine_id,
        "ancestors": image.ancestors(),
        "descendants": list(image.descendants()),
        "newer": team_images.after(image.created_at, image.pk).first(),
        "older": team_images.newest_first().before(image.created_at, image.pk).first(),
        "upscale_form": UpscaleForm(image=image, engines=upscaler_choices(image.team)),
    }
    return render(request, "generations/image_detail.html", context)


def _started(request: AuthedRequest, job: GenerationJob) -> HttpResponse:
    """After an action on an image: the create page, where the new job's card shows its progress."""
    return redirect(f"{reverse('generations:create')}#job-{job.pk}")


def _refused(request: AuthedRequest, image: GalleryImage, message: str) -> HttpResponse:
    messages.error(request, message)
    return redirect("generations:image-detail", image_id=image.pk)


@login_required
@require_POST
def image_variations(request: AuthedRequest, image_id: UUID) -> HttpResponse:
    image = _team_image(request, image_id, Action.GENERATE)
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
    image = _team_image(request, image_id, Action.GENERATE)
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
    image = _team_image(request, image_id, Action.GENERATE)
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
    image = _team_image(request, image_id, Action.DOWNLOAD)
    return FileResponse(image.image.open("rb"), as_attachment=True, filename=image.download_name)


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
