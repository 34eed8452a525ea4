"""Every image flow end to end: the form or action, the job, the task, the client, the sandbox over HTTP,
the stored image and its lineage."""

import base64

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from PIL import Image, ImageDraw

from accounts.models import Membership
from accounts.services import team_balance
from generations import library, services
from generations.models import GalleryImage, GenerationJob, Upload
from generations.stability.contract import Prompt, price_per_image
from generations.stability.types import TextToImageRequest
from tests.factories import GalleryImageFactory, UserFactory
from tests.images import decode, encode, picture_bytes, png

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("studio_engine")]

SD16 = "stable-diffusion-v1-6"
SDXL = "stable-diffusion-xl-1024-v1-0"
HTMX = {"HTTP_HX_REQUEST": "true"}
FORM = {
    "prompt": "a harbour at night, lanterns",
    "engine": SD16,
    "size": "512x512",
    "samples": "1",
    "seed": "77",
    "steps": "30",
    "cfg_scale": "7",
    "clip_guidance_preset": "NONE",
}


@pytest.fixture
def photo() -> bytes:
    return png(512, 512)


def pixels(data: bytes) -> np.ndarray:
    return np.asarray(decode(data).convert("RGB"), dtype=np.int16)


def distance(a: bytes, b: bytes) -> float:
    """Mean absolute difference per channel, 0-255."""
    return float(np.abs(pixels(a) - pixels(b)).mean())


def result_of(job: GenerationJob) -> GalleryImage:
    job.refresh_from_db()
    assert job.status == "succeeded", job.error_message
    return job.images.order_by("index").first()


def read(image: GalleryImage) -> bytes:
    with image.image.open("rb") as file:
        return file.read()


def generate(client, **fields) -> GenerationJob:
    """Post the create form as the page does (htmx, multipart) and return the job it queued."""
    before = set(GenerationJob.objects.values_list("pk", flat=True))
    response = client.post(reverse("generations:create"), {**FORM, **fields}, **HTMX)
    assert response.status_code == 201, response.content.decode()[:2000]
    (job,) = GenerationJob.objects.exclude(pk__in=before)
    return job


def choose(client, data: bytes, engine_id: str = SD16, **fields):
    """Choose an init image in the form, as the page does: posted to the upload view at once."""
    return client.post(
        reverse("generations:upload"),
        {"engine": engine_id, "init_image": SimpleUploadedFile("p.png", data), **fields},
        **HTMX,
    )


def text_image(user, prompt: str = "a lighthouse on a cliff", engine_id: str = SD16, size: int = 512, **kw):
    request = TextToImageRequest(text_prompts=(Prompt(prompt),), width=size, height=size, samples=1, **kw)
    job = services.job_create(team=user.current_team, user=user, engine_id=engine_id, request=request)
    return result_of(job)


def mask_data_url(width: int, height: int, box: tuple[int, int, int, int]) -> str:
    mask = Image.new("L", (width, height), 0)
    ImageDraw.Draw(mask).rectangle(box, fill=255)
    return "data:image/png;base64," + base64.b64encode(encode(mask)).decode()


def test_an_uploaded_photo_at_a_higher_strength_stays_closer_to_it(authed_client, user, photo):
    before = team_balance(user.current_team).credits
    strong = generate(authed_client, init_image=SimpleUploadedFile("photo.png", photo), image_strength="0.8")
    weak = generate(authed_client, init_image=SimpleUploadedFile("photo.png", photo), image_strength="0.2")
    close, far = read(result_of(strong)), read(result_of(weak))
    assert distance(close, photo) < distance(far, photo) / 2
    assert decode(close).size == (512, 512)
    assert (strong.kind, strong.init_image_mode, strong.image_strength) == (
        "image-to-image",
        "IMAGE_STRENGTH",
        0.8,
    )
    assert Upload.objects.filter(team=user.current_team).count() == 2
    price = price_per_image(SD16, steps=30, width=512, height=512)
    assert team_balance(user.current_team).credits == pytest.approx(before - 2 * float(price))


def test_an_upload_posted_first_is_previewed_and_then_used_by_its_id(authed_client, user, photo):
    response = choose(authed_client, photo)
    html = response.content.decode()
    upload = Upload.objects.get()
    assert response.status_code == 200
    assert reverse("generations:media", args=[upload.image.name]) in html
    assert f'name="init_upload" value="{upload.pk}"' in html
    assert "data-mask-editor" in html and 'hx-swap-oob="outerHTML"' in html  # the size field follows
    assert authed_client.get(reverse("generations:media", args=[upload.image.name])).status_code == 200
    job = generate(authed_client, init_upload=str(upload.pk), image_strength="0.5")
    assert job.upload == upload and job.kind == "image-to-image"
    assert result_of(job).width == 512


def test_a_step_schedule_redraws_more_the_later_it_starts(authed_client, photo):
    light = generate(
        authed_client,
        init_image=SimpleUploadedFile("photo.png", photo),
        init_image_mode="STEP_SCHEDULE",
        step_schedule_start="0.2",
        step_schedule_end="0.1",
    )
    heavy = generate(
        authed_client,
        init_image=SimpleUploadedFile("photo.png", photo),
        init_image_mode="STEP_SCHEDULE",
        step_schedule_start="0.9",
    )
    assert (light.init_image_mode, light.step_schedule_start, light.step_schedule_end) == (
        "STEP_SCHEDULE",
        0.2,
        0.1,
    )
    assert light.image_strength is None
    assert distance(read(result_of(light)), photo) < distance(read(result_of(heavy)), photo)


@pytest.mark.parametrize("source", ["MASK_IMAGE_WHITE", "MASK_IMAGE_BLACK"])
def test_a_painted_mask_changes_only_the_painted_part(authed_client, photo, source):
    job = generate(
        authed_client,
        init_image=SimpleUploadedFile("photo.png", photo),
        mask_source=source,
        mask=mask_data_url(512, 512, (0, 0, 255, 511)),  # the left half is painted
    )
    sent_mask = np.asarray(decode(job.mask_image.open("rb").read()))
    assert job.kind == "masking" and job.mask_source == source
    assert (sent_mask[:, :256] == (255 if source == "MASK_IMAGE_WHITE" else 0)).all()  # the API's polarity
    result, original = pixels(read(result_of(job))), pixels(photo)
    assert (result[:, 256:] == original[:, 256:]).all()  # untouched, to the pixel
    assert np.abs(result[:, :256] - original[:, :256]).mean() > 20


def test_the_transparent_pixels_of_an_upload_can_be_the_mask(authed_client):
    image = decode(png(512, 512)).convert("RGBA")
    image.paste((0, 0, 0, 0), (0, 0, 512, 128))  # the top quarter is transparent
    with_alpha = encode(image)
    job = generate(
        authed_client, init_image=SimpleUploadedFile("a.png", with_alpha), mask_source="INIT_IMAGE_ALPHA"
    )
    result, original = pixels(read(result_of(job))), pixels(encode(image.convert("RGB")))
    assert job.kind == "masking" and not job.mask_image
    assert (result[128:] == original[128:]).all()
    assert np.abs(result[:128] - original[:128]).mean() > 20


def test_the_alpha_mask_needs_transparent_pixels(authed_client, photo):
    response = authed_client.post(
        reverse("generations:create"),
        {**FORM, "init_image": SimpleUploadedFile("p.png", photo), "mask_source": "INIT_IMAGE_ALPHA"},
        **HTMX,
    )
    assert "This image has no transparent pixels" in response.content.decode()
    assert not GenerationJob.objects.exists()


def test_a_painted_mask_source_without_paint_asks_for_it(authed_client, photo):
    response = authed_client.post(
        reverse("generations:create"),
        {
            **FORM,
            "init_image": SimpleUploadedFile("p.png", photo),
            "mask_source": "MASK_IMAGE_WHITE",
            "mask": "",
        },
        **HTMX,
    )
    error = response.content.decode().split('id="id_mask_source_error"')[1].split("</div>")[0]
    assert "Paint over the part of the image to change." in error
    assert not GenerationJob.objects.exists()


def test_an_init_image_of_a_size_the_engine_refuses_is_resized_to_the_nearest_and_the_form_says_so(
    authed_client, user
):
    photo = png(1000, 750)
    preview = choose(authed_client, photo, SDXL).content.decode()
    assert "does not accept 1000 × 750" in preview and "1152 × 896" in preview
    job = generate(authed_client, engine=SDXL, size="1024x1024", init_upload=str(Upload.objects.get().pk))
    assert (job.width, job.height, job.resized_from) == (1152, 896, "1000x750")
    assert decode(read(result_of(job))).size == (1152, 896)


def test_a_gallery_image_can_be_the_init_image_and_becomes_the_parent(authed_client, user):
    source = text_image(user)
    form = authed_client.get(
        reverse("generations:create"), {"use": "init", "from": source.pk}
    ).content.decode()
    assert f'name="init_from" value="{source.pk}"' in form
    job = generate(authed_client, init_from=str(source.pk), image_strength="0.5")
    child = result_of(job)
    assert (job.parent, job.relation) == (source, "init")
    assert child.parent == source


def test_upscale_with_esrgan_doubles_the_image_and_links_it_to_its_source(authed_client, user):
    source = text_image(user)
    before = team_balance(user.current_team).credits
    response = authed_client.post(
        reverse("generations:image-upscale", args=[source.pk]), {"engine": "esrgan-v1-x2plus"}
    )
    job = GenerationJob.objects.get(kind="upscale")
    assert response.status_code == 302
    upscaled = result_of(job)
    assert (upscaled.width, upscaled.height) == (1024, 1024)
    assert decode(read(upscaled)).size == (1024, 1024)
    assert (job.parent, job.relation, job.upscale_factor) == (source, "upscale", 2)
    assert team_balance(user.current_team).credits == pytest.approx(before - 0.2)


def test_the_latent_upscaler_makes_the_image_four_times_as_large_with_a_prompt(authed_client, user):
    source = text_image(user)
    authed_client.post(
        reverse("generations:image-upscale", args=[source.pk]),
        {"engine": "stable-diffusion-x4-latent-upscaler", "prompt": "crisp detail"},
    )
    job = GenerationJob.objects.get(kind="upscale")
    upscaled = result_of(job)
    assert (upscaled.width, upscaled.height) == (2048, 2048)
    assert job.text_prompts == [{"text": "crisp detail", "weight": 1.0}]


def test_upscales_the_api_would_refuse_are_explained_and_never_sent(authed_client, user):
    source = text_image(user, engine_id=SDXL, size=1024)
    before = team_balance(user.current_team).credits
    page = authed_client.get(reverse("generations:image-detail", args=[source.pk])).content.decode()
    assert "over the API&#x27;s limit of 4,194,304 pixels" in page
    assert 'value="stable-diffusion-x4-latent-upscaler"' not in page  # not offered as a choice
    assert 'value="esrgan-v1-x2plus"' in page  # 2048x2048 is exactly the limit
    response = authed_client.post(
        reverse("generations:image-upscale", args=[source.pk]),
        {"engine": "stable-diffusion-x4-latent-upscaler"},
    )
    assert response.status_code == 302
    assert not GenerationJob.objects.filter(kind="upscale").exists()
    assert "4,194,304 pixels" in authed_client.get(response["Location"]).content.decode()
    assert team_balance(user.current_team).credits == before


def test_variations_keep_the_prompt_and_draw_new_seeds_from_the_image(authed_client, user):
    source = text_image(user, prompt="a fox in the snow", seed=5)
    authed_client.post(reverse("generations:image-variations", args=[source.pk]))
    job = GenerationJob.objects.get(relation="variation")
    job.refresh_from_db()
    images = list(job.images.all())
    assert job.status == "succeeded" and job.kind == "image-to-image" and job.parent == source
    assert job.prompt == "a fox in the snow" and len(images) == 4
    assert len({image.seed for image in images}) == 4 and source.seed not in {image.seed for image in images}
    for image in images:
        assert distance(read(image), read(source)) < 60  # recognisably the same picture


@pytest.mark.parametrize("kind", ["text-to-image", "image-to-image", "masking"])
def test_a_rerun_gives_the_same_bytes_as_the_original(authed_client, user, photo, kind):
    if kind == "text-to-image":
        original = text_image(user)
    else:
        extra = {"mask_source": "MASK_IMAGE_WHITE", "mask": mask_data_url(512, 512, (100, 100, 300, 300))}
        job = generate(
            authed_client,
            samples="3",
            seed="0",
            init_image=SimpleUploadedFile("p.png", photo),
            **(extra if kind == "masking" else {"image_strength": "0.4"}),
        )
        result_of(job)
        original = job.images.order_by("index")[1]  # not the first: its own seed, not the job's
    authed_client.post(reverse("generations:image-rerun", args=[original.pk]))
    rerun = GenerationJob.objects.get(relation="rerun")
    copy = result_of(rerun)
    assert (rerun.kind, rerun.parent, rerun.samples, copy.seed) == (
        original.job.kind,
        original,
        1,
        original.seed,
    )
    assert picture_bytes(read(copy)) == picture_bytes(read(original))  # the same picture, byte for byte
    assert read(copy) != read(original)  # each file says which job made it


def test_the_detail_page_follows_the_lineage_back_to_the_first_prompt_and_forward(authed_client, user):
    first = text_image(user, prompt="the very first prompt")
    authed_client.post(reverse("generations:image-variations", args=[first.pk]))
    variation = GenerationJob.objects.get(relation="variation").images.first()
    authed_client.post(
        reverse("generations:image-upscale", args=[variation.pk]), {"engine": "esrgan-v1-x2plus"}
    )
    upscaled = GenerationJob.objects.get(relation="upscale").images.get()
    assert upscaled.ancestors() == [variation, first]

    page = authed_client.get(reverse("generations:image-detail", args=[upscaled.pk])).content.decode()
    trail = page.split('class="trail"')[1].split("</ol>")[0]
    assert "The first prompt: <q>the very first prompt</q>" in trail
    assert trail.index(str(first.pk)) < trail.index(str(variation.pk))  # oldest first
    forward = authed_client.get(reverse("generations:image-detail", args=[first.pk])).content.decode()
    made_from = forward.split("Made from this image")[1]
    assert all(str(image.pk) in made_from for image in variation.job.images.all())


def test_remix_fills_the_form_with_every_setting_but_the_seed(authed_client, user):
    source = text_image(
        user, prompt="a glass teapot", engine_id=SDXL, size=1024, seed=9, steps=40, cfg_scale=11
    )
    html = authed_client.get(
        reverse("generations:create"), {"use": "remix", "from": source.pk}
    ).content.decode()
    assert "a glass teapot</textarea>" in html
    assert f'<option value="{SDXL}" selected>' in html
    assert 'name="steps" value="40"' in html and 'name="cfg_scale" value="11' in html
    assert 'name="seed"' in html and 'name="seed" value=' not in html
    seed = authed_client.get(
        reverse("generations:create"), {"use": "seed", "from": source.pk}
    ).content.decode()
    assert f'name="seed" value="{source.seed}"' in seed


def test_another_teams_image_cannot_be_used_or_acted_on(authed_client, user):
    stranger = UserFactory()
    theirs = text_image(stranger)
    for action in ("image-variations", "image-rerun", "image-upscale"):
        assert authed_client.post(reverse(f"generations:{action}", args=[theirs.pk])).status_code == 404
    response = authed_client.post(
        reverse("generations:create"), {**FORM, "init_from": str(theirs.pk)}, **HTMX
    )
    assert "no longer available" in response.content.decode()
    assert GenerationJob.objects.filter(team=user.current_team).count() == 0


def test_remix_of_an_image_to_image_result_and_of_its_rerun_brings_the_init_image_back(authed_client, user):
    source = text_image(user)
    made = result_of(generate(authed_client, init_from=str(source.pk), image_strength="0.45"))
    authed_client.post(reverse("generations:image-rerun", args=[made.pk]))
    rerun = GenerationJob.objects.get(relation="rerun").images.get()
    for image in (made, rerun):
        html = authed_client.get(
            reverse("generations:create"), {"use": "remix", "from": image.pk}
        ).content.decode()
        assert f'name="init_from" value="{source.pk}"' in html
        assert 'name="image_strength" value="0.45"' in html


@pytest.mark.parametrize("field", ["init_upload", "init_from"])
def test_a_forged_init_reference_is_refused_at_the_init_field(authed_client, field):
    response = authed_client.post(reverse("generations:create"), {**FORM, field: "not-a-uuid"}, **HTMX)
    html = response.content.decode()
    assert response.status_code == 200
    assert "no longer available" in html.split('id="init_image_error"')[1]
    assert not GenerationJob.objects.exists()


def test_a_photo_whose_sides_are_not_multiples_of_64_is_resized_for_sd16_with_its_mask(authed_client):
    photo = png(1000, 750)
    preview = choose(authed_client, photo).content.decode()
    assert "does not accept 1000 × 750" in preview and "1024 × 768" in preview
    upload = Upload.objects.get()
    job = generate(
        authed_client,
        init_upload=str(upload.pk),
        mask_source="MASK_IMAGE_WHITE",
        mask=mask_data_url(1000, 750, (0, 0, 499, 749)),  # the left half
    )
    result = pixels(read(result_of(job)))
    sent_init, sent_mask = (
        pixels(job.init_image.open("rb").read()),
        np.asarray(decode(job.mask_image.open("rb").read())),
    )
    assert (job.width, job.height, job.resized_from) == (1024, 768, "1000x750")
    assert sent_mask.shape == (768, 1024) and sent_mask[:, :500].min() > 200 and sent_mask[:, 520:].max() == 0
    assert (result[:, 520:] == sent_init[:, 520:]).all()


def test_remix_of_an_inpainting_brings_back_its_mask(authed_client, photo):
    painted = mask_data_url(512, 512, (0, 0, 255, 511))
    job = generate(
        authed_client,
        init_image=SimpleUploadedFile("p.png", photo),
        mask_source="MASK_IMAGE_BLACK",
        mask=painted,
    )
    html = authed_client.get(
        reverse("generations:create"), {"use": "remix", "from": result_of(job).pk}
    ).content.decode()
    assert '<option value="MASK_IMAGE_BLACK" selected>' in html
    carried = html.split('name="mask" value="')[1].split('"')[0]
    assert carried.startswith("data:image/png;base64,")
    mask = np.asarray(decode(base64.b64decode(carried.split(",")[1])))
    assert (mask[:, :256] == 255).all() and (mask[:, 256:] == 0).all()  # as the editor paints it


def test_a_rerun_of_an_upscale_gives_the_same_bytes(authed_client, user):
    source = text_image(user)
    authed_client.post(reverse("generations:image-upscale", args=[source.pk]), {"engine": "esrgan-v1-x2plus"})
    upscaled = result_of(GenerationJob.objects.get(relation="upscale"))
    authed_client.post(reverse("generations:image-rerun", args=[upscaled.pk]))
    again = result_of(GenerationJob.objects.get(relation="rerun"))
    assert (again.width, again.height) == (1024, 1024)
    assert picture_bytes(read(again)) == picture_bytes(read(upscaled))


def test_a_refused_replacement_keeps_the_init_image_already_chosen(authed_client, photo):
    first = choose(authed_client, photo)
    upload = Upload.objects.get()
    assert first.status_code == 200
    second = choose(authed_client, b"not an image", init_upload=str(upload.pk)).content.decode()
    assert "This file is not a PNG, JPEG or WebP image." in second
    assert f'name="init_upload" value="{upload.pk}"' in second


def test_uploads_no_job_used_within_a_day_are_forgotten(authed_client, user, photo, settings):
    from django.utils import timezone

    used = generate(authed_client, init_image=SimpleUploadedFile("p.png", photo)).upload
    choose(authed_client, photo)
    abandoned = Upload.objects.exclude(pk=used.pk).get()
    Upload.objects.update(created_at=timezone.now() - timezone.timedelta(days=2))
    choose(authed_client, photo)
    assert Upload.objects.filter(pk=used.pk).exists()
    assert not Upload.objects.filter(pk=abandoned.pk).exists()
    assert not (settings.MEDIA_ROOT / abandoned.image.name).exists()
    assert Upload.objects.count() == 2


def test_another_teams_upload_is_neither_shown_nor_used(authed_client, photo):
    stranger = Client()
    stranger.force_login(UserFactory())
    choose(stranger, photo)
    theirs = Upload.objects.get()
    assert authed_client.get(reverse("generations:media", args=[theirs.image.name])).status_code == 404
    sizes = authed_client.get(
        reverse("generations:sizes"), {"engine": SD16, "init_upload": str(theirs.pk)}, **HTMX
    )
    assert sizes.status_code == 200 and str(theirs.pk) not in sizes.content.decode()
    garbage = authed_client.get(
        reverse("generations:sizes"), {"engine": SD16, "init_upload": "-" * 36}, **HTMX
    )
    assert garbage.status_code == 200
    response = authed_client.post(
        reverse("generations:create"), {**FORM, "init_upload": str(theirs.pk)}, **HTMX
    )
    assert "no longer available" in response.content.decode()
    assert not GenerationJob.objects.exists()


def sdxl_image(user) -> GalleryImage:
    return GalleryImageFactory(
        job__created_by=user,
        job__team=user.current_team,
        job__engine_id=SDXL,
        job__sampler="K_DPMPP_2M",
        job__style_preset="analog-film",
        job__width=1216,
        job__height=832,
        team=user.current_team,
        created_by=user,
        width=1216,
        height=832,
    )


def test_the_image_page_names_the_engine_size_and_settings_as_people_write_them(authed_client, user):
    page = authed_client.get(sdxl_image(user).url).content.decode()
    assert (
        '<h1 id="image-heading" class="detail-heading">Stable Diffusion XL 1.0'
        '<span class="muted detail-size"><span class="visually-hidden"> · </span>'
        "3:2 landscape, 1216 × 832</span></h1>"
    ) in page
    assert "<dd>DPM++ 2M</dd>" in page and "<dd>Analog film</dd>" in page
    assert "<dd>K_DPMPP_2M</dd>" not in page and "<dd>1216x832" not in page  # the PNG text keeps A1111 terms


def test_the_image_page_star_says_whether_this_person_starred_the_image(authed_client, user):
    image = sdxl_image(user)
    star = f'class="star" data-star="{image.pk}" aria-pressed="%s"'
    assert star % "false" in authed_client.get(image.url).content.decode()
    library.favourite_toggle(user=user, image=image)
    assert star % "true" in authed_client.get(image.url).content.decode()


def test_a_viewer_sees_the_picture_download_and_share_but_no_action_that_changes_it(client, user):
    image = sdxl_image(user)
    viewer = UserFactory()
    Membership.objects.create(user=viewer, team=user.current_team, role="viewer")
    client.force_login(viewer)
    page = client.get(image.url).content.decode()
    assert "Download PNG</a>" in page and "Share…</a>" in page
    for action in ("Variations</button>", "Re-run</button>", "Remix</a>", "Upscale…</a>", "Move to trash"):
        assert action not in page, action
    client.force_login(user)
    page = client.get(image.url).content.decode()
    for action in ("Variations</button>", "Re-run</button>", "Remix</a>", "Upscale…</a>", "Move to trash"):
        assert action in page, action
