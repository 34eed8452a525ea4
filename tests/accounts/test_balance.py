"""The header's credit balance stays fresh enough to trust: shared between pages for a short while, asked
again when a person opens the account page or comes back to the tab (after a top-up, say), and never
asked of the API more than once every few seconds per key however often pages ask."""

import re

import pytest
from django.db.models import F
from django.urls import reverse
from django.utils.html import strip_tags

from accounts.services import stability
from sandbox.models import Organization
from tests.factories import UserFactory
from tests.security_factories import counted_api_calls

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def api_calls(live_server):
    yield from counted_api_calls(live_server)


@pytest.fixture
def signed_in(client, studio_engine):
    client.force_login(UserFactory())
    return client


def header_balance(client, *, fresh: bool = False) -> str:
    url = reverse("accounts:balance") + ("?fresh=1" if fresh else "")
    return strip_tags(client.get(url, HTTP_HX_REQUEST="true").content.decode()).strip()


def top_up(credits: int) -> None:
    """Credits bought on the Stability account, outside Studio."""
    Organization.objects.update(credits=F("credits") + credits)


def test_a_top_up_shows_in_the_header_when_the_person_comes_back_to_the_tab(signed_in, monkeypatch):
    assert header_balance(signed_in) == "1000.00 credits"
    top_up(500)
    assert header_balance(signed_in) == "1000.00 credits"  # page loads share the answer for a while
    monkeypatch.setattr(stability, "BALANCE_FRESH_SECONDS", 0)  # the answer is older than the window
    assert header_balance(signed_in, fresh=True) == "1500.00 credits"
    assert header_balance(signed_in) == "1500.00 credits"  # and every later page shows the new figure


def test_opening_the_account_page_shows_a_top_up_there_and_in_the_header(signed_in, monkeypatch):
    assert header_balance(signed_in) == "1000.00 credits"
    top_up(250)
    monkeypatch.setattr(stability, "BALANCE_FRESH_SECONDS", 0)
    page = signed_in.get(reverse("accounts:account")).content.decode()
    shown = re.search(r'class="account-credits">([^<]*)<', page)
    assert shown is not None and shown[1] == "1250.00"
    assert header_balance(signed_in) == "1250.00 credits"


def test_fresh_asks_reach_the_api_once_per_few_seconds_per_key(signed_in, api_calls):
    for _ in range(40):
        assert header_balance(signed_in, fresh=True) == "1000.00 credits"
        signed_in.get(reverse("accounts:account"))
    assert api_calls.count("/v1/user/balance") == 1


def test_anonymous_visitors_cannot_ask_for_a_fresh_balance(client, studio_engine, api_calls):
    for _ in range(20):
        response = client.get(reverse("accounts:balance") + "?fresh=1")
        assert response.status_code == 302
    assert api_calls == []
