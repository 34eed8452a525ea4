"""The library migration gives every existing image its job's prompts, engine, style and kind, and every
team its tally, so an upgraded gallery finds, filters and counts what was made before it."""

import pytest
from django.db import connection
from django.utils import timezone

from tests.migrating import back_to_the_latest_schema, migrate  # noqa: F401  (an autouse fixture)

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("generations", "0004_job_requests_cancel_seeds")]
AFTER = [("generations", "0005_library")]


def test_existing_images_get_their_jobs_facts_and_teams_their_tally():
    old = migrate(BEFORE)
    User, Team = old.get_model("accounts", "User"), old.get_model("accounts", "Team")
    Job, Image = old.get_model("generations", "GenerationJob"), old.get_model("generations", "GalleryImage")
    ada = User.objects.create(username="ada", email="ada@example.com", password="x")
    team = Team.objects.create(name="ada's team", is_personal=True)
    first = Job.objects.create(
        team=team,
        created_by=ada,
        engine_id="stable-diffusion-v1-6",
        prompt="tide pools",
        text_prompts=[{"text": "tide pools", "weight": 1.0}, {"text": "blurry", "weight": -1.0}],
        width=512,
        height=512,
        samples=2,
        style_preset="anime",
        status="succeeded",
        finished_at=timezone.now(),
    )
    for index, reason in enumerate(["SUCCESS", "CONTENT_FILTERED"]):
        Image.objects.create(
            job=first,
            index=index,
            team=team,
            created_by=ada,
            image=f"i{index}.png",
            thumbnail="t.webp",
            width=512,
            height=512,
            seed=index + 1,
            finish_reason=reason,
        )
    image = Image.objects.get(job=first, index=0)
    variation = Job.objects.create(
        team=team,
        created_by=ada,
        kind="image-to-image",
        relation="variation",
        parent=image,
        init_image="inputs/x.png",
        engine_id="stable-diffusion-v1-6",
        prompt="tide pools",
        text_prompts=[{"text": "tide pools", "weight": 1.0}],
        width=512,
        height=512,
        samples=1,
        status="succeeded",
        finished_at=timezone.now(),
    )
    Image.objects.create(
        job=variation,
        index=0,
        team=team,
        created_by=ada,
        image="v.png",
        thumbnail="t.webp",
        width=512,
        height=512,
        seed=9,
    )

    new = migrate(AFTER)
    Image, Tally = new.get_model("generations", "GalleryImage"), new.get_model("generations", "GalleryTally")
    facts = set(
        Image.objects.values_list("prompt_text", "negative_text", "engine_id", "style_preset", "kind")
    )
    assert facts == {
        ("tide pools", "blurry", "stable-diffusion-v1-6", "anime", "text-to-image"),
        ("tide pools", "", "stable-diffusion-v1-6", "", "variation"),
    }
    tally = set(Tally.objects.values_list("style_preset", "kind", "filtered", "count"))
    assert tally == {
        ("anime", "text-to-image", False, 1),
        ("anime", "text-to-image", True, 1),
        ("", "variation", False, 1),
    }
    if connection.vendor == "postgresql":
        found = Image.objects.extra(where=["search_prompt @@ websearch_to_tsquery('english', 'pool')"])
        assert found.count() == 3  # the stored vectors are filled, and stemmed
