import pytest
from django.urls import reverse

pytestmark = pytest.mark.django_db(transaction=True)


def test_healthz_reports_every_part_as_json(client, studio_engine, settings):
    response = client.get(reverse("healthz"))
    body = response.json()
    assert set(body["checks"]) == {"database", "broker", "stability_api"}
    assert body["checks"]["database"]["ok"]
    assert body["checks"]["stability_api"]["ok"], body
    assert response.status_code == (200 if body["ok"] else 503)


def test_healthz_says_when_the_api_cannot_be_reached(client, settings):
    settings.STABILITY_API_HOST = "http://127.0.0.1:9"
    settings.STABILITY_API_KEY = "sk-anything"
    response = client.get(reverse("healthz"))
    body = response.json()
    assert response.status_code == 503
    assert not body["ok"] and not body["checks"]["stability_api"]["ok"]
    assert "Could not reach" in body["checks"]["stability_api"]["error"]
