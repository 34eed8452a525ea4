import base64
import json
from html.parser import HTMLParser

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone
from PIL import Image, ImageDraw

from generations.models import GalleryImage, GenerationJob, Upload, read_file
from tests.factories import GalleryImageFactory, GenerationJobFactory, UserFactory
from tests.images import decode, encode, png

pytestmark = pytest.mark.django_db

VALID = {
    "prompt": "a lighthouse on a cliff at dawn",
    "engine": "stable-diffusion-v1-6",
    "size": "512x512",
    "samples": "2",
    "steps": "30",
    "cfg_scale": "7",
    "clip_guidance_preset": "NONE",
}
HTMX = {"HTTP_HX_REQUEST": "true"}


def test_the_create_page_asks_for_sign_in(client):
    response = client.get(reverse("generations:create"))
    assert response.status_code == 302
    assert reverse("accounts:login") in response["Location"]


def test_the_create_page_labels_every_field(authed_client):
    response = authed_client.get(reverse("generations:create"))
    html = response.content.decode()
    assert response.status_code == 200
    for field_id in (
        "prompt",
        "negative_prompt",
        "engine",
        "style_preset",
        "size",
        "samples",
        "seed",
        "steps",
        "cfg_scale",
        "sampler",
        "clip_guidance_preset",
        "weighted_prompts",
    ):
        assert f'for="id_{field_id}"' in html, field_id
    assert 'aria-label="Credit balance"' in html


def test_an_invalid_htmx_post_swaps_the_form_back_with_errors_and_queues_nothing(authed_client):
    response = authed_client.post(
        reverse("generations:create"), {**VALID, "samples": "11", "prompt": ""}, **HTMX
    )
    html = response.content.decode()
    assert response.status_code == 200
    assert response["HX-Retarget"] == "#create-form"
    assert "Describe the image you want." in html
    assert "Must be between 1 and 10." in html
    assert not GenerationJob.objects.exists()


def test_an_invalid_plain_post_renders_the_page_with_errors(authed_client):
    response = authed_client.post(reverse("generations:create"), {**VALID, "steps": "500"})
    assert response.status_code == 200
    assert "Must be between 10 and 50." in response.content.decode()
    assert not GenerationJob.objects.exists()


def test_a_valid_post_queues_a_job_and_answers_its_polling_card(authed_client, user):
    response = authed_client.post(reverse("generations:create"), VALID, **HTMX)
    job = GenerationJob.objects.get()
    html = response.content.decode()
    assert response.status_code == 201
    assert (job.team, job.created_by, job.status, job.samples) == (user.current_team, user, "queued", 2)
    assert f'hx-get="{reverse("generations:job-card", args=[job.pk])}?v=queued.0.0"' in html
    assert 'hx-trigger="every 150ms"' in html


def test_a_running_job_card_keeps_polling(authed_client, user):
    job = GenerationJobFactory(created_by=user, status=GenerationJob.Status.RUNNING)
    response = authed_client.get(reverse("generations:job-card", args=[job.pk]), **HTMX)
    assert response.status_code == 200
    assert 'hx-trigger="every 150ms"' in response.content.decode()
    assert "Running" in response.content.decode()


def test_a_finished_job_card_stops_polling_and_refreshes_the_balance(authed_client, user):
    image = GalleryImageFactory(job__created_by=user)
    response = authed_client.get(reverse("generations:job-card", args=[image.job.pk]), **HTMX)
    html = response.content.decode()
    assert response.status_code == 286
    assert "hx-trigger" not in html
    assert "balance-changed" in json.loads(response["HX-Trigger"])
    assert reverse("generations:image-detail", args=[image.pk]) in html


def test_a_failed_job_card_shows_the_api_message(authed_client, user):
    job = GenerationJobFactory(
        created_by=user, status="failed", finished_at=timezone.now(), error_message="Invalid prompts detected"
    )
    response = authed_client.get(reverse("generations:job-card", args=[job.pk]), **HTMX)
    assert response.status_code == 286
    assert "Invalid prompts detected" in response.content.decode()


def test_another_teams_job_is_not_found(authed_client):
    job = GenerationJobFactory()
    assert authed_client.get(reverse("generations:job-card", args=[job.pk]), **HTMX).status_code == 404


def test_the_size_field_changes_with_the_engine(authed_client):
    response = authed_client.get(
        reverse("generations:sizes"), {"engine": "stable-diffusion-xl-1024-v1-0"}, **HTMX
    )
    html = response.content.decode()
    assert 'value="1152x896"' in html
    assert 'value="512x512"' not in html
    assert "This field is required" not in html  # a fresh choice, not a form with errors


def test_the_gallery_pages_newest_first_with_a_revealed_trigger(authed_client, user):
    images = [GalleryImageFactory(job__created_by=user) for _ in range(30)]
    newest_first = sorted(images, key=lambda i: (i.created_at, i.pk), reverse=True)
    first = authed_client.get(reverse("generations:gallery"))
    html = first.content.decode()
    assert html.count('class="gallery"') == 1
    shown = [str(i.pk) for i in newest_first if reverse("generations:image-detail", args=[i.pk]) in html]
    assert shown == [str(i.pk) for i in newest_first[:24]]
    assert 'hx-trigger="revealed"' in html
    next_url = html.split('hx-get="')[-1].split('"')[0].replace("&amp;", "&")
    second = authed_client.get(next_url, **HTMX).content.decode()
    assert all(reverse("generations:image-detail", args=[i.pk]) in second for i in newest_first[24:])
    assert 'hx-trigger="revealed"' not in second


def test_the_gallery_shows_only_the_teams_images(authed_client, user):
    mine = GalleryImageFactory(job__created_by=user)
    theirs = GalleryImageFactory()
    html = authed_client.get(reverse("generations:gallery")).content.decode()
    assert str(mine.pk) in html
    assert str(theirs.pk) not in html


@pytest.mark.parametrize("count", [3, 60])
def test_the_gallery_costs_the_same_queries_for_any_size(
    authed_client, user, count, django_assert_num_queries
):
    for _ in range(count):
        GalleryImageFactory(job__created_by=user)
    # the user with their current team (the session comes from the cache), the switcher's teams, the
    # filter counts, the images page
    with django_assert_num_queries(4):
        authed_client.get(reverse("generations:gallery"))


def test_the_create_page_costs_a_fixed_number_of_queries(
    authed_client, user, django_assert_num_queries, settings
):
    settings.STABILITY_API_KEY = ""  # no key: the engine list falls back without a network call
    for _ in range(5):
        GalleryImageFactory(job__created_by=user)
    # the user with their current team (the session comes from the cache), the switcher's teams, jobs,
    # their images
    with django_assert_num_queries(4):
        authed_client.get(reverse("generations:create"))


def test_media_is_served_only_to_the_images_team(client, user):
    image = GalleryImageFactory(job__created_by=user)
    url = reverse("generations:media", args=[image.image.name])
    client.force_login(user)
    assert client.get(url).status_code == 200
    client.force_login(UserFactory())
    assert client.get(url).status_code == 404
    client.logout()
    assert client.get(url).status_code == 302


def test_the_detail_page_shows_every_parameter_and_offers_the_png(authed_client, user):
    image = GalleryImageFactory(job__created_by=user, job__seed=42, job__style_preset="anime", seed=42)
    html = authed_client.get(reverse("generations:image-detail", args=[image.pk])).content.decode()
    for fact in (
        "a lighthouse on a cliff",
        "stable-diffusion-v1-6",
        "512 × 512",
        "42",
        "SUCCESS",
        "anime",
        "NONE",
    ):
        assert fact in html
    download = authed_client.get(reverse("generations:image-download", args=[image.pk]))
    assert download.status_code == 200
    assert b"".join(download.streaming_content).startswith(b"\x89PNG")
    assert "attachment" in download["Content-Disposition"]


def test_a_filtered_image_says_so(authed_client, user):
    image = GalleryImageFactory(job__created_by=user, finish_reason="CONTENT_FILTERED")
    assert GalleryImage.objects.get(pk=image.pk).is_filtered
    html = authed_client.get(reverse("generations:image-detail", args=[image.pk])).content.decode()
    assert "safety filter" in html


@pytest.mark.django_db(transaction=True)
def test_a_hung_engine_does_not_take_the_pages_down(client, studio_engine, settings):
    settings.SANDBOX_FAULTS = "hang_rate=1"
    settings.SANDBOX_HANG_SECONDS = 6
    client.force_login(UserFactory())
    page = client.get(reverse("generations:create"))
    assert page.status_code == 200
    assert 'value="stable-diffusion-xl-1024-v1-0"' in page.content.decode()  # the known engines
    balance = client.get(reverse("accounts:balance"), HTTP_HX_REQUEST="true")
    assert balance.status_code == 200 and "Balance unavailable" in balance.content.decode()
    assert "did not answer in time" in balance.content.decode()


class _FormValues(HTMLParser):
    """The values a browser would send for the page's #create-form: inputs, textareas, selected options."""

    def __init__(self) -> None:
        super().__init__()
        self.values: dict[str, str] = {}
        self._in_form = False
        self._textarea: str | None = None
        self._select: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {name: value or "" for name, value in attrs}
        if tag == "form":
            self._in_form = found.get("id") == "create-form"
        if not self._in_form or ("name" not in found and tag != "option"):
            return
        sent = found.get("type") not in ("file", "checkbox", "radio", "submit") or (
            found.get("type") == "radio" and "checked" in found
        )
        if tag == "input" and sent:
            self.values[found["name"]] = found.get("value", "")
        elif tag == "textarea":
            self._textarea = found["name"]
            self.values[self._textarea] = ""
        elif tag == "select":
            self._select = found["name"]
        elif tag == "option" and self._select and "selected" in found:
            self.values[self._select] = found.get("value", "")

    def handle_data(self, data: str) -> None:
        if self._textarea:
            self.values[self._textarea] += data.removeprefix("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag == "textarea":
            self._textarea = None
        elif tag == "select":
            self._select = None
        elif tag == "form":
            self._in_form = False


def form_values(html: str) -> dict[str, str]:
    parser = _FormValues()
    parser.feed(html)
    return parser.values


def painted_mask(width: int, height: int, box: tuple[int, int, int, int]) -> str:
    mask = Image.new("L", (width, height), 0)
    ImageDraw.Draw(mask).rectangle(box, fill=255)
    return "data:image/png;base64," + base64.b64encode(encode(mask)).decode()


def mask_pixels(data_url_or_png: str | bytes) -> np.ndarray:
    if isinstance(data_url_or_png, str):
        data_url_or_png = base64.b64decode(data_url_or_png.split(",", 1)[1])
    return np.asarray(decode(data_url_or_png).convert("L"))


@pytest.mark.parametrize("mask_source", ["MASK_IMAGE_WHITE", "MASK_IMAGE_BLACK"])
def test_remix_of_an_inpainting_whose_init_was_resized_brings_its_mask_and_generates(
    authed_client, mask_source
):
    sdxl = "stable-diffusion-xl-1024-v1-0"
    chosen = authed_client.post(
        reverse("generations:upload"),
        {"engine": sdxl, "init_image": SimpleUploadedFile("photo.png", png(1000, 750))},
        **HTMX,
    )
    upload = Upload.objects.get()
    assert chosen.status_code == 200
    first = {
        **VALID,
        "engine": sdxl,
        "size": "1152x896",
        "init_upload": str(upload.pk),
        "mask_source": mask_source,
        "mask": painted_mask(1000, 750, (0, 0, 499, 749)),  # the left half
    }
    assert authed_client.post(reverse("generations:create"), first, **HTMX).status_code == 201
    job = GenerationJob.objects.get()
    assert (job.kind, job.resized_from) == ("masking", "1000x750")
    image = GalleryImageFactory(job=job, width=1152, height=896)

    remix = authed_client.get(reverse("generations:create"), {"from": image.pk, "use": "remix"})
    values = form_values(remix.content.decode())
    assert values["init_upload"] == str(upload.pk) and values["mask_source"] == mask_source
    carried = mask_pixels(values["mask"])  # as the editor paints it, over the image the form shows
    assert carried.shape == (750, 1000)
    # 1000x750 was cropped to 964x750 (9:7) and scaled: the 18 px cut from each side were never sent.
    assert carried[:, 30:480].min() > 200 and carried[:, 520:].max() < 30

    again = authed_client.post(reverse("generations:create"), {**values, "prompt": "a red door"}, **HTMX)
    assert again.status_code == 201, form_values(again.content.decode())
    remixed = GenerationJob.objects.exclude(pk=job.pk).get()
    sent, before = mask_pixels(read_file(remixed.mask_image)), mask_pixels(read_file(job.mask_image))
    assert sent.shape == before.shape == (896, 1152)
    assert (np.abs(sent.astype(int) - before.astype(int)) > 128).mean() < 0.01  # the same mask again


def test_remix_of_an_inpainting_whose_mask_is_lost_asks_for_it_at_the_mask_field(authed_client):
    chosen = authed_client.post(
        reverse("generations:upload"),
        {"engine": "stable-diffusion-v1-6", "init_image": SimpleUploadedFile("p.png", png(512, 512))},
        **HTMX,
    )
    assert chosen.status_code == 200
    form = {
        **VALID,
        "init_upload": str(Upload.objects.get().pk),
        "mask_source": "MASK_IMAGE_WHITE",
        "mask": painted_mask(512, 512, (0, 0, 255, 511)),
    }
    authed_client.post(reverse("generations:create"), form, **HTMX)
    job = GenerationJob.objects.get()
    job.mask_image.storage.delete(job.mask_image.name)
    image = GalleryImageFactory(job=job)

    html = authed_client.get(
        reverse("generations:create"), {"from": image.pk, "use": "remix"}
    ).content.decode()
    mask_field = html.split('id="mask-field"')[1].split("</fieldset>")[0]
    assert "Paint the mask" in mask_field


def test_the_create_form_speaks_in_human_labels(authed_client, settings):
    settings.STABILITY_API_KEY = ""  # the known engines
    html = authed_client.get(reverse("generations:create")).content.decode()
    assert '<option value="stable-diffusion-xl-1024-v1-0" selected>Stable Diffusion XL 1.0</option>' in html
    assert '<option value="1216x832">3:2 landscape, 1216 × 832</option>' in html
    assert '<option value="K_DPMPP_2M">DPM++ 2M</option>' in html
    assert '<option value="K_EULER_ANCESTRAL">Euler a</option>' in html
    assert "K_DPMPP_2M</option>" not in html and "×" in html and "1216x832<" not in html


def test_a_folded_advanced_part_names_what_it_holds_on_first_render(authed_client, user):
    image = GalleryImageFactory(job__created_by=user, seed=7)
    html = authed_client.get(
        reverse("generations:create"), {"from": image.pk, "use": "seed"}
    ).content.decode()
    advanced = html.split('<details class="advanced"')[1].split("</summary>")[0]
    assert " open" not in advanced.split(">")[0]
    assert "Advanced<span" in advanced and ": Seed 7</span>" in advanced
    reset = html.split("data-advanced-reset")[1].split(">")[0]
    assert "hidden" not in reset
    plain = authed_client.get(reverse("generations:create")).content.decode()
    assert "Advanced<span" in plain and "data-advanced-summary></span>" in plain
    assert "hidden" in plain.split("data-advanced-reset")[1].split(">")[0]


def test_a_refused_generate_says_why_beside_the_button_and_marks_the_field(authed_client):
    response = authed_client.post(reverse("generations:create"), {**VALID, "steps": "500"}, **HTMX)
    html = response.content.decode()
    alert = html.split('id="create-form-alert"')[1].split("</p>")[0]
    assert 'role="alert"' in alert and "Not generated. Steps: Must be between 10 and 50." in alert
    steps = html.split('name="steps"')[1].split(">")[0]
    assert 'aria-invalid="true"' in steps and 'aria-describedby="id_steps_error"' in steps
    assert 'id="id_steps_error"' in html
    assert "data-refused" in html.split('id="create-form"')[1].split(">")[0]
    assert '<details class="advanced" id="advanced" open>' in html  # the field to fix is in view
