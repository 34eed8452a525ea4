import json

import pytest
from django.urls import reverse
from django.utils import timezone

from generations.models import GalleryImage, GenerationJob
from tests.factories import GalleryImageFactory, GenerationJobFactory, UserFactory

pytestmark = pytest.mark.django_db

VALID = {
    "prompt": "a lighthouse on a cliff at dawn",
    "engine": "stable-diffusion-v1-6",
    "size": "512x512",
    "samples": "2",
    "steps": "30",
    "cfg_scale": "7",
    "clip_guidance_preset": "NONE",
}
HTMX = {"HTTP_HX_REQUEST": "true"}


def test_the_create_page_asks_for_sign_in(client):
    response = client.get(reverse("generations:create"))
    assert response.status_code == 302
    assert reverse("accounts:login") in response["Location"]


def test_the_create_page_labels_every_field(authed_client):
    response = authed_client.get(reverse("generations:create"))
    html = response.content.decode()
    assert response.status_code == 200
    for field_id in (
        "prompt",
        "negative_prompt",
        "engine",
        "style_preset",
        "size",
        "samples",
        "seed",
        "steps",
        "cfg_scale",
        "sampler",
        "clip_guidance_preset",
        "weighted_prompts",
    ):
        assert f'for="id_{field_id}"' in html, field_id
    assert 'aria-label="Credit balance"' in html


def test_an_invalid_htmx_post_swaps_the_form_back_with_errors_and_queues_nothing(authed_client):
    response = authed_client.post(
        reverse("generations:create"), {**VALID, "samples": "11", "prompt": ""}, **HTMX
    )
    html = response.content.decode()
    assert response.status_code == 200
    assert response["HX-Retarget"] == "#create-form"
    assert "Describe the image you want." in html
    assert "Must be between 1 and 10." in html
    assert not GenerationJob.objects.exists()


def test_an_invalid_plain_post_renders_the_page_with_errors(authed_client):
    response = authed_client.post(reverse("generations:create"), {**VALID, "steps": "500"})
    assert response.status_code == 200
    assert "Must be between 10 and 50." in response.content.decode()
    assert not GenerationJob.objects.exists()


def test_a_valid_post_queues_a_job_and_answers_its_polling_card(authed_client, user):
    response = authed_client.post(reverse("generations:create"), VALID, **HTMX)
    job = GenerationJob.objects.get()
    html = response.content.decode()
    assert response.status_code == 201
    assert (job.team, job.created_by, job.status, job.samples) == (user.current_team, user, "queued", 2)
    assert f'hx-get="{reverse("generations:job-card", args=[job.pk])}"' in html
    assert 'hx-trigger="every 1s"' in html


def test_a_running_job_card_keeps_polling(authed_client, user):
    job = GenerationJobFactory(created_by=user, status=GenerationJob.Status.RUNNING)
    response = authed_client.get(reverse("generations:job-card", args=[job.pk]), **HTMX)
    assert response.status_code == 200
    assert 'hx-trigger="every 1s"' in response.content.decode()
    assert "Running" in response.content.decode()


def test_a_finished_job_card_stops_polling_and_refreshes_the_balance(authed_client, user):
    image = GalleryImageFactory(job__created_by=user)
    response = authed_client.get(reverse("generations:job-card", args=[image.job.pk]), **HTMX)
    html = response.content.decode()
    assert response.status_code == 286
    assert "hx-trigger" not in html
    assert "balance-changed" in json.loads(response["HX-Trigger"])
    assert reverse("generations:image-detail", args=[image.pk]) in html


def test_a_failed_job_card_shows_the_api_message(authed_client, user):
    job = GenerationJobFactory(
        created_by=user, status="failed", finished_at=timezone.now(), error_message="Invalid prompts detected"
    )
    response = authed_client.get(reverse("generations:job-card", args=[job.pk]), **HTMX)
    assert response.status_code == 286
    assert "Invalid prompts detected" in response.content.decode()


def test_another_teams_job_is_not_found(authed_client):
    job = GenerationJobFactory()
    assert authed_client.get(reverse("generations:job-card", args=[job.pk]), **HTMX).status_code == 404


def test_the_size_field_changes_with_the_engine(authed_client):
    response = authed_client.get(
        reverse("generations:sizes"), {"engine": "stable-diffusion-xl-1024-v1-0"}, **HTMX
    )
    html = response.content.decode()
    assert 'value="1152x896"' in html
    assert 'value="512x512"' not in html
    assert "This field is required" not in html  # a fresh choice, not a form with errors


def test_the_gallery_pages_newest_first_with_a_revealed_trigger(authed_client, user):
    images = [GalleryImageFactory(job__created_by=user) for _ in range(30)]
    newest_first = sorted(images, key=lambda i: (i.created_at, i.pk), reverse=True)
    first = authed_client.get(reverse("generations:gallery"))
    html = first.content.decode()
    assert html.count('class="gallery"') == 1
    shown = [str(i.pk) for i in newest_first if reverse("generations:image-detail", args=[i.pk]) in html]
    assert shown == [str(i.pk) for i in newest_first[:24]]
    assert 'hx-trigger="revealed"' in html
    next_url = html.split('hx-get="')[-1].split('"')[0].replace("&amp;", "&")
    second = authed_client.get(next_url, **HTMX).content.decode()
    assert all(reverse("generations:image-detail", args=[i.pk]) in second for i in newest_first[24:])
    assert 'hx-trigger="revealed"' not in second


def test_the_gallery_shows_only_the_teams_images(authed_client, user):
    mine = GalleryImageFactory(job__created_by=user)
    theirs = GalleryImageFactory()
    html = authed_client.get(reverse("generations:gallery")).content.decode()
    assert str(mine.pk) in html
    assert str(theirs.pk) not in html


@pytest.mark.parametrize("count", [3, 60])
def test_the_gallery_costs_the_same_queries_for_any_size(
    authed_client, user, count, django_assert_num_queries
):
    for _ in range(count):
        GalleryImageFactory(job__created_by=user)
    # session, user, memberships (the current team and the switcher), the filter counts, images page
    with django_assert_num_queries(5):
        authed_client.get(reverse("generations:gallery"))


def test_the_create_page_costs_a_fixed_number_of_queries(
    authed_client, user, django_assert_num_queries, settings
):
    settings.STABILITY_API_KEY = ""  # no key: the engine list falls back without a network call
    for _ in range(5):
        GalleryImageFactory(job__created_by=user)
    # session, user, team, jobs, their images
    with django_assert_num_queries(5):
        authed_client.get(reverse("generations:create"))


def test_media_is_served_only_to_the_images_team(client, user):
    image = GalleryImageFactory(job__created_by=user)
    url = reverse("generations:media", args=[image.image.name])
    client.force_login(user)
    assert client.get(url).status_code == 200
    client.force_login(UserFactory())
    assert client.get(url).status_code == 404
    client.logout()
    assert client.get(url).status_code == 302


def test_the_detail_page_shows_every_parameter_and_offers_the_png(authed_client, user):
    image = GalleryImageFactory(job__created_by=user, job__seed=42, job__style_preset="anime", seed=42)
    html = authed_client.get(reverse("generations:image-detail", args=[image.pk])).content.decode()
    for fact in (
        "a lighthouse on a cliff",
        "stable-diffusion-v1-6",
        "512 × 512",
        "42",
        "SUCCESS",
        "anime",
        "NONE",
    ):
        assert fact in html
    download = authed_client.get(reverse("generations:image-download", args=[image.pk]))
    assert download.status_code == 200
    assert b"".join(download.streaming_content).startswith(b"\x89PNG")
    assert "attachment" in download["Content-Disposition"]


def test_a_filtered_image_says_so(authed_client, user):
    image = GalleryImageFactory(job__created_by=user, finish_reason="CONTENT_FILTERED")
    assert GalleryImage.objects.get(pk=image.pk).is_filtered
    html = authed_client.get(reverse("generations:image-detail", args=[image.pk])).content.decode()
    assert "safety filter" in html


@pytest.mark.django_db(transaction=True)
def test_a_hung_engine_does_not_take_the_pages_down(client, studio_engine, settings):
    settings.SANDBOX_FAULTS = "hang_rate=1"
    settings.SANDBOX_HANG_SECONDS = 6
    client.force_login(UserFactory())
    page = client.get(reverse("generations:create"))
    assert page.status_code == 200
    assert 'value="stable-diffusion-xl-1024-v1-0"' in page.content.decode()  # the known engines
    balance = client.get(reverse("accounts:balance"), HTTP_HX_REQUEST="true")
    assert balance.status_code == 200 and "Balance unavailable" in balance.content.decode()
    assert "did not answer in time" in balance.content.decode()
