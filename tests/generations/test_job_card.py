"""The job card: a change reaches the page at the first poll after it, an unchanged card costs one query,
images appear one by one, the queue place, failures in a person's words, and Retry."""

import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from accounts.models import Membership
from generations import running, services
from generations.models import ApiRequest, GenerationJob
from generations.stability.contract import Prompt
from generations.stability.types import TextToImageRequest, TransientError
from generations.tasks import failure_message
from tests.factories import GalleryImageFactory, GenerationJobFactory, UserFactory

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}
POLL_URL = re.compile(r'hx-get="([^"]+\?v=[^"]+)"')


def running_job(**fields) -> GenerationJob:
    now = timezone.now()
    defaults = {"status": "running", "attempts": 1, "started_at": now, "progress_at": now}
    return GenerationJobFactory(**(defaults | fields))


def failed_job(user, *, status_code: int | None, error: str, **fields) -> GenerationJob:
    """A job that failed after its request got `status_code` (None: no HTTP answer) and `error`."""
    job = GenerationJobFactory(
        created_by=user,
        status="failed",
        attempts=1,
        finished_at=timezone.now(),
        error_message=fields.pop("error_message", error),
        **fields,
    )
    outcome = ApiRequest.Outcome.UNKNOWN if "did not answer" in error else ApiRequest.Outcome.NOT_CHARGED
    ApiRequest.objects.create(
        job=job, index=0, attempt=1, outcome=outcome, status_code=status_code, error=error
    )
    return job


def poll_url(html: str) -> str:
    """The URL the card polls, as htmx reads it from the card."""
    match = POLL_URL.search(html)
    assert match, "the card does not poll"
    return match[1].replace("&amp;", "&")


def first_card(client, job: GenerationJob) -> str:
    return client.get(reverse("generations:job-card", args=[job.pk]), **HTMX).content.decode()


# --- the change reaches the page at the first poll after it -------------------------------------------


def test_a_change_is_answered_by_the_first_poll_after_it_and_not_before(authed_client, user):
    job = running_job(created_by=user, samples=2)
    html = first_card(authed_client, job)
    url = poll_url(html)
    assert authed_client.get(url, **HTMX).status_code == 204  # nothing changed: nothing to swap
    assert authed_client.get(url, **HTMX).status_code == 204

    first = GalleryImageFactory(job=job, index=0)
    response = authed_client.get(url, **HTMX)
    html = response.content.decode()
    assert response.status_code == 200
    assert first.url in html and "1 of 2 images made" in html  # the image, before the job ends
    url = poll_url(html)
    assert authed_client.get(url, **HTMX).status_code == 204

    second = GalleryImageFactory(job=job, index=1)
    GenerationJob.objects.filter(pk=job.pk).update(status="succeeded", finished_at=timezone.now())
    response = authed_client.get(url, **HTMX)
    html = response.content.decode()
    assert response.status_code == 286  # the finished card stops the polling
    assert first.url in html and second.url in html and "Succeeded" in html
    assert "hx-get" not in html.split(">")[0] + html.split(">")[1]


def test_cancel_asked_elsewhere_changes_the_card_at_the_next_poll(authed_client, user):
    job = running_job(created_by=user)
    url = poll_url(first_card(authed_client, job))
    GenerationJob.objects.filter(pk=job.pk).update(cancel_requested_at=timezone.now())
    response = authed_client.get(url, **HTMX)
    assert response.status_code == 200 and "Cancelling" in response.content.decode()


def test_a_job_sent_back_to_the_queue_and_claimed_again_is_a_change(authed_client, user):
    job = running_job(created_by=user)
    url = poll_url(first_card(authed_client, job))
    GenerationJob.objects.filter(pk=job.pk).update(attempts=2)  # requeued and claimed between two polls
    assert authed_client.get(url, **HTMX).status_code == 200


def test_an_unchanged_card_costs_one_query_besides_the_sign_in(
    authed_client, user, django_assert_num_queries
):
    job = running_job(created_by=user, samples=10)
    for index in range(9):
        GalleryImageFactory(job=job, index=index)
    url = poll_url(first_card(authed_client, job))
    # The user (with their team; the session comes from the cache), and the job with its images' count.
    with django_assert_num_queries(2):
        response = authed_client.get(url, **HTMX)
    assert response.status_code == 204 and response.content == b""


def test_a_changed_card_costs_a_fixed_number_of_queries(authed_client, user, django_assert_num_queries):
    job = running_job(created_by=user, samples=10)
    url = poll_url(first_card(authed_client, job))
    for index in range(9):
        GalleryImageFactory(job=job, index=index)
    # The user (with their team and membership, for Cancel), the job, its images: the same for 1 image or 9.
    with django_assert_num_queries(3):
        response = authed_client.get(url, **HTMX)
    html = response.content.decode()
    assert response.status_code == 200 and html.count("<img") == 9
    cancel = reverse("generations:job-cancel", args=[job.pk])
    assert f'action="{cancel}" hx-post="{cancel}"' in html


def test_a_card_without_a_version_is_answered_in_full(authed_client, user):
    job = running_job(created_by=user)
    response = authed_client.get(reverse("generations:job-card", args=[job.pk]), **HTMX)
    assert response.status_code == 200 and "Running" in response.content.decode()


def test_another_teams_job_is_not_found_even_with_its_version(authed_client):
    job = running_job()
    url = reverse("generations:job-card", args=[job.pk]) + "?v=running.1.0"
    assert authed_client.get(url, **HTMX).status_code == 404


# --- what the card shows -------------------------------------------------------------------------------


def test_thumbnails_keep_their_pictures_shape(authed_client, user):
    job = GenerationJobFactory(created_by=user, status="succeeded", finished_at=timezone.now())
    GalleryImageFactory(job=job, index=0, width=1216, height=832)
    GalleryImageFactory(job=job, index=1, width=640, height=1536)
    html = first_card(authed_client, job)
    assert 'width="384" height="263"' in html  # 3:2 landscape, as stored
    assert 'width="160" height="384"' in html  # portrait
    assert 'width="160" height="160"' not in html


def test_thumbnails_link_their_images_escape_the_prompt_and_mark_filtered_ones(authed_client, user):
    job = GenerationJobFactory(
        created_by=user, status="succeeded", finished_at=timezone.now(), prompt='a <b>"bold"</b> lighthouse'
    )
    shown = GalleryImageFactory(job=job, index=0, seed=7)
    filtered = GalleryImageFactory(job=job, index=1, seed=8, finish_reason="CONTENT_FILTERED")
    polled = first_card(authed_client, job)
    alt = "a &lt;b&gt;&quot;bold&quot;&lt;/b&gt; lighthouse"
    assert f'<a href="{shown.url}"><img src="{shown.thumbnail_url}" alt="{alt} (seed 7)"' in polled
    assert f'alt="{alt} (seed 8)" width="384" height="384"><span class="badge">Filtered</span></a>' in polled
    assert polled.count("Filtered") == 1 and filtered.url in polled
    assert "loading=" not in polled  # swapped in on screen: loads at once
    page = authed_client.get(reverse("generations:job-card", args=[job.pk])).content.decode()
    assert page.count('loading="lazy"') == 2 and alt in page


def test_the_card_names_the_engine_and_uses_one_multiplication_sign(authed_client, user):
    job = running_job(created_by=user, engine_id="stable-diffusion-xl-1024-v1-0", width=1216, height=832)
    job.resized_from = "1000x700"
    job.save()
    html = first_card(authed_client, job)
    assert "Stable Diffusion XL 1.0" in html and "stable-diffusion-xl-1024-v1-0 " not in html
    assert "1216 × 832" in html and "1000 × 700" in html
    # Only what is shown: the ids and the form's random CSRF token may hold "3x8" by chance.
    shown = re.sub(r'name="csrfmiddlewaretoken" value="[^"]*"', "", html.replace(str(job.pk), ""))
    assert not re.search(r"\d+x\d+", shown)


def test_a_queued_job_says_its_place_in_the_queue(authed_client, user, settings):
    settings.JOB_MAX_IN_FLIGHT_PER_USER = 2
    for _ in range(2):
        running_job(created_by=user)
    older = [GenerationJobFactory(created_by=user) for _ in range(2)]
    job = GenerationJobFactory(created_by=user)
    html = first_card(authed_client, job)
    assert "3rd in the queue · Waiting: its creator already has 2 jobs running" in html

    place_url = reverse("generations:job-card", args=[job.pk]) + "?place=1"
    assert place_url in html.replace("&amp;", "&")
    GenerationJob.objects.filter(pk=older[0].pk).update(status="cancelled", finished_at=timezone.now())
    assert "2nd in the queue" in authed_client.get(place_url, **HTMX).content.decode()

    GenerationJob.objects.filter(pk=job.pk).update(status="running", attempts=1)
    response = authed_client.get(place_url, **HTMX)
    assert response.status_code == 286 and b"in the queue" not in response.content


# --- failures in a person's words, and Retry ----------------------------------------------------------


def test_a_busy_api_is_explained_with_its_message_as_detail_and_retry(authed_client, user):
    api_said = "You have exceeded the rate limit of 150 requests within a 10 second period."
    job = failed_job(
        user,
        status_code=429,
        error=api_said,
        error_message=failure_message(TransientError(api_said, status=429)),
    )
    html = first_card(authed_client, job)
    assert "The Stability API was busy" in html
    assert "<summary>What the API said</summary>" in html and api_said in html
    assert 'class="secondary job-retry"' in html
    retry = reverse("generations:job-retry", args=[job.pk])
    assert f'action="{retry}" hx-post="{retry}"' in html
    assert "Tried 4 times" not in html and "try again" not in html.lower()


@pytest.mark.parametrize(
    ("status_code", "error", "words"),
    [
        (503, "The service is unavailable.", "had a problem on its side"),
        (None, "The Stability API did not answer in time (ReadTimeout).", "did not answer in time"),
        (None, "Could not reach the Stability API: [Errno 111] Connection refused.", "could not reach"),
    ],
)
def test_transient_failures_offer_retry(authed_client, user, status_code, error, words):
    html = first_card(authed_client, failed_job(user, status_code=status_code, error=error))
    assert words in html and "job-retry" in html


@pytest.mark.parametrize(
    ("status_code", "error", "words"),
    [
        (400, "Invalid prompts detected", "refused this request"),
        (401, "Incorrect API key provided", "refused the team&#x27;s key"),
    ],
)
def test_permanent_failures_explain_without_retry(authed_client, user, status_code, error, words):
    html = first_card(authed_client, failed_job(user, status_code=status_code, error=error))
    assert words in html and error in html and "job-retry" not in html


def test_a_viewer_is_not_offered_retry(client, user):
    job = failed_job(user, status_code=503, error="Unavailable")
    viewer = UserFactory()
    Membership.objects.create(user=viewer, team=job.team, role=Membership.Role.VIEWER)
    viewer.current_team = job.team
    viewer.save()
    client.force_login(viewer)
    html = first_card(client, job)
    assert "had a problem on its side" in html and "job-retry" not in html
    assert client.post(reverse("generations:job-retry", args=[job.pk]), **HTMX).status_code == 403


def test_retry_makes_a_new_job_with_the_same_request_and_answers_its_card(authed_client, user):
    request = TextToImageRequest(
        text_prompts=(Prompt("a lighthouse"), Prompt("fog", -1.0)),
        width=1216,
        height=832,
        samples=3,
        seed=42,
        steps=25,
        cfg_scale=9.0,
        style_preset="photographic",
    )
    original = services.job_create(
        team=user.current_team, user=user, engine_id="stable-diffusion-xl-1024-v1-0", request=request
    )
    GenerationJob.objects.filter(pk=original.pk).update(status="running", attempts=1)
    running.job_finish(job=original, status="failed", reason="The service is unavailable.")
    ApiRequest.objects.create(
        job=original, index=0, attempt=1, outcome="not_charged", status_code=503, error="Unavailable"
    )

    response = authed_client.post(reverse("generations:job-retry", args=[original.pk]), **HTMX)
    retried = GenerationJob.objects.exclude(pk=original.pk).get()
    html = response.content.decode()
    assert response.status_code == 201
    assert f'id="job-{retried.pk}"' in html and "?v=" in html  # its card, polling
    assert retried.to_request() == original.to_request()
    assert (retried.engine_id, retried.seeds, retried.status) == (
        original.engine_id,
        original.seeds,
        "queued",
    )
    original.refresh_from_db()
    assert original.status == "failed"


def test_retry_without_javascript_opens_the_new_jobs_page(authed_client, user):
    job = failed_job(user, status_code=502, error="Bad gateway")
    response = authed_client.post(reverse("generations:job-retry", args=[job.pk]))
    retried = GenerationJob.objects.exclude(pk=job.pk).get()
    assert response.status_code == 302
    assert response["Location"] == reverse("generations:job-card", args=[retried.pk])


def test_retry_of_a_permanent_failure_is_refused_and_says_why(authed_client, user):
    job = failed_job(user, status_code=400, error="Invalid prompts detected")
    response = authed_client.post(reverse("generations:job-retry", args=[job.pk]), **HTMX)
    assert response.status_code == 200
    assert "would fail the same way" in response.content.decode()
    assert GenerationJob.objects.count() == 1


def test_a_job_given_up_by_its_worker_offers_retry_without_the_advice_text(authed_client, user):
    job = GenerationJobFactory(
        created_by=user,
        status="failed",
        finished_at=timezone.now() - timedelta(seconds=5),
        error_message="The job queue is unreachable, so the job was not started. Try again shortly.",
    )
    html = first_card(authed_client, job)
    assert "The job queue is unreachable, so the job was not started." in html
    assert "Try again shortly" not in html and "job-retry" in html
