"""Spend, visibly: what each job records equals what the sandbox charged; allowances refuse a job before
anything is sent; the usage page and its CSV; the header's low-balance warning."""

import csv
import io
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from types import SimpleNamespace

import pytest
from django.urls import reverse
from django.utils import timezone
from django.utils.html import strip_tags

from accounts.models import AuditEvent, Membership
from accounts.services.spend import (
    AllowanceExceeded,
    allowance_check,
    month_start,
    previous_month_start,
    team_usage,
)
from generations import services
from generations.models import ApiRequest, GenerationJob
from generations.stability.contract import Prompt
from generations.stability.types import TextToImageRequest
from tests.factories import GalleryImageFactory, GenerationJobFactory, UserFactory
from tests.spend_factories import client_for, credits_left, join, shared_team

SD16 = "stable-diffusion-v1-6"
SDXL = "stable-diffusion-xl-1024-v1-0"
ESRGAN = "esrgan-v1-x2plus"
LATENT = "stable-diffusion-x4-latent-upscaler"
HTMX = {"HTTP_HX_REQUEST": "true"}
FORM = {
    "prompt": "a harbour at night, lanterns",
    "engine": SDXL,
    "size": "1024x1024",
    "samples": "4",
    "steps": "30",
    "cfg_scale": "7",
    "clip_guidance_preset": "NONE",
}
live = pytest.mark.django_db(transaction=True)


def run(
    user, engine_id: str, *, size: tuple[int, int], steps: int = 30, samples: int = 1, prompt: str = "a fox"
):
    request = TextToImageRequest(
        text_prompts=(Prompt(prompt),), width=size[0], height=size[1], steps=steps, samples=samples
    )
    job = services.job_create(team=user.current_team, user=user, engine_id=engine_id, request=request)
    job.refresh_from_db()
    assert job.status == "succeeded", job.error_message
    return job


# --- recorded cost = the sandbox's charge ------------------------------------------------------------


@live
@pytest.mark.parametrize(
    ("engine_id", "size", "steps", "samples"),
    [
        (SDXL, (1024, 1024), 30, 2),
        (SDXL, (1344, 768), 40, 1),
        (SDXL, (1024, 1024), 50, 1),
        (SDXL, (896, 1152), 23, 2),  # fewer than 30 steps: the 30-step price
        (SDXL, (1216, 832), 37, 1),  # above 30 steps: in proportion
        (SD16, (512, 512), 30, 2),
        (SD16, (1536, 640), 50, 1),
        (SD16, (384, 320), 10, 1),  # under 512x512: the floor price
    ],
)
def test_a_job_records_exactly_what_the_sandbox_charged(studio_engine, engine_id, size, steps, samples):
    user = UserFactory()
    before = credits_left(user.current_team)
    job = run(user, engine_id, size=size, steps=steps, samples=samples)
    charged = before - credits_left(user.current_team)
    assert charged > 0
    assert job.credits_spent == charged
    assert job.credits_estimated == charged  # nothing filtered: the estimate was the price


@live
@pytest.mark.parametrize(("engine_id", "factor", "expected"), [(ESRGAN, 2, "0.2"), (LATENT, 4, "8")])
def test_an_upscale_records_what_the_sandbox_charged(studio_engine, engine_id, factor, expected):
    user = UserFactory()
    source = run(user, SD16, size=(512, 512)).images.get()
    before = credits_left(user.current_team)
    job = services.image_upscale(image=source, user=user, engine_id=engine_id, prompt="crisp")
    job.refresh_from_db()
    assert job.status == "succeeded", job.error_message
    assert (job.width, job.upscale_factor) == (512 * factor, factor)
    assert job.credits_spent == before - credits_left(user.current_team) == Decimal(expected)


@live
def test_filtered_images_cost_nothing_and_are_recorded_as_nothing(studio_engine):
    user = UserFactory()
    before = credits_left(user.current_team)
    job = run(user, SD16, size=(512, 512), samples=3, prompt="a lurid poster")
    assert [image.finish_reason for image in job.images.all()] == ["CONTENT_FILTERED"] * 3
    assert job.credits_estimated > 0
    assert job.credits_spent == 0
    assert credits_left(user.current_team) == before


# --- allowances ---------------------------------------------------------------------------------------


@live
def test_a_job_over_the_allowance_is_refused_at_the_form_and_nothing_is_sent_or_charged(studio_engine):
    team = shared_team(UserFactory())
    bob = join(team)
    Membership.objects.filter(team=team, user=bob).update(monthly_allowance=Decimal("4"))
    client = client_for(bob)
    assert client.post(reverse("generations:create"), {**FORM, "samples": "1"}, **HTMX).status_code == 201
    before = credits_left(team)
    jobs = GenerationJob.objects.count()
    response = client.post(reverse("generations:create"), FORM, **HTMX)  # four images: 3.60 credits
    html = response.content.decode()
    assert response.status_code == 200 and response["HX-Retarget"] == "#create-form"
    assert (
        "This job would cost 3.60 credits, and your monthly allowance in this team is 4 credits, "
        "of which 0.90 are used." in html
    )
    assert 'id="id_samples"' in html.split("This job would cost")[0]  # the message is at the samples field
    assert GenerationJob.objects.count() == jobs
    assert credits_left(team) == before


@live
def test_a_variation_over_the_allowance_is_refused_with_the_same_message(studio_engine):
    team = shared_team(UserFactory())
    bob = join(team)
    source = run(bob, SD16, size=(512, 512)).images.get()
    Membership.objects.filter(team=team, user=bob).update(monthly_allowance=Decimal("0.5"))
    before = credits_left(team)
    client = client_for(bob)
    response = client.post(reverse("generations:image-variations", args=[source.pk]), follow=True)
    assert "your monthly allowance in this team is 0.50 credits" in response.content.decode()
    assert GenerationJob.objects.count() == 1
    assert credits_left(team) == before


@pytest.mark.django_db
def test_the_allowance_counts_what_finished_jobs_spent_and_what_unfinished_ones_will():
    team = shared_team(UserFactory())
    bob = join(team)
    Membership.objects.filter(team=team, user=bob).update(monthly_allowance=Decimal("10"))
    now = timezone.now()
    jobs = dict(team=team, created_by=bob)
    # Counted: spent by finished jobs (a failed one spent nothing), the estimate of queued and running ones.
    GenerationJobFactory(
        **jobs, status="succeeded", finished_at=now, credits_estimated=Decimal(4), credits_spent=Decimal(3)
    )
    GenerationJobFactory(**jobs, status="failed", finished_at=now, credits_estimated=Decimal(5))
    GenerationJobFactory(**jobs, status="queued", credits_estimated=Decimal(2))
    GenerationJobFactory(**jobs, status="running", credits_estimated=Decimal(1))
    # Not counted: last month, another member, the same member in another team.
    last_month = previous_month_start(month_start()) + timedelta(days=3)
    GenerationJobFactory(
        **jobs, status="succeeded", finished_at=now, credits_spent=Decimal(50), created_at=last_month
    )
    GenerationJobFactory(
        team=team, created_by=join(team), status="succeeded", finished_at=now, credits_spent=Decimal(50)
    )
    GenerationJobFactory(
        team=bob.memberships.get(team__is_personal=True).team,
        created_by=bob,
        status="succeeded",
        finished_at=now,
        credits_spent=Decimal(50),
    )
    allowance_check(team=team, user=bob, cost=Decimal(4))  # 6 used + 4 = 10: exactly the allowance
    with pytest.raises(AllowanceExceeded) as refused:
        allowance_check(team=team, user=bob, cost=Decimal("4.01"))
    assert (refused.value.allowance, refused.value.used, refused.value.cost) == (10, 6, Decimal("4.01"))


@pytest.mark.django_db
def test_no_allowance_means_no_limit():
    team = shared_team(UserFactory())
    bob = join(team)
    GenerationJobFactory(team=team, created_by=bob, status="queued", credits_estimated=Decimal(10_000))
    allowance_check(team=team, user=bob, cost=Decimal(10_000))


@pytest.mark.django_db
def test_an_admin_sets_and_lifts_a_members_allowance_and_the_audit_log_says_so():
    owner = UserFactory()
    team = shared_team(owner)
    admin = join(team, role="admin", username="ada")
    bob = join(team, username="bob")
    bob_membership = Membership.objects.get(team=team, user=bob)
    client = client_for(admin)
    url = reverse("teams:allowance", args=[team.pk, bob_membership.pk])
    response = client.post(url, {"monthly_allowance": "50"})
    assert response.status_code == 302 and response["Location"] == reverse("teams:usage", args=[team.pk])
    bob_membership.refresh_from_db()
    assert bob_membership.monthly_allowance == Decimal(50)
    event = AuditEvent.objects.get(team=team, action="member.allowance_changed")
    assert event.actor == admin
    assert event.summary == "bob's monthly allowance: no limit → 50 credits"
    row = client.post(url, {"monthly_allowance": ""}, **HTMX)
    assert row.status_code == 200 and f'id="usage-{bob.pk}"' in row.content.decode()
    bob_membership.refresh_from_db()
    assert bob_membership.monthly_allowance is None
    assert AuditEvent.objects.filter(team=team, action="member.allowance_changed").count() == 2


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("-5", "An allowance can&#x27;t be negative; leave it blank for no limit."),
        ("lots", "Enter a number of credits, or leave it blank for no limit."),
        ("NaN", "Enter a number of credits, or leave it blank for no limit."),
        ("12.345", "Give the allowance to at most two decimal places."),
        ("1e20", "That is more credits than an allowance can hold."),
    ],
)
def test_a_negative_or_junk_allowance_is_refused_at_the_field(value, message):
    owner = UserFactory()
    team = shared_team(owner)
    bob = join(team, username="bob")
    membership = Membership.objects.get(team=team, user=bob)
    for headers in ({}, HTMX):
        response = client_for(owner).post(
            reverse("teams:allowance", args=[team.pk, membership.pk]), {"monthly_allowance": value}, **headers
        )
        html = response.content.decode()
        assert response.status_code == 200
        assert f'<div class="field-error" id="id_allowance_{membership.pk}_monthly_allowance_error"' in html
        assert message in html
    membership.refresh_from_db()
    assert membership.monthly_allowance is None
    assert not AuditEvent.objects.filter(action="member.allowance_changed").exists()


@pytest.mark.django_db
def test_an_admin_cannot_cap_an_owner_and_members_cannot_set_allowances():
    owner = UserFactory()
    team = shared_team(owner)
    admin = join(team, role="admin")
    member = join(team)
    owner_membership = Membership.objects.get(team=team, user=owner)
    member_membership = Membership.objects.get(team=team, user=member)
    response = client_for(admin).post(
        reverse("teams:allowance", args=[team.pk, owner_membership.pk]), {"monthly_allowance": "1"}
    )
    assert "Only an owner can set an owner&#x27;s allowance." in response.content.decode()
    response = client_for(member).post(
        reverse("teams:allowance", args=[team.pk, member_membership.pk]), {"monthly_allowance": "1000"}
    )
    assert response.status_code == 403
    other = shared_team(UserFactory(), name="Elsewhere")
    outsider_membership = Membership.objects.get(team=other)
    response = client_for(admin).post(
        reverse("teams:allowance", args=[team.pk, outsider_membership.pk]), {"monthly_allowance": "1"}
    )
    assert response.status_code == 404
    assert not Membership.objects.filter(monthly_allowance__isnull=False).exists()


# --- the usage page ------------------------------------------------------------------------------------


@pytest.fixture
def two_months(db):
    """Ada (owner) and Bob (member) with jobs this month, last month and the month before."""
    ada = UserFactory(username="ada")
    team = shared_team(ada)
    bob = join(team, username="bob")
    this_month = month_start() + timedelta(hours=1)
    last_month = previous_month_start(month_start()) + timedelta(days=2)
    earlier = previous_month_start(previous_month_start(month_start())) + timedelta(days=2)

    def job(user, when, spent: str, images: int, *, in_team=team):
        made = GenerationJobFactory(
            team=in_team,
            created_by=user,
            created_at=when,
            status="succeeded",
            finished_at=when,
            samples=max(images, 1),
            credits_spent=Decimal(spent),
        )
        for index in range(images):
            GalleryImageFactory(job=made, index=index, created_at=when)
        return made

    job(ada, this_month, "6.4", 4)
    job(ada, this_month, "1.6", 1)
    upscale = job(bob, this_month, "0.200053", 1)
    # A request of Bob's that got no answer: possibly charged, shown beside what was spent.
    ApiRequest.objects.create(
        job=upscale, index=1, attempt=1, outcome=ApiRequest.Outcome.UNKNOWN, credits=Decimal("1.6")
    )
    job(bob, this_month, "0", 2)  # filtered: images, no credits
    job(ada, last_month, "2", 1)
    job(bob, last_month, "3.2", 2)
    job(bob, earlier, "99", 3)  # two months ago: on neither
    GenerationJobFactory(
        team=team, created_by=bob, created_at=this_month, status="failed", finished_at=this_month
    )
    stranger = UserFactory()
    job(stranger, this_month, "42", 1, in_team=stranger.current_team)  # another team: not here
    return SimpleNamespace(team=team, ada=ada, bob=bob)


def _cells(html: str, row_id: str) -> list[str]:
    row = re.search(rf'<tr id="{row_id}">(.*?)</tr>', html, re.S)[1]
    return [re.sub(r"<[^>]+>", "", cell).strip() for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]


def test_the_usage_page_lists_credits_jobs_and_images_per_member_for_this_month_and_last(two_months):
    team, ada, bob = two_months.team, two_months.ada, two_months.bob
    response = client_for(ada).get(reverse("teams:usage", args=[team.pk]))
    html = response.content.decode()
    assert response.status_code == 200
    this, last = month_start(), previous_month_start(month_start())
    assert f"{this:%B %Y}" in html and f"{last:%B %Y}" in html
    # credits, jobs, images this month; then last month; then the allowance
    assert _cells(html, f"usage-{ada.pk}")[:6] == ["8", "2", "5", "2", "1", "1"]
    assert _cells(html, f"usage-{bob.pk}")[:6] == ["0.20 (+1.60 possibly)", "3", "3", "3.20", "1", "2"]
    totals = re.search(r"<tfoot>(.*?)</tfoot>", html, re.S)[1]
    assert [re.sub(r"<[^>]+>", "", c) for c in re.findall(r"<td[^>]*>(.*?)</td>", totals)][:6] == [
        "8.20 (+1.60 possibly)", "5", "8", "5.20", "2", "3",
    ]  # fmt: skip


def test_the_usage_csv_has_the_same_rows(two_months):
    team, ada = two_months.team, two_months.ada
    response = client_for(ada).get(reverse("teams:usage-csv", args=[team.pk]))
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"].startswith('attachment; filename="studio-usage-')
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    this, last = f"{month_start():%Y-%m}", f"{previous_month_start(month_start()):%Y-%m}"
    assert rows[0] == [
        "Member", "Email", "Role", "Monthly allowance",
        f"{this} credits", f"{this} possibly charged", f"{this} jobs", f"{this} images",
        f"{last} credits", f"{last} possibly charged", f"{last} jobs", f"{last} images",
    ]  # fmt: skip
    assert rows[1:] == [
        ["ada", "ada@example.com", "Owner", "", "8", "0", "2", "5", "2", "0", "1", "1"],
        ["bob", "bob@example.com", "Member", "", "0.200053", "1.6", "3", "3", "3.2", "0", "1", "2"],
        ["Total", "", "", "", "8.200053", "1.6", "5", "8", "5.2", "0", "2", "3"],
    ]


def test_a_member_who_left_still_has_their_spend_on_the_usage_page(two_months):
    team, ada, bob = two_months.team, two_months.ada, two_months.bob
    Membership.objects.filter(team=team, user=bob).delete()
    html = client_for(ada).get(reverse("teams:usage", args=[team.pk])).content.decode()
    assert "former member" in html
    assert _cells(html, f"usage-{bob.pk}")[:3] == ["0.20 (+1.60 possibly)", "3", "3"]


def test_the_usage_page_costs_the_same_few_queries_however_many_members_and_jobs(
    two_months, django_assert_max_num_queries
):
    team, ada = two_months.team, two_months.ada
    client = client_for(ada)
    url = reverse("teams:usage", args=[team.pk])
    client.get(url)  # sessions and the like warmed up
    with django_assert_max_num_queries(8) as small:
        client.get(url)
    for _ in range(6):
        newcomer = join(team)
        made = GenerationJobFactory(
            team=team, created_by=newcomer, status="succeeded", finished_at=timezone.now()
        )
        GalleryImageFactory(job=made, index=0)
    with django_assert_max_num_queries(len(small.captured_queries)):
        assert client.get(url).status_code == 200
    with django_assert_max_num_queries(len(small.captured_queries)):
        assert client.get(reverse("teams:usage-csv", args=[team.pk])).status_code == 200


@pytest.mark.parametrize("role", ["member", "viewer"])
def test_only_admins_see_the_usage(two_months, role):
    team = two_months.team
    someone = join(team, role=role)
    for name in ("teams:usage", "teams:usage-csv"):
        assert client_for(someone).get(reverse(name, args=[team.pk])).status_code == 403
    stranger = UserFactory()
    for name in ("teams:usage", "teams:usage-csv"):
        assert client_for(stranger).get(reverse(name, args=[team.pk])).status_code == 404


def test_admins_see_allowance_fields_and_members_limits_show(two_months):
    team, bob = two_months.team, two_months.bob
    admin = join(team, role="admin")
    Membership.objects.filter(team=team, user=bob).update(monthly_allowance=Decimal("25.5"))
    html = client_for(admin).get(reverse("teams:usage", args=[team.pk])).content.decode()
    bob_membership = Membership.objects.get(team=team, user=bob)
    assert f'action="{reverse("teams:allowance", args=[team.pk, bob_membership.pk])}"' in html
    assert 'value="25.50"' in html


@pytest.mark.django_db
def test_months_begin_at_midnight_in_the_studios_time_zone(settings):
    settings.TIME_ZONE = "Pacific/Auckland"  # UTC+12 in July
    team = shared_team(UserFactory())
    bob = join(team)
    # 1 July, 01:00 in Auckland: this month there, though still June in UTC.
    GenerationJobFactory(team=team, created_by=bob, created_at=datetime(2024, 6, 30, 13, tzinfo=UTC))
    GenerationJobFactory(team=team, created_by=bob, created_at=datetime(2024, 6, 30, 11, tzinfo=UTC))
    usage = team_usage(team=team, now=datetime(2024, 7, 15, tzinfo=UTC))
    (row,) = [row for row in usage.rows if row.user == bob]
    assert [month.jobs for month in row.months] == [1, 1]
    assert [f"{start:%Y-%m-%d %H:%M}" for start in usage.months] == ["2024-07-01 00:00", "2024-06-01 00:00"]


# --- the header's balance ------------------------------------------------------------------------------


@live
@pytest.mark.parametrize(("credits", "warned"), [(12, True), (19.99, True), (20, False), (500, False)])
def test_the_header_warns_when_the_balance_runs_low(settings, sandbox_url, make_sandbox_key, credits, warned):
    settings.STABILITY_API_HOST = sandbox_url
    settings.STABILITY_API_KEY = make_sandbox_key(credits=credits, email=f"low-{credits}@example.com")
    settings.LOW_BALANCE_CREDITS = 20
    user = UserFactory()
    html = client_for(user).get(reverse("accounts:balance")).content.decode()
    text = strip_tags(html)
    assert (f"Low balance: {credits:.2f} credits" in text) is warned
    assert ("low-balance" in html) is warned
    assert f"{credits:.2f} credits" in text
