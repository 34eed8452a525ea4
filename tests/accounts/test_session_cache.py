"""Signed-in requests read the session from the cache and the person with their current team in one query
(accounts/backends.py, accounts/sessions.py); nothing about who may see what is kept between requests."""

from html import unescape

import pytest
from django.db import connection
from django.test import Client, override_settings
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from accounts.models import Membership
from tests.library_factories import library_image
from tests.membership_factories import TeamFactory
from tests.spend_factories import join

pytestmark = pytest.mark.django_db
GALLERY = reverse("generations:gallery")
UNREACHABLE = {
    "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": "redis://127.0.0.1:9/0"}
}


@pytest.fixture
def ada_in_harbour():
    harbour = TeamFactory(name="Harbour")
    ada = join(harbour, username="ada")
    image = library_image(ada, harbour, prompt="a harbour at dusk")
    client = Client()
    client.force_login(ada)
    return ada, harbour, image, client


def test_a_signed_in_request_reads_no_session_row_and_finds_its_team_with_the_user(ada_in_harbour):
    _, _, image, client = ada_in_harbour
    with CaptureQueriesContext(connection) as queries:
        page = client.get(GALLERY, {"before": "x"}, HTTP_HX_REQUEST="true")
    assert page.status_code == 200 and str(image.pk) in page.content.decode()
    sql = [query["sql"] for query in queries]
    assert len(sql) == 2 and not any("django_session" in one for one in sql), sql
    user, page = sql
    assert 'FROM "accounts_user"' in user and '"accounts_team"' in user and '"accounts_membership"' in user
    assert 'FROM "generations_galleryimage"' in page


def test_signing_out_ends_a_cached_session_for_its_cookie(ada_in_harbour):
    _, _, _, client = ada_in_harbour
    cookie = client.cookies["sessionid"].value
    assert client.get(GALLERY).status_code == 200
    client.post(reverse("accounts:logout"))
    replay = Client()
    replay.cookies["sessionid"] = cookie
    response = replay.get(GALLERY)
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_a_member_removed_from_their_current_team_no_longer_sees_it_on_the_next_request(ada_in_harbour):
    ada, harbour, image, client = ada_in_harbour
    assert str(image.pk) in client.get(GALLERY).content.decode()
    Membership.objects.filter(user=ada, team=harbour).delete()
    gallery = unescape(client.get(GALLERY).content.decode())
    assert str(image.pk) not in gallery and "a harbour at dusk" not in gallery
    assert f"{ada.username}'s team" in gallery  # back in their personal team


def test_a_deactivated_person_is_signed_out_on_the_next_request(ada_in_harbour):
    ada, _, _, client = ada_in_harbour
    ada.is_active = False
    ada.save(update_fields=["is_active"])
    assert client.get(GALLERY).status_code == 302


def test_with_the_cache_unreachable_a_signed_in_person_stays_signed_in(ada_in_harbour):
    _, _, image, client = ada_in_harbour
    client.get(GALLERY)  # the session is in the cache, and in the database
    with override_settings(CACHES=UNREACHABLE):
        page = client.get(GALLERY)
    assert page.status_code == 200 and str(image.pk) in page.content.decode()
