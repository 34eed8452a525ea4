"""A job reaching the page in Chromium: each image as it is stored, the end said out loud without moving
the keyboard, thumbnails in their picture's shape, and Retry after the API was busy."""

import pytest
from django.urls import reverse
from django.utils import timezone
from playwright.sync_api import Page, expect

from generations.models import ApiRequest, GenerationJob
from tests.browser.test_image_tools import sign_in
from tests.factories import GalleryImageFactory, GenerationJobFactory, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def member(studio_engine):
    return UserFactory()


def test_each_image_appears_as_it_is_stored_and_the_end_is_announced_where_the_keyboard_stays(
    page: Page, live_server, member
):
    now = timezone.now()
    job = GenerationJobFactory(
        created_by=member, samples=2, status="running", attempts=1, started_at=now, progress_at=now
    )
    sign_in(page, live_server, member)
    complaints: list[str] = []  # what the browser refused or warned of while the card changed
    page.on(
        "console",
        lambda message: complaints.append(message.text) if message.type in ("error", "warning") else None,
    )
    card = page.locator(f"#job-{job.pk}")
    expect(card.get_by_role("status")).to_have_text("Running")
    prompt = page.get_by_label("Prompt", exact=True)
    prompt.fill("a harbour at dusk")  # someone writing their next prompt while this job runs

    # A 3:2 landscape image: its stored thumbnail is 384 x 256.
    GalleryImageFactory(job=job, index=0, width=1152, height=768, thumbnail__width=384, thumbnail__height=256)
    expect(card.locator(".thumbs img")).to_have_count(1)
    expect(card.get_by_role("status")).to_have_text("Running")  # the image came before the job ended
    expect(card).to_contain_text("1 of 2 images made")
    box = card.locator(".thumbs img").first.bounding_box()
    assert box is not None and abs(box["width"] / box["height"] - 1.5) < 0.03  # not cropped square

    GalleryImageFactory(job=job, index=1, width=1152, height=768, thumbnail__width=384, thumbnail__height=256)
    GenerationJob.objects.filter(pk=job.pk).update(status="succeeded", finished_at=timezone.now())
    expect(card.get_by_role("status")).to_have_text("Succeeded")
    expect(card.locator(".thumbs img")).to_have_count(2)
    expect(page.locator("#job-announcer")).to_have_text("Job succeeded: 2 images made.")
    expect(page.locator("#job-announcer")).to_have_attribute("aria-live", "polite")
    expect(prompt).to_be_focused()
    expect(prompt).to_have_value("a harbour at dusk")
    assert complaints == []  # e.g. no inline style refused by the content security policy during a swap


def test_retry_after_the_api_was_busy_runs_the_same_job_again(page: Page, live_server, member):
    api_said = "You have exceeded the rate limit of 150 requests within a 10 second period."
    failed = GenerationJobFactory(
        created_by=member,
        prompt="a lighthouse in a storm",
        status="failed",
        attempts=1,
        finished_at=timezone.now(),
        error_message=f"{api_said} Tried 4 times; try again later.",
    )
    ApiRequest.objects.create(
        job=failed, index=0, attempt=1, outcome="not_charged", status_code=429, error=api_said
    )
    sign_in(page, live_server, member)
    card = page.locator(f"#job-{failed.pk}")
    expect(card).to_contain_text("The Stability API was busy and asked Studio to slow down.")
    expect(card).not_to_contain_text("Tried 4 times")
    card.get_by_text("What the API said").click()
    expect(card.get_by_text(api_said)).to_be_visible()

    card.get_by_role("button", name="Retry").click()
    expect(card).to_have_count(0)  # the new job's card takes the failed one's place
    retried = GenerationJob.objects.exclude(pk=failed.pk).get()
    new_card = page.locator(f"#job-{retried.pk}")
    expect(new_card.get_by_role("status")).to_have_text("Succeeded", timeout=30_000)
    expect(new_card.locator(".thumbs img")).to_have_count(1)
    expect(new_card).to_be_focused()  # the button pressed went away: the keyboard stays on its card
    assert (retried.prompt, retried.engine_id, retried.created_by) == (
        failed.prompt,
        failed.engine_id,
        member,
    )
    page.goto(f"{live_server.url}{reverse('generations:job-card', args=[failed.pk])}")
    expect(page.locator(f"#job-{failed.pk}").get_by_role("status")).to_have_text("Failed")
