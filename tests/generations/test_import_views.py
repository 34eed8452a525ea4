"""Drop a PNG on the create form: its parameters fill the form; a PNG without them is refused at the field
and nothing changes; the image itself becomes the init image only when asked. And the image page shows
the metadata the PNG carries, with copy buttons."""

import io
import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from PIL import Image

from accounts.models import Membership
from generations import png_text
from generations.metadata import png_with_metadata
from generations.models import Upload
from tests.factories import GalleryImageFactory, GenerationJobFactory
from tests.images import png
from tests.membership_factories import MembershipFactory

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}
URL = reverse("generations:fill-from-png")
A1111_TEXT = (
    "a red fox in snow, golden light\n"
    "Negative prompt: lowres, watermark\n"
    "Steps: 28, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 6.5, Seed: 3318492401, "
    "Size: 1152x896, Model hash: 31e35c80fc, Model: stable-diffusion-xl-1024-v1-0, Version: v1.10.1"
)


def _a1111_png(text: str = A1111_TEXT, size: tuple[int, int] = (64, 64)) -> bytes:
    data = png(*size)
    return png_text.with_texts(data, {"parameters": png_text.text_chunk("parameters", text)})


def _file(data: bytes, name: str = "fox.png") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data, content_type="image/png")


def _value(html: str, name: str) -> str:
    """The value an input, the text a textarea, or the selected option a select shows for `name`."""
    if match := re.search(rf'<textarea name="{name}"[^>]*>\n?(.*?)</textarea>', html, re.S):
        return match[1]
    if match := re.search(rf'<select name="{name}".*?</select>', html, re.S):
        selected = re.search(r'<option value="([^"]*)"[^>]*selected', match[0])
        return selected[1] if selected else ""
    match = re.search(rf'<input[^>]*name="{name}"[^>]*>', html)
    assert match, f"no field {name}"
    value = re.search(r'value="([^"]*)"', match[0])
    return value[1] if value else ""


def test_a_png_with_a1111_parameters_fills_the_create_form(authed_client):
    response = authed_client.post(URL, {"import_png": _file(_a1111_png())}, **HTMX)

    html = response.content.decode()
    assert response.status_code == 200
    assert html.lstrip().startswith('<form id="create-form"')
    assert _value(html, "prompt") == "a red fox in snow, golden light"
    assert _value(html, "negative_prompt") == "lowres, watermark"
    assert _value(html, "engine") == "stable-diffusion-xl-1024-v1-0"
    assert _value(html, "size") == "1152x896"
    assert (_value(html, "steps"), _value(html, "cfg_scale"), _value(html, "seed")) == (
        "28",
        "6.5",
        "3318492401",
    )
    assert _value(html, "sampler") == "K_DPMPP_2M"
    assert "Filled from the PNG&#x27;s A1111 parameters." in html
    assert not Upload.objects.exists(), "the image is not kept unless asked"


def test_without_javascript_the_whole_page_comes_back_filled(authed_client):
    response = authed_client.post(URL, {"import_png": _file(_a1111_png())})

    html = response.content.decode()
    assert response.status_code == 200
    assert "<html" in html and "Recent jobs" in html
    assert _value(html, "prompt") == "a red fox in snow, golden light"


def test_a_png_made_by_studio_fills_every_setting_it_was_made_with(authed_client, user):
    job = GenerationJobFactory(
        created_by=user,
        engine_id="stable-diffusion-v1-6",
        prompt="a lighthouse",
        text_prompts=[
            {"text": "a lighthouse", "weight": 1.0},
            {"text": "blurry", "weight": -1.0},
            {"text": "fog", "weight": -0.4},
        ],
        width=512,
        height=512,
        samples=3,
        steps=35,
        cfg_scale=9.0,
        sampler="K_HEUN",
        style_preset="anime",
        clip_guidance_preset="FAST_BLUE",
    )
    data = png_with_metadata(png(64, 64), job=job, index=2, seed=424242)

    html = authed_client.post(URL, {"import_png": _file(data)}, **HTMX).content.decode()

    assert (_value(html, "prompt"), _value(html, "negative_prompt")) == ("a lighthouse", "blurry")
    assert _value(html, "weighted_prompts") == "fog | -0.4"
    assert (_value(html, "engine"), _value(html, "size"), _value(html, "samples")) == (
        "stable-diffusion-v1-6",
        "512x512",
        "3",
    )
    assert (_value(html, "steps"), _value(html, "cfg_scale"), _value(html, "seed")) == ("35", "9.0", "424242")
    assert (_value(html, "sampler"), _value(html, "style_preset")) == ("K_HEUN", "anime")
    assert _value(html, "clip_guidance_preset") == "FAST_BLUE"


def test_what_the_api_cannot_take_is_adjusted_and_said(authed_client):
    text = "a cat\nSteps: 80, Sampler: UniPC, CFG scale: 7, Seed: 5, Size: 512x768, Model: dreamshaper_8"
    response = authed_client.post(
        URL, {"import_png": _file(_a1111_png(text)), "engine": "stable-diffusion-xl-1024-v1-0"}, **HTMX
    )

    html = response.content.decode()
    assert _value(html, "engine") == "stable-diffusion-xl-1024-v1-0"  # the form's engine is kept
    assert _value(html, "steps") == "50"
    assert _value(html, "sampler") == ""
    assert _value(html, "size") == "832x1216"
    assert "Steps 80 is outside the API&#x27;s 10–50: the form has 50." in html
    assert "The API has no “UniPC” sampler" in html
    assert "The model “dreamshaper_8” is not an engine here" in html
    assert "does not make 512×768: the form has 832×1216" in html


def test_also_use_the_image_makes_the_png_the_init_image(authed_client, user):
    response = authed_client.post(
        URL, {"import_png": _file(_a1111_png(size=(1024, 1024))), "import_use_image": "on"}, **HTMX
    )

    html = response.content.decode()
    upload = Upload.objects.get()
    assert (upload.team, upload.width, upload.height) == (user.current_team, 1024, 1024)
    assert f'name="init_upload" value="{upload.pk}"' in html
    assert _value(html, "prompt") == "a red fox in snow, golden light"
    assert "with the image as init image" in html


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (png(64, 64), "This PNG carries no generation parameters"),
        (_a1111_png("lorem ipsum dolor sit amet"), "not in A1111&#x27;s format"),
        (b"\xff\xd8\xff\xe0 a jpeg", "This is not a PNG file."),
        (b"", "The file is empty."),
    ],
    ids=["no-metadata", "junk-text", "not-a-png", "empty"],
)
def test_a_png_without_parameters_gets_a_message_at_the_field_and_changes_nothing(
    authed_client, data, message
):
    posted = {"prompt": "my own prompt", "steps": "33", "import_use_image": "on"}

    response = authed_client.post(URL, {**posted, "import_png": _file(data)}, **HTMX)

    html = response.content.decode()
    assert response.status_code == 200
    assert response["HX-Retarget"] == "#import-field"  # only the PNG field is swapped: the form stays
    assert html.lstrip().startswith('<div class="field import-field has-error" id="import-field">')
    assert 'id="create-form"' not in html
    assert message in html
    assert 'role="alert"' in html and 'aria-invalid="true"' in html
    assert not Upload.objects.exists()


def test_without_javascript_a_refused_png_shows_the_form_as_it_was_with_the_message(authed_client):
    posted = {"prompt": "my own prompt", "steps": "33", "engine": "stable-diffusion-v1-6"}

    response = authed_client.post(URL, {**posted, "import_png": _file(png(32, 32))})

    html = response.content.decode()
    assert "This PNG carries no generation parameters" in html
    assert (_value(html, "prompt"), _value(html, "steps")) == ("my own prompt", "33")
    assert _value(html, "engine") == "stable-diffusion-v1-6"


def test_no_file_chosen_is_refused_with_a_sentence(authed_client):
    response = authed_client.post(URL, {"prompt": "x"}, **HTMX)

    assert "Choose a PNG made by Studio or A1111." in response.content.decode()


def test_a_viewer_cannot_fill_the_form(client):
    membership = MembershipFactory(role=Membership.Role.VIEWER)
    membership.user.current_team = membership.team
    membership.user.save()
    client.force_login(membership.user)

    response = client.post(URL, {"import_png": _file(_a1111_png())}, **HTMX)

    assert response.status_code == 403


def test_the_create_page_offers_to_fill_the_form_from_a_png(authed_client):
    html = authed_client.get(reverse("generations:create")).content.decode()

    assert '<label for="id_import_png">Fill from a PNG…</label>' in html
    assert f'hx-post="{URL}"' in html
    assert 'name="import_use_image"' in html
    assert "js/import.js" in html


def test_the_image_page_shows_the_metadata_the_png_carries_with_copy_buttons(authed_client, user):
    image = GalleryImageFactory(
        job__created_by=user, job__prompt="a lighthouse", job__sampler="K_EULER", seed=987654
    )

    html = authed_client.get(image.url).content.decode()

    parameters = re.search(r'<textarea id="metadata-parameters"[^>]*>\n?(.*?)</textarea>', html, re.S)
    assert parameters is not None
    assert parameters[1].startswith("a lighthouse\nSteps: 30, Sampler: Euler, CFG scale: 7, Seed: 987654")
    assert 'data-copy="metadata-parameters"' in html
    assert 'data-copy="metadata-studio-json"' in html
    assert f"&quot;job_id&quot;: &quot;{image.job_id}&quot;" in html


def test_the_png_field_is_read_without_decoding_its_pixels(authed_client):
    """A large A1111 PNG (over the init image limit) is still read: only its chunk list is walked."""
    big = io.BytesIO()
    Image.frombytes("RGB", (2400, 2400), bytes(range(256)) * (2400 * 2400 * 3 // 256)).save(
        big, "PNG", compress_level=0
    )
    data = png_text.with_texts(big.getvalue(), {"parameters": png_text.text_chunk("parameters", A1111_TEXT)})
    assert len(data) > 10 * 1024 * 1024

    html = authed_client.post(URL, {"import_png": _file(data)}, **HTMX).content.decode()

    assert _value(html, "prompt") == "a red fox in snow, golden light"
