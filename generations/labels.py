"""What people call the API's values: engines by their full names, samplers as they are written in the
tools people know, sizes by their shape. One place, used by the form, the pages (`{% load labels %}`) and
the estimate."""

import math
import re
from fractions import Fraction
from typing import TYPE_CHECKING

from django.utils.formats import localize

from generations.stability.contract import CLIP_GUIDANCE_PRESETS, ENGINES, SAMPLERS, STYLE_PRESETS
from generations.stable_image import operation_name

if TYPE_CHECKING:
    from generations.models import GenerationJob

TIMES = "×"  # the one multiplication sign, in sizes and counts

# The contract's names are the API's; these are the ones on the release notes and in people's mouths.
ENGINE_NAMES = {
    "stable-diffusion-xl-1024-v1-0": "Stable Diffusion XL 1.0",
    "stable-diffusion-xl-1024-v0-9": "Stable Diffusion XL 0.9",
    "stable-diffusion-v1-6": "Stable Diffusion 1.6",
    "stable-diffusion-512-v2-1": "Stable Diffusion 2.1",
    "stable-diffusion-768-v2-1": "Stable Diffusion 2.1 (768)",
    "esrgan-v1-x2plus": f"Real-ESRGAN {TIMES}2",
    "stable-diffusion-x4-latent-upscaler": f"Stable Diffusion {TIMES}4 Latent Upscaler",
}

SAMPLER_LABELS = {
    "DDIM": "DDIM",
    "DDPM": "DDPM",
    "K_DPMPP_2M": "DPM++ 2M",
    "K_DPMPP_2S_ANCESTRAL": "DPM++ 2S a",
    "K_DPM_2": "K-DPM 2",
    "K_DPM_2_ANCESTRAL": "K-DPM 2 a",
    "K_EULER": "Euler",
    "K_EULER_ANCESTRAL": "Euler a",
    "K_HEUN": "Heun",
    "K_LMS": "LMS",
}
ENGINE_CHOOSES_SAMPLER = "Engine's choice"

STYLE_LABELS = {
    "3d-model": "3D model",
    "analog-film": "Analog film",
    "anime": "Anime",
    "cinematic": "Cinematic",
    "comic-book": "Comic book",
    "digital-art": "Digital art",
    "enhance": "Enhance",
    "fantasy-art": "Fantasy art",
    "isometric": "Isometric",
    "line-art": "Line art",
    "low-poly": "Low poly",
    "modeling-compound": "Modeling compound",
    "neon-punk": "Neon punk",
    "origami": "Origami",
    "photographic": "Photographic",
    "pixel-art": "Pixel art",
    "tile-texture": "Tile texture",
}
CLIP_GUIDANCE_LABELS = {
    "NONE": "None",
    "FAST_BLUE": "Fast blue",
    "FAST_GREEN": "Fast green",
    "SIMPLE": "Simple",
    "SLOW": "Slow",
    "SLOWER": "Slower",
    "SLOWEST": "Slowest",
}

# Landscape ratios people name (their portrait twins are the same turned round).
COMMON_RATIOS = ((1, 1), (5, 4), (9, 7), (4, 3), (3, 2), (16, 10), (16, 9), (2, 1), (21, 9))
# How far (in log of the ratio) a size may be from a common ratio and still be called by it: 1216x832
# is 3:2 to anyone choosing it, 1x3 is not 9:21.
RATIO_TOLERANCE = 0.08
SIZE = re.compile(r"\s*(\d{1,5})\s*[x×]\s*(\d{1,5})\s*")


def engine_name(engine_id: str) -> str:
    """The engine's full name ("Stable Diffusion XL 1.0"); an engine Studio does not know, its id."""
    if engine_id in ENGINE_NAMES:
        return ENGINE_NAMES[engine_id]
    if name := operation_name(engine_id):
        return name
    spec = ENGINES.get(engine_id)
    return spec.name if spec else engine_id


def sampler_label(sampler: str | None) -> str:
    """The sampler as people write it ("DPM++ 2M", "Euler a"); none chosen, the engine's choice."""
    if not sampler:
        return ENGINE_CHOOSES_SAMPLER
    return SAMPLER_LABELS.get(sampler, sampler)


def style_label(style: str | None) -> str:
    if not style:
        return "No style"
    return STYLE_LABELS.get(style, style)


def clip_guidance_label(preset: str | None) -> str:
    return CLIP_GUIDANCE_LABELS.get(preset or "NONE", preset or "None")


def parse_size(size: str | tuple[int, int] | list[int]) -> tuple[int, int] | None:
    """(width, height) from "1216x832", "1216 × 832" or a pair; None when it is neither."""
    if isinstance(size, tuple | list):
        if len(size) == 2 and all(isinstance(side, int) for side in size):
            return int(size[0]), int(size[1])
        return None
    match = SIZE.fullmatch(str(size))
    return (int(match[1]), int(match[2])) if match else None


def aspect_ratio(width: int, height: int) -> tuple[int, int]:
    """The ratio people would name for the size: exact when it is a common one, else the nearest common
    one, else the exact ratio (as width:height)."""
    long, short = max(width, height), min(width, height)
    exact = Fraction(long, short)
    if (exact.numerator, exact.denominator) in COMMON_RATIOS:
        best = (exact.numerator, exact.denominator)
    else:
        best = min(COMMON_RATIOS, key=lambda ratio: abs(math.log(long / short * ratio[1] / ratio[0])))
        if abs(math.log(long / short * best[1] / best[0])) > RATIO_TOLERANCE:
            best = (exact.numerator, exact.denominator)
    return best if width >= height else (best[1], best[0])


def size_label(size: str | tuple[int, int] | list[int]) -> str:
    """ "1216x832" → "3:2 landscape, 1216 × 832"; squares and portraits likewise. Anything else as given."""
    parsed = parse_size(size)
    if parsed is None or 0 in parsed:
        return str(size)
    width, height = parsed
    across, down = aspect_ratio(width, height)
    shape = "square" if width == height else "landscape" if width > height else "portrait"
    return f"{across}:{down} {shape}, {width} {TIMES} {height}"


def dimensions(width: int, height: int) -> str:
    """ "1216 × 832": a size without its shape."""
    return f"{width} {TIMES} {height}"


def job_settings(job: "GenerationJob") -> str:
    """A job's card line: "Text to image · 4 images, 1:1 square, 1024 × 1024 · Stable Diffusion XL 1.0",
    then its style, image strength and step schedule when it has them (numbers as templates show them)."""
    kind = job.get_kind_display()
    if job.kind == "upscale":
        kind += f" {TIMES}{localize(job.upscale_factor)}"
    parts = [
        kind,
        f"{job.samples} image{'' if job.samples == 1 else 's'}, {size_label(job.size)}",
        engine_name(job.engine_id),
    ]
    if job.style_preset:
        parts.append(style_label(job.style_preset))
    if job.image_strength is not None:
        parts.append(f"strength {localize(job.image_strength)}")
    if job.init_image_mode == "STEP_SCHEDULE":
        parts.append(f"schedule {localize(job.step_schedule_start)}–{localize(job.step_schedule_end or '0')}")
    return " · ".join(parts)


def sampler_choices() -> list[tuple[str, str]]:
    return [("", ENGINE_CHOOSES_SAMPLER)] + [(value, sampler_label(value)) for value in SAMPLERS]


def style_choices() -> list[tuple[str, str]]:
    return [("", "No style")] + [(value, style_label(value)) for value in STYLE_PRESETS]


def clip_guidance_choices() -> list[tuple[str, str]]:
    return [(value, clip_guidance_label(value)) for value in CLIP_GUIDANCE_PRESETS]


# --- Stable Image fields -----------------------------------------------------------------------------

# Plain words for the contract's field names; a name not here is shown as it is written, capitalised.
FIELD_LABELS = {
    "prompt": "Prompt",
    "negative_prompt": "Negative prompt (what to avoid)",
    "search_prompt": "What to replace",
    "select_prompt": "What to recolour",
    "creativity": "Creativity",
    "grow_mask": "Grow the mask by (pixels)",
    "left": "Left",
    "right": "Right",
    "up": "Up",
    "down": "Down",
    "control_strength": "How closely to follow the image",
    "fidelity": "How closely to follow the style",
    "aspect_ratio": "Aspect ratio",
    "style_preset": "Style",
    "seed": "Seed",
    "background_prompt": "New background",
    "foreground_prompt": "The subject",
    "preserve_original_subject": "Keep the subject as it is",
    "original_background_depth": "Keep the original background's depth",
    "keep_original_background": "Keep the original background",
    "light_source_direction": "Light comes from",
    "light_source_strength": "Light strength",
    "style_strength": "Style strength",
    "composition_fidelity": "Keep the composition",
    "change_strength": "How much may change",
    "style_image": "Style image",
    "background_reference": "Background image",
    "mask": "Area to change",
}


def field_label(name: str) -> str:
    """A Stable Image field as a person reads it ("grow_mask" → "Grow the mask by (pixels)")."""
    return FIELD_LABELS.get(name, name.replace("_", " ").capitalize())


# Options a Stable Image job's settings list leaves out: shown elsewhere (prompts) or Studio's own choice.
NOT_LISTED = ("prompt", "negative_prompt", "model", "mode", "output_format")


def stable_image_settings(options: dict[str, object]) -> list[tuple[str, str]]:
    """What a Stable Image job chose beyond its prompts, as (label, value) for its page."""
    rows = []
    for name, value in options.items():
        if name in NOT_LISTED:
            continue
        shown = style_label(str(value)) if name == "style_preset" else str(value)
        if isinstance(value, bool):
            shown = "Yes" if value else "No"
        rows.append((field_label(name), shown))
    return rows
