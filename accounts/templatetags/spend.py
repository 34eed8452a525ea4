"""Spend in templates: `{% load spend %}`, then `balance.credits|is_low_balance` for the header's warning and
`{% cost_estimate form %}` for the estimate beside Generate, rendered with the page."""

from typing import Any

from django import template
from django.conf import settings

register = template.Library()


@register.filter
def is_low_balance(credits: float | None) -> bool:
    """Below LOW_BALANCE_CREDITS: the header warns before jobs start failing for want of credits."""
    return credits is not None and credits < settings.LOW_BALANCE_CREDITS


@register.simple_tag
def low_balance_threshold() -> float:
    return float(settings.LOW_BALANCE_CREDITS)


@register.inclusion_tag("generations/estimate.html", takes_context=True)
def cost_estimate(context: template.Context, form: Any) -> dict[str, Any]:
    from generations.estimate_views import estimate_context  # generations depends on accounts, not back

    return estimate_context(form, context["request"].membership)
