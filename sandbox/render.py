"""Procedural previews: deterministic pictures drawn from the prompt, seed and parameters.

Not a diffusion model. Each parameter has an effect a person can see: the prompt picks the palette and
composition, the seed the arrangement, steps the amount of detail, cfg_scale the contrast and
saturation, and each style preset a look of its own.
"""

import hashlib
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageChops, ImageDraw, ImageEnhance, ImageFilter, ImageOps

PNG_COMPRESS_LEVEL = 1  # speed over size: these are previews


@dataclass(frozen=True)
class Scene:
    engine_id: str
    prompts: tuple[tuple[str, float], ...]
    seed: int
    width: int
    height: int
    steps: int = 30
    cfg_scale: float = 7.0
    style_preset: str | None = None
    sampler: str | None = None


def _digest(*parts: object) -> bytes:
    return hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()


def palette(prompts: Sequence[tuple[str, float]], engine_id: str) -> np.ndarray:
    """Four colours from the positive prompts; negative prompts pull saturation down."""
    positive = [text.lower().strip() for text, weight in prompts if weight > 0]
    negative = [text.lower().strip() for text, weight in prompts if weight < 0]
    digest = _digest(engine_id, *positive)
    hues = [(digest[i] / 255 + i * 0.23) % 1.0 for i in range(4)]
    saturation = 0.75 - 0.25 * min(len(negative), 2) / 2
    colours = []
    for index, hue in enumerate(hues):
        value = 0.35 + 0.6 * digest[8 + index] / 255
        rgb = Image.new("HSV", (1, 1), (int(hue * 255), int(saturation * 255), int(value * 255))).convert(
            "RGB"
        )
        colours.append(rgb.getpixel((0, 0)))
    return np.array(colours, dtype=np.float32)


def _noise_field(rng: np.random.Generator, width: int, height: int, octaves: int) -> np.ndarray:
    """Smooth value noise in [0, 1]: random grids, upsampled bicubically and summed."""
    field = np.zeros((height, width), dtype=np.float32)
    amplitude, total = 1.0, 0.0
    for octave in range(octaves):
        cells = 3 * 2**octave
        grid = rng.random((cells, cells), dtype=np.float32)
        layer = Image.fromarray(grid, mode="F").resize((width, height), Image.Resampling.BICUBIC)
        field += amplitude * np.asarray(layer, dtype=np.float32)
        total += amplitude
        amplitude *= 0.5
    field /= total
    low, high = float(field.min()), float(field.max())
    return (field - low) / max(high - low, 1e-6)


def _base(scene: Scene) -> Image.Image:
    colours = palette(scene.prompts, scene.engine_id)
    rng = np.random.default_rng(int.from_bytes(_digest(scene.seed, scene.prompts, scene.sampler)[:8], "big"))
    octaves = 2 + round((scene.steps - 10) / 40 * 4)  # 10 steps: soft; 50 steps: fine detail
    field = _noise_field(rng, scene.width, scene.height, octaves)
    # A three-stop gradient through the palette, by the noise field.
    t = field[..., None]
    low = colours[0] + (colours[1] - colours[0]) * np.clip(t * 2, 0, 1)
    high = colours[1] + (colours[2] - colours[1]) * np.clip(t * 2 - 1, 0, 1)
    pixels = np.where(t < 0.5, low, high)
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(image, "RGBA")
    accent = tuple(int(c) for c in colours[3])
    shortest = min(scene.width, scene.height)
    for _ in range(3 + int(rng.integers(0, 5))):
        x, y = rng.random(2) * (scene.width, scene.height)
        radius = shortest * (0.05 + 0.2 * rng.random())
        alpha = int(90 + 120 * rng.random())
        draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=(*accent, alpha))
    # cfg_scale: how strongly the picture commits to its palette.
    strength = 0.55 + scene.cfg_scale / 35 * 1.1
    image = ImageEnhance.Contrast(image).enhance(strength)
    return ImageEnhance.Color(image).enhance(strength)


def _tint(image: Image.Image, colour: tuple[int, int, int], amount: float) -> Image.Image:
    return Image.blend(image, Image.new("RGB", image.size, colour), amount)


def _edges(image: Image.Image) -> Image.Image:
    return image.convert("L").filter(ImageFilter.FIND_EDGES).point(lambda v: 255 if v > 24 else 0)


def _mosaic(image: Image.Image, block: int) -> Image.Image:
    small = image.resize(
        (max(1, image.width // block), max(1, image.height // block)), Image.Resampling.BILINEAR
    )
    return small.resize(image.size, Image.Resampling.NEAREST)


def _comic(image: Image.Image) -> Image.Image:
    flat = ImageOps.posterize(image, 2)
    return ImageChops.multiply(flat, ImageOps.invert(_edges(image)).convert("RGB"))


def _neon(image: Image.Image) -> Image.Image:
    dark = ImageEnhance.Brightness(image).enhance(0.35)
    glow = ImageOps.colorize(_edges(image).filter(ImageFilter.GaussianBlur(2)), "black", "#ff2bd6")
    return ImageChops.add(dark, glow)


def _film(image: Image.Image) -> Image.Image:
    sepia = ImageOps.colorize(image.convert("L"), "#2b1d0e", "#f3e2c0")
    grain = np.random.default_rng(7).normal(0, 12, (image.height, image.width, 1))
    return Image.fromarray(np.clip(np.asarray(sepia, dtype=np.float32) + grain, 0, 255).astype(np.uint8))


def _cinematic(image: Image.Image) -> Image.Image:
    graded = ImageOps.colorize(image.convert("L"), "#0b3b4a", "#ffb46b", mid="#6d7b7f")
    bars = ImageDraw.Draw(graded)
    bar = image.height // 8
    bars.rectangle((0, 0, image.width, bar), fill="black")
    bars.rectangle((0, image.height - bar, image.width, image.height), fill="black")
    return graded


def _isometric(image: Image.Image) -> Image.Image:
    out = image.copy()
    draw = ImageDraw.Draw(out, "RGBA")
    step = max(16, image.width // 12)
    for offset in range(-image.height, image.width + image.height, step):
        draw.line((offset, 0, offset + image.height * 0.58, image.height), fill=(255, 255, 255, 70), width=2)
        draw.line((offset, image.height, offset + image.height * 0.58, 0), fill=(255, 255, 255, 70), width=2)
    return out


def _vignette(image: Image.Image) -> Image.Image:
    """Darker corners, as through a lens."""
    shade = Image.radial_gradient("L").resize(image.size).point(lambda v: 255 - int(v * 0.8))
    return ImageChops.multiply(image, Image.merge("RGB", (shade, shade, shade)))


def _tile(image: Image.Image) -> Image.Image:
    quarter = image.crop((0, 0, image.width // 2, image.height // 2))
    top = Image.new("RGB", image.size)
    top.paste(quarter, (0, 0))
    top.paste(ImageOps.mirror(quarter), (image.width // 2, 0))
    top.paste(ImageOps.flip(quarter), (0, image.height // 2))
    top.paste(ImageOps.flip(ImageOps.mirror(quarter)), (image.width // 2, image.height // 2))
    return top


STYLES: dict[str, Callable[[Image.Image], Image.Image]] = {
    "enhance": lambda im: ImageEnhance.Contrast(im.filter(ImageFilter.SHARPEN)).enhance(1.25),
    "anime": lambda im: ImageOps.posterize(im.filter(ImageFilter.SMOOTH_MORE), 3).filter(
        ImageFilter.EDGE_ENHANCE
    ),
    "photographic": lambda im: _vignette(
        ImageEnhance.Contrast(im.filter(ImageFilter.GaussianBlur(1.5))).enhance(1.3)
    ),
    "digital-art": lambda im: ImageEnhance.Color(im).enhance(1.8).filter(ImageFilter.EDGE_ENHANCE_MORE),
    "comic-book": _comic,
    "fantasy-art": lambda im: Image.blend(
        _tint(im, (120, 60, 180), 0.3), im.filter(ImageFilter.GaussianBlur(6)), 0.3
    ),
    "line-art": lambda im: ImageOps.invert(_edges(im)).convert("RGB"),
    "analog-film": _film,
    "neon-punk": _neon,
    "isometric": _isometric,
    "low-poly": lambda im: _mosaic(im, 32).filter(ImageFilter.EDGE_ENHANCE),
    "origami": lambda im: im.quantize(6).convert("RGB").filter(ImageFilter.EMBOSS).filter(ImageFilter.SMOOTH),
    "modeling-compound": lambda im: Image.blend(
        im.filter(ImageFilter.GaussianBlur(5)), im.filter(ImageFilter.EMBOSS), 0.35
    ),
    "cinematic": _cinematic,
    "3d-model": lambda im: Image.blend(im, im.convert("L").filter(ImageFilter.EMBOSS).convert("RGB"), 0.45),
    "pixel-art": lambda im: _mosaic(im, 16).quantize(16).convert("RGB"),
    "tile-texture": _tile,
}


def generate(scene: Scene) -> Image.Image:
    image = _base(scene)
    if scene.style_preset:
        image = STYLES[scene.style_preset](image)
    return image.convert("RGB")


def blur(image: Image.Image) -> Image.Image:
    """What the content filter returns: the picture, unrecognisable."""
    return image.filter(ImageFilter.GaussianBlur(max(image.size) / 24))


def from_init(init: Image.Image, generated: Image.Image, change: float) -> Image.Image:
    """Image-to-image: `change` 0 keeps the init image, 1 is the new picture."""
    return Image.blend(init.convert("RGB"), generated, max(0.0, min(1.0, change)))


def inpaint(init: Image.Image, generated: Image.Image, replace: Image.Image) -> Image.Image:
    """Masking: `replace` (L) 255 takes the new picture, 0 keeps the init pixel exactly, grey is linear."""
    return Image.composite(generated, init.convert("RGB"), replace)


def upscale(
    image: Image.Image, size: tuple[int, int], *, latent: bool, tint: tuple[int, int, int] | None
) -> Image.Image:
    larger = image.convert("RGB").resize(size, Image.Resampling.LANCZOS)
    larger = larger.filter(ImageFilter.UnsharpMask(radius=2, percent=70 if latent else 50))
    return _tint(larger, tint, 0.06) if latent and tint else larger


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG", compress_level=PNG_COMPRESS_LEVEL)
    return buffer.getvalue()
