"""The library: the gallery with search and filters, favourites, collections, bulk actions and ZIP
downloads, the trash, and the jobs history. Everything is the current team's (request.team)."""

from typing import Any
from uuid import UUID

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Count, OuterRef, Q, Subquery
from django.db.models.functions import Coalesce
from django.http import Http404, HttpResponse, HttpResponseBase, QueryDict, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path, reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.text import slugify
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import trigger_client_event

from accounts.models import Membership
from accounts.permissions import require
from accounts.policy import Action
from accounts.types import AuthedRequest
from generations import library
from generations.library_counts import library_counts
from generations.library_export import zip_stream
from generations.library_search import SORTS, Cursor, filters_from, matching, page_of
from generations.library_tiles import options_html, tiles_html
from generations.models import Collection, Favourite, GalleryImage, GalleryImageQuerySet, GenerationJob

MAX_ZIP_IMAGES = 10_000
JOBS_PAGE_SIZE = 25
TRASH_PAGE_SIZE = 60


def _query(request: AuthedRequest, *drop: str) -> str:
    """The request's query string without `before` (and `drop`): what the next page and refreshes keep."""
    query = request.GET.copy()
    for name in ("before", *drop):
        query.pop(name, None)
    return query.urlencode()


# --- the gallery -------------------------------------------------------------------------------------


@login_required
@require_GET
def gallery(request: AuthedRequest) -> HttpResponse:
    form, filters = filters_from(request.GET, request.user.pk)
    team = request.membership.team  # the object itself: request.team is a lazy proxy, slow in many filters
    images, next_cursor = page_of(
        GalleryImage.objects.for_team(team), filters, request.GET.get("before", ""), request.user.pk
    )
    context: dict[str, Any] = {
        "images": images,
        "tiles": tiles_html(images),
        "next_cursor": next_cursor,
        "query": _query(request),
        "mine": filters.creator == request.user.pk,
    }
    if request.htmx and request.GET.get("before"):  # the next page, as the last one scrolls into view
        return render(request, "generations/gallery_list.html#gallery-page", context)
    counts = library_counts(team, filters, request.user.pk)
    facets = counts.facets
    context.update(
        facets=[
            (name, label, options_html(options))
            for name, label, options in (
                ("creator", "Creator", facets["creator"]),
                ("engine", "Model", facets["engine"]),
                ("style", "Style", facets["style"]),
                ("kind", "Kind", facets["kind"]),
                ("aspect", "Aspect", facets["aspect"]),
                ("size", "Size", facets["size"]),
                ("filtered", "Safety filter", facets["filtered"]),
                ("collection", "Collection", counts.collections),
            )
        ],
        form=form,
        filters=filters,
        counts=counts,
        collection=counts.selected("collection"),
        sorts=SORTS if filters.text else {k: v for k, v in SORTS.items() if k != "relevance"},
        can_edit=request.membership.can(Action.GENERATE),
    )
    if request.htmx:
        return render(request, "generations/gallery_list.html#library", context)
    return render(request, "generations/gallery_list.html", context)


# --- one image: star, collections, trash -------------------------------------------------------------


def _team_image(request: AuthedRequest, image_id: UUID, action: Action) -> GalleryImage:
    """An image of one of the user's teams (else 404), where their role allows `action` (else 403)."""
    image = get_object_or_404(
        GalleryImage.objects.visible_to(request.user).select_related("team"), pk=image_id
    )
    require(request, image.team, action)
    return image


def _panel(request: AuthedRequest, image: GalleryImage, status: int = 200, **extra: Any) -> HttpResponse:
    image.is_favourite = Favourite.objects.filter(user=request.user, image=image).exists()  # type: ignore[attr-defined]
    held = set(image.collection_items.values_list("collection_id", flat=True))
    collections = list(Collection.objects.for_team(image.team_id).by_name())
    for collection in collections:
        collection.holds_image = collection.pk in held  # type: ignore[attr-defined]
    context = {
        "image": image,
        "collections": collections,
        "can_edit": require(request, image.team, Action.VIEW).can(Action.GENERATE),
        **extra,
    }
    return render(request, "generations/image_library.html", context, status=status)


@login_required
@require_GET
def image_library(request: AuthedRequest, image_id: UUID) -> HttpResponse:
    """The image's star, collections and trash button: on its page, in the lightbox and on its tile."""
    return _panel(request, _team_image(request, image_id, Action.VIEW))


@login_required
@require_POST
def image_favourite(request: AuthedRequest, image_id: UUID) -> HttpResponse:
    image = _team_image(request, image_id, Action.VIEW)
    starred = library.favourite_toggle(user=request.user, image=image)
    if not request.htmx:
        return redirect(_back(request, image.url))
    image.is_favourite = starred  # type: ignore[attr-defined]
    response = render(request, "generations/image_library.html#star", {"image": image})
    return trigger_client_event(response, "favourite-changed", {"image": str(image.pk), "starred": starred})


@login_required
@require_POST
def image_collections(request: AuthedRequest, image_id: UUID) -> HttpResponse:
    """Put the image in a collection (a chosen one, or a new one named here), or take it out."""
    image = _team_image(request, image_id, Action.GENERATE)
    one = GalleryImage.objects.filter(pk=image.pk)
    try:
        if name := request.POST.get("new_collection", "").strip():
            collection = library.collection_create(team=image.team, user=request.user, name=name)
        else:
            collection = _collection(image.team_id, request.POST.get("collection"))
        if request.POST.get("action") == "remove":
            library.collection_remove(collection=collection, images=one)
        else:
            library.collection_add(collection=collection, images=one, user=request.user)
    except library.LibraryRefusal as exc:
        if not request.htmx:
            messages.error(request, exc.message)
            return redirect(_back(request, image.url))
        return _panel(request, image, status=422, error=exc.message)
    if not request.htmx:
        return redirect(_back(request, image.url))
    return trigger_client_event(_panel(request, image), "library-changed")


@login_required
@require_POST
def image_trash(request: AuthedRequest, image_id: UUID) -> HttpResponse:
    image = _team_image(request, image_id, Action.GENERATE)
    library.images_trash(images=GalleryImage.objects.filter(pk=image.pk), user=request.user)
    return _after(request, image, "Moved to the trash. It can be restored for 30 days.")


@login_required
@require_POST
def image_restore(request: AuthedRequest, image_id: UUID) -> HttpResponse:
    image = _team_image(request, image_id, Action.GENERATE)
    library.images_restore(images=GalleryImage.objects.filter(pk=image.pk))
    return _after(request, image, "Restored: the image is back in the gallery.")


def _after(request: AuthedRequest, image: GalleryImage, message: str) -> HttpResponse:
    """Back where the person was; the image page says itself whether the image is in the trash."""
    target = _back(request, image.url)
    if target != image.url:
        messages.success(request, message)
    if request.htmx:
        response = HttpResponse(status=204)
        response["HX-Redirect"] = target
        return response
    return redirect(target)


def _back(request: AuthedRequest, default: str) -> str:
    target = request.POST.get("next", "")
    if target and url_has_allowed_host_and_scheme(target, {request.get_host()}, request.is_secure()):
        return target
    return default


def _collection(team_id: int, value: Any) -> Collection:
    try:
        return Collection.objects.for_team(team_id).get(pk=int(value))
    except (TypeError, ValueError, Collection.DoesNotExist) as exc:
        raise library.LibraryRefusal("Choose a collection, or name a new one.") from exc


# --- many images at once -----------------------------------------------------------------------------


def _selection(request: AuthedRequest, images: GalleryImageQuerySet) -> GalleryImageQuerySet:
    """The images a bulk action is for: the ticked ones, or every one matching the gallery's filters.
    Ids that are not the current team's (another team's, or unknown) refuse the whole action."""
    if request.POST.get("all_matching"):
        _, filters = filters_from(QueryDict(request.POST.get("query", "")), request.user.pk)
        return matching(images, filters, request.user.pk)
    raw = request.POST.getlist("image")
    try:
        ids = {UUID(value) for value in raw}
    except ValueError as exc:
        raise library.LibraryRefusal("The selection is not a list of images.") from exc
    if not ids:
        raise library.LibraryRefusal("Choose at least one image.")
    chosen = images.filter(pk__in=ids)
    if chosen.count() != len(ids):
        raise Http404(
            f"{len(ids) - chosen.count()} of the chosen images are not in {request.team.name} (or no longer "
            "exist): nothing was done."
        )
    return chosen


BULK_NEEDS = {
    "star": Action.VIEW,
    "collect": Action.GENERATE,
    "uncollect": Action.GENERATE,
    "trash": Action.GENERATE,
    "restore": Action.GENERATE,
}


def _bulk_action(request: AuthedRequest, action: str) -> tuple[str, list[str]]:
    """Do it; the sentence to show, and the ids an Undo would restore."""
    team_images = GalleryImage.objects.for_team(request.team)
    images = _selection(request, team_images.trashed() if action == "restore" else team_images.live())
    noun = lambda n: f"{n} image{'s' if n != 1 else ''}"  # noqa: E731
    match action:
        case "star":
            added = library.favourites_add(user=request.user, images=images)
            return f"Starred {noun(added)}.", []
        case "collect" | "uncollect":
            if action == "uncollect":
                chosen = request.POST.get("from_collection") or request.POST.get("collection")
                collection = _collection(request.team.pk, chosen)
            elif name := request.POST.get("new_collection", "").strip():
                collection = library.collection_create(team=request.team, user=request.user, name=name)
            else:
                collection = _collection(request.team.pk, request.POST.get("collection"))
            if action == "uncollect":
                removed = library.collection_remove(collection=collection, images=images)
                return f"Took {noun(removed)} out of “{collection.name}”.", []
            added = library.collection_add(collection=collection, images=images, user=request.user)
            return f"Added {noun(added)} to “{collection.name}”.", []
        case "trash":
            ids = [str(pk) for pk in images.values_list("pk", flat=True)]
            moved = library.images_trash(images=team_images.filter(pk__in=ids), user=request.user)
            return f"Moved {noun(moved)} to the trash.", ids
        case "restore":
            restored = library.images_restore(images=images)
            return f"Restored {noun(restored)}.", []
    raise library.LibraryRefusal("Choose what to do with the chosen images.")


@login_required
@require_POST
def bulk(request: AuthedRequest) -> HttpResponse:
    """Star, collect, uncollect, trash or restore the chosen images."""
    action = request.POST.get("action", "")
    if action not in BULK_NEEDS:
        return _bulk_answer(request, "Choose what to do with the chosen images.", status=400)
    require(request, request.team, BULK_NEEDS[action])
    try:
        message, undo = _bulk_action(request, action)
    except library.LibraryRefusal as exc:
        return _bulk_answer(request, exc.message, status=400)
    except Http404 as exc:
        return _bulk_answer(request, str(exc), status=404)
    return _bulk_answer(request, message, undo=undo)


def _bulk_answer(
    request: AuthedRequest, message: str, status: int = 200, undo: list[str] | None = None
) -> HttpResponse:
    if not request.htmx:
        if status >= 400:
            return _refused(request, message, status, heading="Nothing was done")
        messages.success(request, message)
        return redirect(_back(request, reverse("generations:gallery")))
    context = {"message": message, "error": status >= 400, "undo": undo or []}
    response = render(request, "generations/gallery_list.html#bulk-status", context, status=status)
    return response if status >= 400 else trigger_client_event(response, "library-changed")


def _refused(
    request: AuthedRequest, message: str, status: int, heading: str = "Nothing was downloaded"
) -> HttpResponse:
    context = {"message": message, "heading": heading, "back": _back(request, reverse("generations:gallery"))}
    return render(request, "generations/library_refused.html", context, status=status)


@login_required
@require_POST
def download(request: AuthedRequest) -> HttpResponseBase:
    """The chosen images as one ZIP with manifest.json and manifest.csv, streamed."""
    require(request, request.team, Action.DOWNLOAD)
    try:
        images = _selection(request, GalleryImage.objects.for_team(request.team).live())
    except library.LibraryRefusal as exc:
        return _refused(request, exc.message, 400)
    except Http404 as exc:
        return _refused(request, str(exc), 404)
    count = images.count()
    if count > MAX_ZIP_IMAGES:
        message = (
            f"A download holds at most {MAX_ZIP_IMAGES:,} images; {count:,} are chosen. Narrow the filters."
        )
        return _refused(request, message, 400)
    name = f"studio-{slugify(request.team.name) or 'team'}-{timezone.localdate():%Y-%m-%d}-{count}-images.zip"
    response = StreamingHttpResponse(
        zip_stream(images.order_by("-created_at", "-id")), content_type="application/zip"
    )
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    response["Cache-Control"] = "no-store"
    return response


# --- collections -------------------------------------------------------------------------------------


@login_required
@require_GET
def collections(request: AuthedRequest) -> HttpResponse:
    rows = list(Collection.objects.for_team(request.team).with_summary().by_name())
    covers = GalleryImage.objects.in_bulk([c.cover_image_id for c in rows if c.cover_image_id])
    for collection in rows:
        collection.cover_image = covers.get(collection.cover_image_id)  # type: ignore[attr-defined]
    context = {"collections": rows, "can_edit": request.membership.can(Action.GENERATE)}
    return render(request, "generations/collections_list.html", context)


@login_required
@require_POST
def collection_create(request: AuthedRequest) -> HttpResponse:
    require(request, request.team, Action.GENERATE)
    try:
        collection = library.collection_create(
            team=request.team, user=request.user, name=request.POST.get("name", "")
        )
    except library.LibraryRefusal as exc:
        messages.error(request, exc.message)
        return redirect("generations:collections")
    return redirect(collection.url)


def _team_collection(request: AuthedRequest, collection_id: int) -> Collection:
    return get_object_or_404(Collection.objects.for_team(request.team), pk=collection_id)


@login_required
@require_POST
def collection_update(request: AuthedRequest, collection_id: int) -> HttpResponse:
    """Rename the collection, or choose its cover."""
    require(request, request.team, Action.GENERATE)
    collection = _team_collection(request, collection_id)
    try:
        if "name" in request.POST:
            library.collection_rename(collection=collection, name=request.POST["name"])
            messages.success(request, f"Renamed to “{collection.name}”.")
        if cover := request.POST.get("cover"):
            image = get_object_or_404(GalleryImage.objects.for_team(request.team).live(), pk=_uuid(cover))
            library.collection_set_cover(collection=collection, image=image)
            messages.success(request, f"The cover of “{collection.name}” is chosen.")
    except library.LibraryRefusal as exc:
        messages.error(request, exc.message)
    return redirect(_back(request, collection.url))


@login_required
@require_POST
def collection_delete(request: AuthedRequest, collection_id: int) -> HttpResponse:
    require(request, request.team, Action.GENERATE)
    collection = _team_collection(request, collection_id)
    library.collection_delete(collection=collection)
    messages.success(
        request, f"Deleted the collection “{collection.name}”; its images are still in the gallery."
    )
    return redirect("generations:collections")


def _uuid(value: str) -> UUID:
    try:
        return UUID(value)
    except ValueError as exc:
        raise Http404("No such image") from exc


# --- the trash ---------------------------------------------------------------------------------------


@login_required
@require_GET
def trash(request: AuthedRequest) -> HttpResponse:
    images = (
        GalleryImage.objects.for_team(request.team)
        .trashed()
        .select_related("trashed_by", "created_by")
        .defer("search_prompt", "search_all")
        .order_by("-trashed_at", "-id")
    )
    cursor = Cursor.decode(request.GET.get("before", ""))
    if cursor is not None:
        at = cursor.created_at
        images = images.filter(
            Q(trashed_at__lte=at), Q(trashed_at__lt=at) | Q(trashed_at=at, id__lt=cursor.pk)
        )
    page = list(images[: TRASH_PAGE_SIZE + 1])
    more = len(page) > TRASH_PAGE_SIZE
    page = page[:TRASH_PAGE_SIZE]
    last = page[-1] if page else None
    context = {
        "images": page,
        "next_cursor": Cursor("trash", last.trashed_at, last.pk).encode()
        if more and last and last.trashed_at
        else "",
        "can_edit": request.membership.can(Action.GENERATE),
    }
    return render(request, "generations/trash_list.html", context)


# --- jobs history ------------------------------------------------------------------------------------


@login_required
@require_GET
def jobs(request: AuthedRequest) -> HttpResponse:
    """Every job of the team, newest first, by status and creator, a page at a time."""
    status = request.GET.get("status", "")
    creator = request.GET.get("creator", "")
    # Per-row subqueries, not a join and GROUP BY: only the page's jobs are counted, not all of them.
    live_images = GalleryImage.objects.filter(job=OuterRef("pk")).live()
    image_count = live_images.order_by().values("job").annotate(n=Count("pk")).values("n")
    rows = (
        GenerationJob.objects.for_team(request.team)
        .newest_first()
        .select_related("created_by")
        .annotate(
            image_count=Coalesce(Subquery(image_count), 0),
            thumbnail=Subquery(live_images.order_by("index").values("thumbnail")[:1]),
        )
    )
    if status in GenerationJob.Status.values:
        rows = rows.filter(status=status)
    if creator.isdigit():
        rows = rows.filter(created_by_id=int(creator))
    cursor = Cursor.decode(request.GET.get("before", ""))
    if cursor is not None:
        at = cursor.created_at
        rows = rows.filter(Q(created_at__lte=at), Q(created_at__lt=at) | Q(created_at=at, id__lt=cursor.pk))
    page = list(rows[: JOBS_PAGE_SIZE + 1])
    more = len(page) > JOBS_PAGE_SIZE
    page = page[:JOBS_PAGE_SIZE]
    members = Membership.objects.filter(team=request.team).select_related("user").order_by("user__username")
    context = {
        "jobs": page,
        "next_cursor": Cursor("jobs", page[-1].created_at, page[-1].pk).encode() if more else "",
        "statuses": GenerationJob.Status.choices,
        "status": status,
        "creator": creator,
        "members": members,
        "query": _query(request),
    }
    if request.htmx and request.GET.get("before"):
        return render(request, "generations/jobs_list.html#job-rows", context)
    return render(request, "generations/jobs_list.html", context)


urlpatterns = [
    path("images/<uuid:image_id>/library/", image_library, name="image-library"),
    path("images/<uuid:image_id>/favourite/", image_favourite, name="image-favourite"),
    path("images/<uuid:image_id>/collections/", image_collections, name="image-collections"),
    path("images/<uuid:image_id>/trash/", image_trash, name="image-trash"),
    path("images/<uuid:image_id>/restore/", image_restore, name="image-restore"),
    path("library/bulk/", bulk, name="library-bulk"),
    path("library/download/", download, name="library-download"),
    path("collections/", collections, name="collections"),
    path("collections/new/", collection_create, name="collection-create"),
    path("collections/<int:collection_id>/", collection_update, name="collection-update"),
    path("collections/<int:collection_id>/delete/", collection_delete, name="collection-delete"),
    path("trash/", trash, name="trash"),
    path("jobs/", jobs, name="jobs"),
]
