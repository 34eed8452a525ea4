"""The teams migration keeps every user, team, job and image, encrypts existing keys and records spend."""

from decimal import Decimal

import pytest
from django.utils import timezone

from tests.migrating import back_to_the_latest_schema, migrate  # noqa: F401  (an autouse fixture)

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("accounts", "0001_initial"), ("generations", "0002_image_inputs_and_lineage")]
AFTER = [("accounts", "0002_teams_invites_keys_audit"), ("generations", "0003_job_credits_share_links")]


def test_migrating_keeps_everything_and_encrypts_the_team_key():
    old = migrate(BEFORE)
    User, Team, Membership = (old.get_model("accounts", name) for name in ("User", "Team", "Membership"))
    Job, Image = old.get_model("generations", "GenerationJob"), old.get_model("generations", "GalleryImage")
    ada = User.objects.create(username="ada", email="ada@example.com", password="x")
    lone = User.objects.create(username="root", email="root@example.com", password="x")  # createsuperuser
    team = Team.objects.create(name="ada's team", is_personal=True, stability_api_key="sk-old-plain-key-1234")
    Membership.objects.create(user=ada, team=team, role="owner")
    job = Job.objects.create(
        team=team,
        created_by=ada,
        engine_id="stable-diffusion-xl-1024-v1-0",
        prompt="tide pools",
        text_prompts=[{"text": "tide pools", "weight": 1.0}],
        width=1024,
        height=1024,
        samples=2,
        steps=30,
        status="succeeded",
        finished_at=timezone.now(),
    )
    for index, reason in enumerate(["SUCCESS", "CONTENT_FILTERED"]):
        Image.objects.create(
            job=job,
            index=index,
            team=team,
            created_by=ada,
            image="i.png",
            thumbnail="t.webp",
            width=1024,
            height=1024,
            seed=index,
            finish_reason=reason,
        )

    new = migrate(AFTER)
    from accounts import crypto

    NewTeam, NewUser = new.get_model("accounts", "Team"), new.get_model("accounts", "User")
    kept = NewTeam.objects.get(pk=team.pk)
    assert "sk-old-plain-key-1234" not in kept.stability_api_key_encrypted
    assert crypto.decrypt(kept.stability_api_key_encrypted) == "sk-old-plain-key-1234"
    assert kept.stability_api_key_hint == "sk-…1234"
    assert NewUser.objects.get(pk=ada.pk).current_team_id == team.pk
    assert new.get_model("accounts", "Membership").objects.filter(user_id=lone.pk, role="owner").exists()
    assert NewUser.objects.get(pk=lone.pk).current_team.is_personal
    new_job = new.get_model("generations", "GenerationJob").objects.get(pk=job.pk)
    # 1.6 credits an SDXL image at 30 steps in 2023, when it ran; the filtered one was not charged
    assert (new_job.credits_estimated, new_job.credits_spent) == (Decimal("3.2"), Decimal("1.6"))
    assert new.get_model("generations", "GalleryImage").objects.filter(job_id=job.pk).count() == 2
