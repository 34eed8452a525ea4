import io
import struct
import zlib
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path

import pytest
from PIL import Image

from accounts.services import team_balance
from generations import running, services
from generations.models import GalleryImage, GenerationJob, read_file
from generations.png_text import SIGNATURE, chunks
from generations.stability.contract import Prompt, price_per_image
from generations.stability.types import Artifact, TextToImageRequest, TransientError
from tests.factories import GalleryImageFactory, GenerationJobFactory, UserFactory
from tests.images import encode, picture_bytes

pytestmark = pytest.mark.django_db(transaction=True)


def request(samples: int = 2, text: str = "a red fox in snow") -> TextToImageRequest:
    return TextToImageRequest(text_prompts=(Prompt(text),), width=512, height=512, samples=samples, steps=30)


def test_a_job_runs_against_the_api_and_stores_every_artifact(studio_engine):
    user = UserFactory()
    before = team_balance(user.current_team).credits
    job = services.job_create(
        team=user.current_team, user=user, engine_id="stable-diffusion-v1-6", request=request(3)
    )
    job.refresh_from_db()
    images = list(job.images.order_by("index"))
    assert job.status == "succeeded"
    assert [i.index for i in images] == [0, 1, 2]
    for image in images:
        with Image.open(image.image.open("rb")) as original:
            assert original.format == "PNG" and original.size == (512, 512)
        with Image.open(image.thumbnail.open("rb")) as thumb:
            assert thumb.format == "JPEG" and max(thumb.size) <= 384
        assert image.finish_reason == "SUCCESS" and image.seed > 0
    price = price_per_image("stable-diffusion-v1-6", steps=30, width=512, height=512)
    after = team_balance(user.current_team).credits
    assert Decimal(str(before)) - Decimal(str(after)) == pytest.approx(price * 3)


def test_a_job_run_twice_stores_its_images_once(studio_engine):
    user = UserFactory()
    job = GenerationJobFactory(created_by=user, samples=2)
    running.job_run(job_id=job.pk)
    GenerationJob.objects.filter(pk=job.pk).update(status="running")  # as if the worker died before acking
    running.job_run(job_id=job.pk, recovering=True)  # the broker redelivers the task
    assert GalleryImage.objects.filter(job=job).count() == 2
    assert job.api_requests.count() == 2  # the second run sent nothing


def test_a_finished_job_is_not_claimed_again(studio_engine):
    job = GenerationJobFactory()
    running.job_run(job_id=job.pk)
    with pytest.raises(running.JobNotClaimed):
        running.job_claim(job_id=job.pk)


def test_a_refused_prompt_fails_the_job_with_the_apis_message_and_charges_nothing(studio_engine):
    user = UserFactory()
    before = team_balance(user.current_team).credits
    job = GenerationJobFactory(created_by=user, prompt="contraband goods")
    running.job_run(job_id=job.pk)
    job.refresh_from_db()
    assert job.status == "failed"
    assert "filtered words" in job.error_message
    assert not job.images.exists()
    assert team_balance(user.current_team).credits == before


def test_a_filtered_artifact_is_kept_and_marked(studio_engine):
    job = GenerationJobFactory(prompt="a lurid poster")
    running.job_run(job_id=job.pk)
    image = GalleryImage.objects.get(job=job)
    assert image.is_filtered


def test_an_unreachable_engine_is_a_transient_error_for_the_task_to_retry(settings):
    settings.STABILITY_API_HOST = "http://127.0.0.1:9"  # discard port: connection refused
    settings.STABILITY_API_KEY = "sk-anything"
    job = GenerationJobFactory()
    with pytest.raises(TransientError):
        running.job_run(job_id=job.pk)
    job.refresh_from_db()
    assert job.status == "queued" and job.attempts == 1  # back in the queue, for the task's retry
    # Connection refused: the request never left, so it cannot have been charged.
    assert list(job.api_requests.values_list("outcome", flat=True)) == ["not_charged"]


def test_a_missing_key_fails_the_job_with_advice(settings):
    settings.STABILITY_API_KEY = ""
    job = GenerationJobFactory()
    running.job_run(job_id=job.pk)
    job.refresh_from_db()
    assert job.status == "failed"
    assert "STABILITY_API_KEY" in job.error_message


def test_image_store_keeps_the_original_picture_and_says_how_it_was_made(studio_engine):
    from generations.png_text import texts
    from generations.stability.types import Artifact

    job = GenerationJobFactory()
    original = encode(Image.new("RGB", (64, 64), "purple"))
    image = running.image_store(job=job, index=0, artifact=Artifact(original, 7, "SUCCESS"))
    stored = image.image.open("rb").read()
    assert picture_bytes(stored) == picture_bytes(original)  # not re-encoded
    assert {"parameters", "studio"} <= set(texts(stored))
    assert image.image.name.endswith(f"{image.pk}.png")


def test_a_job_the_broker_cannot_take_fails_visibly_instead_of_waiting_forever(studio_engine):
    from studio.celery import app

    user = UserFactory()
    saved = (app.conf.broker_url, app.conf.task_always_eager)
    app.conf.broker_url, app.conf.task_always_eager = "redis://127.0.0.1:9/0", False  # nothing listens there
    app._pool = app.amqp._producer_pool = None
    try:
        job = services.job_create(
            team=user.current_team, user=user, engine_id="stable-diffusion-v1-6", request=request(1)
        )
    finally:
        app.conf.broker_url, app.conf.task_always_eager = saved
        app._pool = app.amqp._producer_pool = None
    job.refresh_from_db()
    assert job.status == "failed"
    assert "queue is unreachable" in job.error_message


def photo_like_png(width: int, height: int, mode: str = "RGB") -> bytes:
    """Detail at every scale, as a generated picture has (a flat colour would hide a blurred thumbnail)."""
    import numpy as np

    noise = np.random.default_rng(3).integers(0, 255, (height // 8, width // 8, 3), dtype=np.uint8)
    picture = Image.fromarray(noise).resize((width, height), Image.Resampling.BICUBIC)
    return encode(picture.convert(mode))


@pytest.mark.parametrize(("size", "thumb"), [((1024, 1024), (384, 384)), ((1344, 768), (384, 219))])
def test_a_stored_image_keeps_its_size_metadata_and_gets_a_thumbnail_that_looks_as_before(size, thumb):
    import numpy as np

    from generations.png_text import texts
    from generations.stability.types import Artifact

    job = GenerationJobFactory(width=size[0], height=size[1], status="running")
    original = photo_like_png(*size)
    image = running.image_store(job=job, index=0, artifact=Artifact(original, 7, "SUCCESS"))
    image.refresh_from_db()
    assert (image.width, image.height) == size
    stored = image.image.open("rb").read()
    assert picture_bytes(stored) == picture_bytes(original)
    assert {"parameters", "studio"} <= set(texts(stored))  # the metadata chunks survive, readable
    with Image.open(image.thumbnail.open("rb")) as thumbnail:
        assert thumbnail.format == "JPEG" and thumbnail.size == thumb
        ours = np.asarray(thumbnail.convert("RGB"), dtype=float)
    # Against the picture scaled down and never encoded, it is as faithful as the thumbnail Studio drew
    # before (whole-picture bicubic, WebP method 4): no one would tell them apart.
    exact = Image.open(io.BytesIO(original)).convert("RGB")
    exact.thumbnail((384, 384))
    buffer = io.BytesIO()
    exact.save(buffer, "WEBP", quality=82)
    before = np.asarray(Image.open(buffer).convert("RGB"), dtype=float)
    exact_pixels = np.asarray(exact, dtype=float)
    ours_error, before_error = np.abs(ours - exact_pixels).mean(), np.abs(before - exact_pixels).mean()
    assert ours_error < before_error * 1.1


def test_a_picture_with_alpha_or_a_palette_gets_a_colour_thumbnail():
    from generations.imaging import picture_of

    for mode in ("RGBA", "P", "L", "LA"):
        picture = picture_of(photo_like_png(512, 256, mode))
        assert (picture.width, picture.height) == (512, 256)
        with Image.open(io.BytesIO(picture.thumbnail)) as thumbnail:
            assert thumbnail.mode == "RGB" and thumbnail.size == (384, 192)


def test_a_16_bit_picture_gets_a_thumbnail_in_its_own_tones():
    import numpy as np

    from generations.imaging import picture_of
    from tests.images import encode

    tones = np.full((256, 512), 0x4000, dtype=np.uint16)  # a quarter of the way to white
    tones[:, 256:] = 0xC000  # three quarters
    picture = picture_of(encode(Image.fromarray(tones)))
    assert (picture.width, picture.height) == (512, 256)
    with Image.open(io.BytesIO(picture.thumbnail)) as thumbnail:
        assert thumbnail.mode == "RGB" and thumbnail.size == (384, 192)
        left, right = thumbnail.getpixel((40, 96)), thumbnail.getpixel((340, 96))
    assert all(abs(channel - 0x40) <= 3 for channel in left), left
    assert all(abs(channel - 0xC0) <= 3 for channel in right), right


def test_a_thumbnail_shows_transparent_pixels_as_a_checkerboard_not_the_colours_under_them():
    import numpy as np

    from generations.imaging import CHECKER_COLOURS, picture_of
    from tests.images import encode

    cut = Image.new("RGBA", (512, 256), (0, 0, 0, 0))  # a background removed: black under the alpha
    cut.paste((220, 40, 40, 255), (192, 64, 320, 192))
    with Image.open(io.BytesIO(picture_of(encode(cut)).thumbnail)) as thumbnail:
        pixels = np.asarray(thumbnail.convert("RGB"), dtype=int)
    corner = pixels[:16, :16].reshape(-1, 3)  # two squares of each colour
    assert all(min(abs(corner - colour).sum(axis=1)) < 24 for colour in CHECKER_COLOURS)
    assert abs(pixels[96, 192] - (220, 40, 40)).sum() < 40  # the subject as it is


def test_an_image_whose_pixels_cannot_be_decoded_is_not_stored_and_leaves_no_file_behind(settings):
    # Chunks intact (the metadata splices in), the compressed pixels cut short: the decode fails on the
    # thumbnail's thread, after the PNG was written on the storing one.
    whole = photo_like_png(256, 256)
    idat = b"".join(bytes(chunk.body) for chunk in chunks(whole) if chunk.type == b"IDAT")[:2000]
    header = next(chunk for chunk in chunks(whole) if chunk.type == b"IHDR")
    cut = SIGNATURE + whole[header.start : header.end]
    cut += struct.pack(">I", len(idat)) + b"IDAT" + idat + struct.pack(">I", zlib.crc32(b"IDAT" + idat))
    cut += struct.pack(">I", 0) + b"IEND" + struct.pack(">I", zlib.crc32(b"IEND"))
    job = GenerationJobFactory(width=256, height=256, status="running")
    with pytest.raises(OSError):
        running.image_store(job=job, index=0, artifact=Artifact(cut, 7, "SUCCESS"))
    assert not GalleryImage.objects.filter(job=job).exists()
    media = Path(settings.MEDIA_ROOT)
    assert not [p for folder in ("images", "thumbnails") for p in (media / folder).rglob("*") if p.is_file()]


def test_a_stored_file_is_read_whole_by_several_threads_at_once():
    """A job's images go out together, and each thread reads the job's input images (for its request and
    for the metadata it writes) through the same row: one thread's read must not close another's."""
    image = GalleryImageFactory()
    with image.image.open("rb") as stored:
        whole = stored.read()
    field = GenerationJob.objects.get(pk=image.job_id).images.get().image  # one file object, shared
    with ThreadPoolExecutor(8) as pool:
        reads = list(pool.map(lambda _: read_file(field), range(400)))
    assert all(read == whole for read in reads)
