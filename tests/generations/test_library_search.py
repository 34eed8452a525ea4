"""Search, filters, counts and pages of the gallery, on whichever database the suite runs on (SQLite here;
PostgreSQL with DATABASE_URL=postgres://..., as CI runs it): the count beside every filter option equals
the images that option leaves, alone and combined."""

import random
from dataclasses import replace
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from accounts.models import Membership
from generations import library
from generations.library_counts import library_counts
from generations.library_search import (
    NO_STYLE,
    PAGE_SIZE,
    Cursor,
    Filters,
    after_cursor,
    matching,
    ordered,
    page_of,
)
from generations.models import Collection, GalleryImage, GalleryTally
from tests.factories import UserFactory
from tests.library_factories import library_image
from tests.membership_factories import TeamFactory

pytestmark = pytest.mark.django_db
POSTGRES = connection.vendor == "postgresql"


@pytest.fixture
def library_world():
    """A shared team of two with 30 varied images, a collection, favourites and one image in the trash;
    and another team whose images must never count."""
    ada, bob = UserFactory(username="ada"), UserFactory(username="bob")
    team = TeamFactory(name="Posters")
    for user in (ada, bob):
        Membership.objects.create(user=user, team=team, role="member")
    rng = random.Random(7)
    now = timezone.now()
    subjects = ["red fox", "old lighthouse", "quiet harbour", "paper crane", "neon street"]
    images = []
    for number in range(30):
        images.append(
            library_image(
                ada if number % 3 else bob,
                team,
                prompt=f"a {subjects[number % 5]} at dusk, detailed",
                negative="blurry fox" if number % 4 == 0 else "",
                engine=rng.choice(["stable-diffusion-v1-6", "stable-diffusion-xl-1024-v1-0"]),
                style=rng.choice(["", "anime", "photographic"]),
                kind=rng.choice(
                    ["text-to-image", "image-to-image", "variation", "upscale", "rerun", "masking"]
                ),
                size=rng.choice([(512, 512), (640, 448), (448, 640), (1024, 1024)]),
                filtered=number % 9 == 0,
                created_at=now - timedelta(days=number),
            )
        )
    posters = Collection.objects.create(team=team, name="Print run")
    library.collection_add(
        collection=posters, images=GalleryImage.objects.filter(pk__in=[i.pk for i in images[:12]]), user=ada
    )
    library.favourites_add(user=ada, images=GalleryImage.objects.filter(pk__in=[i.pk for i in images[5:20]]))
    library.images_trash(images=GalleryImage.objects.filter(pk=images[3].pk), user=ada)
    outsider = UserFactory(username="otto")
    for _ in range(3):
        library_image(outsider, prompt="a red fox at dusk, detailed", engine="stable-diffusion-v1-6")
    return {
        "team": team,
        "ada": ada,
        "bob": bob,
        "images": images,
        "collection": posters,
        "trashed": images[3],
    }


def found(world, filters: Filters, user=None) -> set:
    user = user or world["ada"]
    return set(
        matching(GalleryImage.objects.for_team(world["team"]), filters, user.pk).values_list("pk", flat=True)
    )


def prompts_of(pks) -> set:
    return set(GalleryImage.objects.filter(pk__in=pks).values_list("prompt_text", flat=True))


def option_filters(filters: Filters, facet: str, value: str) -> Filters:
    """The filters with one option chosen, as choosing it in the gallery would."""
    match facet:
        case "creator" | "collection":
            return replace(filters, **{facet: int(value)})
        case "style":
            return replace(filters, style="" if value == NO_STYLE else value)
        case "size":
            width, height = value.split("x")
            return replace(filters, size=(int(width), int(height)))
    return replace(filters, **{facet: value})


def assert_counts_match_rows(world, filters: Filters) -> None:
    ada = world["ada"]
    counts = library_counts(world["team"], filters, ada.pk)
    assert counts.total == len(found(world, filters)), filters
    for facet, options in counts.facets.items():
        for option in options:
            assert option.count == len(found(world, option_filters(filters, facet, option.value))), (
                facet,
                option,
            )
    for option in counts.collections:
        assert option.count == len(found(world, option_filters(filters, "collection", option.value))), option
    assert counts.favourites == len(found(world, replace(filters, favourites=True)))


def test_a_word_finds_the_prompts_that_have_it_and_not_the_negative_prompts(library_world):
    hits = found(library_world, Filters(text="fox"))
    assert prompts_of(hits) == {"a red fox at dusk, detailed"}
    assert len(hits) == 6  # 6 of the team's foxes are live; the other team's foxes are not its
    with_negatives = found(library_world, Filters(text="fox", negatives=True))
    assert hits < with_negatives
    assert "a paper crane at dusk, detailed" in prompts_of(with_negatives)  # "blurry fox" in its negative


def test_a_quoted_phrase_needs_its_words_together_and_a_minus_word_leaves_images_out(library_world):
    assert prompts_of(found(library_world, Filters(text='"old lighthouse"'))) == {
        "a old lighthouse at dusk, detailed"
    }
    assert found(library_world, Filters(text='"lighthouse old"')) == set()
    everything_at_dusk = found(library_world, Filters(text="dusk"))
    without_foxes = found(library_world, Filters(text="dusk -fox"))
    assert without_foxes == everything_at_dusk - found(library_world, Filters(text="fox"))
    assert len(everything_at_dusk) == 29  # every live image of the team


def test_trashed_images_are_in_no_search_filter_or_count(library_world):
    trashed = library_world["trashed"].pk
    assert trashed not in found(library_world, Filters())
    assert trashed not in found(library_world, Filters(text="lighthouse"))
    assert trashed not in found(library_world, Filters(collection=library_world["collection"].pk))
    assert library_counts(library_world["team"], Filters(), library_world["ada"].pk).total == 29


@pytest.mark.parametrize(
    "filters",
    [
        Filters(),
        Filters(text="fox"),
        Filters(text="dusk", negatives=True),
        Filters(favourites=True),
    ],
    ids=["nothing", "a word", "a word in negatives too", "favourites"],
)
def test_every_filter_option_alone_shows_the_count_it_leaves(library_world, filters):
    assert_counts_match_rows(library_world, filters)


def test_filters_combined_show_the_counts_they_leave(library_world):
    rng = random.Random(3)
    counts = library_counts(library_world["team"], Filters(), library_world["ada"].pk)
    choices = [(facet, option.value) for facet, options in counts.facets.items() for option in options]
    choices += [("collection", option.value) for option in counts.collections]
    for _ in range(12):
        filters = Filters(text=rng.choice(["", "", "dusk", "lighthouse"]), favourites=rng.random() < 0.3)
        for facet, value in rng.sample(choices, 2):
            filters = option_filters(filters, facet, value)
        assert_counts_match_rows(library_world, filters)


def test_a_date_range_keeps_the_days_it_names(library_world):
    today = timezone.localdate()
    week = found(library_world, Filters(since=today - timedelta(days=6), until=today))
    assert len(week) == 6  # days 0..6, less the trashed image of day 3
    assert_counts_match_rows(library_world, Filters(since=today - timedelta(days=6), until=today))


def test_the_tally_equals_a_count_of_the_live_images(library_world):
    team = library_world["team"]
    kept = set(
        GalleryTally.objects.filter(team=team, count__gt=0).values_list(
            "created_by_id", "engine_id", "style_preset", "kind", "width", "height", "filtered", "count"
        )
    )
    GalleryTally.objects.rebuild(team.pk)
    rebuilt = set(
        GalleryTally.objects.filter(team=team).values_list(
            "created_by_id", "engine_id", "style_preset", "kind", "width", "height", "filtered", "count"
        )
    )
    assert kept == rebuilt


def test_pages_walk_every_matching_image_once_in_order(library_world, django_assert_max_num_queries):
    ada = library_world["ada"]
    extra = [
        library_image(
            ada, library_world["team"], prompt="a tide pool", created_at=timezone.now() - timedelta(hours=h)
        )
        for h in range(40)
    ]
    team_images = GalleryImage.objects.for_team(library_world["team"])
    for filters in (
        Filters(),
        Filters(sort="oldest"),
        Filters(creator=ada.pk, sort="newest"),
        Filters(text="tide"),
    ):
        seen, cursor = [], ""
        while True:
            with django_assert_max_num_queries(1):
                page, cursor = page_of(team_images, filters, cursor, ada.pk)
            assert len(page) <= PAGE_SIZE
            seen.extend(page)
            if not cursor:
                break
        expected = found(library_world, filters)
        assert [image.pk for image in seen if image.pk in expected] == [image.pk for image in seen]
        assert {image.pk for image in seen} == expected and len(seen) == len(expected)
        if filters.sort == "oldest":
            assert [i.created_at for i in seen] == sorted(i.created_at for i in seen)
        elif not filters.ranked:
            assert [i.created_at for i in seen] == sorted((i.created_at for i in seen), reverse=True)
    assert len(extra) == 40


@pytest.mark.skipif(not POSTGRES, reason="ranking is PostgreSQL's full-text search")
def test_on_postgresql_the_best_match_comes_first(library_world):
    ada, team = library_world["ada"], library_world["team"]
    best = library_image(
        ada, team, prompt="fox fox fox, a fox den", created_at=timezone.now() - timedelta(days=90)
    )
    page, _ = page_of(GalleryImage.objects.for_team(team), Filters(text="fox", sort="relevance"), "", ada.pk)
    assert page[0].pk == best.pk  # oldest, but the closest match
    stemmed = found(library_world, Filters(text="foxes"))
    assert best.pk in stemmed  # "foxes" finds "fox": words are stemmed


@pytest.mark.skipif(not POSTGRES, reason="reads PostgreSQL's plan")
def test_on_postgresql_a_deep_page_starts_at_its_cursor_in_the_index(library_world):
    """Keyset pages stay flat: the cursor is an index bound, so the scan starts there, not at the top."""
    ada, team = library_world["ada"], library_world["team"]
    images = list(GalleryImage.objects.for_team(team).live().order_by("-created_at", "-id"))
    _, cursor = page_of(GalleryImage.objects.for_team(team), Filters(), "", ada.pk)
    deep = Cursor("newest", images[20].created_at, images[20].pk).encode()
    with connection.cursor() as sql:
        # A test-sized table would be read whole and sorted: ask for the plan a large one gets.
        sql.execute(
            "SET LOCAL enable_seqscan = off; SET LOCAL enable_sort = off; SET LOCAL enable_bitmapscan = off"
        )
    query = after_cursor(
        ordered(matching(GalleryImage.objects.for_team(team), Filters(), ada.pk), Filters()),
        Filters(),
        Cursor.decode(deep),
    )
    plan = query[:25].explain(analyze=True)
    # The whole cursor, (created_at, id), bounds the index scan; not its first column alone.
    index_cond = plan.split("Index Cond", 1)[1].split("\n")[0]
    assert "team_id =" in index_cond and "ROW(created_at, id) < ROW(" in index_cond, plan
    assert cursor  # and the first page hands out a cursor at all
