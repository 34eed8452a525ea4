"""Many images as one ZIP, streamed: the manifests first, then each PNG in chunks, so memory stays flat
however many images are chosen (zipfile writes to a sink the response drains after every write)."""

import csv
import io
import json
import zipfile
from collections.abc import Iterator
from typing import Any

from generations.models import GalleryImage, GalleryImageQuerySet

CHUNK = 256 * 1024
ROWS_PER_QUERY = 200
MANIFEST_FIELDS = [
    "file",
    "id",
    "prompt",
    "negative_prompt",
    "engine",
    "kind",
    "seed",
    "width",
    "height",
    "steps",
    "cfg_scale",
    "sampler",
    "operation",
    "options",
    "style_preset",
    "clip_guidance_preset",
    "init_image_mode",
    "image_strength",
    "step_schedule_start",
    "step_schedule_end",
    "mask_source",
    "upscale_factor",
    "finish_reason",
    "creator",
    "created_at",
    "parent",
    "relation",
    "job",
    "text_prompts",
]


class _Sink(io.RawIOBase):
    """Where zipfile writes; the generator takes what was written after each step. Not seekable, so
    zipfile writes sizes after each member (data descriptors) instead of going back."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self._position = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self._parts.append(bytes(data))
        self._position += len(data)
        return len(data)

    def tell(self) -> int:
        return self._position

    def take(self) -> bytes:
        data, self._parts = b"".join(self._parts), []
        return data


def manifest_entry(image: GalleryImage) -> dict[str, Any]:
    """Everything about how one image was made, for manifest.json (and, flattened, manifest.csv)."""
    job = image.job
    return {
        "file": image.download_name,
        "id": str(image.pk),
        "prompt": job.prompt,
        "negative_prompt": job.negative_prompt,
        "engine": job.engine_id,
        "kind": image.get_kind_display() if image.kind else job.get_kind_display(),
        "seed": image.seed,
        "width": image.width,
        "height": image.height,
        # A Stable Image job sends no steps or sampler: its choices are its `options` (below).
        "steps": None if job.is_stable_image else job.steps,
        "cfg_scale": job.options.get("cfg_scale") if job.is_stable_image else job.cfg_scale,
        "sampler": None if job.is_stable_image else job.sampler,
        "operation": job.operation or None,
        "options": job.options or None,
        "style_preset": job.style_preset,
        "clip_guidance_preset": job.clip_guidance_preset,
        "init_image_mode": job.init_image_mode,
        "image_strength": job.image_strength,
        "step_schedule_start": job.step_schedule_start,
        "step_schedule_end": job.step_schedule_end,
        "mask_source": job.mask_source,
        "upscale_factor": job.upscale_factor,
        "finish_reason": image.finish_reason,
        "creator": image.created_by.username,
        "created_at": image.created_at.isoformat(),
        "parent": str(job.parent_id) if job.parent_id else None,
        "relation": job.relation,
        "job": str(job.pk),
        "text_prompts": job.text_prompts,
    }


def _rows(images: GalleryImageQuerySet) -> Iterator[GalleryImage]:
    return (
        images.select_related("job", "created_by")
        .defer("search_prompt", "search_all")
        .iterator(chunk_size=ROWS_PER_QUERY)
    )


def _csv_line(entry: dict[str, Any]) -> bytes:
    buffer = io.StringIO()
    row = {
        **entry,
        "text_prompts": json.dumps(entry["text_prompts"], ensure_ascii=False),
        "options": json.dumps(entry["options"], ensure_ascii=False) if entry["options"] else None,
    }
    csv.DictWriter(buffer, MANIFEST_FIELDS).writerow(
        {key: "" if value is None else value for key, value in row.items()}
    )
    return buffer.getvalue().encode()


def zip_stream(images: GalleryImageQuerySet) -> Iterator[bytes]:
    """The ZIP, piece by piece: manifest.json, manifest.csv, then one PNG per image (stored as is: PNGs
    are compressed already). Each manifest is written row by row, straight from the database."""
    sink = _Sink()
    archive = zipfile.ZipFile(sink, mode="w", compression=zipfile.ZIP_DEFLATED, allowZip64=True)
    with archive.open("manifest.json", "w", force_zip64=True) as member:
        member.write(b'{"images": [\n')
        for number, image in enumerate(_rows(images)):
            separator = b",\n" if number else b""
            member.write(separator + json.dumps(manifest_entry(image), ensure_ascii=False).encode())
            yield sink.take()
        member.write(b"\n]}\n")
    yield sink.take()
    with archive.open("manifest.csv", "w", force_zip64=True) as member:
        header = io.StringIO()
        csv.writer(header).writerow(MANIFEST_FIELDS)
        member.write(header.getvalue().encode())
        for image in _rows(images):
            member.write(_csv_line(manifest_entry(image)))
            yield sink.take()
    yield sink.take()
    for image in _rows(images):
        info = zipfile.ZipInfo(image.download_name, date_time=image.created_at.timetuple()[:6])
        info.compress_type = zipfile.ZIP_STORED
        with archive.open(info, "w", force_zip64=True) as member, image.image.open("rb") as source:
            while chunk := source.read(CHUNK):
                member.write(chunk)
                yield sink.take()
        yield sink.take()
    archive.close()
    yield sink.take()
