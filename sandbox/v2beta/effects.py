"""Procedural previews of the Stable Image tools, each with an effect a person (and a test) can check.

Not a diffusion model. New pictures come from `sandbox.render` (the prompt picks the palette, the seed
the arrangement). The tools then do something plain and measurable: remove-background makes the
background transparent, outpaint grows the canvas and keeps the original pixels, erase and inpaint touch
only the (grown) mask, search-and-replace repaints a region, recolor turns it to the named hue, the
upscalers resize, control outputs follow the control image's light and dark, and style outputs take the
reference's colours. The same request gives the same bytes.
"""

import colorsys
import io
import re
from typing import Any

import numpy as np
from PIL import Image, ImageChops, ImageDraw, ImageFilter, ImageOps

from generations.stability.v2beta.fields import MAX_PIXELS
from sandbox import render

WORK_SIDE = 384  # new pictures are drawn at most this large, then resized: the noise is smooth anyway
FILL_SIDE = 256  # erase's fill from the surroundings is computed this small
BACKGROUND_DISTANCE = 60  # how far (RGB) a pixel must be from every border colour to be the subject
MIN_SUBJECT_SHARE = 0.01  # less than this stands out from the border: no subject found
HUES = {
    "red": 0,
    "orange": 30,
    "brown": 25,
    "gold": 45,
    "yellow": 55,
    "lime": 90,
    "green": 120,
    "teal": 175,
    "cyan": 185,
    "turquoise": 175,
    "blue": 220,
    "navy": 230,
    "indigo": 255,
    "purple": 275,
    "violet": 280,
    "magenta": 300,
    "pink": 330,
}


# --- reading and writing ---------------------------------------------------------------------------------


def open_image(data: bytes) -> Image.Image:
    """Decode an upload. One larger than any tool's limit (only Ultra and SD 3.5 take them, to make a
    1 MP picture) is stood in for by a grey image of its shape rather than decoded whole."""
    image = Image.open(io.BytesIO(data))
    if image.width * image.height > MAX_PIXELS:
        scale = (MAX_PIXELS / (image.width * image.height)) ** 0.5
        return Image.new("RGB", (max(1, int(image.width * scale)), max(1, int(image.height * scale))), "grey")
    image.load()
    return image


def encode(image: Image.Image, output_format: str) -> bytes:
    buffer = io.BytesIO()
    if output_format == "jpeg":
        image.convert("RGB").save(buffer, "JPEG", quality=90)
    elif output_format == "webp":
        image.save(buffer, "WEBP", quality=85, method=0)
    else:
        image.save(buffer, "PNG", compress_level=render.PNG_COMPRESS_LEVEL)
    return buffer.getvalue()


def _rgb(image: Image.Image) -> Image.Image:
    return image if image.mode == "RGB" else image.convert("RGBA").convert("RGB")


# --- new pictures ----------------------------------------------------------------------------------------


def picture(
    model: str,
    prompt: str,
    negative_prompt: str,
    seed: int,
    size: tuple[int, int],
    *,
    style_preset: str | None = None,
    cfg_scale: float = 7.0,
) -> Image.Image:
    """A new picture of `size` from the prompt (palette), negative prompt (muted colours) and seed."""
    width, height = size
    scale = min(1.0, WORK_SIDE / max(width, height))
    prompts: tuple[tuple[str, float], ...] = ((prompt, 1.0),)
    if negative_prompt:
        prompts += ((negative_prompt, -1.0),)
    scene = render.Scene(
        model,
        prompts,
        seed,
        max(8, round(width * scale)),
        max(8, round(height * scale)),
        cfg_scale=cfg_scale,
        style_preset=style_preset,
    )
    return render.generate(scene).resize(size, Image.Resampling.BICUBIC)


def from_init(init: Image.Image, new: Image.Image, strength: float) -> Image.Image:
    """Image-to-image: strength 0 keeps the input (resized to the output), 1 is the new picture."""
    return render.from_init(_rgb(init).resize(new.size, Image.Resampling.LANCZOS), new, strength)


# --- masks -----------------------------------------------------------------------------------------------


def _box_count(mask: np.ndarray, radius: int) -> np.ndarray:
    """For each pixel, the sum of `mask` over the square reaching `radius` pixels around it (for a
    boolean mask, exactly: how many set pixels)."""
    padded = np.pad(mask.astype(np.int64 if mask.dtype == bool else np.float64), radius + 1)
    integral = np.cumsum(np.cumsum(padded, axis=0), axis=1)
    k = 2 * radius + 1
    return integral[k:, k:] - integral[:-k, k:] - integral[k:, :-k] + integral[:-k, :-k]


def grow(mask: Image.Image, pixels: float) -> Image.Image:
    """The mask grown outward by `pixels` (never further), with a soft band to hide the seam."""
    radius = round(pixels)
    if radius <= 0:
        return mask
    counts = _box_count(np.asarray(mask) > 0, radius)
    share = np.clip(counts / (2 * radius + 1) ** 2 * 2, 0, 1)
    band = np.where(counts > 0, 48 + 207 * share, 0).astype(np.uint8)
    return ImageChops.lighter(mask, Image.fromarray(band, "L"))


def mask_of(image: Image.Image, mask: bytes | None) -> Image.Image:
    """L, 255 where the picture changes: the mask (white = change, resized to the image), else the
    transparent pixels of the image, else nothing."""
    if mask is not None:
        painted = open_image(mask).convert("L")
        return (
            painted if painted.size == image.size else painted.resize(image.size, Image.Resampling.BILINEAR)
        )
    if "A" in image.getbands() or "transparency" in image.info:
        return ImageOps.invert(image.convert("RGBA").getchannel("A"))
    return Image.new("L", image.size, 0)


def subject(image: Image.Image) -> Image.Image:
    """L, 255 on the subject: pixels unlike every colour on the image's border (its background)."""
    if "A" in image.getbands() and np.asarray(alpha := image.convert("RGBA").getchannel("A")).min() < 255:
        return alpha.point(lambda value: 255 if value >= 128 else 0)
    pixels = np.asarray(_rgb(image), dtype=np.int32)
    border = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
    strip = Image.fromarray(border.reshape(1, -1, 3).astype(np.uint8), "RGB").quantize(8)
    used = np.unique(np.asarray(strip))
    palette = np.array(strip.getpalette() or [], dtype=np.int32).reshape(-1, 3)[used]
    nearest = np.full(pixels.shape[:2], np.iinfo(np.int32).max, dtype=np.int64)
    for colour in palette:
        nearest = np.minimum(nearest, ((pixels - colour) ** 2).sum(axis=2))
    found = nearest > BACKGROUND_DISTANCE**2
    if found.mean() < MIN_SUBJECT_SHARE:
        # No subject stands out from the border (the sandbox's own pictures are textures): the centre,
        # an ellipse over half of each side, so that the cut is still plain to see.
        return _centre_ellipse(image.size)
    return Image.fromarray(np.where(found, 255, 0).astype(np.uint8), "L")


def _centre_ellipse(size: tuple[int, int]) -> Image.Image:
    width, height = size
    mask = Image.new("L", size, 0)
    ImageDraw.Draw(mask).ellipse(
        (width // 4, height // 4, width - width // 4, height - height // 4), fill=255
    )
    return mask


def _hsv(image: Image.Image) -> np.ndarray:
    return np.asarray(_rgb(image).convert("HSV"), dtype=np.float32) / 255


def named_hue(text: str) -> float | None:
    """The hue (0–1) of the first colour word in `text`, if any."""
    for word in re.findall(r"[a-z]+", text.lower()):
        if word in HUES:
            return HUES[word] / 360
    return None


def region(image: Image.Image, description: str) -> Image.Image:
    """L, 255 on what `description` names: pixels of a named colour ("the red car", "white", "grey"),
    otherwise the subject; a centred ellipse when that finds nothing."""
    hsv = _hsv(image)
    hue, saturation, value = hsv[..., 0], hsv[..., 1], hsv[..., 2]
    words = set(re.findall(r"[a-z]+", description.lower()))
    wanted = named_hue(description)
    if wanted is not None:
        distance = np.minimum(np.abs(hue - wanted), 1 - np.abs(hue - wanted))
        found = (distance < 1 / 12) & (saturation > 0.25) & (value > 0.15)
    elif words & {"white"}:
        found = (saturation < 0.2) & (value > 0.8)
    elif words & {"black"}:
        found = value < 0.2
    elif words & {"grey", "gray"}:
        found = (saturation < 0.15) & (value >= 0.2) & (value <= 0.8)
    else:
        found = np.asarray(subject(image)) > 0
    if found.any():
        return Image.fromarray(np.where(found, 255, 0).astype(np.uint8), "L")
    ellipse = Image.new("L", image.size, 0)
    width, height = image.size
    ImageDraw.Draw(ellipse).ellipse((width / 3, height / 3, width * 2 / 3, height * 2 / 3), fill=255)
    return ellipse


# --- edit ------------------------------------------------------------------------------------------------


def _surroundings(image: Image.Image, mask: Image.Image) -> Image.Image:
    """What the masked area would look like filled from around it: a normalised blur of the kept pixels."""
    scale = min(1.0, FILL_SIDE / max(image.size))
    small = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    pixels = np.asarray(image.resize(small, Image.Resampling.BILINEAR), dtype=np.float64)
    keep = 1 - np.asarray(mask.resize(small, Image.Resampling.BILINEAR), dtype=np.float64) / 255
    radius = max(2, max(small) // 8)
    weight = _box_count(keep, radius).astype(np.float64)
    if not keep.any():
        return Image.new("RGB", image.size, tuple(int(c) for c in pixels.reshape(-1, 3).mean(axis=0)))
    mean = pixels.reshape(-1, 3).T @ keep.reshape(-1) / keep.sum()
    fill = np.stack([_box_count(pixels[..., c] * keep, radius) for c in range(3)], axis=2)
    fill = np.where(weight[..., None] > 1e-6, fill / np.maximum(weight[..., None], 1e-6), mean)
    small_fill = Image.fromarray(np.clip(fill, 0, 255).astype(np.uint8), "RGB")
    return small_fill.resize(image.size, Image.Resampling.BICUBIC).filter(ImageFilter.GaussianBlur(2))


def erase(image: Image.Image, mask: bytes | None, grow_mask: float) -> Image.Image:
    change = grow(mask_of(image, mask), grow_mask)
    base = _rgb(image)
    return Image.composite(_surroundings(base, change), base, change)


def inpaint(image: Image.Image, mask: bytes | None, grow_mask: float, new: Image.Image) -> Image.Image:
    change = grow(mask_of(image, mask), grow_mask)
    return Image.composite(new, _rgb(image), change)


def outpaint(
    image: Image.Image, left: int, right: int, up: int, down: int, creativity: float, new: Image.Image
) -> Image.Image:
    """The canvas grown by each side: the original pixels unchanged at (left, up), the new area a blend
    of the stretched, blurred original (creativity 0) and a new picture (creativity 1)."""
    base = _rgb(image)
    backdrop = base.resize(new.size, Image.Resampling.BILINEAR).filter(ImageFilter.GaussianBlur(12))
    canvas = Image.blend(backdrop, new, creativity)
    canvas.paste(base, (left, up))
    return canvas


def search_and_replace(
    image: Image.Image, search_prompt: str, grow_mask: float, new: Image.Image
) -> Image.Image:
    change = grow(region(image, search_prompt), grow_mask)
    return Image.composite(new, _rgb(image), change)


def recolor(image: Image.Image, select_prompt: str, grow_mask: float, hue: float) -> Image.Image:
    """The selected region turned to `hue` (0–1), its lightness kept, its saturation at least 60 %."""
    base = _rgb(image)
    hsv = np.asarray(base.convert("HSV"), dtype=np.uint8).copy()
    hsv[..., 0] = round(hue * 255) % 256
    hsv[..., 1] = np.maximum(hsv[..., 1], 153)
    recoloured = Image.fromarray(hsv, "HSV").convert("RGB")
    return Image.composite(recoloured, base, grow(region(image, select_prompt), grow_mask))


def prompt_hue(prompt: str, model: str) -> float:
    """The colour a recolor prompt asks for: a colour word, else the prompt's first palette colour."""
    named = named_hue(prompt)
    if named is not None:
        return named
    red, green, blue = render.palette(((prompt, 1.0),), model)[0] / 255
    return colorsys.rgb_to_hsv(float(red), float(green), float(blue))[0]


def remove_background(image: Image.Image) -> Image.Image:
    """RGBA: the subject opaque with its own colours, the background fully transparent."""
    cut = _rgb(image).convert("RGBA")
    cut.putalpha(subject(image))
    return cut


def relight(
    subject_image: Image.Image,
    background: Image.Image | None,
    *,
    preserve_original_subject: float,
    original_background_depth: float,
    light_direction: str | None,
    light_reference: Image.Image | None,
    light_strength: float,
) -> Image.Image:
    """The subject over a new background (or its own, when `background` is None), then lit: brighter on
    the side the light comes from, or where the light reference is bright."""
    base = _rgb(subject_image)
    cut = subject(subject_image)
    if background is None:
        scenery = base
    else:
        fitted = ImageOps.fit(_rgb(background), base.size, Image.Resampling.BILINEAR)
        scenery = Image.blend(
            fitted, base.filter(ImageFilter.GaussianBlur(6)), original_background_depth * 0.5
        )
    average = tuple(int(c) for c in np.asarray(scenery, dtype=np.float32).reshape(-1, 3).mean(axis=0))
    harmonised = Image.blend(Image.new("RGB", base.size, average), base, 0.6)
    person = Image.blend(harmonised, base, preserve_original_subject)
    result = Image.composite(person, scenery, cut)
    if light_reference is None and light_direction is None:
        return result
    width, height = base.size
    lit: np.ndarray
    if light_reference is not None:
        lit = np.asarray(light_reference.convert("L").resize(base.size), dtype=np.float32) / 255
    else:
        across = np.linspace(1, 0, width, dtype=np.float32)[None, :].repeat(height, 0)
        down = np.linspace(1, 0, height, dtype=np.float32)[:, None].repeat(width, 1)
        lit = {"left": across, "right": across[:, ::-1], "above": down, "below": down[::-1]}[
            light_direction or "left"
        ]
    gain = 1 + light_strength * (lit - 0.5) * 1.2
    pixels = np.asarray(result, dtype=np.float32) * gain[..., None]
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")


# --- upscale ---------------------------------------------------------------------------------------------


def upscale(
    image: Image.Image, size: tuple[int, int], *, tint: tuple[int, int, int] | None = None
) -> Image.Image:
    return render.upscale(image, size, latent=tint is not None, tint=tint)


# --- control ---------------------------------------------------------------------------------------------


def _luminance(colour: np.ndarray) -> float:
    return float(colour @ np.array([0.299, 0.587, 0.114], dtype=np.float32))


def follow_layout(
    control: Image.Image, new: Image.Image, control_strength: float, *, sketch: bool
) -> Image.Image:
    """The new picture's colours laid out by the control image: its light parts light, its dark parts
    dark (a sketch's lines drawn in the darkest colour), by `control_strength`."""
    light = control.convert("L").resize(new.size, Image.Resampling.BILINEAR)
    colours = sorted(palette_of(new, 4), key=_luminance)
    # The prompt's hues, pushed towards black and white so that the layout reads at a glance.
    dark = tuple(int(c * 0.3) for c in colours[0])
    bright = tuple(int(c + (255 - c) * 0.6) for c in colours[-1])
    shaped = ImageOps.colorize(ImageOps.autocontrast(light), dark, bright)
    if sketch:
        lines = ImageOps.invert(light).point(lambda value: 255 if value > 96 else 0)
        shaped = Image.composite(Image.new("RGB", new.size, dark), shaped, lines)
    return Image.blend(new, shaped, control_strength)


def palette_of(image: Image.Image, colours: int) -> list[np.ndarray]:
    """The image's main colours (at most `colours`), as they appear in it."""
    small = _rgb(image).copy()
    small.thumbnail((96, 96))
    quantized = small.quantize(colours, dither=Image.Dither.NONE)
    table = np.array(quantized.getpalette() or [], dtype=np.float32).reshape(-1, 3)
    indices, counts = np.unique(np.asarray(quantized), return_counts=True)
    return [table[index] for index in indices[np.argsort(-counts, kind="stable")]]


def take_palette(image: Image.Image, reference: Image.Image, fidelity: float) -> Image.Image:
    """`image` painted in the reference's colours: each pixel takes the reference colour of the same
    rank of lightness; `fidelity` 1 leaves only the reference's colours."""
    colours = sorted(palette_of(reference, 4), key=_luminance)
    light = np.asarray(_rgb(image).convert("L"), dtype=np.float32)
    edges: Any = np.quantile(light, np.linspace(0, 1, len(colours) + 1)[1:-1]) if len(colours) > 1 else []
    rank = np.searchsorted(np.asarray(edges), light, side="right")
    table = np.array(colours, dtype=np.float32).round().astype(np.uint8)
    painted = Image.fromarray(table[rank], "RGB")
    return Image.blend(_rgb(image), painted, fidelity)


def style_transfer(
    init: Image.Image,
    style: Image.Image,
    new: Image.Image,
    *,
    style_strength: float,
    composition_fidelity: float,
    change_strength: float,
) -> Image.Image:
    """The init image's composition in the style image's colours."""
    base = _rgb(init).resize(new.size, Image.Resampling.LANCZOS)
    composition = Image.blend(new, base, composition_fidelity)
    styled = take_palette(composition, style, style_strength)
    return Image.blend(base, styled, change_strength)
