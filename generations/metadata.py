"""Metadata in every file: A1111's `parameters` text, which existing tools read, and Studio's own JSON (the
exact API request, engine, job and parent). One function builds both from the job's row; it is what the
stored PNG carries and what the image page shows. The reverse reads a dropped PNG's parameters back."""

import json
import re
import struct
from dataclasses import dataclass
from typing import Any

from generations import png_text, stable_image
from generations.forms import NEGATIVE_WEIGHT
from generations.models import MAX_LINEAGE_DEPTH, GalleryImage, GenerationJob
from generations.stability.contract import SAMPLERS, Prompt
from generations.stability.types import TextToImageRequest, UpscaleRequest
from generations.stability.v2beta.contract import OPERATIONS as STABLE_IMAGE_OPERATIONS

PARAMETERS_KEYWORD = "parameters"  # A1111's, read by its PNG Info tab and by third-party readers
STUDIO_KEYWORD = "studio"
STUDIO_FORMAT = 1

# Stability's names for the k-diffusion samplers and A1111's for the same ones, so that A1111 can use the
# text as it is (and Studio can read A1111's back).
A1111_SAMPLERS = {
    "DDIM": "DDIM",
    "DDPM": "DDPM",
    "K_DPMPP_2M": "DPM++ 2M",
    "K_DPMPP_2S_ANCESTRAL": "DPM++ 2S a",
    "K_DPM_2": "DPM2",
    "K_DPM_2_ANCESTRAL": "DPM2 a",
    "K_EULER": "Euler",
    "K_EULER_ANCESTRAL": "Euler a",
    "K_HEUN": "Heun",
    "K_LMS": "LMS",
}
AUTOMATIC = "Automatic"  # the sampler when the engine chose it
SCHEDULE_SUFFIXES = (" karras", " exponential", " uniform")  # A1111 < 1.9 wrote the schedule in the name
OPERATIONS: dict[str, str] = {
    GenerationJob.Kind.TEXT_TO_IMAGE: "text-to-image",
    GenerationJob.Kind.IMAGE_TO_IMAGE: "image-to-image",
    GenerationJob.Kind.MASKING: "image-to-image/masking",
    GenerationJob.Kind.UPSCALE: "image-to-image/upscale",
}
NO_PARAMETERS = (
    "This PNG carries no generation parameters: it was not saved by Studio or A1111, or its metadata "
    "was removed."
)


class MetadataUnreadable(ValueError):
    """A PNG whose parameters cannot be read; `message` is a sentence to show next to the field."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


# --- writing -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImageMetadata:
    parameters: str
    studio: dict[str, Any]

    @property
    def studio_json(self) -> str:
        return json.dumps(self.studio, indent=2, ensure_ascii=False)


def image_metadata(
    job: GenerationJob,
    *,
    index: int,
    seed: int,
    width: int,
    height: int,
    request_json: dict[str, Any] | None = None,
) -> ImageMetadata:
    """What one image of the job carries. `request_json` is the body sent, when the caller has it;
    otherwise it is the one the job's row stands for."""
    return ImageMetadata(
        parameters=parameters_text(job, seed=seed),
        studio=studio_document(
            job, index=index, seed=seed, width=width, height=height, request_json=request_json
        ),
    )


def metadata_of(image: GalleryImage) -> ImageMetadata:
    return image_metadata(
        image.job, index=image.index, seed=image.seed, width=image.width, height=image.height
    )


def png_with_metadata(
    png: bytes, *, job: GenerationJob, index: int, seed: int, request_json: dict[str, Any] | None = None
) -> bytes:
    """The PNG with a `parameters` chunk and a `studio` iTXt chunk spliced in; its pixels (the IDAT bytes)
    are copied untouched. Raises png_text.PngDamaged for bytes that are not a PNG."""
    width, height = struct.unpack(">II", png[16:24]) if len(png) >= 24 else (0, 0)  # IHDR
    metadata = image_metadata(
        job, index=index, seed=seed, width=width, height=height, request_json=request_json
    )
    studio = json.dumps(metadata.studio, ensure_ascii=False, separators=(",", ":"))
    return png_text.with_texts(
        png,
        {
            PARAMETERS_KEYWORD: png_text.text_chunk(PARAMETERS_KEYWORD, metadata.parameters),
            STUDIO_KEYWORD: png_text.text_chunk(STUDIO_KEYWORD, studio, utf8=True),
        },
    )


def split_prompts(prompts: tuple[Prompt, ...], fallback: str = "") -> tuple[str, str, list[Prompt]]:
    """The form's view of the prompts sent: the first positive one, the negative one (weight -1), and the
    rest with their weights."""
    positive = next((p for p in prompts if p.weight > 0), None)
    negative = next((p for p in prompts if p.weight == NEGATIVE_WEIGHT), None)
    others = [p for p in prompts if p is not positive and p is not negative]
    return (positive.text if positive else fallback), (negative.text if negative else ""), others


def _quote(value: object) -> str:
    """A1111's rule: a value holding a comma, colon or newline is written as a JSON string."""
    text = str(value)
    if "," in text or ":" in text or "\n" in text:
        return json.dumps(text, ensure_ascii=False)
    return text


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _origin(job: GenerationJob, seed: int) -> tuple[GenerationJob, int, list[GenerationJob]]:
    """The job that drew the picture, its seed, and the upscales after it: like A1111's extras tab, an
    upscale keeps its source's parameters (one query per upscale step)."""
    upscales: list[GenerationJob] = []
    while job.kind == GenerationJob.Kind.UPSCALE and job.parent is not None:
        if len(upscales) >= MAX_LINEAGE_DEPTH:
            break
        upscales.append(job)
        parent = job.parent
        job, seed = parent.job, parent.seed
    return job, seed, upscales


def parameters_text(job: GenerationJob, *, seed: int) -> str:
    """A1111's infotext: the prompt, `Negative prompt: …`, then one line of `Key: value` settings."""
    origin, seed, upscales = _origin(job, seed)
    prompt, negative, others = split_prompts(origin.prompts, origin.prompt)
    settings: dict[str, str] = {}
    if origin.is_stable_image:  # no steps or sampler; CFG only where the model takes one
        if "cfg_scale" in origin.options:
            settings["CFG scale"] = _number(origin.cfg_scale)
        settings["Seed"] = str(seed)
    elif origin.kind != GenerationJob.Kind.UPSCALE:
        settings["Steps"] = str(origin.steps)
        settings["Sampler"] = A1111_SAMPLERS.get(origin.sampler, origin.sampler) or AUTOMATIC
        settings["CFG scale"] = _number(origin.cfg_scale)
        settings["Seed"] = str(seed)
    settings["Size"] = origin.size
    settings["Model"] = origin.engine_id
    if origin.kind == GenerationJob.Kind.IMAGE_TO_IMAGE:
        # A1111's denoising strength is how much may change; Stability's image strength how much stays.
        if origin.init_image_mode == "STEP_SCHEDULE":
            settings["Denoising strength"] = _number(origin.step_schedule_start or 0)
        elif origin.image_strength is not None:
            settings["Denoising strength"] = _number(round(1 - origin.image_strength, 6))
    if origin.kind == GenerationJob.Kind.MASKING:
        settings["Mask source"] = origin.mask_source
    if origin.style_preset:
        settings["Style preset"] = origin.style_preset
    if origin.clip_guidance_preset and origin.clip_guidance_preset != "NONE":
        settings["CLIP guidance"] = origin.clip_guidance_preset
    if others:
        settings["Extra prompts"] = "\n".join(f"{p.text} | {p.weight:g}" for p in others)
    if upscales:
        factor = job.width / origin.width if origin.width else 0
        settings["Postprocess upscale by"] = _number(round(factor, 3))
        settings["Postprocess upscaler"] = " + ".join(step.engine_id for step in reversed(upscales))
    settings["Studio job"] = str(job.pk)
    negative_line = f"\nNegative prompt: {negative}" if negative else ""
    line = ", ".join(f"{key}: {_quote(value)}" for key, value in settings.items())
    return f"{prompt}{negative_line}\n{line}".strip()


def _api_request(job: GenerationJob) -> tuple[str, dict[str, Any], list[str]]:
    """The content type, body and file parts the client sends for the job's row (files are named, not
    embedded)."""
    if job.is_stable_image:
        columns = stable_image.columns_of(job.operation)
        files = [name for name, column in columns.items() if getattr(job, column)]
        return "multipart/form-data", {**job.options, "output_format": stable_image.OUTPUT_FORMAT}, files
    request = job.to_request()
    if isinstance(request, TextToImageRequest):
        return "application/json", request.to_json(), []
    fields = (
        request.form_fields(job.engine_id) if isinstance(request, UpscaleRequest) else request.form_fields()
    )
    return "multipart/form-data", fields, list(request.files())


def _endpoint(job: GenerationJob) -> str:
    if job.is_stable_image:
        return f"POST {STABLE_IMAGE_OPERATIONS[job.operation].path}"
    return f"POST /v1/generation/{job.engine_id}/{OPERATIONS[job.kind]}"


def studio_document(
    job: GenerationJob,
    *,
    index: int,
    seed: int,
    width: int,
    height: int,
    request_json: dict[str, Any] | None = None,
) -> dict[str, Any]:
    content_type, body, files = _api_request(job)
    return {
        "generator": "Studio",
        "format": STUDIO_FORMAT,
        "job_id": str(job.pk),
        "image_index": index,
        "parent_image_id": str(job.parent_id) if job.parent_id else None,
        "relation": job.relation or None,
        "kind": job.kind,
        "engine_id": job.engine_id,
        "endpoint": _endpoint(job),
        "content_type": content_type,
        "request": request_json if request_json is not None else body,
        "files": files,
        "seed": seed,
        "width": width,
        "height": height,
    }


# --- reading -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ParsedParameters:
    """A PNG's generation parameters, as far as it gives them (None: not said)."""

    source: str  # "Studio" or "A1111"
    prompt: str
    negative_prompt: str = ""
    extra_prompts: tuple[Prompt, ...] = ()
    steps: int | None = None
    cfg_scale: float | None = None
    seed: int | None = None
    sampler: str | None = None  # as written: A1111's name, Stability's, or "Automatic"
    width: int | None = None
    height: int | None = None
    model: str = ""
    samples: int | None = None
    style_preset: str = ""
    clip_guidance_preset: str = ""
    init_image_mode: str = ""
    image_strength: float | None = None
    step_schedule_start: float | None = None
    step_schedule_end: float | None = None


def stability_sampler(name: str) -> str | None:
    """Stability's name for a sampler named by A1111 or by Stability; "" for the engine's choice, None when
    the API has no such sampler."""
    key = name.strip().lower()
    if key in ("", AUTOMATIC.lower()):
        return ""
    for suffix in SCHEDULE_SUFFIXES:
        key = key.removesuffix(suffix)
    by_name = {a1111.lower(): stability for stability, a1111 in A1111_SAMPLERS.items()}
    return by_name.get(key) or next((s for s in SAMPLERS if s.lower() == key), None)


def parameters_from_png(data: bytes) -> ParsedParameters:
    """The parameters of a PNG made by Studio (its JSON, exact) or by A1111 (its `parameters` text)."""
    try:
        found = png_text.texts(data)
        studio_text = png_text.read_text(found[STUDIO_KEYWORD]) if STUDIO_KEYWORD in found else None
        parameters = png_text.read_text(found[PARAMETERS_KEYWORD]) if PARAMETERS_KEYWORD in found else None
    except png_text.PngDamaged as exc:
        raise MetadataUnreadable(exc.message) from exc
    if studio_text is not None:
        try:
            parsed = _from_studio(studio_text)
        except MetadataUnreadable:
            if parameters is None:
                raise
            parsed = None  # damaged Studio JSON beside readable A1111 text: read the text
        if parsed is not None:
            return parsed
    if parameters is not None:
        return _from_a1111(parameters)
    raise MetadataUnreadable(NO_PARAMETERS)


def _from_studio(text: str) -> ParsedParameters | None:
    """Studio's JSON, or None for an upscale's: its request has no prompt, and its parameters text
    describes the picture's source."""
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise MetadataUnreadable("The PNG's Studio metadata is not valid JSON.") from exc
    if (
        not isinstance(document, dict)
        or document.get("generator") != "Studio"
        or not isinstance(document.get("request"), dict)
    ):
        raise MetadataUnreadable("The PNG's Studio metadata is not in Studio's format.")
    if document.get("kind") == GenerationJob.Kind.UPSCALE:
        return None
    request: dict[str, Any] = document["request"]
    try:
        prompts = _request_prompts(request)
        prompt, negative, others = split_prompts(prompts)

        def number(name: str, kind: type[int] | type[float], source: dict[str, Any] = request) -> Any:
            value = source.get(name)
            return None if value is None else kind(str(value))

        return ParsedParameters(
            source="Studio",
            prompt=prompt,
            negative_prompt=negative,
            extra_prompts=tuple(others),
            steps=number("steps", int),
            cfg_scale=number("cfg_scale", float),
            seed=number("seed", int, document),
            sampler=str(request.get("sampler") or ""),
            # The size asked for (text to image), else the picture's (the init image's).
            width=number("width", int, request if "width" in request else document),
            height=number("height", int, request if "height" in request else document),
            model=str(document.get("engine_id") or ""),
            samples=number("samples", int),
            style_preset=str(request.get("style_preset") or ""),
            clip_guidance_preset=str(request.get("clip_guidance_preset") or ""),
            init_image_mode=str(request.get("init_image_mode") or ""),
            image_strength=number("image_strength", float),
            step_schedule_start=number("step_schedule_start", float),
            step_schedule_end=number("step_schedule_end", float),
        )
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise MetadataUnreadable("The PNG's Studio metadata has a value that is not a number.") from exc


def _request_prompts(request: dict[str, Any]) -> tuple[Prompt, ...]:
    """The prompts of a JSON body ([{text, weight}]) or of multipart fields (text_prompts[0][text], …)."""
    if isinstance(request.get("text_prompts"), list):
        return tuple(Prompt(str(p["text"]), float(p.get("weight", 1.0))) for p in request["text_prompts"])
    if isinstance(request.get("prompt"), str):  # a Stable Image request: one prompt and a negative one
        negative = request.get("negative_prompt")
        return (Prompt(request["prompt"]),) + ((Prompt(negative, NEGATIVE_WEIGHT),) if negative else ())
    prompts = []
    index = 0
    while f"text_prompts[{index}][text]" in request:
        weight = request.get(f"text_prompts[{index}][weight]", 1.0)
        prompts.append(Prompt(str(request[f"text_prompts[{index}][text]"]), float(weight)))
        index += 1
    return tuple(prompts)


# A1111's own pattern for one `Key: value` of the settings line (modules/infotext_utils.py).
SETTING = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')
SIZE = re.compile(r"^(\d{1,5})x(\d{1,5})$")
CORE_SETTINGS = {"Steps", "Sampler", "CFG scale", "Seed", "Size", "Model"}
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
MAX_PARAMETERS_LENGTH = 64 * 1024
NOT_A1111 = (
    "The PNG's “parameters” text is not in A1111's format: it has no line of settings like "
    "“Steps: 30, Sampler: Euler a, CFG scale: 7, Seed: 1”."
)


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        try:
            return str(json.loads(value))
        except ValueError:
            return value
    return value


def _from_a1111(text: str) -> ParsedParameters:
    """Read as A1111 reads it: prompt lines, `Negative prompt:` lines, and a last line of settings."""
    if len(text) > MAX_PARAMETERS_LENGTH or CONTROL.search(text):
        raise MetadataUnreadable("The PNG's “parameters” text is not text: it holds binary data.")
    *lines, last = text.strip().replace("\r\n", "\n").split("\n")
    settings = {key: _unquote(value.strip()) for key, value in SETTING.findall(last)}
    if len(CORE_SETTINGS & settings.keys()) < 3:
        raise MetadataUnreadable(NOT_A1111)
    prompt_lines: list[str] = []
    negative_lines: list[str] = []
    for line in lines:
        if line.startswith("Negative prompt:"):
            negative_lines.append(line.removeprefix("Negative prompt:").strip())
        elif negative_lines:
            negative_lines.append(line)
        else:
            prompt_lines.append(line)

    def number(key: str, kind: type[int] | type[float]) -> Any:
        if key not in settings:
            return None
        try:
            return kind(settings[key])
        except ValueError:
            what = "a whole number" if kind is int else "a number"
            raise MetadataUnreadable(
                f"The PNG's parameters say “{key}: {settings[key][:40]}”, which is not {what}."
            ) from None

    width = height = None
    if "Size" in settings:
        size = SIZE.match(settings["Size"])
        if not size:
            raise MetadataUnreadable(
                f"The PNG's parameters say “Size: {settings['Size'][:40]}”, which is not a size like 512x512."
            )
        width, height = int(size[1]), int(size[2])
    denoising = number("Denoising strength", float)
    return ParsedParameters(
        source="A1111",
        prompt="\n".join(prompt_lines).strip(),
        negative_prompt="\n".join(negative_lines).strip(),
        extra_prompts=_extra_prompts(settings.get("Extra prompts", "")),
        steps=number("Steps", int),
        cfg_scale=number("CFG scale", float),
        seed=number("Seed", int),
        sampler=settings.get("Sampler"),
        width=width,
        height=height,
        model=settings.get("Model", ""),
        style_preset=settings.get("Style preset", ""),
        clip_guidance_preset=settings.get("CLIP guidance", ""),
        init_image_mode="IMAGE_STRENGTH" if denoising is not None else "",
        image_strength=round(1 - denoising, 6) if denoising is not None else None,
    )


def _extra_prompts(text: str) -> tuple[Prompt, ...]:
    """Studio's `Extra prompts` setting: one `text | weight` a line."""
    prompts = []
    for line in text.splitlines():
        body, _, weight = line.rpartition("|")
        try:
            prompts.append(Prompt(body.strip(), float(weight)) if body.strip() else Prompt(line.strip()))
        except ValueError:
            prompts.append(Prompt(line.strip()))
    return tuple(p for p in prompts if p.text)
