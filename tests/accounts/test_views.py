import pytest
from django.urls import reverse

from accounts.models import Membership, User

pytestmark = pytest.mark.django_db


def test_signing_up_creates_the_user_and_their_personal_team(client):
    response = client.post(
        reverse("accounts:signup"),
        {
            "username": "ada",
            "email": "Ada@Example.com",
            "password1": "a-long-passphrase-42",
            "password2": "a-long-passphrase-42",
        },
    )
    assert response.status_code == 302
    user = User.objects.get(username="ada")
    membership = Membership.objects.get(user=user)
    assert user.email == "ada@example.com"
    assert membership.role == "owner" and membership.team.is_personal
    assert client.get(reverse("generations:create")).status_code == 200  # signed in


def test_signup_problems_are_shown_at_their_fields(client, user):
    response = client.post(
        reverse("accounts:signup"),
        {"username": "bob", "email": user.email, "password1": "short", "password2": "other"},
    )
    html = response.content.decode()
    assert response.status_code == 200
    assert "An account with this email already exists" in html
    assert "password fields didn’t match" in html
    assert not User.objects.filter(username="bob").exists()


def test_signing_in_and_out(client, user):
    response = client.post(
        reverse("accounts:login"), {"username": user.username, "password": "a-long-passphrase-42"}
    )
    assert response.status_code == 302
    assert client.get(reverse("generations:gallery")).status_code == 200
    client.post(reverse("accounts:logout"))
    assert client.get(reverse("generations:gallery")).status_code == 302


def test_a_wrong_password_is_refused_with_a_message(client, user):
    response = client.post(reverse("accounts:login"), {"username": user.username, "password": "nope"})
    assert response.status_code == 200
    assert "Please enter a correct username and password" in response.content.decode()


def test_changing_the_password(authed_client, user):
    response = authed_client.post(
        reverse("accounts:password-change"),
        {
            "old_password": "a-long-passphrase-42",
            "new_password1": "another-passphrase-77",
            "new_password2": "another-passphrase-77",
        },
    )
    assert response.status_code == 302
    user.refresh_from_db()
    assert user.check_password("another-passphrase-77")


def test_without_a_key_the_balance_and_account_say_what_to_do(authed_client, settings):
    settings.STABILITY_API_KEY = ""
    balance = authed_client.get(reverse("accounts:balance"), HTTP_HX_REQUEST="true").content.decode()
    assert 'aria-label="Credit balance"' in balance and "Balance unavailable" in balance
    assert "STABILITY_API_KEY" in balance
    account = authed_client.get(reverse("accounts:account"))
    assert account.status_code == 200
    assert "No Stability API key is configured" in account.content.decode()


@pytest.mark.django_db(transaction=True)
def test_the_balance_comes_from_the_api(client, studio_engine):
    from tests.factories import UserFactory

    client.force_login(UserFactory())
    html = client.get(reverse("accounts:balance"), HTTP_HX_REQUEST="true").content.decode()
    assert 'aria-label="Credit balance"' in html and "1000.00 credits" in html


@pytest.mark.django_db(transaction=True)
def test_a_rejected_key_shows_a_notice_not_an_error_page(client, studio_engine, settings):
    from tests.factories import UserFactory

    settings.SANDBOX_KEY_FILE.write_text("sk-not-a-real-key")
    client.force_login(UserFactory())
    balance = client.get(reverse("accounts:balance"), HTTP_HX_REQUEST="true")
    account = client.get(reverse("accounts:account"))
    assert balance.status_code == 200 and "refused the key" in balance.content.decode()
    assert account.status_code == 200 and "did not return the account" in account.content.decode()


@pytest.mark.django_db(transaction=True)
def test_the_account_page_shows_the_stability_account_behind_the_key(
    client, sandbox_url, make_sandbox_key, settings
):
    from tests.factories import UserFactory

    settings.STABILITY_API_HOST = sandbox_url
    settings.STABILITY_API_KEY = make_sandbox_key(credits=5, email="owner@studio.test")
    client.force_login(UserFactory())
    html = client.get(reverse("accounts:account")).content.decode()
    assert "owner@studio.test" in html
    assert "user-" in html and "org-" in html
    assert "Organizations" in html


def test_a_user_made_by_createsuperuser_gets_a_personal_team_on_first_visit(client):
    admin = User.objects.create_superuser("root", "root@example.com", "a-long-passphrase-42")
    client.force_login(admin)
    assert client.get(reverse("generations:create")).status_code == 200
    assert Membership.objects.get(user=admin).role == "owner"
