"""What a person sees from each Stable Image tool in the sandbox: a visible, deterministic effect."""

import colorsys
import io

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from PIL import Image, ImageDraw

from sandbox.services import key_create
from tests.images import decode, encode

pytestmark = pytest.mark.django_db
GREY = (128, 128, 128)


def scene(
    size=(128, 96), *, background=GREY, discs=(((64, 48), 24, (220, 40, 40)),), squares=()
) -> Image.Image:
    """A flat background with coloured discs and squares: easy to tell apart, like a product photo."""
    image = Image.new("RGB", size, background)
    draw = ImageDraw.Draw(image)
    for (x, y), radius, colour in discs:
        draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=colour)
    for box, colour in squares:
        draw.rectangle(box, fill=colour)
    return image


def pixels(image: Image.Image, mode: str = "RGB") -> np.ndarray:
    return np.asarray(image.convert(mode), dtype=np.int16)


def disc_mask(size, centre, radius) -> np.ndarray:
    y, x = np.mgrid[: size[1], : size[0]]
    return (x - centre[0]) ** 2 + (y - centre[1]) ** 2 <= radius**2


def painted(image: Image.Image, colour: tuple[int, int, int]) -> np.ndarray:
    """Where `image` has exactly `colour` (the shapes are drawn without antialiasing)."""
    return (pixels(image) == colour).all(axis=2)


def far_from(mask: np.ndarray, margin: int) -> np.ndarray:
    """Pixels more than `margin` pixels (in x or y) from every pixel of `mask`."""
    near = mask.copy()
    for dy in range(-margin, margin + 1):
        for dx in range(-margin, margin + 1):
            near |= np.roll(np.roll(mask, dy, 0), dx, 1)
    return ~near


@pytest.fixture
def tool(settings):
    """Call a tool in-process and get its picture back (async ones are fetched from their result)."""
    settings.SANDBOX_RATE_LIMIT = 100_000
    settings.SANDBOX_ASYNC_SECONDS = 0
    api = Client(headers={"authorization": f"Bearer {key_create(credits=10_000, email='tools@example.com')}"})

    def call(operation: str, images: dict[str, Image.Image] | None = None, **fields: object) -> Image.Image:
        files = {
            name: SimpleUploadedFile(f"{name}.png", encode(im), "image/png")
            for name, im in (images or {}).items()
        }
        response = api.post(f"/sandbox/v2beta/stable-image/{operation}", {**fields, **files})
        assert response.status_code == 200, response.content[:300]
        if response.headers["content-type"] == "application/json":
            response = api.get(f"/sandbox/v2beta/results/{response.json()['id']}")
            assert response.status_code == 200
        return decode(response.content)

    return call


def test_remove_background_keeps_the_subject_and_makes_the_rest_transparent(tool):
    photo = scene()
    cut = tool("edit/remove-background", {"image": photo})
    assert cut.format == "PNG" and cut.mode == "RGBA" and cut.size == photo.size
    alpha = pixels(cut, "RGBA")[..., 3]
    subject = painted(photo, (220, 40, 40))
    assert (alpha[subject] == 255).all()
    assert (alpha[~subject] == 0).all()
    assert (pixels(cut)[subject] == pixels(photo)[subject]).all()


def test_remove_background_of_a_picture_with_no_subject_keeps_its_centre(tool):
    # A texture whose every colour is on its border (like the sandbox's own pictures): nothing stands out,
    # so the centre is kept, and the cut never comes back fully transparent.
    ramp = np.linspace(0, 255, 128, dtype=np.uint8)
    texture = Image.fromarray(
        np.stack(
            [np.tile(ramp, (96, 1)), np.tile(ramp[::-1], (96, 1)), np.full((96, 128), 90, np.uint8)], axis=2
        ),
        "RGB",
    )
    alpha = pixels(tool("edit/remove-background", {"image": texture}), "RGBA")[..., 3]
    assert alpha[48, 64] == 255 and alpha[2, 2] == 0 and alpha[93, 125] == 0
    assert 0.1 < (alpha == 255).mean() < 0.5


def test_outpaint_grows_the_canvas_by_each_side_and_keeps_the_original_pixels(tool):
    photo = scene()
    grown = tool(
        "edit/outpaint", {"image": photo}, left=30, right=10, up=0, down=20, prompt="more sky", seed=3
    )
    assert grown.size == (128 + 30 + 10, 96 + 20)
    assert (pixels(grown.crop((30, 0, 158, 96))) == pixels(photo)).all()
    assert pixels(grown.crop((0, 0, 30, 96))).std() > 0  # the new strip is painted, not left blank


def test_erase_and_inpaint_change_only_the_masked_area(tool):
    photo = scene(discs=(((40, 48), 16, (220, 40, 40)), ((96, 48), 16, (40, 40, 220))))
    mask = Image.new("L", photo.size, 0)
    ImageDraw.Draw(mask).ellipse((22, 30, 58, 66), fill=255)  # over the red disc only
    masked = np.asarray(mask) > 0
    for operation, fields in (("edit/erase", {}), ("edit/inpaint", {"prompt": "a green apple"})):
        exact = tool(operation, {"image": photo, "mask": mask}, grow_mask=0, seed=5, **fields)
        assert (pixels(exact)[~masked] == pixels(photo)[~masked]).all(), operation
        assert np.abs(pixels(exact)[masked] - pixels(photo)[masked]).mean() > 30, operation
        grown = tool(operation, {"image": photo, "mask": mask}, grow_mask=6, seed=5, **fields)
        assert (pixels(grown)[far_from(masked, 6)] == pixels(photo)[far_from(masked, 6)]).all(), operation
        assert (pixels(grown)[~far_from(masked, 6)] != pixels(photo)[~far_from(masked, 6)]).any(), operation
    erased = pixels(tool("edit/erase", {"image": photo, "mask": mask}, grow_mask=0))[masked]
    assert np.abs(erased - np.array(GREY)).mean() < 40  # filled from its surroundings: the grey


def test_inpaint_without_a_mask_repaints_the_transparent_pixels(tool):
    photo = scene().convert("RGBA")
    hole = disc_mask(photo.size, (64, 48), 24)
    rgba = np.asarray(photo).copy()
    rgba[hole, 3] = 0
    painted = tool(
        "edit/inpaint", {"image": Image.fromarray(rgba, "RGBA")}, prompt="a blue bird", grow_mask=0
    )
    assert (pixels(painted)[~hole] == pixels(photo)[~hole]).all()
    assert (pixels(painted)[hole] != pixels(photo)[hole]).any()


def test_search_and_replace_repaints_what_the_search_names_and_nothing_far_from_it(tool):
    photo = scene(squares=(((8, 8, 30, 30), (40, 60, 220)),))
    replaced = tool("edit/search-and-replace", {"image": photo}, prompt="a cat", search_prompt="the red ball")
    red = painted(photo, (220, 40, 40))
    assert np.abs(pixels(replaced)[red] - pixels(photo)[red]).mean() > 30
    untouched = far_from(red, 3)
    assert (pixels(replaced)[untouched] == pixels(photo)[untouched]).all()  # the blue square too


def hue_of(rgb: np.ndarray) -> float:
    red, green, blue = rgb.reshape(-1, 3).mean(axis=0) / 255
    return colorsys.rgb_to_hsv(red, green, blue)[0] * 360


def test_recolor_turns_the_selected_region_to_the_hue_the_prompt_names(tool):
    photo = scene(discs=(((64, 48), 24, (40, 180, 60)),))
    recoloured = tool(
        "edit/search-and-recolor", {"image": photo}, prompt="a bright yellow ball", select_prompt="green ball"
    )
    ball = painted(photo, (40, 180, 60))
    assert hue_of(pixels(photo)[ball]) == pytest.approx(128, abs=5)
    assert hue_of(pixels(recoloured)[ball]) == pytest.approx(55, abs=6)
    background = far_from(ball, 3)
    assert (pixels(recoloured)[background] == pixels(photo)[background]).all()


@pytest.mark.parametrize(
    ("operation", "size", "fields", "upscaled"),
    [
        ("upscale/fast", (80, 60), {}, (320, 240)),
        ("upscale/conservative", (80, 64), {"prompt": "crisp", "output_format": "jpeg"}, (2288, 1832)),
        ("upscale/creative", (80, 64), {"prompt": "crisp"}, (320, 256)),
    ],
)
def test_an_upscale_returns_the_documented_size_and_the_same_picture(tool, operation, size, fields, upscaled):
    photo = scene(size, discs=(((size[0] // 2, size[1] // 2), size[1] // 3, (220, 40, 40)),))
    larger = tool(operation, {"image": photo}, **fields)
    assert larger.size == upscaled
    back = larger.convert("RGB").resize(size, Image.Resampling.BOX)
    assert np.abs(pixels(back) - pixels(photo)).mean() < 12


def test_control_outputs_follow_the_control_images_light_and_dark(tool):
    left_lit = Image.new("RGB", (128, 96), "black")
    ImageDraw.Draw(left_lit).rectangle((0, 0, 63, 95), fill="white")
    right_lit = left_lit.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    for operation in ("control/structure", "control/sketch"):
        first = pixels(tool(operation, {"image": left_lit}, prompt="a castle", seed=8), "L")
        second = pixels(tool(operation, {"image": right_lit}, prompt="a castle", seed=8), "L")
        assert first[:, :60].mean() > first[:, 68:].mean() + 40, operation
        assert second[:, 68:].mean() > second[:, :60].mean() + 40, operation


def colours(image: Image.Image) -> set[tuple[int, ...]]:
    return {tuple(int(c) for c in colour) for colour in np.unique(pixels(image).reshape(-1, 3), axis=0)}


def test_style_outputs_take_the_references_palette(tool):
    palette = [(200, 30, 30), (250, 200, 40), (30, 20, 10)]
    reference = Image.new("RGB", (96, 96), palette[0])
    ImageDraw.Draw(reference).rectangle((0, 0, 47, 47), fill=palette[1])
    ImageDraw.Draw(reference).rectangle((48, 48, 95, 95), fill=palette[2])
    styled = tool("control/style", {"image": reference}, prompt="a calm lake", fidelity=1, aspect_ratio="1:1")
    assert styled.size == (1024, 1024)
    assert colours(styled) == set(palette)
    init = scene(discs=(((64, 48), 30, (40, 90, 230)),))
    transferred = tool(
        "control/style-transfer",
        {"init_image": init, "style_image": reference},
        style_strength=1,
        composition_fidelity=1,
        change_strength=1,
    )
    assert colours(transferred) <= set(palette)
    light = pixels(transferred, "L")
    centre, corner = light[400:600, 560:800].mean(), light[:100, :100].mean()
    assert centre != corner  # the init image's disc is still where it was


def test_relight_keeps_the_subject_replaces_the_background_and_lights_one_side(tool):
    photo = scene(discs=(((64, 48), 24, (220, 40, 40)),))
    subject = painted(photo, (220, 40, 40))
    background = far_from(subject, 2)
    unlit = tool(
        "edit/replace-background-and-relight",
        {"subject_image": photo},
        background_prompt="a green forest",
        preserve_original_subject=1,
    )
    assert unlit.size == photo.size
    assert (pixels(unlit)[subject] == pixels(photo)[subject]).all()
    assert np.abs(pixels(unlit)[background] - np.array(GREY)).mean() > 15
    lit = pixels(
        tool(
            "edit/replace-background-and-relight",
            {"subject_image": photo},
            background_prompt="the same room",
            keep_original_background="true",
            light_source_direction="left",
            light_source_strength=1,
        ),
        "L",
    )
    assert lit[:, :20].mean() > lit[:, -20:].mean() + 40


def test_the_same_request_gives_the_same_picture_and_the_seed_or_prompt_changes_it(tool):
    def core(**fields: object) -> bytes:
        buffer = io.BytesIO()
        tool("generate/sd3", prompt="a lighthouse", model="sd3.5-flash", output_format="png", **fields).save(
            buffer, "PNG"
        )
        return buffer.getvalue()

    assert core(seed=42) == core(seed=42)
    assert core(seed=42) != core(seed=43)
    assert core(seed=42) != core(seed=42, style_preset="pixel-art")


def test_image_to_image_strength_runs_from_the_input_to_a_new_picture(tool):
    photo = scene((96, 96))
    kept = tool("generate/sd3", {"image": photo}, prompt="a fox", mode="image-to-image", strength=0)
    assert kept.size == (1024, 1024)
    assert np.abs(pixels(kept) - pixels(photo.resize((1024, 1024), Image.Resampling.LANCZOS))).max() <= 1
    changed = tool("generate/ultra", {"image": photo}, prompt="a fox", strength=1, seed=4)
    assert np.abs(pixels(changed) - pixels(photo.resize((1024, 1024)))).mean() > 30
