"""What every page carries: styled error pages with a way back, the favicon, the sandbox notice (for
members, with the key's instructions for staff only), and nothing inline that the CSP would refuse."""

import re

import pytest
from django.test import Client, RequestFactory
from django.urls import reverse
from django.views.defaults import server_error

from accounts.context_processors import SANDBOX_NOTE_DISMISSED
from tests.factories import UserFactory
from tests.spend_factories import join, shared_team

pytestmark = pytest.mark.django_db


@pytest.fixture
def sandbox(settings):
    settings.STABILITY_USES_SANDBOX = True


def signed_in(**fields) -> Client:
    client = Client()
    client.force_login(UserFactory(**fields))
    return client


def test_a_missing_page_is_a_styled_404_with_a_way_back(client):
    anonymous = client.get("/no-such-page/")
    assert anonymous.status_code == 404
    html = anonymous.content.decode()
    assert "There is nothing here" in html and 'class="topbar"' in html
    assert f'href="{reverse("accounts:login")}"' in html

    member = signed_in().get("/no-such-page/")
    assert member.status_code == 404
    assert f'href="{reverse("generations:create")}"' in member.content.decode()


def test_a_refused_action_is_a_styled_403_that_says_why(settings):
    owner = UserFactory()
    team = shared_team(owner)
    member = Client()
    member.force_login(join(team, role="member", username="bob"))
    response = member.get(reverse("teams:audit", args=[team.pk]))
    assert response.status_code == 403
    html = response.content.decode()
    assert "You can't do that here" in html and "Back to the gallery" in html


def test_the_500_page_renders_without_a_request_context_or_the_database(django_assert_num_queries):
    request = RequestFactory().get("/")
    with django_assert_num_queries(0):
        response = server_error(request)
    html = response.content.decode()
    assert response.status_code == 500
    assert "Something went wrong" in html and 'href="/"' in html
    assert "studio.css" in html


def test_the_favicon_is_linked_and_answered_at_its_usual_address(client):
    html = client.get(reverse("accounts:login")).content.decode()
    icon = re.search(r'<link rel="icon" href="([^"]+)" type="image/svg\+xml">', html)
    assert icon is not None
    response = client.get("/favicon.ico")
    assert response.status_code == 301 and response["Location"] == icon[1]


def test_members_are_told_images_are_previews_and_only_staff_how_to_change_it(sandbox):
    staff = UserFactory(username="root")  # a new studio's first account is its administrator
    assert staff.is_staff
    member = signed_in().get(reverse("accounts:password-change")).content.decode()
    assert "procedural previews" in member and "STABILITY_API_KEY" not in member
    assert re.search(r'<aside class="sandbox-note" aria-label="[^"]+"', member)  # in a landmark

    client = Client()
    client.force_login(staff)
    assert "STABILITY_API_KEY" in client.get(reverse("accounts:password-change")).content.decode()


def test_a_dismissed_sandbox_notice_stays_dismissed(sandbox):
    client = signed_in()
    client.cookies[SANDBOX_NOTE_DISMISSED] = "1"
    assert "procedural previews" not in client.get(reverse("accounts:account")).content.decode()


def test_no_sandbox_notice_with_a_real_key_or_before_signing_in(client, settings):
    settings.STABILITY_USES_SANDBOX = True
    assert "procedural previews" not in client.get(reverse("accounts:login")).content.decode()
    settings.STABILITY_USES_SANDBOX = False
    assert "procedural previews" not in signed_in().get(reverse("accounts:account")).content.decode()


@pytest.mark.parametrize("name", ["accounts:login", "accounts:signup", "accounts:account", "404"])
def test_the_page_frame_has_nothing_inline_for_the_csp_to_refuse(name, sandbox):
    client = signed_in() if name == "accounts:account" else Client()
    html = client.get("/no-such-page/" if name == "404" else reverse(name)).content.decode()
    assert all("src=" in tag for tag in re.findall(r"<script\b[^>]*>", html))
    assert not re.search(r"<style\b", html) and not re.search(r"\sstyle=", html)
    assert not re.search(r"\son[a-z]+=", html)  # no inline event handlers


def test_a_404_does_not_echo_the_address_it_was_asked_for():
    missing = "/images/0adb9984-aa75-49d7-a36a-a15b82216c85/"
    response = signed_in().get(missing)
    assert response.status_code == 404
    assert "0adb9984" not in response.content.decode()
