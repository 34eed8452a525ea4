"""/healthz: up or down for anyone, from cached state and without reaching the Stability API; each part's
details for the studio's staff, with the API asked at most once per HEALTHZ_CACHE_SECONDS."""

import pytest
from django.core.cache import cache
from django.test import Client
from django.urls import reverse

from tests.factories import UserFactory
from tests.security_factories import counted_api_calls

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def api_calls(live_server):
    """The API paths the sandbox is asked for during the test."""
    yield from counted_api_calls(live_server)


@pytest.fixture
def staff_client():
    staff = UserFactory()
    staff.is_staff = True
    staff.save(update_fields=["is_staff"])
    client = Client()
    client.force_login(staff)
    return client


def test_staff_see_every_part_of_the_health_check(staff_client, studio_engine):
    response = staff_client.get(reverse("healthz"))
    body = response.json()
    assert set(body["checks"]) == {"database", "broker", "stability_api"}
    assert body["checks"]["database"]["ok"]
    assert body["checks"]["stability_api"]["ok"], body
    assert response.status_code == (200 if body["ok"] else 503)


def test_staff_are_told_when_the_api_cannot_be_reached(staff_client, settings):
    settings.STABILITY_API_HOST = "http://127.0.0.1:9"
    settings.STABILITY_API_KEY = "sk-anything"
    response = staff_client.get(reverse("healthz"))
    body = response.json()
    assert response.status_code == 503
    assert not body["ok"] and not body["checks"]["stability_api"]["ok"]
    assert "Could not reach" in body["checks"]["stability_api"]["error"]


def test_anonymous_callers_learn_up_or_down_only_and_never_reach_the_api(client, studio_engine, api_calls):
    for _ in range(160):
        response = client.get(reverse("healthz"))
        assert response.status_code == 200
        assert response.json() == {"ok": True}  # no host, no error text, no parts
    assert api_calls == []


def test_anonymous_callers_are_told_the_api_is_down_once_a_read_of_it_failed(
    client, staff_client, settings, studio_engine
):
    settings.STABILITY_API_HOST = "http://127.0.0.1:9"  # the API is gone; staff notice it
    assert staff_client.get(reverse("healthz")).status_code == 503
    cache.delete("healthz:public")
    response = client.get(reverse("healthz"))
    assert response.status_code == 503 and response.json() == {"ok": False}


def test_160_staff_checks_ask_the_api_once(staff_client, studio_engine, api_calls):
    for _ in range(160):
        assert staff_client.get(reverse("healthz")).status_code == 200
    assert api_calls == ["/v1/engines/list"]


def test_the_engine_list_the_create_page_read_is_the_one_health_checks_use(
    authed_client, staff_client, studio_engine, api_calls
):
    assert authed_client.get(reverse("generations:create")).status_code == 200
    assert staff_client.get(reverse("healthz")).json()["checks"]["stability_api"]["ok"]
    assert api_calls == ["/v1/engines/list"]
