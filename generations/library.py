"""Writes of the library: favourites, collections, the trash and its purge.

Every function takes images the caller has already scoped to one team (the views use
`GalleryImage.objects.for_team(request.team)`); a collection only ever holds images of its own team.
"""

import logging
from datetime import datetime
from functools import partial
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Count, OuterRef, Q, QuerySet, Subquery
from django.db.models.fields.files import FieldFile
from django.db.models.functions import Coalesce
from django.utils import timezone

from accounts.models import Team, User
from generations.models import (
    IMAGE_FACTS,
    TALLY_DIMENSIONS,
    Collection,
    CollectionItem,
    Favourite,
    GalleryImage,
    GalleryImageQuerySet,
    GalleryTally,
    ImageFacts,
)

logger = logging.getLogger(__name__)

PURGE_BATCH = 500


class LibraryRefusal(Exception):
    """A library action a person asked for that cannot be done; `message` says why, in a sentence."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _facts(images: GalleryImageQuerySet) -> dict[Any, dict[str, Any]]:
    """Each image's facts for the rows that point at it (ImageFacts), by its pk: one query."""
    rows = images.values("pk", *IMAGE_FACTS, "finish_reason", "trashed_at")
    return {row["pk"]: ImageFacts.facts_of(row) for row in rows}


# --- favourites --------------------------------------------------------------------------------------


def favourite_toggle(*, user: User, image: GalleryImage) -> bool:
    """Star the image for this person, or unstar it: whether it is starred now."""
    deleted, _ = Favourite.objects.filter(user=user, image=image).delete()
    if deleted:
        return False
    facts = _facts(GalleryImage.objects.filter(pk=image.pk))[image.pk]
    try:
        with transaction.atomic():
            Favourite.objects.create(user=user, image=image, **facts)
    except IntegrityError:  # a double click: starred by the other request
        pass
    return True


def favourites_add(*, user: User, images: GalleryImageQuerySet) -> int:
    """Star every image (those starred already stay so): how many were newly starred."""
    starred = set(Favourite.objects.filter(user=user, image__in=images).values_list("image_id", flat=True))
    new = [
        Favourite(user=user, image_id=pk, **facts)
        for pk, facts in _facts(images).items()
        if pk not in starred
    ]
    Favourite.objects.bulk_create(new, ignore_conflicts=True)
    return len(new)


# --- collections -------------------------------------------------------------------------------------


def collection_name_clean(name: str) -> str:
    name = " ".join(name.split())
    if not name:
        raise LibraryRefusal("Give the collection a name.")
    if len(name) > 80:
        raise LibraryRefusal("A collection's name has at most 80 characters.")
    return name


@transaction.atomic
def collection_create(*, team: Team, user: User, name: str) -> Collection:
    name = collection_name_clean(name)
    if Collection.objects.for_team(team).filter(name__iexact=name).exists():
        raise LibraryRefusal(f"{team.name} already has a collection called “{name}”.")
    try:
        with transaction.atomic():
            return Collection.objects.create(team=team, name=name, created_by=user)
    except IntegrityError as exc:  # made by someone else a moment ago
        raise LibraryRefusal(f"{team.name} already has a collection called “{name}”.") from exc


def collection_rename(*, collection: Collection, name: str) -> Collection:
    name = collection_name_clean(name)
    clash = (
        Collection.objects.for_team(collection.team_id).filter(name__iexact=name).exclude(pk=collection.pk)
    )
    if clash.exists():
        raise LibraryRefusal(f"There is already a collection called “{name}”.")
    collection.name = name
    try:
        with transaction.atomic():
            collection.save(update_fields=["name"])
    except IntegrityError as exc:
        raise LibraryRefusal(f"There is already a collection called “{name}”.") from exc
    return collection


def _same_team(collection: Collection, images: GalleryImageQuerySet) -> GalleryImageQuerySet:
    return images.filter(team_id=collection.team_id)


def collection_add(*, collection: Collection, images: GalleryImageQuerySet, user: User) -> int:
    """Put the images in the collection (those in it already stay): how many were added."""
    images = _same_team(collection, images)
    held = set(collection.items.filter(image__in=images).values_list("image_id", flat=True))
    new = [
        CollectionItem(collection=collection, image_id=pk, added_by=user, **facts)
        for pk, facts in _facts(images).items()
        if pk not in held
    ]
    CollectionItem.objects.bulk_create(new, ignore_conflicts=True)
    collections_recount(Collection.objects.filter(pk=collection.pk))
    return len(new)


def collection_remove(*, collection: Collection, images: GalleryImageQuerySet) -> int:
    removed, _ = collection.items.filter(image__in=_same_team(collection, images)).delete()
    collections_recount(Collection.objects.filter(pk=collection.pk))
    if collection.cover_id and not collection.items.filter(image_id=collection.cover_id).exists():
        collection.cover = None
        collection.save(update_fields=["cover"])
    return removed


def collections_recount(collections: QuerySet[Collection]) -> None:
    """Count the live images of these collections again into `Collection.live_count`: after every change
    to their items or their images' trash state, and hourly for every team (which heals any drift)."""
    live = CollectionItem.objects.filter(collection=OuterRef("pk"), image_live=True).order_by()
    counted = live.values("collection").annotate(n=Count("pk")).values("n")
    collections.update(live_count=Coalesce(Subquery(counted), 0))


def collection_set_cover(*, collection: Collection, image: GalleryImage) -> Collection:
    if not collection.items.filter(image=image).exists():
        raise LibraryRefusal("Only an image in the collection can be its cover.")
    collection.cover = image
    collection.save(update_fields=["cover"])
    return collection


def collection_delete(*, collection: Collection) -> None:
    """The collection goes; its images stay in the gallery."""
    collection.delete()


# --- the trash ---------------------------------------------------------------------------------------


def _tally_rows(images: GalleryImageQuerySet) -> list[dict[str, Any]]:
    return list(
        images.annotate(filtered=Q(finish_reason="CONTENT_FILTERED"))
        .values("team_id", *TALLY_DIMENSIONS)
        .annotate(n=Count("pk"))
        .order_by()
    )


@transaction.atomic
def images_trash(*, images: GalleryImageQuerySet, user: User) -> int:
    """Move live images to their team's trash: hidden everywhere, restorable for 30 days."""
    ids = list(images.live().values_list("pk", flat=True))
    live = GalleryImage.objects.filter(pk__in=ids)
    GalleryTally.objects.adjust(_tally_rows(live), -1)
    Favourite.objects.filter(image__in=ids).update(image_live=False)
    CollectionItem.objects.filter(image__in=ids).update(image_live=False)
    collections_recount(Collection.objects.filter(items__image__in=ids))
    return live.update(trashed_at=timezone.now(), trashed_by=user)


@transaction.atomic
def images_restore(*, images: GalleryImageQuerySet) -> int:
    ids = list(images.trashed().values_list("pk", flat=True))
    trashed = GalleryImage.objects.filter(pk__in=ids)
    GalleryTally.objects.adjust(_tally_rows(trashed), +1)
    Favourite.objects.filter(image__in=ids).update(image_live=True)
    CollectionItem.objects.filter(image__in=ids).update(image_live=True)
    collections_recount(Collection.objects.filter(items__image__in=ids))
    return trashed.update(trashed_at=None, trashed_by=None)


def _delete_files(*files: FieldFile) -> None:
    for file in files:
        if file and file.name:
            try:
                file.storage.delete(file.name)
            except OSError as exc:  # the purge goes on; the next run cannot find the row to retry anyway
                logger.warning("could not delete %s: %s", file.name, exc)


def images_purge(*, now: datetime | None = None) -> int:
    """Delete for good the images trashed more than 30 days ago, with their files and thumbnails, in
    batches; each batch's files go once its rows are gone. Lineage survives: a child's job keeps its
    relation and loses only the parent ("made from a deleted image")."""
    now = now or timezone.now()
    purged = 0
    while True:
        with transaction.atomic():
            batch = list(
                GalleryImage.objects.purgeable(now)
                .select_for_update(skip_locked=True)
                .only("pk", "image", "thumbnail")[:PURGE_BATCH]
            )
            if not batch:
                return purged
            GalleryImage.objects.filter(pk__in=[image.pk for image in batch]).delete()
            files = [file for image in batch for file in (image.image, image.thumbnail)]
            transaction.on_commit(partial(_delete_files, *files))
        purged += len(batch)
        logger.info("purged %d images from the trash", len(batch))


def tallies_rebuild() -> None:
    """Count every team's live images again (hourly, after the purge): heals any drift of the tally and
    of the collections' counts."""
    for team_id in Team.objects.values_list("pk", flat=True).iterator():
        GalleryTally.objects.rebuild(team_id)
        collections_recount(Collection.objects.filter(team_id=team_id))
