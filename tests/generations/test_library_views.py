"""The library's pages as a person uses them: the gallery's filters and their counts, stars, collections,
bulk actions, and the jobs history; other teams' images refused; query counts pinned."""

import json
import re
from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.models import Membership
from generations.models import Collection, CollectionItem, Favourite, GalleryImage, GenerationJob
from tests.factories import UserFactory
from tests.library_factories import library_image
from tests.membership_factories import TeamFactory

pytestmark = pytest.mark.django_db
HTMX = {"HTTP_HX_REQUEST": "true"}
GALLERY = reverse("generations:gallery")
BULK = reverse("generations:library-bulk")


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def tiles(html: str) -> list[str]:
    return re.findall(r'<li class="tile" data-image="([0-9a-f-]+)"', html)


def option_count(html: str, name: str, value: str) -> int:
    select = html.split(f'name="{name}"', 1)[1].split("</select>", 1)[0]
    label = re.search(rf'<option value="{re.escape(value)}"[^>]*>[^<]*\(([\d,]+)\)</option>', select)
    assert label, f"no option {value} for {name}"
    return int(label.group(1).replace(",", ""))


@pytest.fixture
def team_of_two():
    ada, bob = UserFactory(username="ada"), UserFactory(username="bob")
    team = TeamFactory(name="Posters")
    for user in (ada, bob):
        Membership.objects.create(user=user, team=team, role="member")
        user.current_team = team
        user.save(update_fields=["current_team"])
    return team, ada, bob


def test_a_search_and_two_filters_find_the_image_and_the_counts_match_the_tiles(team_of_two):
    team, ada, bob = team_of_two
    for number in range(6):
        library_image(ada, team, prompt=f"a harbour at night {number}", engine="stable-diffusion-v1-6")
        library_image(bob, team, prompt=f"a harbour at noon {number}", engine="stable-diffusion-xl-1024-v1-0")
    wanted = library_image(
        bob, team, prompt="a lighthouse keeper", engine="stable-diffusion-v1-6", style="anime"
    )
    library_image(bob, team, prompt="a lighthouse at dawn", engine="stable-diffusion-v1-6")
    page = (
        client_for(ada)
        .get(GALLERY, {"q": "lighthouse", "creator": bob.pk, "style": "anime"})
        .content.decode()
    )
    assert tiles(page) == [str(wanted.pk)]
    assert "<strong>1</strong> image matches" in page
    everything = client_for(ada).get(GALLERY).content.decode()
    assert option_count(everything, "engine", "stable-diffusion-v1-6") == 8
    by_engine = client_for(ada).get(GALLERY, {"engine": "stable-diffusion-v1-6"}).content.decode()
    assert len(tiles(by_engine)) == 8
    assert option_count(by_engine, "creator", str(bob.pk)) == len(
        tiles(
            client_for(ada)
            .get(GALLERY, {"engine": "stable-diffusion-v1-6", "creator": bob.pk})
            .content.decode()
        )
    )
    assert option_count(by_engine, "engine", "stable-diffusion-xl-1024-v1-0") == 6  # its own choice left out


def test_the_url_carries_the_filters_and_the_next_page_keeps_them(team_of_two):
    team, ada, _ = team_of_two
    images = [
        library_image(ada, team, prompt="a kite", created_at=timezone.now() - timedelta(minutes=m))
        for m in range(30)
    ]
    client = client_for(ada)
    first = client.get(GALLERY, {"q": "kite", "sort": "oldest"}, **HTMX).content.decode()
    assert 'id="library"' in first and 'hx-push-url="true"' in first
    next_url = first.split('class="sentinel" hx-get="')[1].split('"')[0].replace("&amp;", "&")
    assert "q=kite" in next_url and "sort=oldest" in next_url
    second = client.get(next_url, **HTMX).content.decode()
    oldest_first = [str(i.pk) for i in reversed(images)]
    assert tiles(first) + tiles(second) == oldest_first


def test_a_wrong_date_is_said_beside_the_field_and_the_rest_still_works(team_of_two):
    team, ada, _ = team_of_two
    library_image(ada, team)
    page = client_for(ada).get(GALLERY, {"since": "2026-02-31", "q": "lighthouse"})
    assert page.status_code == 200
    html = page.content.decode()
    assert "Enter a valid date." in html
    assert len(tiles(html)) == 1
    today = timezone.localdate()
    backwards = {"since": today.isoformat(), "until": (today - timedelta(days=1)).isoformat()}
    html = client_for(ada).get(GALLERY, backwards).content.decode()
    assert "The end date is before the start date." in html
    assert len(tiles(html)) == 1


@pytest.mark.parametrize("count", [3, 40])
def test_the_gallery_costs_five_queries_filtered_or_not_and_a_deeper_page_four(
    team_of_two, count, django_assert_max_num_queries
):
    team, ada, bob = team_of_two
    for number in range(count):
        library_image(
            ada if number % 2 else bob,
            team,
            prompt=f"a lantern {number}",
            style="anime" if number % 3 else "",
        )
    client = client_for(ada)
    client.get(GALLERY)  # the session is warm
    # session, user, team; the page of images; every count beside the filters
    for query in (
        {},
        {"q": "lantern"},
        {"creator": ada.pk, "style": "anime"},
        {"favourites": "1", "q": "lantern"},
    ):
        with django_assert_max_num_queries(5):
            response = client.get(GALLERY, query)
        assert response.status_code == 200
    first = client.get(GALLERY).content.decode()
    if count > 24:
        next_url = first.split('class="sentinel" hx-get="')[1].split('"')[0].replace("&amp;", "&")
        with django_assert_max_num_queries(4):
            assert len(tiles(client.get(next_url, **HTMX).content.decode())) == count - 24


def test_a_star_is_per_person_and_every_role_may_star(team_of_two):
    team, ada, _ = team_of_two
    viewer = UserFactory(username="vera")
    Membership.objects.create(user=viewer, team=team, role="viewer")
    image = library_image(ada, team)
    url = reverse("generations:image-favourite", args=[image.pk])
    response = client_for(viewer).post(url, **HTMX)
    assert response.status_code == 200
    assert 'aria-pressed="true"' in response.content.decode()
    assert json.loads(response["HX-Trigger"]) == {
        "favourite-changed": {"image": str(image.pk), "starred": True}
    }
    assert Favourite.objects.filter(user=viewer, image=image).exists()
    assert not Favourite.objects.filter(user=ada).exists()
    ada_page = client_for(ada).get(GALLERY, {"favourites": "1"}).content.decode()
    assert tiles(ada_page) == []  # Vera's star is hers
    client_for(viewer).post(url, **HTMX)
    assert not Favourite.objects.filter(user=viewer, image=image).exists()


def test_a_collection_made_from_a_bulk_selection_holds_those_images(team_of_two):
    team, ada, bob = team_of_two
    chosen = [library_image(ada, team, prompt=f"a poster {n}") for n in range(3)]
    other = library_image(bob, team, prompt="a sketch")
    response = client_for(ada).post(
        BULK,
        {"action": "collect", "new_collection": "Print run", "image": [str(i.pk) for i in chosen]},
        **HTMX,
    )
    assert response.status_code == 200
    assert "Added 3 images to “Print run”." in response.content.decode()
    assert "library-changed" in response["HX-Trigger"]
    collection = Collection.objects.get(team=team, name="Print run")
    assert set(collection.images.values_list("pk", flat=True)) == {i.pk for i in chosen}
    page = client_for(bob).get(collection.url).content.decode()
    assert sorted(tiles(page)) == sorted(str(i.pk) for i in chosen) and str(other.pk) not in page
    assert "Print run" in page
    listing = client_for(bob).get(reverse("generations:collections")).content.decode()
    assert "Print run" in listing and "3 images" in listing
    again = client_for(ada).post(
        BULK, {"action": "collect", "new_collection": "print RUN", "image": [str(other.pk)]}, **HTMX
    )
    assert again.status_code == 400 and "already has a collection called" in again.content.decode()


def test_an_image_joins_and_leaves_collections_from_its_panel(team_of_two):
    team, ada, _ = team_of_two
    image = library_image(ada, team)
    moodboard = Collection.objects.create(team=team, name="Moodboard")
    url = reverse("generations:image-collections", args=[image.pk])
    client = client_for(ada)
    panel = client.post(url, {"collection": moodboard.pk, "action": "add"}, **HTMX).content.decode()
    assert 'aria-pressed="true"' in panel and "Moodboard" in panel
    client.post(url, {"new_collection": "Client picks"}, **HTMX)
    assert set(image.collections.values_list("name", flat=True)) == {"Moodboard", "Client picks"}
    client.post(url, {"collection": moodboard.pk, "action": "remove"}, **HTMX)
    assert set(image.collections.values_list("name", flat=True)) == {"Client picks"}
    blank = client.post(url, {"new_collection": "   "}, **HTMX)
    assert blank.status_code == 422 and "Choose a collection, or name a new one." in blank.content.decode()


def test_a_collection_can_be_renamed_given_a_cover_and_deleted_keeping_its_images(team_of_two):
    team, ada, _ = team_of_two
    first, second = library_image(ada, team), library_image(ada, team)
    collection = Collection.objects.create(team=team, name="Draft")
    CollectionItem.objects.create(collection=collection, image=first)
    CollectionItem.objects.create(collection=collection, image=second)
    client = client_for(ada)
    update = reverse("generations:collection-update", args=[collection.pk])
    client.post(update, {"name": "Final"})
    client.post(update, {"cover": str(first.pk)})
    collection.refresh_from_db()
    assert (collection.name, collection.cover) == ("Final", first)
    listing = client.get(reverse("generations:collections")).content.decode()
    assert first.thumbnail_url in listing
    client.post(reverse("generations:collection-delete", args=[collection.pk]))
    assert not Collection.objects.filter(pk=collection.pk).exists()
    assert GalleryImage.objects.filter(pk__in=[first.pk, second.pk]).count() == 2


def test_another_teams_ids_in_a_selection_refuse_the_whole_action(team_of_two):
    team, ada, _ = team_of_two
    mine = library_image(ada, team)
    stranger = UserFactory(username="sam")
    theirs = library_image(stranger)
    for action in ("star", "trash", "collect"):
        data = {"action": action, "image": [str(mine.pk), str(theirs.pk)], "new_collection": "Loot"}
        response = client_for(ada).post(BULK, data, **HTMX)
        assert response.status_code == 404, action
        assert "1 of the chosen images are not in Posters" in response.content.decode()
    assert not Favourite.objects.exists() and not Collection.objects.exists()
    assert GalleryImage.objects.filter(trashed_at__isnull=False).count() == 0
    zip_response = client_for(ada).post(reverse("generations:library-download"), {"image": [str(theirs.pk)]})
    assert zip_response.status_code == 404 and b"PK" not in zip_response.content[:2]
    # Their collection cannot be filled with our images either.
    loot = Collection.objects.create(team=stranger.current_team, name="Theirs")
    refused = client_for(ada).post(
        BULK, {"action": "collect", "collection": loot.pk, "image": [str(mine.pk)]}, **HTMX
    )
    assert refused.status_code == 400 and not loot.items.exists()


def test_a_viewer_may_star_and_download_but_not_trash_or_collect(team_of_two):
    team, ada, _ = team_of_two
    viewer = UserFactory(username="vera")
    Membership.objects.create(user=viewer, team=team, role="viewer")
    viewer.current_team = team
    viewer.save(update_fields=["current_team"])
    image = library_image(ada, team)
    client = client_for(viewer)
    assert client.post(BULK, {"action": "star", "image": [str(image.pk)]}, **HTMX).status_code == 200
    assert client.post(BULK, {"action": "trash", "image": [str(image.pk)]}, **HTMX).status_code == 403
    assert client.post(reverse("generations:image-trash", args=[image.pk])).status_code == 403
    assert (
        client.post(
            BULK, {"action": "collect", "new_collection": "Mine", "image": [str(image.pk)]}
        ).status_code
        == 403
    )
    page = client.get(GALLERY).content.decode()
    assert 'value="trash"' not in page and "data-download" in page
    assert GalleryImage.objects.get(pk=image.pk).trashed_at is None


def test_select_all_matching_acts_on_every_matching_image_not_only_the_first_page(team_of_two):
    team, ada, bob = team_of_two
    kites = [library_image(ada, team, prompt=f"a kite {n}") for n in range(30)]
    other = library_image(bob, team, prompt="a boat")
    response = client_for(ada).post(BULK, {"action": "star", "all_matching": "1", "query": "q=kite"}, **HTMX)
    assert "Starred 30 images." in response.content.decode()
    assert set(Favourite.objects.filter(user=ada).values_list("image_id", flat=True)) == {k.pk for k in kites}
    assert not Favourite.objects.filter(image=other).exists()


def test_the_jobs_history_lists_the_teams_jobs_by_status_and_creator_with_links(team_of_two):
    team, ada, bob = team_of_two
    done = library_image(ada, team, prompt="a finished job").job
    failed = GenerationJob.objects.create(
        team=team,
        created_by=bob,
        engine_id="stable-diffusion-v1-6",
        prompt="a failed job",
        text_prompts=[{"text": "a failed job", "weight": 1}],
        width=512,
        height=512,
        status="failed",
        finished_at=timezone.now(),
        error_message="No credits.",
    )
    stranger_job = library_image(UserFactory(username="sam"), prompt="not theirs").job
    client = client_for(ada)
    page = client.get(reverse("generations:jobs")).content.decode()
    assert "a finished job" in page and "a failed job" in page and "not theirs" not in page
    assert reverse("generations:job-card", args=[done.pk]) in page
    failed_only = client.get(reverse("generations:jobs"), {"status": "failed"}).content.decode()
    assert "a failed job" in failed_only and "a finished job" not in failed_only
    by_ada = client.get(reverse("generations:jobs"), {"creator": ada.pk}).content.decode()
    assert "a finished job" in by_ada and "a failed job" not in by_ada
    assert str(stranger_job.pk) not in page and failed.pk
    create = client.get(reverse("generations:create")).content.decode()
    assert f'<a href="{reverse("generations:jobs")}"' in create


def test_the_jobs_history_pages_through_every_job(team_of_two, django_assert_max_num_queries):
    team, ada, _ = team_of_two
    now = timezone.now()
    for number in range(30):
        GenerationJob.objects.create(
            team=team,
            created_by=ada,
            engine_id="stable-diffusion-v1-6",
            prompt=f"job number {number}",
            text_prompts=[{"text": "x", "weight": 1}],
            width=512,
            height=512,
            created_at=now - timedelta(minutes=number),
        )
    client = client_for(ada)
    client.get(reverse("generations:jobs"))
    with django_assert_max_num_queries(5):
        first = client.get(reverse("generations:jobs")).content.decode()
    assert "job number 0<" in first and "job number 24<" in first and "job number 25<" not in first
    next_url = first.split('class="sentinel" hx-get="')[1].split('"')[0].replace("&amp;", "&")
    second = client.get(next_url, **HTMX).content.decode()
    assert "job number 25<" in second and "job number 29<" in second and "job number 24<" not in second
