"""What the library's reads cost, in queries, however deep: the gallery's pages, a page's thumbnails, the
image page and its neighbours. (Their time is measured in bench/gallery_depth.py, not here.) Keyset
cursors and neighbours compare (created_at, id) as a pair: images made in the same instant are each
shown once, in order."""

import io
import re
from datetime import timedelta
from html import unescape
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from PIL import Image

from accounts.models import Membership
from generations import library
from generations.library_search import PAGE_SIZE, Cursor, Filters, after_cursor, matching, ordered
from generations.models import Collection, GalleryImage
from tests.factories import UserFactory
from tests.library_factories import library_image
from tests.membership_factories import TeamFactory

pytestmark = pytest.mark.django_db
HTMX = {"HTTP_HX_REQUEST": "true"}
GALLERY = reverse("generations:gallery")
# A whole gallery page: the user with their current team (the session comes from the cache), the page of
# images, the counts beside the filters (one query), and the user's teams for the header's switcher.
FIRST_PAGE_QUERIES = 4
POSTGRES = connection.vendor == "postgresql"


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def tiles(html: str) -> list[str]:
    return re.findall(r'<li class="tile" data-image="([0-9a-f-]+)"', html)


def thumbnails(html: str) -> list[str]:
    return [unescape(src) for src in re.findall(r'<img src="([^"]+)" alt="[^"]*" loading="lazy"', html)]


def next_page(html: str) -> str:
    return html.split('class="sentinel" hx-get="')[1].split('"')[0].replace("&amp;", "&")


@pytest.fixture
def posters():
    """A team of two with 4 pages and a bit of images; every third pair made in the same instant."""
    ada, bob = UserFactory(username="ada"), UserFactory(username="bob")
    team = TeamFactory(name="Posters")
    for user in (ada, bob):
        Membership.objects.create(user=user, team=team, role="member")
        user.current_team = team
        user.save(update_fields=["current_team"])
    start = timezone.now() - timedelta(days=1)
    for number in range(PAGE_SIZE * 4 + 5):
        at = start + timedelta(minutes=number - number % 3)  # ties: the pair order falls back to the id
        library_image(ada if number % 2 else bob, team, prompt=f"a poster {number}", created_at=at)
    newest_first = list(GalleryImage.objects.for_team(team).order_by("-created_at", "-id"))
    return team, ada, bob, newest_first


def test_every_page_of_the_gallery_costs_the_same_queries_and_shows_the_next_images(
    posters, django_assert_num_queries
):
    _, ada, _, newest_first = posters
    client = client_for(ada)
    client.get(GALLERY)  # the session is warm
    with django_assert_num_queries(FIRST_PAGE_QUERIES):
        html = client.get(GALLERY).content.decode()
    seen = tiles(html)
    url = next_page(html)
    while url:
        # As infinite scroll asks: the user with their current team, and the page of images; the same at
        # page 2 as at page 5.
        with django_assert_num_queries(2):
            html = client.get(url, **HTMX).content.decode()
        seen.extend(tiles(html))
        url = next_page(html) if 'class="sentinel"' in html else ""
    assert seen == [str(image.pk) for image in newest_first]  # every image once, in order, ties included


def test_a_deep_page_asked_without_htmx_costs_what_the_first_page_costs(posters, django_assert_num_queries):
    _, ada, _, newest_first = posters
    client = client_for(ada)
    client.get(GALLERY)
    above = newest_first[PAGE_SIZE * 4 - 1]
    cursor = Cursor("newest", above.created_at, above.pk).encode()
    with django_assert_num_queries(FIRST_PAGE_QUERIES):
        html = client.get(GALLERY, {"before": cursor}).content.decode()
    assert tiles(html) == [str(image.pk) for image in newest_first[PAGE_SIZE * 4 :]]


def test_each_thumbnail_of_a_page_costs_no_query_and_is_the_images_own_file(
    posters, django_assert_num_queries
):
    _, ada, _, newest_first = posters
    client = client_for(ada)
    above = newest_first[PAGE_SIZE * 2 - 1]
    deep = f"{GALLERY}?before={Cursor('newest', above.created_at, above.pk).encode()}"
    for page, (url_of_page, shown) in enumerate(
        [(GALLERY, newest_first[:PAGE_SIZE]), (deep, newest_first[PAGE_SIZE * 2 : PAGE_SIZE * 3])]
    ):
        urls = thumbnails(client.get(url_of_page, **(HTMX if page else {})).content.decode())
        assert len(urls) == PAGE_SIZE
        for url, image in zip(urls, shown, strict=True):
            # A signed link (generations.media_views): no session, no user, no image row.
            with django_assert_num_queries(0):
                response = client.get(url)
                served = b"".join(response.streaming_content)  # the stream ends the request
            assert response.status_code == 200 and response["Content-Type"] == "image/jpeg"
            with image.thumbnail.open("rb") as stored:
                assert served == stored.read()
    # An original: the user, and the image by its primary key.
    with django_assert_num_queries(2):
        original = client.get(reverse("generations:media", args=[newest_first[0].image.name]))
    assert original.status_code == 200 and original["Content-Type"] == "image/png"
    assert b"".join(original.streaming_content).startswith(b"\x89PNG")


def test_a_thumbnail_is_refused_to_other_teams_and_under_any_name_but_its_own(posters):
    team, ada, _, newest_first = posters
    image, other = newest_first[0], newest_first[1]
    stranger = UserFactory(username="stranger")
    assert client_for(stranger).get(f"/media/{image.thumbnail.name}").status_code == 404
    client = client_for(ada)
    # another row's id in a real file's folder; a name the row does not have; no id at all
    swapped = image.thumbnail.name.replace(str(image.pk), str(other.pk)).replace(".jpg", "-x.jpg")
    for name in (swapped, f"thumbnails/{team.pk}/{image.pk}.png", f"thumbnails/{team.pk}/thumb.webp"):
        assert client.get(f"/media/{name}").status_code == 404, name
    wrong_team = image.thumbnail.name.replace(f"/{team.pk}/", f"/{team.pk + 1000}/")
    assert client.get(f"/media/{wrong_team}").status_code == 404


def test_a_thumbnail_made_when_thumbnails_were_webp_still_opens_as_webp(posters):
    """Rows stored before thumbnails were JPEGs keep their .webp files and names."""
    from django.core.files.base import ContentFile

    from generations.media_views import signed_thumbnail_url

    team, ada, _, newest_first = posters
    image = newest_first[0]
    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), (200, 80, 40)).save(buffer, "WEBP")
    old_name = f"thumbnails/{team.pk}/{image.pk}.webp"
    assert image.thumbnail.storage.save(old_name, ContentFile(buffer.getvalue())) == old_name
    GalleryImage.objects.filter(pk=image.pk).update(thumbnail=old_name)
    signed = Client().get(signed_thumbnail_url(old_name))  # no session
    by_name = client_for(ada).get(f"/media/{old_name}")
    for response in (signed, by_name):
        assert response.status_code == 200 and response["Content-Type"] == "image/webp"
        assert b"".join(response.streaming_content) == buffer.getvalue()


def test_a_thumbnail_is_looked_up_by_its_images_primary_key(posters):
    """Not by its file's name, which no index covers: in a team of 100,000 images that read them all."""
    from django.test.utils import CaptureQueriesContext

    _, ada, _, newest_first = posters
    client = client_for(ada)
    image = newest_first[0]
    with CaptureQueriesContext(connection) as queries:
        b"".join(client.get(reverse("generations:media", args=[image.thumbnail.name])).streaming_content)
    lookup = next(query["sql"] for query in queries if 'FROM "generations_galleryimage"' in query["sql"])
    by_pk = re.compile(r'"generations_galleryimage"\."id" = \S*' + image.pk.hex)
    assert by_pk.search(lookup.replace("-", "")), lookup


def test_the_image_page_costs_the_same_at_the_top_and_deep_down_and_links_its_neighbours(
    posters, django_assert_max_num_queries
):
    _, ada, _, newest_first = posters
    client = client_for(ada)
    client.get(GALLERY)
    costs = []
    for position in (1, len(newest_first) // 2, len(newest_first) - 2):
        image = newest_first[position]
        with django_assert_max_num_queries(10) as queries:
            html = client.get(image.url).content.decode()
        costs.append(len(queries))
        assert newest_first[position - 1].url in html  # newer
        assert newest_first[position + 1].url in html  # older
    assert len(set(costs)) == 1, costs


def test_neighbours_walk_every_image_once_though_many_share_an_instant(posters):
    team, _, _, newest_first = posters
    live = GalleryImage.objects.for_team(team).live()
    walked, image = [newest_first[0]], newest_first[0]
    while (image := live.newest_first().before(image.created_at, image.pk).first()) is not None:
        walked.append(image)
    assert walked == newest_first
    back, image = [newest_first[-1]], newest_first[-1]
    while (image := live.after(image.created_at, image.pk).first()) is not None:
        back.append(image)
    assert back == newest_first[::-1]


def cursor_queries(team, user, middle) -> dict[str, Any]:
    """What reads from a cursor: the image page's older and newer neighbours, and the next gallery page."""
    live = GalleryImage.objects.for_team(team).live()
    oldest = Filters(sort="oldest")
    return {
        "older": live.newest_first().before(middle.created_at, middle.pk),
        "newer": live.after(middle.created_at, middle.pk),
        "next page, oldest first": after_cursor(
            ordered(matching(GalleryImage.objects.for_team(team), oldest, user.pk), oldest),
            oldest,
            Cursor("oldest", middle.created_at, middle.pk),
        ),
    }


@pytest.mark.skipif(not POSTGRES, reason="reads PostgreSQL's plan")
def test_on_postgresql_pages_and_neighbours_start_at_the_whole_cursor_in_the_index(posters):
    team, ada, _, newest_first = posters
    with connection.cursor() as sql:
        # A test-sized table would be read whole and sorted: ask for the plan a large one gets.
        sql.execute(
            "SET LOCAL enable_seqscan = off; SET LOCAL enable_sort = off; SET LOCAL enable_bitmapscan = off"
        )
    for name, query in cursor_queries(team, ada, newest_first[len(newest_first) // 2]).items():
        plan = query[:25].explain(analyze=True)
        index_cond = plan.split("Index Cond", 1)[1].split("\n")[0]
        assert "team_id =" in index_cond and "ROW(created_at, id)" in index_cond, (name, plan)


def test_on_sqlite_pages_and_neighbours_start_at_the_whole_cursor_in_the_index(posters):
    """`make run`'s SQLite too (planned in a database of its own, whichever one the suite runs on): a
    deep page once read every row above it, because the cursor's condition reached SQLite as `… = 1`."""
    from django.db.backends.sqlite3.base import DatabaseWrapper
    from django.db.utils import ConnectionHandler

    from accounts.models import User
    from generations.models import Favourite

    team, ada, _, newest_first = posters
    settings = ConnectionHandler().configure_settings(
        {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
    )["default"]
    sqlite = DatabaseWrapper(settings, alias="plan")
    try:
        with sqlite.schema_editor(atomic=False) as editor:
            for model in (User, GalleryImage, Favourite):  # the tables and indexes a page reads
                editor.create_model(model)
        for name, query in cursor_queries(team, ada, newest_first[len(newest_first) // 2]).items():
            sql, params = query[:25].query.get_compiler(connection=sqlite).as_sql()
            with sqlite.cursor() as cursor:
                cursor.execute(f"EXPLAIN QUERY PLAN {sql}", params)
                plan = "\n".join(row[-1] for row in cursor.fetchall())
            bound = r"USING (COVERING )?INDEX \w+ \(team_id=\? AND \(created_at,id\)[<>]\(\?,\?\)\)"
            assert re.search(bound, plan), (name, plan)
    finally:
        sqlite.close()


def test_a_collections_stored_count_follows_its_images_in_and_out_of_the_trash(posters):
    team, ada, _, newest_first = posters
    collection = library.collection_create(team=team, user=ada, name="Best")
    chosen = GalleryImage.objects.filter(pk__in=[image.pk for image in newest_first[:6]])

    def stored() -> int:
        return Collection.objects.get(pk=collection.pk).live_count

    def shown() -> int:
        html = client_for(ada).get(GALLERY).content.decode()
        select = html.split('name="collection"', 1)[1].split("</select>", 1)[0]
        option = re.search(rf'<option value="{collection.pk}"[^>]*>[^<]*\((\d+)\)', select)
        assert option, select
        return int(option.group(1))

    assert library.collection_add(collection=collection, images=chosen, user=ada) == 6
    assert stored() == shown() == 6
    library.images_trash(images=chosen.filter(pk=newest_first[0].pk), user=ada)
    assert stored() == shown() == 5
    library.images_restore(images=chosen.filter(pk=newest_first[0].pk))
    assert stored() == shown() == 6
    two = chosen.filter(pk__in=[image.pk for image in newest_first[:2]])
    library.collection_remove(collection=collection, images=two)
    assert stored() == shown() == 4
    Collection.objects.filter(pk=collection.pk).update(live_count=99)  # drift, healed by the hourly recount
    library.tallies_rebuild()
    assert stored() == 4
