"""Human labels in templates: `{% load labels %}`, then `job.engine_id|engine_name`,
`job.sampler|sampler_label`, `job.size|size_label` (or a (width, height) pair),
`job.style_preset|style_label`, `job|job_settings` for a job card's settings line."""

from django import template

from generations import labels
from generations.models import GenerationJob

register = template.Library()


@register.filter
def engine_name(engine_id: str | None) -> str:
    return labels.engine_name(engine_id or "")


@register.filter
def sampler_label(sampler: str | None) -> str:
    return labels.sampler_label(sampler)


@register.filter
def size_label(size: str | tuple[int, int] | list[int] | None) -> str:
    return labels.size_label(size if size is not None else "")


@register.filter
def style_label(style: str | None) -> str:
    return labels.style_label(style)


@register.filter
def clip_guidance_label(preset: str | None) -> str:
    return labels.clip_guidance_label(preset)


@register.filter
def stable_image_settings(options: dict[str, object] | None) -> list[tuple[str, str]]:
    return labels.stable_image_settings(options or {})


@register.filter
def job_settings(job: GenerationJob) -> str:
    return labels.job_settings(job)
