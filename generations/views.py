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
from generations.forms import REUSES, CreateForm, initial_from
from generations.labels import engine_name
from generations.models import GalleryImage, GenerationJob
from generations.stability.v2beta.fields import RuleViolation as StableImageRuleViolation
from generations.stable_image import MODELS
from generations.stable_image_forms import StableImageForm, create_form, is_model
from generations.uploads import UploadRejected, clean_upload
from studio.throttling import TOO_MANY, throttle

RECENT_JOBS = 8
# What the init field and the size field beside it are drawn from: the image, and what follows it.
INIT_FIELD_KEEPS = ("engine", "init_upload", "init_from", "aspect_ratio", "strength")


# What the form keeps when it is drawn again for another model: what the person wrote and chose that every
# model has, and the init image.
KEPT_ON_SWITCH = (
    *("prompt", "negative_prompt", "seed", "samples", "style_preset", "aspect_ratio", "strength"),
    *("init_upload", "init_from"),
)


def _form(request: AuthedRequest, data: Any = None, files: Any = None, **kwargs: Any) -> CreateForm:
    return create_form(
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
    engine_ids = [*MODELS, *(engine_id for engine_id, _ in engine_choices(request.team))]
    return initial_from(image, use, engine_ids)


def _switched(data: Any) -> bool:
    """The form was sent with another model than it was drawn for, and that one has other fields (a Stable
    Image model, or from one to a v1 engine): chosen without JavaScript, so the form never re-drew."""
    engine, drawn_for = data.get("engine", ""), data.get("drawn_for", "")
    if not drawn_for:  # sent by a page or a test that does not say
        return False
    return engine != drawn_for and (is_model(engine) or is_model(drawn_for))


def _redrawn(request: AuthedRequest, data: Any) -> CreateForm:
    """The form for the model in `data`, with what the person wrote kept. A value left at the initial one
    of the form it was drawn for is not kept: the new form's own default stands (v1 makes four images at
    a time, a Stable Image model one)."""
    drawn_for = data.get("drawn_for", "")
    before = _form(request, initial={"engine": drawn_for}) if drawn_for else None

    def written(name: str) -> bool:
        value = data.get(name)
        if value in (None, ""):
            return False
        return before is None or name not in before.fields or str(before[name].initial) != str(value)

    initial = {name: data[name] for name in KEPT_ON_SWITCH if written(name)}
    return _form(request, initial={**initial, "engine": data.get("engine", "")})


def _form_again(request: AuthedRequest, form: CreateForm, **context: Any) -> HttpResponse:
    """The form drawn again in place (htmx), or the page with it."""
    if request.htmx:
        response = render(request, "generations/create.html#create-form", {"form": form, **context})
        return reswap(retarget(response, "#create-form"), "outerHTML")
    context = {"form": form, "jobs": _recent_jobs(request), **context}
    return render(request, "generations/create.html", context)


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
    if _switched(request.POST):
        form = _redrawn(request, request.POST)
        name = engine_name(request.POST.get("engine", ""))
        note = f"The form now shows what {name} takes. Check it, then press Generate again."
        return _form_again(request, form, form_note=note)
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
    job = _job_create(request, form) if valid else None
    if job is None:
        return _form_again(request, form)
    if not request.htmx:
        return redirect("generations:create")
    # The new card for the job list, and the form again (out of band) so earlier errors disappear.
    response = render(request, "generations/job_card.html", {"job": job}, status=201)
    form_html = render_to_string("generations/create.html#create-form", {"form": form, "oob": True}, request)
    response.content += form_html.encode()
    return response


def _job_create(request: AuthedRequest, form: CreateForm) -> GenerationJob | None:
    """The job for a valid form, or None with the reason at the field (past the allowance, or a rule only
    the whole request breaks)."""
    try:
        if isinstance(form, StableImageForm):
            return services.stable_image_job_create(
                team=request.team, user=request.user, **form.job_arguments
            )
        return services.job_create(
            team=request.team,
            user=request.user,
            engine_id=form.cleaned_data["engine"],
            request=form.request,  # type: ignore[attr-defined]
            **form.job_origin,
        )
    except AllowanceExceeded as exc:
        form.add_error("samples", exc.message)
    except StableImageRuleViolation as violation:  # a rule the form could not check (the request's size)
        if not isinstance(form, StableImageForm):
            raise
        form.add_violation(violation)
    return None


@login_required
@require_GET
def sizes(request: AuthedRequest) -> HttpResponse:
    """The fields that follow the engine chosen in the form. Between two v1 engines, the size select (or,
    with an init image, the size it will have): their other fields are the same. To or from a Stable Image
    model, the whole form for it, keeping what the person wrote (`drawn_for` is the one it was drawn for)."""
    if _switched(request.GET):
        response = render(
            request, "generations/create.html#create-form", {"form": _redrawn(request, request.GET)}
        )
        return reswap(retarget(response, "#create-form"), "outerHTML")
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
    initial = {name: request.POST.get(name, "") for name in INIT_FIELD_KEEPS}
    return _init_field(request, initial, message)


@login_required
@require_http_methods(["GET", "POST"])
@throttle("upload", refuse=_upload_throttled)
def upload(request: AuthedRequest) -> HttpResponse:
    """POST: an init image chosen or dropped in the form, checked and kept at once so the form can preview it
    and the mask editor can paint on it. GET: the field without one. Answers the init field, and the size
    field, which follows the init image."""
    initial: dict[str, Any] = {
        name: request.GET.get(name, "") for name in ("engine", "aspect_ratio", "strength")
    }
    error = ""
    if request.method == "POST":
        require(request, request.team, Action.GENERATE)
        # If the new file is refused, the image chosen before stays.
        initial = {name: request.POST.get(name, "") for name in INIT_FIELD_KEEPS}
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
