"""Working in a team: the current team every page uses, switching it, seeing teammates' work, and what a
viewer may not do."""

import pytest
from django.test import Client
from django.urls import reverse

from accounts.models import Membership, Team
from accounts.services.teams import team_create
from generations.models import GenerationJob
from tests.factories import GalleryImageFactory, UserFactory

pytestmark = pytest.mark.django_db

VALID = {
    "prompt": "a lighthouse on a cliff at dawn",
    "engine": "stable-diffusion-v1-6",
    "size": "512x512",
    "samples": "1",
    "steps": "30",
    "cfg_scale": "7",
    "clip_guidance_preset": "NONE",
}


@pytest.fixture
def ada():
    return UserFactory(username="ada")


@pytest.fixture
def bob():
    return UserFactory(username="bob")


@pytest.fixture
def shared(ada, bob) -> Team:
    """Ada's team, with Bob as a member; Ada works in it (she created it)."""
    team = team_create(user=ada, name="Poster studio")
    Membership.objects.create(user=bob, team=team, role=Membership.Role.MEMBER)
    return team


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def switch(client: Client, team: Team, next_path: str = ""):
    return client.post(reverse("teams:switch"), {"team": team.pk, "next": next_path})


def test_creating_a_team_makes_its_creator_the_owner_and_switches_to_it(ada):
    client = client_for(ada)
    response = client.post(reverse("teams:create"), {"name": "  Poster studio  "})
    team = Team.objects.get(name="Poster studio")
    assert response.status_code == 302
    assert Membership.objects.get(team=team, user=ada).role == "owner"
    assert "Poster studio" in client.get(reverse("generations:gallery")).content.decode()
    assert (
        client.post(reverse("teams:create"), {"name": "   "}).content.decode().count("Give the team a name.")
    )


def test_the_switcher_lists_every_team_and_marks_the_current_one(ada, shared):
    html = client_for(ada).get(reverse("generations:create")).content.decode()
    assert f'<option value="{shared.pk}" selected>Poster studio</option>' in html
    assert "ada&#x27;s team (personal)" in html


def test_the_current_team_is_remembered_per_user_not_per_browser(ada, bob, shared):
    mine = GalleryImageFactory(job__created_by=bob, job__team=shared, team=shared)
    laptop, phone = client_for(bob), client_for(bob)
    assert str(mine.pk) not in laptop.get(reverse("generations:gallery")).content.decode()  # personal first
    response = switch(laptop, shared, reverse("generations:gallery"))
    assert response["Location"] == reverse("generations:gallery")
    assert str(mine.pk) in phone.get(reverse("generations:gallery")).content.decode()


def test_switching_to_a_team_one_is_not_in_is_404(ada, bob):
    strangers = team_create(user=ada, name="Not Bob's")
    assert switch(client_for(bob), strangers).status_code == 404
    bob.refresh_from_db()
    assert bob.current_team.is_personal


def test_switching_away_from_an_image_page_lands_on_create(ada, shared):
    image = GalleryImageFactory(job__created_by=ada, job__team=shared, team=shared)
    response = switch(client_for(ada), ada.memberships.get(team__is_personal=True).team, image.url)
    assert response["Location"] == reverse("generations:create")


def test_the_team_gallery_shows_everyones_images_with_who_made_them_and_a_mine_switch(ada, bob, shared):
    ada_image = GalleryImageFactory(job__created_by=ada, job__team=shared, team=shared)
    bob_image = GalleryImageFactory(job__created_by=bob, job__team=shared, team=shared)
    personal = ada.memberships.get(team__is_personal=True).team
    private = GalleryImageFactory(job__created_by=ada, job__team=personal, team=personal)
    client = client_for(ada)
    everyone = client.get(reverse("generations:gallery")).content.decode()
    assert str(ada_image.pk) in everyone and str(bob_image.pk) in everyone
    assert str(private.pk) not in everyone
    assert '<span class="creator">bob</span>' in everyone
    mine = client.get(reverse("generations:gallery") + "?who=mine").content.decode()
    assert str(ada_image.pk) in mine and str(bob_image.pk) not in mine


def test_a_teammates_image_can_be_varied_and_the_new_job_is_mine(ada, bob, shared, settings):
    settings.STABILITY_API_KEY = ""  # nothing is sent: the job waits for a worker
    image = GalleryImageFactory(job__created_by=ada, job__team=shared, team=shared)
    page = client_for(bob).get(image.url).content.decode()
    assert "Variations" in page and "Remix" not in page  # Bob still works in his personal team
    response = client_for(bob).post(reverse("generations:image-variations", args=[image.pk]))
    job = GenerationJob.objects.get(parent=image)
    assert response.status_code == 302
    assert (job.created_by, job.team, job.relation) == (bob, shared, "variation")


def test_a_viewer_browses_and_downloads_but_cannot_spend(ada, shared):
    viewer = UserFactory(username="vera")
    Membership.objects.create(user=viewer, team=shared, role=Membership.Role.VIEWER)
    image = GalleryImageFactory(job__created_by=ada, job__team=shared, team=shared)
    client = client_for(viewer)
    switch(client, shared)
    create_page = client.get(reverse("generations:create")).content.decode()
    assert "You are a viewer in Poster studio" in create_page
    assert 'id="create-form"' not in create_page
    assert client.get(image.url).status_code == 200
    assert "Variations" not in client.get(image.url).content.decode()
    assert client.get(reverse("generations:image-download", args=[image.pk])).status_code == 200
    refused = client.post(reverse("generations:create"), VALID)
    assert refused.status_code == 403
    assert "As viewer of Poster studio you can&#x27;t generate" in refused.content.decode()
    for name in ("image-variations", "image-rerun", "image-upscale"):
        assert client.post(reverse(f"generations:{name}", args=[image.pk])).status_code == 403, name
    assert client.post(reverse("generations:upload")).status_code == 403
    assert not GenerationJob.objects.filter(created_by=viewer).exists()


def test_a_member_removed_from_the_team_no_longer_sees_it(ada, bob, shared):
    image = GalleryImageFactory(job__created_by=bob, job__team=shared, team=shared)
    client = client_for(bob)
    switch(client, shared)
    assert client.get(image.url).status_code == 200
    Membership.objects.filter(user=bob, team=shared).delete()
    assert client.get(image.url).status_code == 404
    assert client.get(image.image_url).status_code == 404
    assert str(image.pk) not in client.get(reverse("generations:gallery")).content.decode()
    assert GenerationJob.objects.get(pk=image.job_id).created_by == bob  # still credited to Bob
