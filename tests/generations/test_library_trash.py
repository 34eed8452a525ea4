"""The trash: an image moved there leaves the gallery, collections and counts; it can be restored for 30
days; then the scheduled purge deletes its row, its file and its thumbnail, and other teams keep theirs.
Children of a deleted image keep their lineage ("made from a deleted image")."""

from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from generations import library
from generations.library_counts import library_counts
from generations.library_search import Filters
from generations.library_tasks import trash_purge_task
from generations.models import (
    Collection,
    CollectionItem,
    Favourite,
    GalleryImage,
    GalleryTally,
    GenerationJob,
)
from tests.factories import UserFactory
from tests.library_factories import library_image

pytestmark = pytest.mark.django_db
GALLERY = reverse("generations:gallery")


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def files_of(image: GalleryImage) -> list[Path]:
    return [Path(settings.MEDIA_ROOT) / image.image.name, Path(settings.MEDIA_ROOT) / image.thumbnail.name]


def test_a_trashed_image_leaves_the_gallery_and_its_page_offers_restore():
    ada = UserFactory(username="ada")
    kept, trashed = library_image(ada, prompt="a kept kite"), library_image(ada, prompt="a lost kite")
    client = client_for(ada)
    response = client.post(reverse("generations:image-trash", args=[trashed.pk]), {"next": GALLERY})
    assert response.status_code == 302 and response["Location"] == GALLERY
    gallery = client.get(GALLERY).content.decode()
    assert str(kept.pk) in gallery and str(trashed.pk) not in gallery
    assert "Moved to the trash. It can be restored for 30 days." in gallery
    assert "<strong>1</strong> image" in gallery
    page = client.get(trashed.url).content.decode()
    assert "In the trash" in page and reverse("generations:image-restore", args=[trashed.pk]) in page
    trash = client.get(reverse("generations:trash")).content.decode()
    purge_day = (timezone.now() + timedelta(days=30)).date().isoformat()
    assert str(trashed.pk) in trash and f"deleted for good on {purge_day}" in trash and "by ada" in trash
    client.post(reverse("generations:image-restore", args=[trashed.pk]))
    assert str(trashed.pk) in client.get(GALLERY).content.decode()
    assert GalleryImage.objects.get(pk=trashed.pk).trashed_at is None


def test_a_bulk_trash_can_be_undone_and_counts_follow():
    ada = UserFactory(username="ada")
    images = [library_image(ada, prompt=f"a kite {n}", style="anime") for n in range(4)]
    team = ada.current_team
    client = client_for(ada)
    response = client.post(
        reverse("generations:library-bulk"),
        {"action": "trash", "image": [str(i.pk) for i in images[:3]]},
        HTTP_HX_REQUEST="true",
    )
    html = response.content.decode()
    assert "Moved 3 images to the trash." in html and "Undo" in html
    assert library_counts(team, Filters(), ada.pk).total == 1
    assert library_counts(team, Filters(), ada.pk).facets["style"][0].count == 1
    undo = {"action": "restore", "image": [str(i.pk) for i in images[:3]]}
    assert (
        "Restored 3 images."
        in client.post(reverse("generations:library-bulk"), undo, HTTP_HX_REQUEST="true").content.decode()
    )
    assert library_counts(team, Filters(), ada.pk).total == 4


def test_the_purge_deletes_after_30_days_with_files_and_leaves_the_rest(django_capture_on_commit_callbacks):
    ada, sam = UserFactory(username="ada"), UserFactory(username="sam")
    old, recent, live = library_image(ada), library_image(ada), library_image(ada)
    theirs = library_image(sam)
    collection = Collection.objects.create(team=ada.current_team, name="Board", cover=old)
    CollectionItem.objects.create(collection=collection, image=old)
    Favourite.objects.create(user=ada, image=old)
    now = timezone.now()
    library.images_trash(images=GalleryImage.objects.filter(pk=old.pk), user=ada)
    GalleryImage.objects.filter(pk=old.pk).update(trashed_at=now - timedelta(days=31))
    library.images_trash(images=GalleryImage.objects.filter(pk=recent.pk), user=ada)
    GalleryImage.objects.filter(pk=recent.pk).update(trashed_at=now - timedelta(days=29))
    library.images_trash(images=GalleryImage.objects.filter(pk=theirs.pk), user=sam)
    for image in (old, recent, live, theirs):
        assert all(path.exists() for path in files_of(image))

    with django_capture_on_commit_callbacks(execute=True):  # files go once the rows are gone for good
        assert library.images_purge(now=now) == 1
    assert not GalleryImage.objects.filter(pk=old.pk).exists()
    assert not any(path.exists() for path in files_of(old))
    assert GalleryImage.objects.filter(pk=recent.pk).exists() and all(p.exists() for p in files_of(recent))
    assert all(p.exists() for p in files_of(live))
    assert not Favourite.objects.exists() and not collection.items.exists()
    collection.refresh_from_db()
    assert collection.cover is None
    assert library.images_purge(now=now) == 0  # nothing twice
    assert library.images_purge(now=now + timedelta(days=2)) == 1  # the recent one's turn
    assert GalleryImage.objects.filter(pk=theirs.pk).exists() and all(p.exists() for p in files_of(theirs))


def test_theirs_past_30_days_but_not_trashed_is_never_purged():
    ada = UserFactory(username="ada")
    ancient = library_image(ada, created_at=timezone.now() - timedelta(days=400))
    assert library.images_purge(now=timezone.now()) == 0
    assert GalleryImage.objects.filter(pk=ancient.pk).exists()


def test_a_child_of_a_purged_image_says_it_was_made_from_a_deleted_image(django_capture_on_commit_callbacks):
    ada = UserFactory(username="ada")
    parent = library_image(ada, prompt="a fox")
    child = library_image(ada, prompt="a fox", kind="variation", parent=parent)
    client = client_for(ada)
    library.images_trash(images=GalleryImage.objects.filter(pk=parent.pk), user=ada)
    page = client.get(child.url).content.decode()
    assert "(in the trash)" in page and "made from the one above (variation)" in page
    GalleryImage.objects.filter(pk=parent.pk).update(trashed_at=timezone.now() - timedelta(days=31))
    with django_capture_on_commit_callbacks(execute=True):
        trash_purge_task.delay()  # as beat would run it (eager in tests)
    assert not GalleryImage.objects.filter(pk=parent.pk).exists()
    assert not any(path.exists() for path in files_of(parent))
    job = GenerationJob.objects.get(pk=child.job_id)
    assert job.parent_id is None and job.relation == "variation"
    page = client.get(child.url).content.decode()
    assert "made from a deleted image (variation)" in page


def test_the_scheduled_task_recounts_the_tally_after_purging():
    ada = UserFactory(username="ada")
    library_image(ada)
    GalleryTally.objects.update(count=99)  # drift, as a crash between two writes might leave
    trash_purge_task.delay()
    assert sum(GalleryTally.objects.values_list("count", flat=True)) == 1
