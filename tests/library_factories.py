"""Images for the library's tests: each made as Studio makes it (a finished job, then GalleryImage.save,
which copies the job's facts and counts the image in the team's tally), with the facets a test chooses."""

from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone

from generations.models import GalleryImage, GenerationJob
from tests.factories import GalleryImageFactory

KIND_FIELDS: dict[str, dict[str, Any]] = {
    "text-to-image": {"kind": "text-to-image"},
    "image-to-image": {"kind": "image-to-image", "init_image": "inputs/x.png"},
    "masking": {"kind": "masking", "init_image": "inputs/x.png", "mask_source": "INIT_IMAGE_ALPHA"},
    "upscale": {"kind": "upscale", "init_image": "inputs/x.png", "upscale_factor": 2, "relation": "upscale"},
    "variation": {"kind": "image-to-image", "init_image": "inputs/x.png", "relation": "variation"},
    "rerun": {"kind": "text-to-image", "relation": "rerun"},
}


def library_image(
    user: Any,
    team: Any = None,
    *,
    prompt: str = "a lighthouse on a cliff",
    negative: str = "",
    engine: str = "stable-diffusion-v1-6",
    style: str = "",
    kind: str = "text-to-image",
    size: tuple[int, int] = (512, 512),
    filtered: bool = False,
    created_at: datetime | None = None,
    parent: GalleryImage | None = None,
    seed: int | None = None,
) -> GalleryImage:
    team = team or user.current_team
    created_at = created_at or timezone.now()
    prompts = [{"text": prompt, "weight": 1.0}] + ([{"text": negative, "weight": -1.0}] if negative else [])
    job_fields = {
        "job__created_by": user,
        "job__team": team,
        "job__prompt": prompt,
        "job__negative_prompt": negative,
        "job__text_prompts": prompts,
        "job__engine_id": engine,
        "job__style_preset": style,
        "job__width": size[0],
        "job__height": size[1],
        "job__created_at": created_at - timedelta(seconds=5),
        "job__parent": parent,
        **{f"job__{name}": value for name, value in KIND_FIELDS[kind].items()},
    }
    extra = {"seed": seed} if seed is not None else {}
    return GalleryImageFactory(
        **job_fields,
        team=team,
        created_by=user,
        width=size[0],
        height=size[1],
        finish_reason="CONTENT_FILTERED" if filtered else "SUCCESS",
        created_at=created_at,
        **extra,
    )


def relation_of(image: GalleryImage) -> str:
    return GenerationJob.objects.get(pk=image.job_id).relation
