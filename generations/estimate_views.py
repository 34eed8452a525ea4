"""The cost of a job before Generate: what the create form's current values would spend, priced by the
same rules the job is charged by, and what is left of the member's monthly allowance."""

import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpResponse
from django.shortcuts import render
from django.urls import URLPattern, path
from django.views.decorators.http import require_GET

from accounts.models import Membership
from accounts.permissions import current_team_can
from accounts.policy import Action
from accounts.services.spend import allowance_left
from accounts.types import AuthedRequest
from generations.engines import engine_choices
from generations.forms import CreateForm, GenerateForm
from generations.models import GenerationJob
from generations.stability.contract import Prompt
from generations.stability.types import TextToImageRequest
from generations.stable_image_forms import StableImageForm, create_form

SIZE = re.compile(r"(\d{2,5})x(\d{2,5})")


@dataclass(frozen=True)
class Estimate:
    samples: int
    price_per_image: Decimal

    @property
    def credits(self) -> Decimal:
        return self.price_per_image * self.samples

    @property
    def exact(self) -> str:
        return f"{self.credits:f}"


def estimate_of(form: CreateForm) -> Estimate | None:
    """The cost of the job the form would make, read from its values (submitted, or initial) without
    reading any file; None when the engine, size, steps or number of images would be refused. With an init
    image the size is the one the form shows: the engine's nearest to the image's."""
    if isinstance(form, StableImageForm):
        return _stable_image_estimate(form)
    assert isinstance(form, GenerateForm)
    engine_id = form["engine"].value()
    if engine_id not in form.engine_ids:
        return None
    try:
        steps = form.fields["steps"].clean(form["steps"].value())
        samples = form.fields["samples"].clean(form["samples"].value())
    except ValidationError:
        return None
    if preview := form.init_preview:
        width, height = preview.output
    elif match := SIZE.fullmatch(str(form["size"].value() or "")):
        width, height = int(match[1]), int(match[2])
    else:
        return None
    # The client's own rules on these four values (the prompt is not priced, so any will do).
    request = TextToImageRequest(
        text_prompts=(Prompt("estimate"),), width=width, height=height, steps=steps, samples=samples
    )
    if request.violations(engine_id):
        return None
    # Priced as job_create prices the job it stores.
    job = GenerationJob(engine_id=engine_id, width=width, height=height, steps=steps, samples=samples)
    return Estimate(samples=job.samples, price_per_image=job.price_per_image)


def _stable_image_estimate(form: StableImageForm) -> Estimate | None:
    """A model's price is flat: the same for each image whatever its options (priced as the job is)."""
    try:
        samples = form.fields["samples"].clean(form["samples"].value())
    except ValidationError:
        return None
    return Estimate(samples=samples, price_per_image=form.model.price)


def estimate_context(form: CreateForm, membership: Membership) -> dict[str, Any]:
    return {"estimate": estimate_of(form), "allowance": allowance_left(membership=membership)}


@login_required
@require_GET
@current_team_can(Action.GENERATE)
def estimate(request: AuthedRequest) -> HttpResponse:
    """The estimate beside Generate, asked for again whenever the form changes."""
    form = create_form(
        request.GET,
        engines=engine_choices(request.team),
        default_engine=settings.STABILITY_DEFAULT_ENGINE,
        team=request.team,
    )
    return render(request, "generations/estimate.html", estimate_context(form, request.membership))


urlpatterns: list[URLPattern] = [
    path("estimate/", estimate, name="estimate"),
]
