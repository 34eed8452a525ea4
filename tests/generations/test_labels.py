"""Human labels: engines, samplers and sizes as people name them, in Python and in templates."""

import pytest
from django.template import Context, Template

from generations.labels import aspect_ratio, engine_name, sampler_label, size_label
from generations.stability.contract import ENGINES, SAMPLERS, SDXL_V1_SIZES


def test_engines_are_called_by_their_full_names() -> None:
    assert engine_name("stable-diffusion-xl-1024-v1-0") == "Stable Diffusion XL 1.0"
    assert engine_name("stable-diffusion-v1-6") == "Stable Diffusion 1.6"
    assert engine_name("esrgan-v1-x2plus") == "Real-ESRGAN ×2"


def test_every_known_engine_has_a_name_that_is_not_its_id() -> None:
    for engine_id in ENGINES:
        assert engine_name(engine_id) != engine_id
        assert "-" not in engine_name(engine_id).replace("Real-ESRGAN", "")


def test_an_unknown_engine_is_called_by_its_id() -> None:
    assert engine_name("stable-diffusion-xl-beta-v2-2-2") == "stable-diffusion-xl-beta-v2-2-2"


@pytest.mark.parametrize(
    ("sampler", "label"),
    [
        ("DDIM", "DDIM"),
        ("K_DPMPP_2M", "DPM++ 2M"),
        ("K_DPMPP_2S_ANCESTRAL", "DPM++ 2S a"),
        ("K_EULER_ANCESTRAL", "Euler a"),
        ("K_EULER", "Euler"),
        ("K_DPM_2", "K-DPM 2"),
        ("K_LMS", "LMS"),
        ("", "Engine's choice"),
        (None, "Engine's choice"),
    ],
)
def test_samplers_read_as_people_write_them(sampler: str | None, label: str) -> None:
    assert sampler_label(sampler) == label


def test_no_sampler_label_shows_the_api_spelling() -> None:
    labels = [sampler_label(sampler) for sampler in SAMPLERS]
    assert len(set(labels)) == len(SAMPLERS)
    assert not any("_" in label or label.startswith("K_") for label in labels)


@pytest.mark.parametrize(
    ("size", "label"),
    [
        ("1216x832", "3:2 landscape, 1216 × 832"),
        ((1216, 832), "3:2 landscape, 1216 × 832"),
        ("832x1216", "2:3 portrait, 832 × 1216"),
        ("1024x1024", "1:1 square, 1024 × 1024"),
        ("1152x896", "9:7 landscape, 1152 × 896"),
        ("896x1152", "7:9 portrait, 896 × 1152"),
        ("1344x768", "16:9 landscape, 1344 × 768"),
        ("1536x640", "21:9 landscape, 1536 × 640"),
        ("640x1536", "9:21 portrait, 640 × 1536"),
        ("1152x864", "4:3 landscape, 1152 × 864"),
        ("640x512", "5:4 landscape, 640 × 512"),
        ("512x768", "2:3 portrait, 512 × 768"),
    ],
)
def test_sizes_read_as_their_shape_and_pixels(size: str | tuple[int, int], label: str) -> None:
    assert size_label(size) == label


def test_a_shape_far_from_any_common_ratio_keeps_its_own() -> None:
    assert aspect_ratio(128, 1536) == (1, 12)
    assert size_label("1536x128") == "12:1 landscape, 1536 × 128"


def test_every_sdxl_size_is_named_by_a_common_ratio() -> None:
    common = {"1:1", "5:4", "9:7", "4:3", "3:2", "16:10", "16:9", "2:1", "21:9"}
    for width, height in SDXL_V1_SIZES:
        across, down = aspect_ratio(max(width, height), min(width, height))
        assert f"{across}:{down}" in common


def test_something_that_is_not_a_size_is_shown_as_given() -> None:
    assert size_label("large") == "large"
    assert size_label("0x512") == "0x512"


def test_template_filters_label_a_job() -> None:
    template = Template(
        "{% load labels %}{{ engine|engine_name }} / {{ sampler|sampler_label }} / {{ size|size_label }}"
        " / {{ unknown|engine_name }}"
    )
    context = Context(
        {
            "engine": "stable-diffusion-xl-1024-v1-0",
            "sampler": "K_EULER_ANCESTRAL",
            "size": "1216x832",
            "unknown": "my-engine",
        }
    )
    assert template.render(context) == (
        "Stable Diffusion XL 1.0 / Euler a / 3:2 landscape, 1216 × 832 / my-engine"
    )
