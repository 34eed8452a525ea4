"""Public share links: the Share panel on an image page (list, create, revoke), and the public page and
image file a link opens without login, both answering 404 once the link is revoked or expired."""

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from uuid import UUID

from django import forms
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, HttpResponseBase
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path, reverse
from django.utils import timezone
from django.utils.text import Truncator
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from accounts.models import Membership
from accounts.permissions import refusal, require
from accounts.policy import Action
from accounts.types import AuthedRequest
from generations.labels import size_label
from generations.models import GalleryImage, ShareLink
from generations.sharing import can_revoke, share_link_create, share_link_revoke

EXPIRY_CHOICES = [
    ("never", "Never"),
    ("1", "In 1 day"),
    ("7", "In 7 days"),
    ("30", "In 30 days"),
    ("date", "On a date"),
]
LONGEST_DATED_EXPIRY = timedelta(days=366)
# A revoked link must stop at once: no browser, proxy or chat-preview cache may keep the page or file.
NOT_CACHED = "no-store"


class ShareLinkForm(forms.Form):
    show_details = forms.BooleanField(required=False, label="Show prompt and settings")
    expires = forms.ChoiceField(
        choices=EXPIRY_CHOICES, initial="never", label="Link expires", widget=forms.RadioSelect
    )
    expires_on = forms.DateField(
        required=False, label="Last day it works", widget=forms.DateInput(attrs={"type": "date"})
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # Ids of their own: the image page has other forms.
        kwargs.setdefault("auto_id", "share_%s")
        super().__init__(*args, **kwargs)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        cleaned["expires_at"] = None
        choice, on = cleaned.get("expires"), cleaned.get("expires_on")
        if choice == "date":
            cleaned["expires_at"] = self._end_of(on)
        elif on is not None:
            self.add_error("expires_on", "Choose “On a date” to use this date, or clear it.")
        elif choice in ("1", "7", "30"):
            cleaned["expires_at"] = timezone.now() + timedelta(days=int(choice))
        return cleaned

    def _end_of(self, day: date | None) -> datetime | None:
        """The link works through the chosen day, in Studio's time zone."""
        if day is None:
            if "expires_on" not in self.errors:
                self.add_error("expires_on", "Choose the last day the link should work.")
            return None
        today = timezone.localdate()
        if day < today:
            self.add_error("expires_on", "That day has passed: choose today or a later day.")
            return None
        if day > today + LONGEST_DATED_EXPIRY:
            self.add_error("expires_on", "Choose a day within a year, or “Never” for a link without end.")
            return None
        return timezone.make_aware(datetime.combine(day + timedelta(days=1), time.min))


@dataclass(frozen=True)
class ShareRow:
    link: ShareLink
    url: str
    can_revoke: bool


def _panel(
    request: AuthedRequest,
    image: GalleryImage,
    membership: Membership,
    form: ShareLinkForm | None = None,
    created: ShareLink | None = None,
    status: int = 200,
) -> HttpResponse:
    """The Share panel: a fragment for htmx, else a page of its own (the image page without JavaScript)."""
    links = ShareLink.objects.for_team(image.team_id).live().filter(image=image).select_related("created_by")
    rows = [
        ShareRow(
            link=link,
            url=request.build_absolute_uri(reverse("generations:share", args=[link.token])),
            can_revoke=can_revoke(membership=membership, link=link),
        )
        for link in links.order_by("-created_at", "-pk")
    ]
    may_share = membership.can(Action.SHARE)
    context = {
        "image": image,
        "rows": rows,
        "form": (form or ShareLinkForm()) if may_share else None,
        "refusal": "" if may_share else refusal(membership, Action.SHARE),
        "created": created,
    }
    template = "generations/share_panel.html"
    if request.htmx:
        template += "#share-panel"
    return render(request, template, context, status=status)


def _team_image(request: AuthedRequest, image_id: UUID, action: Action) -> tuple[GalleryImage, Membership]:
    image = get_object_or_404(
        GalleryImage.objects.visible_to(request.user).select_related("job", "team"), pk=image_id
    )
    return image, require(request, image.team, action)


@login_required
@require_http_methods(["GET", "POST"])
def image_shares(request: AuthedRequest, image_id: UUID) -> HttpResponse:
    """GET: the image's live links. POST: a new link, for those whose role may share."""
    if request.method == "GET":
        return _panel(request, *_team_image(request, image_id, Action.VIEW))
    image, membership = _team_image(request, image_id, Action.SHARE)
    form = ShareLinkForm(request.POST)
    if not form.is_valid():
        return _panel(request, image, membership, form=form)
    link = share_link_create(
        image=image,
        user=request.user,
        show_details=form.cleaned_data["show_details"],
        expires_at=form.cleaned_data["expires_at"],
    )
    if not request.htmx:
        return redirect("generations:image-shares", image_id=image.pk)
    return _panel(request, image, membership, created=link, status=201)


@login_required
@require_POST
def share_revoke(request: AuthedRequest, link_id: int) -> HttpResponse:
    link = get_object_or_404(
        ShareLink.objects.visible_to(request.user).select_related("image__job", "team", "created_by"),
        pk=link_id,
    )
    membership = require(request, link.team, Action.VIEW)
    if not can_revoke(membership=membership, link=link):
        raise PermissionDenied(
            f"Only the person who made this link, or an admin or owner of {link.team.name}, can revoke it."
        )
    share_link_revoke(link=link, user=request.user)
    if not request.htmx:
        return redirect("generations:image-shares", image_id=link.image_id)
    return _panel(request, link.image, membership)


def _live_link(token: str) -> ShareLink:
    link = ShareLink.objects.live().select_related("image__job").filter(token=token).first()
    if link is None:
        raise Http404("This link does not exist, was revoked or has expired.")
    return link


def _not_cached[R: HttpResponseBase](response: R) -> R:
    response["Cache-Control"] = NOT_CACHED
    response["X-Robots-Tag"] = "noindex"
    # The token is the secret: never send it on as a Referer to another site.
    response["Referrer-Policy"] = "no-referrer"
    return response


@require_safe
def share_page(request: HttpRequest, token: str) -> HttpResponse:
    """What anyone with the link sees, signed in or not."""
    link = _live_link(token)
    image, job = link.image, link.image.job
    title = Truncator(job.prompt).chars(70) if link.show_details else "An image shared from Studio"
    description = (
        Truncator(job.prompt).chars(200)
        if link.show_details
        else "Made with Studio. Open the link to see it full size."
    )
    context = {
        "link": link,
        "image": image,
        "job": job,
        "title": title,
        "description": description,
        "alt": Truncator(job.prompt).chars(300) if link.show_details else "A shared image",
        "size_label": size_label((image.width, image.height)),
        "page_url": request.build_absolute_uri(reverse("generations:share", args=[token])),
        "image_url": request.build_absolute_uri(reverse("generations:share-image", args=[token])),
    }
    return _not_cached(render(request, "generations/share_page.html", context))


@require_safe
def share_image(request: HttpRequest, token: str) -> FileResponse:
    """The shared PNG, served through the link (never from a guessable media path)."""
    link = _live_link(token)
    try:
        file = link.image.image.open("rb")
    except FileNotFoundError:
        raise Http404("The image file is missing.") from None
    return _not_cached(FileResponse(file, content_type="image/png"))


urlpatterns = [
    path("images/<uuid:image_id>/shares/", image_shares, name="image-shares"),
    path("shares/<int:link_id>/revoke/", share_revoke, name="share-revoke"),
    path("share/<slug:token>/", share_page, name="share"),
    path("share/<slug:token>/image.png", share_image, name="share-image"),
]
