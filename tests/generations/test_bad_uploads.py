"""Each file a person might wrongly try as an init image is refused at the field, before any job, task or
API request exists, and nothing of it is kept."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from accounts.services import team_balance
from generations.models import GenerationJob, Upload
from sandbox.models import ApiKey
from tests.bad_uploads import bad_uploads
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db(transaction=True)

CASES = bad_uploads()
FORM = {
    "prompt": "a harbour at night",
    "engine": "stable-diffusion-v1-6",
    "size": "512x512",
    "samples": "1",
    "steps": "30",
    "cfg_scale": "7",
    "clip_guidance_preset": "NONE",
    "image_strength": "0.5",
}


@pytest.fixture
def studio(client, studio_engine, settings):
    """A signed-in member, with the engine list already fetched, and a sandbox that counts every request."""
    settings.SANDBOX_RATE_WINDOW_SECONDS = 3600
    user = UserFactory()
    client.force_login(user)
    assert client.get(reverse("generations:create")).status_code == 200
    return client, user, ApiKey.objects.get(key=studio_engine)


def field_error(html: str) -> str:
    """The message shown at the init image field."""
    return html.split('id="init_image_error"', 1)[1].split("</div>", 1)[0]


def nothing_was_kept(user, key: ApiKey, requests_before: int, balance_before: float, media) -> None:
    assert not GenerationJob.objects.exists()
    assert not Upload.objects.exists()
    assert not (media / "uploads").exists() and not (media / "inputs").exists()
    key.refresh_from_db()
    assert key.window_count == requests_before  # not one request reached the API
    assert team_balance(user.current_team).credits == balance_before


@pytest.mark.parametrize(("name", "content", "message"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_a_bad_file_posted_with_the_form_is_refused_at_the_field(studio, settings, name, content, message):
    client, user, key = studio
    balance_before = team_balance(user.current_team).credits
    key.refresh_from_db()
    requests_before = key.window_count
    response = client.post(
        reverse("generations:create"),
        {**FORM, "init_image": SimpleUploadedFile(name, content)},
        HTTP_HX_REQUEST="true",
    )
    assert response.status_code == 200
    assert message in field_error(response.content.decode())
    nothing_was_kept(user, key, requests_before, balance_before, settings.MEDIA_ROOT)


@pytest.mark.parametrize(("name", "content", "message"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_a_bad_file_dropped_on_the_field_is_refused_there(studio, settings, name, content, message):
    client, user, key = studio
    balance_before = team_balance(user.current_team).credits
    key.refresh_from_db()
    requests_before = key.window_count
    response = client.post(
        reverse("generations:upload"),
        {"engine": "stable-diffusion-v1-6", "init_image": SimpleUploadedFile(name, content)},
        HTTP_HX_REQUEST="true",
    )
    html = response.content.decode()
    assert response.status_code == 200
    assert message in field_error(html)
    assert "data-mask-editor" not in html  # no preview of a refused file
    nothing_was_kept(user, key, requests_before, balance_before, settings.MEDIA_ROOT)
