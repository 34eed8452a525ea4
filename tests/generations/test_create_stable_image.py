"""The create form on a Stable Image model, over real HTTP to the sandbox: it shows only what the model
takes, refuses what the API would (next to the field, nothing charged), prices the job as it is charged,
re-draws for another model keeping what was written, and comes back on the same model for Remix."""

import io
import re
from decimal import Decimal

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from PIL import Image

from generations import services, stable_image
from generations.models import ApiRequest, GenerationJob, read_file
from tests.images import png
from tests.spend_factories import credits_left

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("studio_engine")]

SDXL = "stable-diffusion-xl-1024-v1-0"
CORE, ULTRA, LARGE = "stable-image-core", "stable-image-ultra", "sd3.5-large"
HTMX = {"HTTP_HX_REQUEST": "true"}
ESTIMATE = re.compile(
    r'<data class="estimate-credits" value="(?P<exact>[\d.]+)">≈ (?P<shown>[\d.]+) credits</data> '
    r"\((?P<samples>\d+) × (?P<price>[\d.]+)\)"
)


def html_of(response) -> str:
    assert response.status_code in (200, 201), response.content.decode()[:2000]
    return response.content.decode()


def selected(html: str, name: str) -> str | None:
    """The selected option's value of the select named `name`."""
    select = re.search(rf'<select name="{name}".*?</select>', html, re.S)
    assert select, f"no {name} select"
    option = re.search(r'<option value="([^"]*)"[^>]*\bselected\b', select[0])
    return option[1] if option else None


def field_error(html: str, name: str) -> str:
    match = re.search(rf'id="id_{name}_error"[^>]*>([^<]*)<', html)
    assert match, f"no error at {name}"
    return match[1]


def post(client, **fields):
    return client.post(
        reverse("generations:create"), {"prompt": "a harbour at night", "samples": "1", **fields}, **HTMX
    )


def test_core_with_16_9_and_two_images_makes_two_such_images_charged_what_the_estimate_said(
    authed_client, user
):
    shown = ESTIMATE.search(
        html_of(authed_client.get(reverse("generations:estimate"), {"engine": CORE, "samples": "2"}, **HTMX))
    )
    assert shown and (shown["shown"], shown["samples"], shown["price"]) == ("6", "2", "3")
    before = credits_left(user.current_team)
    response = post(authed_client, engine=CORE, aspect_ratio="16:9", samples="2", style_preset="anime")
    assert response.status_code == 201, response.content.decode()[:2000]
    job = GenerationJob.objects.get()
    assert job.status == "succeeded", job.error_message
    assert (job.operation, job.engine_id, job.kind) == ("generate/core", CORE, "text-to-image")
    assert job.options["aspect_ratio"] == "16:9" and job.options["style_preset"] == "anime"
    sizes = [(image.width, image.height) for image in job.images.all()]
    assert sizes == [(2016, 1152), (2016, 1152)]  # Core's 16:9 at 1.5x
    assert job.credits_estimated == job.credits_spent == Decimal(shown["exact"]) == 6
    assert before - credits_left(user.current_team) == 6
    assert ApiRequest.objects.filter(job=job).count() == 2  # one request per image
    assert f'id="job-{job.pk}"' in response.content.decode()  # the card, for the recent jobs


def test_sd35_large_shows_cfg_at_its_default_and_core_shows_aspect_ratios_without_v1_fields(
    authed_client, settings
):
    settings.STABILITY_DEFAULT_ENGINE = LARGE
    large = html_of(authed_client.get(reverse("generations:create")))
    assert selected(large, "engine") == LARGE
    assert re.search(r'name="cfg_scale" value="4\.0"', large)
    assert 'name="negative_prompt"' in large
    settings.STABILITY_DEFAULT_ENGINE = CORE
    core = html_of(authed_client.get(reverse("generations:create")))
    assert selected(core, "engine") == CORE
    assert 'name="cfg_scale"' not in core
    for v1_only in ("steps", "sampler", "clip_guidance_preset", "size", "weighted_prompts", "mask_source"):
        assert f'name="{v1_only}"' not in core, v1_only
    assert 'name="init_image"' not in core  # Core takes no image
    assert selected(core, "aspect_ratio") == "1:1"
    assert "16:9 (2016 × 1152)" in core  # labelled with the size Core makes
    assert "Stable Image Core (3 credits an image)" in core
    assert '<optgroup label="Stable Diffusion (v1)">' in core and f'value="{SDXL}"' in core
    assert "≈ 3 credits</data> (1 × 3)" in core


@pytest.mark.parametrize(
    ("engine", "fields", "field", "message"),
    [
        (LARGE, {"cfg_scale": "11"}, "cfg_scale", "CFG scale must be between 1 and 10."),
        (CORE, {"prompt": ""}, "prompt", "Describe the image you want."),
        (ULTRA, {"strength": "0.4"}, "strength", "Strength applies only with an init image"),
        (LARGE, {"strength": "0.4"}, "strength", "Strength applies only with an init image"),
        (CORE, {"aspect_ratio": "7:3"}, "aspect_ratio", "Select a valid choice"),
        (CORE, {"samples": "11"}, "samples", "less than or equal to 10"),
        (CORE, {"seed": "-1"}, "seed", "Seed must be between 0 and 4,294,967,294."),
    ],
)
def test_a_value_the_api_would_refuse_is_named_at_its_field_and_nothing_is_charged(
    authed_client, user, engine, fields, field, message
):
    before = credits_left(user.current_team)
    html = html_of(post(authed_client, engine=engine, **fields))
    assert message in field_error(html, field)
    assert "Not generated." in html  # the alert beside Generate
    assert not GenerationJob.objects.exists() and not ApiRequest.objects.exists()
    assert credits_left(user.current_team) == before


def test_an_sd35_init_image_makes_an_image_to_image_job_in_its_shape(authed_client, user):
    photo = SimpleUploadedFile("photo.png", png(800, 400))
    response = post(
        authed_client, engine="sd3.5-medium", init_image=photo, strength="0.6", aspect_ratio="16:9"
    )
    assert response.status_code == 201, response.content.decode()[:2000]
    job = GenerationJob.objects.get()
    assert job.status == "succeeded", job.error_message
    assert job.kind == "image-to-image" and job.upload is not None
    assert job.options["mode"] == "image-to-image" and job.options["model"] == "sd3.5-medium"
    assert "aspect_ratio" not in job.options  # the image gives the shape
    image = job.images.get()
    assert (image.width, image.height) == (1448, 728)  # 2:1 like the init image, at about a megapixel
    sent = Image.open(io.BytesIO(read_file(job.init_image)))
    assert sent.size == (800, 400)
    assert job.credits_spent == stable_image.MODELS["sd3.5-medium"].price


def test_switching_model_redraws_the_form_for_it_and_keeps_what_was_written(authed_client):
    kept = {"prompt": "a fox in snow", "negative_prompt": "blur", "seed": "42", "samples": "2"}
    response = authed_client.get(
        reverse("generations:sizes"), {"engine": CORE, "drawn_for": SDXL, **kept}, **HTMX
    )
    assert response["HX-Retarget"] == "#create-form"
    html = html_of(response)
    assert "a fox in snow</textarea>" in html and "blur</textarea>" in html
    assert 'name="seed" value="42"' in html and 'name="samples" value="2"' in html
    assert selected(html, "engine") == CORE and selected(html, "aspect_ratio") == "1:1"
    assert 'name="steps"' not in html
    assert "≈ 6 credits" in html  # the estimate for the new model, beside Generate
    back = html_of(
        authed_client.get(reverse("generations:sizes"), {"engine": SDXL, "drawn_for": CORE, **kept})
    )
    assert 'name="steps"' in back and "a fox in snow</textarea>" in back
    # Between two v1 engines only the size field changes, as before.
    sizes = authed_client.get(
        reverse("generations:sizes"), {"engine": SDXL, "drawn_for": "stable-diffusion-v1-6"}
    )
    assert 'id="size-field"' in html_of(sizes) and 'name="prompt"' not in sizes.content.decode()


def test_without_javascript_a_changed_model_is_drawn_again_with_a_note_and_not_sent(authed_client, user):
    html = html_of(
        authed_client.post(
            reverse("generations:create"),
            {
                "prompt": "a fox in snow",
                "engine": CORE,
                "drawn_for": SDXL,
                "size": "1024x1024",
                "steps": "30",
            },
        )
    )
    assert "The form now shows what Stable Image Core takes" in html
    assert "a fox in snow</textarea>" in html and selected(html, "aspect_ratio") == "1:1"
    assert not GenerationJob.objects.exists()


def test_remix_of_a_core_image_comes_back_on_core_with_its_options(authed_client, user):
    model = stable_image.MODELS[CORE]
    job = services.stable_image_job_create(
        team=user.current_team,
        user=user,
        operation_id=model.operation.id,
        engine_id=model.id,
        kind=GenerationJob.Kind.TEXT_TO_IMAGE,
        values={
            "prompt": "a red lighthouse",
            "negative_prompt": "fog",
            "aspect_ratio": "9:16",
            "style_preset": "anime",
        },
        images={},
        samples=2,
    )
    image = job.images.first()
    assert image is not None
    html = html_of(authed_client.get(reverse("generations:create"), {"use": "remix", "from": image.pk}))
    assert selected(html, "engine") == CORE
    assert selected(html, "aspect_ratio") == "9:16" and selected(html, "style_preset") == "anime"
    assert "a red lighthouse</textarea>" in html and "fog</textarea>" in html
    assert 'name="samples" value="2"' in html
    seed = html_of(authed_client.get(reverse("generations:create"), {"use": "seed", "from": image.pk}))
    assert selected(seed, "engine") == CORE and f'name="seed" value="{image.seed}"' in seed


def test_an_ultra_init_image_is_previewed_with_its_strength_and_sent_with_it(authed_client, user):
    chosen = html_of(
        authed_client.post(
            reverse("generations:upload"),
            {
                "engine": ULTRA,
                "aspect_ratio": "16:9",
                "init_image": SimpleUploadedFile("p.png", png(800, 400)),
            },
            **HTMX,
        )
    )
    upload_id = re.search(r'name="init_upload" value="([^"]+)"', chosen)[1]
    assert 'name="strength"' in chosen and 'name="mask_source"' not in chosen
    assert "1448 × 728" in chosen and 'name="aspect_ratio"' not in chosen  # the image gives the shape
    missing = html_of(post(authed_client, engine=ULTRA, init_upload=upload_id))
    assert "Strength is needed with an init image: give one between 0 and 1." in field_error(
        missing, "strength"
    )
    assert not GenerationJob.objects.exists()
    response = post(authed_client, engine=ULTRA, init_upload=upload_id, strength="0.3", aspect_ratio="16:9")
    assert response.status_code == 201, response.content.decode()[:2000]
    job = GenerationJob.objects.get()
    assert job.status == "succeeded", job.error_message
    assert job.kind == "image-to-image" and str(job.upload_id) == upload_id
    assert job.options == {"prompt": "a harbour at night", "strength": 0.3}
    assert job.credits_spent == stable_image.MODELS[ULTRA].price
