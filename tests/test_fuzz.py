"""Random values posted to every form Studio has, as a signed-in team owner (who may use them all) and, for
sign-up and sign-in, as a stranger: no answer is a server error, and nothing is charged or queued."""

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from accounts.models import Membership, Team, User
from accounts.services.teams import team_create
from generations.models import GalleryImage, GenerationJob, Upload
from sandbox.models import Organization
from tests.factories import GalleryImageFactory, UserFactory
from tests.images import png

pytestmark = pytest.mark.django_db(transaction=True)

SPECIAL = [
    "",
    " ",
    "0",
    "-1",
    "1e400",
    "NaN",
    "-inf",
    "0.0000001",
    "99999999999999999999",
    "512x512",
    "0x0",
    "99999x99999",
    "stable-diffusion-v1-6",
    "stable-diffusion-xl-1024-v1-0",
    "owner",
    "admin",
    "viewer",
    "on",
    "date",
    "never",
    "7",
    "2099-12-31",
    "1999-01-01",
    "0001-01-01",
    "2024-02-30",
    "MASK_IMAGE_WHITE",
    "INIT_IMAGE_ALPHA",
    "STEP_SCHEDULE",
    "../../etc/passwd",
    "a\x00b",
    "<script>x</script>",
    "data:image/png;base64,AAAA",
    "data:image/png;base64,iVBORw0KGgo=",
    "sk-" + "x" * 48,
    "/teams/join/x/",
    "//evil.example/",
    str(uuid.uuid4()),
    "a | 2",
    "fog | -abc",
    "x" * 5000,
]
VALUES = st.one_of(
    st.text(max_size=200),
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(str),
    st.sampled_from(SPECIAL),
)
FILES = st.one_of(
    st.binary(max_size=3000),
    st.sampled_from([png(64, 64), png(512, 512), b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, b"GIF89a", b""]),
)


@dataclass
class World:
    owner: User
    team: Team
    member: Membership
    image: GalleryImage
    upload: Upload


@dataclass(frozen=True)
class Form:
    url: Callable[[World], str]
    fields: tuple[str, ...]
    file_field: str = ""
    anonymous: bool = False


FORMS = {
    "create": Form(
        lambda w: reverse("generations:create"),
        (
            "prompt",
            "negative_prompt",
            "weighted_prompts",
            "engine",
            "style_preset",
            "size",
            "samples",
            "seed",
            "steps",
            "cfg_scale",
            "sampler",
            "clip_guidance_preset",
            "init_upload",
            "init_from",
            "init_image_mode",
            "image_strength",
            "step_schedule_start",
            "step_schedule_end",
            "mask_source",
            "mask",
        ),
        file_field="init_image",
    ),
    "upload": Form(
        lambda w: reverse("generations:upload"), ("engine", "init_upload", "init_from"), "init_image"
    ),
    "fill-from-png": Form(
        lambda w: reverse("generations:fill-from-png"), ("import_use_image", "prompt", "engine"), "import_png"
    ),
    "upscale": Form(lambda w: reverse("generations:image-upscale", args=[w.image.pk]), ("engine", "prompt")),
    "share": Form(
        lambda w: reverse("generations:image-shares", args=[w.image.pk]),
        ("show_details", "expires", "expires_on"),
    ),
    "team-create": Form(lambda w: reverse("teams:create"), ("name",)),
    "team-switch": Form(lambda w: reverse("teams:switch"), ("team", "next")),
    "rename": Form(lambda w: reverse("teams:rename", args=[w.team.pk]), ("name",)),
    "member-role": Form(
        lambda w: reverse("teams:member-role", args=[w.team.pk, w.member.pk]), ("role", "m{pk}-role")
    ),
    "invite": Form(
        lambda w: reverse("teams:invite-create", args=[w.team.pk]), ("role", "days", "reusable", "email")
    ),
    "key": Form(lambda w: reverse("teams:key", args=[w.team.pk]), ("api_key",)),
    "key-organization": Form(
        lambda w: reverse("teams:key-organization", args=[w.team.pk]), ("organization",)
    ),
    "allowance": Form(
        lambda w: reverse("teams:allowance", args=[w.team.pk, w.member.pk]), ("monthly_allowance",)
    ),
    "delete-team": Form(lambda w: reverse("teams:delete", args=[w.team.pk]), ("confirm",)),
    "password": Form(
        lambda w: reverse("accounts:password-change"), ("old_password", "new_password1", "new_password2")
    ),
    "signup": Form(
        lambda w: reverse("accounts:signup"),
        ("username", "email", "password1", "password2", "next"),
        anonymous=True,
    ),
    "login": Form(lambda w: reverse("accounts:login"), ("username", "password", "next"), anonymous=True),
}


@pytest.fixture
def world(studio_engine, settings) -> World:
    # Throttles would answer the same refusal after a few examples: here every post reaches its form.
    settings.THROTTLE_RATES = {name: "100000/h" for name in settings.THROTTLE_RATES}
    settings.AXES_FAILURE_LIMIT = 100000
    owner = UserFactory(username="owner")
    team = team_create(user=owner, name="Harbour team")
    member = Membership.objects.create(user=UserFactory(username="crew"), team=team, role="member")
    image = GalleryImageFactory(job__created_by=owner, job__team=team, team=team, created_by=owner)
    upload = Upload.objects.create(team=team, created_by=owner, image=image.image.name, width=64, height=64)
    return World(owner, team, member, image, upload)


# A key with a character outside ASCII reaches the API client, which cannot put it in a header: 500.
# TeamKeyForm should refuse it at the field (accounts/views/keys.py); then drop this mark.
@pytest.mark.parametrize("name", sorted(FORMS))
def test_random_values_in_any_form_never_cause_a_server_error_or_a_charge(world, name):
    form = FORMS[name]
    fields = tuple(field.replace("{pk}", str(world.member.pk)) for field in form.fields)
    known = [str(world.upload.pk), str(world.image.pk), str(world.team.pk), str(world.member.pk)]
    values = st.one_of(VALUES, st.sampled_from(known))
    credits_before = sum(org.credits for org in Organization.objects.all())
    jobs_before = GenerationJob.objects.count()  # the world's one image came from a job

    @settings(
        max_examples=25,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    # Every field at once with characters outside ASCII, whatever else is drawn.
    @example(data=dict.fromkeys(fields, "sk-é€"), upload=b"", htmx=False)
    @given(
        data=st.dictionaries(st.sampled_from(fields), values, max_size=len(fields)),
        upload=FILES,
        htmx=st.booleans(),
    )
    def post(data: dict[str, str], upload: bytes, htmx: bool) -> None:
        client = Client()
        if not form.anonymous:
            owner = User.objects.get(pk=world.owner.pk)
            client.force_login(owner)
        if form.file_field:
            data = {**data, form.file_field: SimpleUploadedFile("any.png", upload, content_type="image/png")}
        headers = {"HTTP_HX_REQUEST": "true"} if htmx else {}
        response = client.post(form.url(world), data, **headers)  # a view's exception raises here
        assert response.status_code < 500, (name, data)

    post()
    assert GenerationJob.objects.count() == jobs_before
    assert sum(org.credits for org in Organization.objects.all()) == credits_before
    assert Decimal(credits_before) > 0
