"""A Stable Image tool on an image (generations.stable_image.TOOLS): its page, with the form the contract
describes, the size and price of the result, and making the job. The result is a new gallery image whose
parent is this one."""

from typing import Any
from uuid import UUID

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import URLPattern, path, reverse
from django.views.decorators.http import require_http_methods
from django_htmx.http import HttpResponseClientRedirect, reswap, retarget

from accounts.policy import Action
from accounts.services.spend import AllowanceExceeded
from accounts.types import AuthedRequest
from generations import services
from generations.image_views import shows_transparency, team_image
from generations.imaging import png_size
from generations.models import GalleryImage, GenerationJob, read_file
from generations.stability.contract import RuleViolation
from generations.stable_image import TOOLS, Tool
from generations.tool_forms import ToolForm, size_text, source_bytes, source_plan
from studio.throttling import TOO_MANY, throttle

TEMPLATE = "generations/image_tool.html"
INVALID = 422  # the form again, with what to change next to each field


def _tool(slug: str) -> Tool:
    tool = TOOLS.get(slug)
    if tool is None:
        raise Http404("No such tool")
    return tool


def _form(request: AuthedRequest, image: GalleryImage, tool: Tool, *, post: bool) -> ToolForm:
    try:
        png = read_file(image.image)
    except OSError as exc:  # the picture's file is gone: nothing to start from
        raise Http404("The image's file is missing") from exc
    plan = source_plan(tool, *png_size(png))
    kwargs: dict[str, Any] = {"tool": tool, "plan": plan, "prompt": image.job.prompt}
    if not post:
        return ToolForm(**kwargs)
    source = source_bytes(png, plan) if plan.usable else None
    return ToolForm(request.POST, request.FILES, source=source, **kwargs)


def _page(request: AuthedRequest, image: GalleryImage, form: ToolForm, status: int = 200) -> HttpResponse:
    output = form.output_size()
    context = {
        "image": image,
        "tool": form.tool,
        "form": form,
        "plan": form.plan,
        "output": size_text(output) if output else "",
        "output_sizes": form.output_sizes_by_choice(),
        "price": form.price,
        "transparent": shows_transparency(image),
    }
    if request.htmx:
        response = render(request, f"{TEMPLATE}#tool-form", context, status=200)
        return reswap(retarget(response, "#tool-form"), "outerHTML")
    return render(request, TEMPLATE, context, status=status)


def _throttled(request: AuthedRequest, message: str) -> HttpResponse:
    """Past THROTTLE_RATES["generate"]: the tool's page again, saying so; nothing is read or sent."""
    kwargs = request.resolver_match.kwargs if request.resolver_match else {}
    image = team_image(request, kwargs["image_id"], Action.GENERATE)
    form = _form(request, image, _tool(kwargs["tool"]), post=False)
    form.refusal = message
    return _page(request, image, form, status=TOO_MANY)


@login_required
@require_http_methods(["GET", "POST"])
@throttle("generate", refuse=_throttled)
def image_tool(request: AuthedRequest, image_id: UUID, tool: str) -> HttpResponse:
    image = team_image(request, image_id, Action.GENERATE)
    chosen = _tool(tool)
    if request.method == "GET":
        return _page(request, image, _form(request, image, chosen, post=False))
    form = _form(request, image, chosen, post=True)
    if not form.is_valid():
        return _page(request, image, form, status=INVALID)
    try:
        job = _job_create(request, image, form)
    except RuleViolation as exc:  # the form checks the same rules; a last word from the contract
        form.add_error(None, f"{exc.field}: {exc.rule}.")
        return _page(request, image, form, status=INVALID)
    except AllowanceExceeded as exc:
        form.add_error(None, exc.message)
        return _page(request, image, form, status=INVALID)
    if request.htmx:
        return HttpResponseClientRedirect(job_url(job))
    return redirect(job_url(job))


def job_url(job: GenerationJob) -> str:
    return reverse("generations:job-card", args=[job.pk])


def _job_create(request: AuthedRequest, image: GalleryImage, form: ToolForm) -> GenerationJob:
    tool = form.tool
    return services.stable_image_job_create(
        team=image.team,
        user=request.user,
        operation_id=tool.operation.id,
        engine_id=tool.operation.id,
        kind=tool.group,
        values=form.values,
        images=form.images,
        seed=form.chosen_seed,
        parent=image,
        relation=tool.group,
        prompt=image.job.prompt,
        resized_from=form.plan.resized_from if form.plan.resized else "",
    )


urlpatterns: list[URLPattern] = [
    path("images/<uuid:image_id>/tools/<slug:tool>/", image_tool, name="image-tool"),
]
