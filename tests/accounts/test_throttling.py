"""Closed to strangers: a guessed password is locked out (django-axes), and sign-up, password changes,
uploads and job creation are throttled (django-ratelimit) with a sentence saying so, never a 500."""

from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db.models import F
from django.test import Client, override_settings
from django.urls import reverse

from accounts.models import User
from generations.models import GenerationJob, Upload
from tests.factories import UserFactory
from tests.images import png

pytestmark = pytest.mark.django_db

PASSWORD = "a-long-passphrase-42"


def sign_in(client: Client, username: str, password: str, **extra):
    return client.post(reverse("accounts:login"), {"username": username, "password": password}, **extra)


def signed_in(client: Client) -> bool:
    return client.get(reverse("generations:gallery")).status_code == 200


def rates(settings, **changed: str) -> None:
    settings.THROTTLE_RATES = {**settings.THROTTLE_RATES, **changed}


# --- sign-in ---------------------------------------------------------------------------------------


def test_a_guessed_password_is_locked_out_and_then_even_the_right_one_is_refused(settings, user):
    client = Client()
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert sign_in(client, user.username, "wrong-guess").status_code == 200
    locked = sign_in(client, user.username, "wrong-guess")
    assert locked.status_code == 429
    assert f"Too many failed sign-ins for “{user.username}”" in locked.content.decode()

    right = sign_in(client, user.username, PASSWORD)
    assert right.status_code == 429 and "locked for 15 minutes" in right.content.decode()
    assert not signed_in(client)


def test_the_lock_out_ends_after_its_period(settings, user):
    client = Client()
    for _ in range(settings.AXES_FAILURE_LIMIT):
        sign_in(client, user.username, "wrong-guess")
    assert sign_in(client, user.username, PASSWORD).status_code == 429
    AccessAttempt.objects.update(attempt_time=F("attempt_time") - timedelta(minutes=16))  # time passes
    assert sign_in(client, user.username, PASSWORD).status_code == 302
    assert signed_in(client)


def test_the_lock_out_is_for_that_username_at_that_address_only(settings, user):
    other = UserFactory()
    for _ in range(settings.AXES_FAILURE_LIMIT):
        sign_in(Client(), user.username, "wrong-guess")
    assert sign_in(Client(), other.username, PASSWORD).status_code == 302  # a colleague in the same office
    elsewhere = sign_in(Client(), user.username, PASSWORD, REMOTE_ADDR="203.0.113.9")
    assert elsewhere.status_code == 302  # the owner, from home


def test_behind_a_trusted_proxy_the_forwarded_address_is_the_one_locked_out(settings, user):
    settings.TRUSTED_PROXY_COUNT = 1
    attacker = {"HTTP_X_FORWARDED_FOR": "198.51.100.7", "REMOTE_ADDR": "10.0.0.2"}
    for _ in range(settings.AXES_FAILURE_LIMIT):
        sign_in(Client(), user.username, "wrong-guess", **attacker)
    assert sign_in(Client(), user.username, PASSWORD, **attacker).status_code == 429
    owner = {"HTTP_X_FORWARDED_FOR": "203.0.113.9", "REMOTE_ADDR": "10.0.0.2"}  # same proxy, other person
    assert sign_in(Client(), user.username, PASSWORD, **owner).status_code == 302


def test_a_spoofed_forwarded_address_does_not_escape_the_lock_out_without_a_trusted_proxy(settings, user):
    for attempt in range(settings.AXES_FAILURE_LIMIT):
        sign_in(Client(), user.username, "wrong-guess", HTTP_X_FORWARDED_FOR=f"192.0.2.{attempt}")
    spoofed = sign_in(Client(), user.username, PASSWORD, HTTP_X_FORWARDED_FOR="192.0.2.200")
    assert spoofed.status_code == 429


# --- sign-up and password change --------------------------------------------------------------------


def signup_data(name: str) -> dict[str, str]:
    return {"username": name, "email": f"{name}@example.com", "password1": PASSWORD, "password2": PASSWORD}


def test_sign_ups_from_one_address_are_throttled(settings):
    rates(settings, signup="3/h")
    for name in ("ann", "ben", "cal"):
        assert Client().post(reverse("accounts:signup"), signup_data(name)).status_code == 302
    refused = Client().post(reverse("accounts:signup"), signup_data("dee"))
    assert refused.status_code == 429
    assert "Too many accounts were created from your network. Try again in" in refused.content.decode()
    assert not User.objects.filter(username="dee").exists()
    from_elsewhere = Client().post(reverse("accounts:signup"), signup_data("eve"), REMOTE_ADDR="203.0.113.5")
    assert from_elsewhere.status_code == 302


def test_password_changes_are_throttled(settings, authed_client, user):
    rates(settings, password="2/15m")
    url = reverse("accounts:password-change")
    wrong = {
        "old_password": "not-it",
        "new_password1": "brand-new-phrase-9",
        "new_password2": "brand-new-phrase-9",
    }
    for _ in range(2):
        assert authed_client.post(url, wrong).status_code == 200  # the form says the old one is wrong
    right = {**wrong, "old_password": PASSWORD}
    refused = authed_client.post(url, right)
    assert refused.status_code == 429
    assert "Too many password changes were tried. Try again in" in refused.content.decode()
    user.refresh_from_db()
    assert user.check_password(PASSWORD)


# --- uploads and job creation -----------------------------------------------------------------------


def test_uploads_are_throttled_with_a_message_at_the_field(settings, authed_client):
    rates(settings, upload="2/m")
    url = reverse("generations:upload")

    def send():
        image = SimpleUploadedFile("photo.png", png(64, 64), content_type="image/png")
        return authed_client.post(url, {"init_image": image}, HTTP_HX_REQUEST="true")

    assert [send().status_code, send().status_code] == [200, 200]
    refused = send()
    assert refused.status_code == 200  # htmx swaps it in: the message shows at the field
    html = refused.content.decode()
    assert (
        'id="init_image_error"' in html and "You are uploading images faster than the studio allows" in html
    )
    assert Upload.objects.count() == 2


def test_job_creation_is_throttled_with_a_message_in_the_form(settings, authed_client, user):
    settings.STABILITY_API_KEY = ""  # no engine: a created job fails at once, without the API
    rates(settings, generate="2/m")
    data = {
        "prompt": "a lighthouse",
        "engine": "stable-diffusion-v1-6",
        "size": "512x512",
        "samples": "1",
        "steps": "30",
        "cfg_scale": "7",
        "clip_guidance_preset": "NONE",
    }
    for _ in range(2):
        assert authed_client.post(reverse("generations:create"), data).status_code == 302
    page = authed_client.post(reverse("generations:create"), data)
    assert page.status_code == 429
    assert "You are starting jobs faster than the studio allows. Try again in" in page.content.decode()
    fragment = authed_client.post(reverse("generations:create"), data, HTTP_HX_REQUEST="true")
    assert fragment.status_code == 200 and fragment["HX-Retarget"] == "#create-form"
    assert "You are starting jobs faster" in fragment.content.decode()
    assert GenerationJob.objects.filter(created_by=user).count() == 2


def test_throttles_count_per_user(settings, user):
    rates(settings, upload="1/m")
    other = UserFactory()
    for person in (user, other):
        client = Client()
        client.force_login(person)
        image = SimpleUploadedFile("photo.png", png(32, 32), content_type="image/png")
        response = client.post(reverse("generations:upload"), {"init_image": image}, HTTP_HX_REQUEST="true")
        assert "faster than the studio allows" not in response.content.decode()
    assert Upload.objects.count() == 2


def test_an_unreachable_cache_lets_requests_through_instead_of_failing(settings, authed_client):
    """Redis down: throttles cannot count, so they let requests pass; the pages still answer."""
    settings.STABILITY_API_KEY = ""
    unreachable = {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": "redis://127.0.0.1:9/0",
    }
    with override_settings(CACHES={"default": unreachable}):
        image = SimpleUploadedFile("photo.png", png(32, 32), content_type="image/png")
        upload = authed_client.post(
            reverse("generations:upload"), {"init_image": image}, HTTP_HX_REQUEST="true"
        )
        signup = Client().post(reverse("accounts:signup"), signup_data("fay"))
    assert upload.status_code == 200 and Upload.objects.count() == 1
    assert signup.status_code == 302 and User.objects.filter(username="fay").exists()
