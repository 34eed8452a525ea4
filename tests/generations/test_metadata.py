"""Metadata in every file: what Studio writes is read back by an independent A1111 reader (sd-parsers,
from PyPI) and by Pillow, the pixels stay byte-identical, and a PNG's parameters are read back or refused
with a sentence."""

import io
import json
import struct
import zlib

import pytest
from django.core.files.base import ContentFile
from PIL import Image, PngImagePlugin
from sd_parsers import ParserManager

from generations import png_text
from generations.metadata import (
    MetadataUnreadable,
    parameters_from_png,
    parameters_text,
    png_with_metadata,
    stability_sampler,
)
from generations.models import GenerationJob
from tests.factories import GalleryImageFactory, GenerationJobFactory, UserFactory
from tests.images import png

pytestmark = pytest.mark.django_db

SDXL = "stable-diffusion-xl-1024-v1-0"
SD16 = "stable-diffusion-v1-6"


def _job(*, input_png: bytes | None = None, **fields) -> GenerationJob:
    """A job as job_create stores it; `input_png` is the init (or upscale source) image it sent."""
    prompts = [
        {"text": "a lighthouse on a cliff at dawn, oil painting", "weight": 1.0},
        {"text": "blurry, low contrast", "weight": -1.0},
    ]
    defaults = {
        "engine_id": SDXL,
        "prompt": prompts[0]["text"],
        "negative_prompt": prompts[1]["text"],
        "text_prompts": prompts,
        "width": 1152,
        "height": 896,
        "samples": 2,
        "steps": 42,
        "cfg_scale": 8.5,
        "seed": 0,
        "sampler": "K_EULER_ANCESTRAL",
        "style_preset": "analog-film",
    }
    if input_png is None:
        return GenerationJobFactory(**{**defaults, **fields})
    user = UserFactory()
    job = GenerationJobFactory.build(**{**defaults, "created_by": user, "team": user.current_team, **fields})
    job.init_image.save("init.png", ContentFile(input_png), save=False)
    job.save()
    return job


def _third_party(data: bytes):
    info = ParserManager().parse(io.BytesIO(data))
    assert info is not None, "sd-parsers found no parameters"
    return info


def _pillow_texts(data: bytes) -> dict[str, str]:
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        return dict(image.text)


def test_a_png_written_by_studio_is_read_by_sd_parsers_with_every_parameter():
    job = _job()

    data = png_with_metadata(png(64, 48), job=job, index=1, seed=3_000_000_123)

    info = _third_party(data)
    assert info.generator.name == "AUTOMATIC1111"
    assert info.full_prompt == "a lighthouse on a cliff at dawn, oil painting"
    assert info.full_negative_prompt == "blurry, low contrast"
    (sampler,) = info.samplers
    assert sampler.name == "Euler a"
    assert sampler.parameters["steps"] == "42"
    assert sampler.parameters["cfg_scale"] == "8.5"
    assert sampler.parameters["seed"] == "3000000123"
    assert sampler.model is not None and sampler.model.name == SDXL
    assert info.metadata["Size"] == "1152x896"
    assert info.metadata["Style preset"] == "analog-film"


def test_a_prompt_outside_latin_1_is_written_as_itxt_and_still_read_by_sd_parsers():
    job = _job(
        text_prompts=[{"text": "灯台と夜明け, ölmalerei", "weight": 1.0}], prompt="灯台と夜明け, ölmalerei"
    )

    data = png_with_metadata(png(32, 32), job=job, index=0, seed=7)

    kinds = {chunk.keyword: chunk.type for chunk in png_text.chunks(data) if chunk.keyword}
    assert kinds == {"parameters": b"iTXt", "studio": b"iTXt"}
    assert _third_party(data).full_prompt == "灯台と夜明け, ölmalerei"


def test_the_studio_json_chunk_round_trips_to_the_request_the_client_sends():
    job = _job()

    data = png_with_metadata(png(64, 64), job=job, index=1, seed=99)

    document = json.loads(_pillow_texts(data)["studio"])  # Pillow, not Studio, reads the iTXt chunk
    assert document["request"] == job.to_request().to_json()
    assert document["endpoint"] == f"POST /v1/generation/{SDXL}/text-to-image"
    assert document["job_id"] == str(job.pk)
    assert (document["engine_id"], document["seed"], document["image_index"]) == (SDXL, 99, 1)
    assert (document["width"], document["height"]) == (64, 64)


def test_an_image_to_image_jobs_json_holds_the_multipart_fields_sent_and_its_parent():
    parent = GalleryImageFactory()
    job = _job(
        kind=GenerationJob.Kind.IMAGE_TO_IMAGE,
        init_image_mode="IMAGE_STRENGTH",
        image_strength=0.35,
        parent=parent,
        relation=GenerationJob.Relation.INIT,
        width=1024,
        height=1024,
        input_png=png(1024, 1024),
    )

    data = png_with_metadata(png(64, 64), job=job, index=0, seed=5)

    document = json.loads(_pillow_texts(data)["studio"])
    assert document["request"] == job.to_request().form_fields()
    assert document["files"] == ["init_image"]
    assert document["parent_image_id"] == str(parent.pk)
    assert document["relation"] == "init"
    assert "Denoising strength: 0.65" in _pillow_texts(data)["parameters"]


def test_adding_the_metadata_leaves_every_pixel_byte_identical():
    for mode in ("RGB", "RGBA", "L"):
        original = png(96, 64, mode=mode)

        tagged = png_with_metadata(original, job=_job(), index=0, seed=1)

        with Image.open(io.BytesIO(original)) as before, Image.open(io.BytesIO(tagged)) as after:
            assert (after.mode, after.size) == (before.mode, before.size)
            assert after.tobytes() == before.tobytes()
        idat = [bytes(c.body) for c in png_text.chunks(original) if c.type == b"IDAT"]
        assert [bytes(c.body) for c in png_text.chunks(tagged) if c.type == b"IDAT"] == idat


def test_writing_the_metadata_again_replaces_it_instead_of_adding_a_second_copy():
    first = png_with_metadata(png(32, 32), job=_job(), index=0, seed=1)

    again = png_with_metadata(first, job=_job(steps=20), index=0, seed=2)

    keywords = [chunk.keyword for chunk in png_text.chunks(again) if chunk.keyword]
    assert sorted(keywords) == ["parameters", "studio"]
    assert parameters_from_png(again).steps == 20


def test_other_text_chunks_are_kept():
    info = PngImagePlugin.PngInfo()
    info.add_text("Software", "sandbox")
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, "PNG", pnginfo=info)

    data = png_with_metadata(buffer.getvalue(), job=_job(), index=0, seed=1)

    assert _pillow_texts(data)["Software"] == "sandbox"


def test_studio_reads_back_exactly_what_it_wrote():
    job = _job(
        text_prompts=[
            {"text": "a lighthouse", "weight": 1.0},
            {"text": "blurry", "weight": -1.0},
            {"text": "golden hour light", "weight": 0.6},
            {"text": "fog", "weight": -0.4},
        ],
        clip_guidance_preset="FAST_BLUE",
    )

    parsed = parameters_from_png(png_with_metadata(png(64, 64), job=job, index=0, seed=1234))

    assert parsed.source == "Studio"
    assert (parsed.prompt, parsed.negative_prompt) == ("a lighthouse", "blurry")
    assert [(p.text, p.weight) for p in parsed.extra_prompts] == [("golden hour light", 0.6), ("fog", -0.4)]
    assert (parsed.steps, parsed.cfg_scale, parsed.seed, parsed.samples) == (42, 8.5, 1234, 2)
    assert (parsed.sampler, parsed.model, parsed.style_preset) == ("K_EULER_ANCESTRAL", SDXL, "analog-film")
    assert parsed.clip_guidance_preset == "FAST_BLUE"


def test_the_a1111_text_alone_carries_the_same_parameters():
    job = _job(
        text_prompts=[
            {"text": "a lighthouse, at dawn", "weight": 1.0},
            {"text": "blurry", "weight": -1.0},
            {"text": "fog: thick", "weight": -0.4},
        ]
    )
    text = parameters_text(job, seed=77)

    parsed = parameters_from_png(_with_text(png(16, 16), "parameters", text))

    assert parsed.source == "A1111"
    assert (parsed.prompt, parsed.negative_prompt) == ("a lighthouse, at dawn", "blurry")
    assert [(p.text, p.weight) for p in parsed.extra_prompts] == [("fog: thick", -0.4)]
    assert (parsed.steps, parsed.cfg_scale, parsed.seed) == (42, 8.5, 77)
    assert (parsed.width, parsed.height, parsed.model) == (1152, 896, SDXL)
    assert stability_sampler(parsed.sampler or "") == "K_EULER_ANCESTRAL"


def test_an_upscale_carries_the_parameters_of_the_picture_it_enlarged():
    source = GalleryImageFactory(job=_job(status="succeeded", finished_at="2026-01-01T00:00Z"), seed=4242)
    upscale = _job(
        input_png=png(64, 64),
        kind=GenerationJob.Kind.UPSCALE,
        engine_id="esrgan-v1-x2plus",
        prompt=source.job.prompt,
        text_prompts=[],
        sampler="",
        style_preset="",
        width=2304,
        height=1792,
        upscale_factor=2,
        parent=source,
        relation=GenerationJob.Relation.UPSCALE,
    )

    text = parameters_text(upscale, seed=0)

    info = _third_party(_with_text(png(16, 16), "parameters", text))
    assert info.full_prompt == "a lighthouse on a cliff at dawn, oil painting"
    assert info.samplers[0].parameters["seed"] == "4242"
    assert info.metadata["Postprocess upscaler"] == "esrgan-v1-x2plus"
    assert info.metadata["Postprocess upscale by"] == "2"


A1111_SAMPLE = (
    "masterpiece, a red fox in snow\n"
    "(detailed fur:1.2)\n"
    "Negative prompt: lowres, bad anatomy\n"
    "Steps: 28, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 6.5, Seed: 3318492401, "
    'Size: 832x1216, Model hash: 31e35c80fc, Model: sd_xl_base_1.0, Lora hashes: "fox: 1a2b, snow: 3c4d", '
    "Version: v1.10.1"
)


def test_a_real_a1111_infotext_is_read_as_a1111_reads_it():
    parsed = parameters_from_png(_with_text(png(16, 16), "parameters", A1111_SAMPLE))

    assert parsed.prompt == "masterpiece, a red fox in snow\n(detailed fur:1.2)"
    assert parsed.negative_prompt == "lowres, bad anatomy"
    assert (parsed.steps, parsed.cfg_scale, parsed.seed) == (28, 6.5, 3318492401)
    assert (parsed.width, parsed.height, parsed.model) == (832, 1216, "sd_xl_base_1.0")
    assert stability_sampler(parsed.sampler or "") == "K_DPMPP_2M"
    assert stability_sampler("DPM++ 2M Karras") == "K_DPMPP_2M"
    assert stability_sampler("UniPC") is None


def test_a_compressed_ztxt_parameters_chunk_is_read():
    body = b"parameters\0\0" + zlib.compress(A1111_SAMPLE.encode("latin-1"))
    data = _with_chunk(png(16, 16), b"zTXt", body)

    assert parameters_from_png(data).steps == 28


def _with_chunk(data: bytes, kind: bytes, body: bytes, crc: int | None = None) -> bytes:
    crc = zlib.crc32(kind + body) if crc is None else crc
    chunk = struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)
    iend = data.rindex(b"IEND") - 4
    return data[:iend] + chunk + data[iend:]


def _with_text(data: bytes, keyword: str, text: str) -> bytes:
    return png_text.with_texts(data, {keyword: png_text.text_chunk(keyword, text)})


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"GIF89a not a png at all", "This is not a PNG file."),
        (png(16, 16), "This PNG carries no generation parameters"),
        (_with_text(png(16, 16), "parameters", "just some words someone typed"), "not in A1111's format"),
        (
            _with_text(png(16, 16), "parameters", "a cat\nSteps: many, Sampler: Euler, Seed: 1"),
            "“Steps: many”",
        ),
        (_with_text(png(16, 16), "parameters", "x\nSteps: 20, Seed: 1, Size: huge"), "“Size: huge”"),
        (_with_chunk(png(16, 16), b"tEXt", b"parameters\0\x01\x02\x03\xff\xfe binary"), "holds binary data"),
        (_with_chunk(png(16, 16), b"tEXt", b"parameters\0Steps: 1", crc=1), "checksum does not match"),
        (_with_chunk(png(16, 16), b"iTXt", b"parameters\0\0\0\0\0\xff\xfe not utf-8"), "cannot be read"),
        (_with_chunk(png(16, 16), b"zTXt", b"parameters\0\0not zlib"), "cannot be read"),
        (_with_text(png(16, 16), "studio", "{not json"), "not valid JSON"),
        (_with_text(png(16, 16), "studio", '{"generator": "Other"}'), "not in Studio's format"),
        (png(64, 64)[:90], "damaged"),
    ],
    ids=[
        "not-a-png",
        "no-text",
        "prose",
        "steps-not-a-number",
        "size-not-a-size",
        "binary",
        "bad-crc",
        "bad-utf8",
        "bad-zlib",
        "bad-json",
        "foreign-json",
        "truncated",
    ],
)
def test_a_png_without_readable_parameters_is_refused_with_a_sentence(data, message):
    with pytest.raises(MetadataUnreadable) as refused:
        parameters_from_png(data)

    assert message in refused.value.message


def test_damaged_studio_json_beside_readable_a1111_text_falls_back_to_the_text():
    data = _with_text(_with_text(png(16, 16), "parameters", A1111_SAMPLE), "studio", "{broken")

    assert parameters_from_png(data).source == "A1111"


@pytest.mark.django_db(transaction=True)
def test_every_image_a_job_stores_opens_in_a_third_party_reader_with_its_parameters(studio_engine):
    """Through the whole path: a job run against the sandbox over HTTP stores files sd-parsers reads."""
    from generations import services
    from generations.stability.contract import Prompt
    from generations.stability.types import TextToImageRequest

    user = UserFactory()
    request = TextToImageRequest(
        text_prompts=(Prompt("tide pools at noon"), Prompt("fog", -1.0)), width=512, height=512, samples=2
    )
    job = services.job_create(team=user.current_team, user=user, engine_id=SD16, request=request)
    job.refresh_from_db()
    assert job.status == "succeeded", job.error_message
    for image in job.images.all():
        info = _third_party(image.image.open("rb").read())
        assert (info.full_prompt, info.full_negative_prompt) == ("tide pools at noon", "fog")
        assert info.samplers[0].parameters["seed"] == str(image.seed)
