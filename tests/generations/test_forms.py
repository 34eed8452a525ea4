import pytest

from generations.forms import GenerateForm

ENGINES = [
    ("stable-diffusion-xl-1024-v1-0", "Stable Diffusion XL v1.0"),
    ("stable-diffusion-v1-6", "Stable Diffusion v1.6"),
]
VALID = {
    "prompt": "a lighthouse on a cliff at dawn",
    "engine": "stable-diffusion-xl-1024-v1-0",
    "size": "1152x896",
    "samples": "4",
    "steps": "30",
    "cfg_scale": "7",
    "clip_guidance_preset": "NONE",
}


def form(**changes: str) -> GenerateForm:
    return GenerateForm({**VALID, **changes}, engines=ENGINES, default_engine="stable-diffusion-xl-1024-v1-0")


def test_a_valid_form_builds_the_request_the_client_will_send():
    f = form(negative_prompt="fog", weighted_prompts="golden light | 0.6\nrain", seed="")
    assert f.is_valid(), f.errors
    request = f.request
    assert [(p.text, p.weight) for p in request.text_prompts] == [
        ("a lighthouse on a cliff at dawn", 1.0),
        ("fog", -1.0),
        ("golden light", 0.6),
        ("rain", 1.0),
    ]
    assert (request.width, request.height, request.samples, request.seed) == (1152, 896, 4, 0)


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"prompt": ""}, "prompt", "Describe the image you want."),
        ({"prompt": "   "}, "prompt", "Describe the image you want."),
        ({"size": "512x512"}, "size", "512x512 is not accepted by stable-diffusion-xl-1024-v1-0"),
        ({"engine": "stable-diffusion-v1-6", "size": "1600x512"}, "size", "each side between 320 and 1536"),
        ({"size": "1000x1000"}, "size", "multiple of 64"),
        ({"samples": "11"}, "samples", "Must be between 1 and 10."),
        ({"samples": "0"}, "samples", "Must be between 1 and 10."),
        ({"steps": "500"}, "steps", "Must be between 10 and 50."),
        ({"seed": "-1"}, "seed", "Must be between 0 and 4294967295."),
        ({"seed": "4294967296"}, "seed", "Must be between 0 and 4294967295."),
        ({"cfg_scale": "36"}, "cfg_scale", "Must be between 0 and 35."),
        ({"engine": "stable-diffusion-x4-latent-upscaler"}, "engine", "Select a valid choice"),
        ({"weighted_prompts": "fog | -11"}, "weighted_prompts", "Must be between -10 and 10."),
        ({"style_preset": "watercolour"}, "style_preset", "Select a valid choice"),
    ],
)
def test_bad_input_gets_a_message_at_its_field(changes, field, message):
    f = form(**changes)
    assert not f.is_valid()
    assert message in " ".join(f.errors[field]), f.errors
    assert set(f.errors) == {field}


def test_every_problem_is_reported_at_once():
    f = form(samples="11", steps="500", seed="-1", size="512x512")
    assert not f.is_valid()
    assert set(f.errors) == {"samples", "steps", "seed", "size"}


def test_the_size_choices_follow_the_chosen_engine():
    sdxl = form()
    sd16 = form(engine="stable-diffusion-v1-6", size="512x512")
    assert "1152x896" in dict(sdxl.fields["size"].choices)
    assert "512x512" not in dict(sdxl.fields["size"].choices)
    assert "512x512" in dict(sd16.fields["size"].choices)
    assert sd16.is_valid(), sd16.errors


def test_the_advanced_summary_names_each_value_that_is_not_its_default():
    assert form().advanced_summary == []
    assert form(cfg_scale="7.0", steps="30", sampler="", seed="").advanced_summary == []
    changed = form(
        weighted_prompts="golden light | 0.6\n\nfog | -0.4",
        seed="7",
        steps="40",
        cfg_scale="9.5",
        sampler="K_DPMPP_2M",
        clip_guidance_preset="FAST_BLUE",
    )
    assert changed.advanced_summary == [
        "2 more prompts",
        "Seed 7",
        "40 steps",
        "CFG scale 9.5",
        "Sampler DPM++ 2M",
        "CLIP guidance Fast blue",
    ]
    assert form(weighted_prompts="fog | -0.4").advanced_summary == ["1 more prompt"]


def test_an_unbound_form_summarises_its_initial_values():
    f = GenerateForm(
        initial={"seed": 7, "steps": 30, "cfg_scale": 7.0},
        engines=ENGINES,
        default_engine="stable-diffusion-xl-1024-v1-0",
    )
    assert f.advanced_summary == ["Seed 7"]


def test_a_refusal_names_the_first_field_the_page_shows():
    f = form(steps="500", prompt="")
    assert not f.is_valid()
    assert f.refusal == "Not generated. Prompt: Describe the image you want. (1 more field to fix.)"
    assert form().refusal == ""
