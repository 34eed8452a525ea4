"""The cost shown before Generate: read from the form's values, priced as the job is, and equal to what the
job then spends and the sandbox charges."""

import re
from decimal import Decimal

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from accounts.models import Membership
from generations.models import GenerationJob
from tests.browser.conftest import chromium, page  # noqa: F401  (the browser fixtures)
from tests.images import png
from tests.spend_factories import client_for, credits_left, join, shared_team

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("studio_engine")]

SD16 = "stable-diffusion-v1-6"
SDXL = "stable-diffusion-xl-1024-v1-0"
HTMX = {"HTTP_HX_REQUEST": "true"}
FORM = {
    "prompt": "a harbour at night, lanterns",
    "engine": SD16,
    "size": "512x512",
    "samples": "1",
    "seed": "77",
    "steps": "30",
    "cfg_scale": "7",
    "clip_guidance_preset": "NONE",
}
ESTIMATE = re.compile(
    r'<data class="estimate-credits" value="(?P<exact>[\d.]+)">≈ (?P<shown>[\d.]+) credits</data> '
    r"\((?P<samples>\d+) × (?P<price>[\d.]+)\)"
)


def estimate(client, **fields) -> re.Match:
    """The estimate fragment for these form values, as the page asks for it."""
    response = client.get(reverse("generations:estimate"), {**FORM, **fields}, **HTMX)
    assert response.status_code == 200
    match = ESTIMATE.search(response.content.decode())
    assert match, response.content.decode()
    return match


def generate(client, **fields) -> GenerationJob:
    before = set(GenerationJob.objects.values_list("pk", flat=True))
    response = client.post(reverse("generations:create"), {**FORM, **fields}, **HTMX)
    assert response.status_code == 201, response.content.decode()[:2000]
    (job,) = GenerationJob.objects.exclude(pk__in=before)
    job.refresh_from_db()
    assert job.status == "succeeded", job.error_message
    return job


@pytest.mark.parametrize(
    ("engine", "size", "steps", "samples", "shown"),
    [
        (SDXL, "1024x1024", "30", "4", "3.60"),  # 0.9 an image up to 30 steps
        (SDXL, "896x1152", "20", "3", "2.70"),  # fewer steps cost no less
        (SDXL, "1152x896", "40", "2", "2.40"),  # above 30 steps, in proportion: 0.9 x 40/30
        (SDXL, "1024x1024", "50", "1", "1.50"),
        (SDXL, "1024x1024", "37", "2", "2.22"),
        (SD16, "512x512", "30", "3", None),
        (SD16, "1024x768", "45", "2", None),
        (SD16, "320x320", "20", "1", None),  # under 512x512, priced as 512x512
    ],
)
def test_the_estimate_shown_before_generate_is_what_the_job_then_spends(
    authed_client, user, engine, size, steps, samples, shown
):
    fields = {"engine": engine, "size": size, "steps": steps, "samples": samples}
    shown_estimate = estimate(authed_client, **fields)
    before = credits_left(user.current_team)
    job = generate(authed_client, **fields)
    exact = Decimal(shown_estimate["exact"])
    assert job.credits_spent == exact
    assert before - credits_left(user.current_team) == exact
    assert shown_estimate["samples"] == samples
    if shown:
        assert shown_estimate["shown"] == shown
    card = authed_client.get(reverse("generations:job-card", args=[job.pk]), **HTMX).content.decode()
    assert f"{shown_estimate['shown']} credits spent" in card


def test_with_an_init_image_the_estimate_prices_the_size_the_form_shows(authed_client, user):
    # 700x500 is not a size SD 1.6 takes: the form shows (and the job sends) the nearest one it does.
    chosen = authed_client.post(
        reverse("generations:upload"),
        {"engine": SD16, "init_image": SimpleUploadedFile("photo.png", png(700, 500))},
        **HTMX,
    )
    upload_id = re.search(r'name="init_upload" value="([^"]+)"', chosen.content.decode())[1]
    output = re.search(r'name="size" value="(\d+x\d+)"', chosen.content.decode())[1]
    assert output != "700x500"
    fields = {"init_upload": upload_id, "samples": "2", "size": "512x512"}  # a stale size is not priced
    shown_estimate = estimate(authed_client, **fields)
    before = credits_left(user.current_team)
    job = generate(authed_client, **{**fields, "size": output})
    assert job.size == output
    assert job.credits_spent == Decimal(shown_estimate["exact"])
    assert before - credits_left(user.current_team) == job.credits_spent


def test_a_filtered_job_spends_nothing_though_its_estimate_was_the_price(authed_client, user):
    shown_estimate = estimate(authed_client, samples="2")
    before = credits_left(user.current_team)
    job = generate(authed_client, prompt="a lurid poster", samples="2")
    assert Decimal(shown_estimate["exact"]) > 0
    assert job.credits_estimated == Decimal(shown_estimate["exact"])
    assert job.credits_spent == 0
    assert credits_left(user.current_team) == before


def test_the_create_page_shows_the_estimate_for_its_initial_values(authed_client):
    html = authed_client.get(reverse("generations:create")).content.decode()
    # The default engine (with the sandbox) is SDXL at 30 steps, four images of 0.9 credits.
    assert "≈ 3.60 credits</data> (4 × 0.90)" in html
    assert f'hx-get="{reverse("generations:estimate")}"' in html


@pytest.mark.parametrize(
    "fields",
    [
        {"steps": "5"},
        {"steps": "lots"},
        {"samples": "0"},
        {"samples": "11"},
        {"samples": ""},
        {"size": "513x512"},
        {"size": "huge"},
        {"engine": SDXL, "size": "512x512"},  # SDXL takes none but its nine sizes
        {"engine": "no-such-engine"},
        {"engine": ""},
    ],
)
def test_values_the_api_would_refuse_show_no_estimate(authed_client, fields):
    response = authed_client.get(reverse("generations:estimate"), {**FORM, **fields}, **HTMX)
    assert response.status_code == 200
    assert response.content.decode().strip() == "—"


def test_the_estimate_says_what_is_left_of_the_allowance_and_when_a_job_would_pass_it():
    from tests.factories import UserFactory

    owner = UserFactory()
    team = shared_team(owner)
    bob = join(team)
    Membership.objects.filter(team=team, user=bob).update(monthly_allowance=Decimal("5"))
    client = client_for(bob)
    generate(client, engine=SDXL, size="1024x1024", samples="1")  # 0.9 credits
    within = client.get(reverse("generations:estimate"), {**FORM, "samples": "1"}).content.decode()
    assert "4.10 of 5 credits left this month" in within
    over = client.get(  # five SDXL images: 4.50 credits
        reverse("generations:estimate"), {**FORM, "engine": SDXL, "size": "1024x1024", "samples": "5"}
    ).content.decode()
    assert "more than the 4.10 of 5 credits you have left this month" in over


def test_a_viewer_who_cannot_generate_gets_no_estimate():
    from tests.factories import UserFactory

    team = shared_team(UserFactory())
    viewer = join(team, role="viewer")
    response = client_for(viewer).get(reverse("generations:estimate"), FORM)
    assert response.status_code == 403


@pytest.mark.browser
def test_in_the_browser_the_estimate_follows_the_form_and_then_rests(page, live_server):  # noqa: F811
    from playwright.sync_api import expect

    from tests.factories import UserFactory

    user = UserFactory()
    page.goto(f"{live_server.url}{reverse('accounts:login')}")
    page.get_by_label("Username").fill(user.username)
    page.get_by_label("Password").fill("a-long-passphrase-42")
    page.get_by_role("button", name="Sign in").click()
    shown = page.locator("#estimate")
    expect(shown).to_have_text("≈ 3.60 credits (4 × 0.90)")
    page.get_by_label("Number of images").fill("2")
    expect(shown).to_have_text("≈ 1.80 credits (2 × 0.90)")
    # A new engine brings its own sizes: the estimate is for the size the field then shows.
    page.get_by_label("Model", exact=True).select_option(SD16)
    expect(page.get_by_label("Size")).to_have_value("512x512")
    expect(shown).to_have_text("≈ 0.40 credits (2 × 0.20)")
    page.get_by_label("Size").select_option("1024x1024")
    expect(shown).to_have_text("≈ 3.80 credits (2 × 1.90)")
    page.get_by_label("Number of images").fill("99")
    expect(shown).to_have_text("—")
    asked: list[str] = []
    page.on("request", lambda request: asked.append(request.url) if "/estimate/" in request.url else None)
    page.wait_for_timeout(1500)
    assert asked == []  # an answer does not ask again
